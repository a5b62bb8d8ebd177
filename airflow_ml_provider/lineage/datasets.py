"""Dataset identity for OpenLineage: files by location, models by registry name and version.

Files follow the OpenLineage naming conventions (``openlineage.client.naming.dataset``): a local file is
namespace ``file`` and its absolute path; an object in a store is namespace ``<scheme>://<bucket>`` and
its object key (``s3://bucket`` + ``prefix/features/<hex>.parquet``; ``s3a``/``s3n`` count as ``s3``,
``gcs`` as ``gs``); other fsspec URLs with a host are ``<scheme>://<host>`` and the path; fsspec's
in-process ``memory://`` filesystem is namespace ``memory`` and its absolute path. The identity is
computed from the URI alone, nothing is read: the OpenLineage listener builds events in a forked child
that must not touch remote storage.

Operators record :class:`LineageDataset` values (plain data, cheap) while they run; the
OpenLineage objects are built only when the listener asks, so DAG parsing never imports the client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_ml_provider.data.datasets import DatasetRef, is_local, local_path
from airflow_ml_provider.records.json_safe import short_text
from airflow_ml_provider.records.redaction import strip_credentials

if TYPE_CHECKING:
    from openlineage.client.event_v2 import Dataset
    from openlineage.client.generated.base import OutputDatasetFacet

FILE_NAMESPACE = "file"
MEMORY_NAMESPACE = "memory"
#: Schemes spelled differently for the same store: the namespace uses the first (as Spark's integration does).
_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3", "gcs": "gs"}
#: Object stores: the name is the object key (no leading slash), as the naming spec has it for S3 and GCS.
_OBJECT_STORES = frozenset({"s3", "gs", "abfs", "abfss", "az", "wasb", "wasbs", "adl", "oss", "r2"})
_CONTAINER_AT_HOST = frozenset({"abfs", "abfss", "wasb", "wasbs"})


@dataclass(frozen=True)
class LineageDataset:
    """What lineage needs to know about one dataset or model."""

    namespace: str
    name: str
    version: str | None = None
    schema: Mapping[str, str] = field(default_factory=dict)
    rows: int | None = None
    size_bytes: int | None = None
    dataset_type: str | None = None  # "MODEL" for models
    #: Data-quality assertions on this dataset as an input (plain dicts, see :func:`expectation_assertions`).
    assertions: tuple[Mapping[str, Any], ...] = ()


def dataset_identity(uri: str) -> tuple[str, str]:
    """OpenLineage ``(namespace, name)`` of a dataset URI (see the module doc); no I/O.

    Credentials in the URI (``user:password@``, ``?token=``) never reach the identity.
    """
    target = uri.rsplit("::", 1)[-1]  # a chained fsspec URL ("simplecache::s3://..."): the data is the last
    if is_local(target):
        return FILE_NAMESPACE, str(local_path(target))
    parts = urlsplit(target)  # the query (where a token could be) is not part of the identity
    scheme = _SCHEME_ALIASES.get(parts.scheme.lower(), parts.scheme.lower())
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        # abfss://<container>@<account>.dfs.core.windows.net names the container there, not a user
        if ":" in user or scheme not in _CONTAINER_AT_HOST:
            netloc = host
    if scheme == MEMORY_NAMESPACE:  # memory://a/b and memory:///a/b are both the path /a/b
        return MEMORY_NAMESPACE, "/" + f"{netloc}{parts.path}".lstrip("/")
    if not netloc:
        return scheme, parts.path
    if scheme in _OBJECT_STORES:
        return f"{scheme}://{netloc}", parts.path.lstrip("/") or "/"
    return f"{scheme}://{netloc}", parts.path or "/"


def file_dataset(ref: DatasetRef | Mapping[str, Any]) -> LineageDataset:
    ref = DatasetRef.from_dict(ref)
    namespace, name = dataset_identity(ref.uri)
    return LineageDataset(
        namespace=namespace,
        name=name,
        version=ref.fingerprint,
        schema=ref.schema,
        rows=ref.rows,
        size_bytes=ref.size_bytes or None,
    )


def uri_dataset(uri: str) -> LineageDataset:
    """A dataset known only by location (before it has been read, e.g. on task start)."""
    namespace, name = dataset_identity(uri)
    return LineageDataset(namespace=namespace, name=name)


def model_dataset(
    tracking_uri: str, model_name: str, version: str | None, fingerprint: str | None = None
) -> LineageDataset:
    name = f"models:/{model_name}/{version}" if version else f"models:/{model_name}"
    return LineageDataset(
        namespace=strip_credentials(tracking_uri),
        name=name,
        version=fingerprint or version,
        dataset_type="MODEL",
    )


def _facets(ds: LineageDataset) -> dict[str, Any]:
    from openlineage.client.facet_v2 import (
        dataset_type_dataset,
        dataset_version_dataset,
        schema_dataset,
    )

    facets: dict[str, Any] = {}
    if ds.schema:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in ds.schema.items()]
        )
    if ds.version:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=ds.version)
    if ds.dataset_type:
        facets["datasetType"] = dataset_type_dataset.DatasetTypeDatasetFacet(datasetType=ds.dataset_type)
    return facets


def to_input(ds: LineageDataset) -> Dataset:
    from openlineage.client.event_v2 import InputDataset

    input_facets: dict[str, Any] = {}
    if ds.assertions:
        input_facets["dataQualityAssertions"] = _data_quality_assertions(ds.assertions)
    return InputDataset(namespace=ds.namespace, name=ds.name, facets=_facets(ds), inputFacets=input_facets)


def _data_quality_assertions(assertions: Sequence[Mapping[str, Any]]) -> Any:
    """The spec's ``DataQualityAssertionsDatasetFacet`` from plain assertion dicts."""
    import attr
    from openlineage.client.generated.data_quality_assertions_dataset import (
        Assertion,
        DataQualityAssertionsDatasetFacet,
    )

    fields = {f.name for f in attr.fields(Assertion)}
    return DataQualityAssertionsDatasetFacet(
        assertions=[Assertion(**{"params": None, **{k: v for k, v in a.items() if k in fields}}) for a in assertions]
    )


