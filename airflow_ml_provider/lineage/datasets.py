"""Dataset identity for OpenLineage: files by path, models by registry name and version.

Operators record :class:`LineageDataset` values (plain data, cheap) while they run; the
OpenLineage objects are built only when the listener asks, so DAG parsing never imports the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from airflow_ml_provider.datasets import DatasetRef, local_path

if TYPE_CHECKING:
    from openlineage.client.event_v2 import Dataset

FILE_NAMESPACE = "file"


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


def strip_credentials(uri: str) -> str:
    """Drop user:password@ from a URI so credentials never reach lineage."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def file_dataset(ref: DatasetRef | Mapping[str, Any]) -> LineageDataset:
    ref = DatasetRef.from_dict(ref)
    return LineageDataset(
        namespace=FILE_NAMESPACE,
        name=str(ref.path),
        version=ref.fingerprint,
        schema=ref.schema,
        rows=ref.rows,
        size_bytes=ref.size_bytes or None,
    )


def uri_dataset(uri: str) -> LineageDataset:
    """A dataset known only by location (before it has been read, e.g. on task start)."""
    return LineageDataset(namespace=FILE_NAMESPACE, name=str(local_path(uri)))


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

    return InputDataset(namespace=ds.namespace, name=ds.name, facets=_facets(ds))


def to_output(ds: LineageDataset) -> Dataset:
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.facet_v2 import output_statistics_output_dataset

    output_facets = {}
    if ds.rows is not None or ds.size_bytes is not None:
        output_facets["outputStatistics"] = (
            output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=ds.rows, size=ds.size_bytes
            )
        )
    return OutputDataset(namespace=ds.namespace, name=ds.name, facets=_facets(ds), outputFacets=output_facets)