#: Longest ``expected``/``actual`` text kept per assertion: enough to read, small enough for an event.
ASSERTION_TEXT_LIMIT = 200


def expectation_assertions(report: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    """One data-quality assertion per expectation of a Great Expectations report (``ExpectationReport.to_dict()``).

    Plain dicts in the shape of the spec's ``Assertion``: the expectation type, its column, success,
    and short ``expected`` (its other arguments) and ``actual`` (what was observed) texts. Severity is
    ``error``: a failed suite fails the step.
    """
    suite = report.get("suite_name")
    out = []
    for result in report.get("results") or ():
        kwargs = {k: v for k, v in (result.get("kwargs") or {}).items() if k not in ("column", "batch_id")}
        observed = result.get("observed") or {}
        actual: Any = None
        if result.get("exception"):
            actual = f"error: {result['exception']}"
        elif "observed_value" in observed:
            actual = observed["observed_value"]
        elif observed.get("unexpected_count") is not None:
            actual = {"unexpected_count": observed["unexpected_count"], "element_count": observed.get("element_count")}
        column = result.get("column")
        item = {
            "assertion": str(result.get("expectation_type")),
            "success": bool(result.get("success")),
            "column": column,
            "severity": "error",
            "name": f"{suite}:{result.get('expectation_type')}" + (f":{column}" if column else ""),
            "expected": short_text(kwargs, ASSERTION_TEXT_LIMIT) if kwargs else None,
            "actual": None if actual is None else short_text(actual, ASSERTION_TEXT_LIMIT),
        }
        out.append({k: v for k, v in item.items() if v is not None})
    return tuple(out)


def to_output(ds: LineageDataset) -> Dataset:
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.facet_v2 import output_statistics_output_dataset

    output_facets: dict[str, OutputDatasetFacet] = {}
    if ds.rows is not None or ds.size_bytes is not None:
        output_facets["outputStatistics"] = (
            output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=ds.rows, size=ds.size_bytes
            )
        )
    return OutputDataset(namespace=ds.namespace, name=ds.name, facets=_facets(ds), outputFacets=output_facets)
