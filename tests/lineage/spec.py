"""Validate OpenLineage events against the OpenLineage JSON Schemas and our own facet schemas.

``validate_event(event)`` returns every problem found in one event (an empty list means valid):

1. the whole event against the core ``OpenLineage.json#/$defs/RunEvent`` definition;
2. then each facet (run, job, dataset ``facets``, ``inputFacets``, ``outputFacets``) against the
   definition its ``_schemaURL`` names.

Schemas come from three places, all loaded into one local ``referencing.Registry`` (nothing is fetched):

- the OpenLineage spec in ``<checkout>/../shared/openlineage-spec`` (``OpenLineage.json`` and
  ``facets/*.json``, registered by their ``$id``). CI clones the repository into some folder with a
  copy of ``shared/`` beside it. Where the folder is absent (a fresh clone), the tests that need it
  skip with the reason; ``.ci/run`` sets ``AIRFLOW_ML_TESTS_STRICT=1``, which makes absence a failure;
- our own facet schemas, shipped in the package at ``airflow_ml_provider/lineage/schemas/*.json``;
  their ``_schemaURL`` ends with ``/airflow_ml_provider/lineage/schemas/<Name>.json#/$defs/<Name>``;
- the facet schemas the Airflow OpenLineage provider ships in its wheel
  (``airflow/providers/openlineage/facets/*.json``) and the ``UnknownSourceAttributeRunFacet`` schema
  shipped by ``openlineage-integration-common``, located through package metadata (no import of Airflow).

A ``_schemaURL`` is resolved by FILE NAME, not by its full URL: the spec version inside the URL may
differ from the file stored here (e.g. the provider emits ``facets/2-0-4/JobTypeJobFacet.json``; the
stored ``JobTypeJobFacet.json`` may carry another version in its ``$id``), and a schema's ``$ref`` to
``https://openlineage.io/spec/<version>/OpenLineage.json`` is resolved to the stored ``OpenLineage.json``
whatever the version. Every such substitution is recorded in ``Validator.notes`` so it stays visible.

The Airflow provider (2.20.x) stamps its own facets (``airflow``, ``airflowDagRun``, ``airflowState``,
``debug``, ``unknownSourceAttribute``, the ``airflow`` job facet) with the generic core URL
``OpenLineage.json#/$defs/RunFacet`` (or ``JobFacet``). Validating them only against that definition checks
nothing but ``_producer``/``_schemaURL``, so they are ALSO validated, by facet name, against the schema the
provider ships for them (``PROVIDER_FACETS``). Facets that have no schema anywhere here are listed in
``NO_SCHEMA_AVAILABLE`` with the reason; anything else whose ``_schemaURL`` names a schema we do not have
is an error.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable

REPO = Path(__file__).resolve().parents[2]
SPEC_DIR = REPO.parent / "shared" / "openlineage-spec"
OUR_SCHEMAS = REPO / "airflow_ml_provider" / "lineage" / "schemas"
OUR_URL_MARK = "/airflow_ml_provider/lineage/schemas/"
PROVIDER_URL_MARK = "/providers/openlineage/facets/"
CORE = "OpenLineage.json"
SPEC_HOST = "openlineage.io"

# Facets the Airflow provider emits under the generic core _schemaURL, with the schema it ships for them:
# (where, facet name) -> (file name, definition). ``where`` is "run" or "job".
PROVIDER_FACETS: dict[tuple[str, str], tuple[str, str]] = {
    ("run", "airflow"): ("AirflowRunFacet.json", "AirflowRunFacet"),
    ("run", "airflowDagRun"): ("AirflowDagRunFacet.json", "AirflowDagRunFacet"),
    ("run", "airflowState"): ("AirflowStateRunFacet.json", "AirflowStateRunFacet"),
    ("run", "debug"): ("AirflowDebugRunFacet.json", "AirflowDebugRunFacet"),
    ("job", "airflow"): ("AirflowJobFacet.json", "AirflowJobFacet"),
    # UnknownOperatorAttributeRunFacet (deprecated in the provider) has the shape of openlineage-common's
    # UnknownSourceAttributeRunFacet schema.
    ("run", "unknownSourceAttribute"): ("UnknownSourceAttributeRunFacet.json", "UnknownSourceAttributeRunFacet"),
}

# Facets emitted by the Airflow provider for which no JSON Schema exists in the spec folder, in the
# provider's wheel or in openlineage-common. They are still checked against the core facet definition
# their _schemaURL names (``_producer`` and ``_schemaURL`` present and well-formed); nothing more is possible.
NO_SCHEMA_AVAILABLE: dict[tuple[str, str], str] = {
    ("run", "airflowMappedTask"): "AirflowMappedTaskRunFacet (mapped tasks): the provider ships no schema for it",
}

# Known disagreements between the Airflow provider (2.20.3 on Airflow 3.3) and the schemas it ships itself:
# its facets, not ours, and nothing our code can change. Matched exactly (kind, facet name + JSON path,
# message); every other error in these facets fails. Each occurrence is kept in Validator.notes.
PROVIDER_SCHEMA_DRIFT: dict[tuple[str, str, str], str] = {
    # Airflow 3 DAGs need no start_date (the example DAG has none); the provider omits None values,
    # while its schema still requires the key.
    ("run", "airflow.dag", "'start_date' is a required property"): "Airflow 3 DAGs may have no start_date",
    ("run", "airflowDagRun.dag", "'start_date' is a required property"): "Airflow 3 DAGs may have no start_date",
    # Airflow 3's task-sdk runtime TaskInstance has no ``pool`` attribute for the provider to copy.
    ("run", "airflow.taskInstance", "'pool' is a required property"): "no pool on the task-sdk TaskInstance",
    # retry_exponential_backoff became a float multiplier in Airflow 3.x (0 = off); the schema says boolean.
    ("run", "airflow.task.retry_exponential_backoff", "0 is not of type 'boolean'"): (
        "retry_exponential_backoff is a number multiplier in Airflow 3"
    ),
}

# Package files holding schemas that are neither in the spec folder nor in our package:
# distribution name -> {path inside the distribution: file name to register it under}.
_DISTRIBUTION_SCHEMAS: dict[str, dict[str, str]] = {
    "apache-airflow-providers-openlineage": {
        f"airflow/providers/openlineage/facets/{name}": name
        for name, _ in PROVIDER_FACETS.values()
        if name.startswith("Airflow")
    },
    "openlineage-integration-common": {
        "openlineage/common/schema/unknown-source-attribute-run-facet.json": "UnknownSourceAttributeRunFacet.json",
    },
}


class SpecMissing(RuntimeError):
    """The OpenLineage spec folder is not where CI puts it."""


# --- formats ---------------------------------------------------------------------------------------
# jsonschema checks "date-time" and "uri" only when optional packages (rfc3339-validator, rfc3987) are
# installed, and silently passes otherwise. The spec uses exactly three formats; check them here.

_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
# RFC 3986: scheme ":" then only unreserved / reserved characters and percent-encodings.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$")

FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    leap_second_ok = value[:17] + "59" + value[19:] if value[17:19] == "60" else value  # RFC 3339 allows :60
    datetime.fromisoformat(leap_second_ok)  # field ranges (month 13, Feb 30, hour 25) raise ValueError
    return True


@FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or bool(_URI.match(value))


@FORMATS.checks("uuid", raises=ValueError)
def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    uuid.UUID(value)
    return len(value) == 36 and all(value[i] == "-" for i in (8, 13, 18, 23))


# --- loading ---------------------------------------------------------------------------------------


@dataclass
class Schemas:
    """Every schema document in one registry, indexed by file name per origin."""

    registry: Registry[Any]
    spec: dict[str, str]  # file name -> registry URI ($id, or a urn: when the file has none)
    ours: dict[str, str]
    packaged: dict[str, str]  # the Airflow provider's and openlineage-common's
    substitutions: set[str]  # $refs to another spec version, resolved to the stored file of that name


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RuntimeError(f"cannot load JSON Schema {path}: {e}") from e
    if not isinstance(doc, dict):
        raise RuntimeError(f"JSON Schema {path} is not an object")
    return doc


def _spec_files(spec_dir: Path) -> list[Path]:
    core = spec_dir / CORE
    if not core.is_file():
        raise SpecMissing(
            f"OpenLineage spec not found: expected {core}. The tests read the JSON Schemas from "
            f"<checkout>/../shared/openlineage-spec; put a copy of shared/ beside the checkout ({REPO})."
        )
    facets = sorted((spec_dir / "facets").glob("*.json"))
    if not facets:
        raise SpecMissing(f"OpenLineage spec at {spec_dir} has no facets/*.json")
    return [core, *facets]


def _distribution_files() -> Iterator[tuple[str, Path]]:
    for dist_name, wanted in _DISTRIBUTION_SCHEMAS.items():
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError as e:
            raise RuntimeError(f"{dist_name} is not installed; its facet schemas are needed") from e
        for inside, name in wanted.items():
            path = Path(str(dist.locate_file(inside)))
            if not path.is_file():
                raise RuntimeError(f"{dist_name} {dist.version} does not ship {inside}")
            yield name, path


def our_schema_files(our_dir: Path = OUR_SCHEMAS) -> list[Path]:
    return sorted(our_dir.glob("*.json")) if our_dir.is_dir() else []


@cache
def load_schemas(spec_dir: Path = SPEC_DIR, our_dir: Path = OUR_SCHEMAS) -> Schemas:
    """Load the spec (required), our schemas (those that exist) and the packaged provider schemas."""
    resources: dict[str, Resource[Any]] = {}
    spec: dict[str, str] = {}
    ours: dict[str, str] = {}
    packaged: dict[str, str] = {}
    spec_docs: dict[str, dict[str, Any]] = {}

    def add(index: dict[str, str], path: Path, origin: str, name: str | None = None) -> dict[str, Any]:
        name = name or path.name
        doc = _load(path)
        uri = str(doc.get("$id") or f"urn:airflow-ml-tests:{origin}/{name}").rstrip("#")
        if name in index:
            raise RuntimeError(f"two {origin} schemas named {name}: {index[name]} and {path}")
        if uri in resources:
            raise RuntimeError(f"{path}: $id {uri} is already used by another schema")
        index[name] = uri
        resources[uri] = Resource.from_contents(doc)
        return doc

    for path in _spec_files(spec_dir):
        spec_docs[path.name] = add(spec, path, "openlineage-spec")
    # Our schemas are being written alongside the facets: an emitted facet naming one that does not
    # exist yet is reported by validate_event as "no schema <Name>.json in our package".
    for path in our_schema_files(our_dir):
        add(ours, path, "airflow-ml-provider")
    for name, path in _distribution_files():
        add(packaged, path, "packaged", name)

    substitutions: set[str] = set()

    def retrieve(uri: str) -> Resource[Any]:
        # A $ref to another spec version of a stored file (openlineage-common's schema refers to
        # https://openlineage.io/spec/1-0-2/OpenLineage.json): use the stored file of that name.
        parts = urlsplit(uri)
        name = PurePosixPath(parts.path).name
        if parts.netloc == SPEC_HOST and parts.path.startswith("/spec/") and name in spec_docs:
            substitutions.add(f"$ref {uri} resolved to the stored {name} ({spec[name]})")
            return Resource.from_contents(spec_docs[name])
        raise NoSuchResource(ref=uri)

    registry: Registry[Any] = Registry(retrieve=retrieve).with_resources(resources.items())  # type: ignore[call-arg]
    return Schemas(registry.crawl(), spec, ours, packaged, substitutions)


# --- validation ------------------------------------------------------------------------------------

# The base definitions in OpenLineage.json: a facet naming one of these has not named its own schema.
GENERIC_DEFINITIONS = {
    "BaseFacet",
    "RunFacet",
    "JobFacet",
    "DatasetFacet",
    "InputDatasetFacet",
    "OutputDatasetFacet",
}


def require_spec() -> None:
    """Skip the calling test (fail it under ``AIRFLOW_ML_TESTS_STRICT=1``) when the spec folder is absent."""
    from tests.requirements import requirement_missing

    try:
        _spec_files(SPEC_DIR)
    except SpecMissing as e:
        requirement_missing(
            str(e),
            "These tests validate lineage against that spec; .ci/run (CI) requires it.",
        )


def spec_schemas() -> Schemas:
    """The schemas for the default spec folder, or a skip (or failure in CI) saying why there are none."""
    require_spec()
    return load_schemas()


@dataclass
class Validator:
    """Validates events; ``notes`` collects what was matched loosely (version substitutions, allowlist)."""

    schemas: Schemas = field(default_factory=spec_schemas)
    notes: set[str] = field(default_factory=set)

    def validate_event(self, event: Any) -> list[str]:
        errors = self.check(event, f"{self.schemas.spec[CORE]}#/$defs/RunEvent", "event")
        if isinstance(event, Mapping):
            for where, name, facet in _facets(event):
                errors += self._check_facet(where, name, facet)
        self.notes |= self.schemas.substitutions
        return errors

    def _check_facet(self, where: str, name: str, facet: Any) -> list[str]:
        label = f"{where}.{name}"
        if not isinstance(facet, Mapping) or not isinstance(facet.get("_schemaURL"), str):
            return []  # the core RunEvent schema already reports a facet that is not an object, or has no URL
        url = facet["_schemaURL"]
        target, problem = self._resolve(url)
        if problem:
            return [f"{label}: _schemaURL {url}: {problem}"]
        errors = self.check(facet, target, label, url)
        parts = urlsplit(url)
        if PurePosixPath(parts.path).name == CORE and parts.fragment.rsplit("/", 1)[-1] in GENERIC_DEFINITIONS:
            errors += self._check_generic(where.split(".", 1)[0], name, facet, label, url)
        return errors

    def _check_generic(self, kind: str, name: str, facet: Mapping[str, Any], label: str, url: str) -> list[str]:
        """A facet stamped with a generic core definition: the Airflow provider's, if we know it by name."""
        key = (kind if kind in ("run", "job") else "dataset", name)
        if key in NO_SCHEMA_AVAILABLE:
            self.notes.add(f"{label}: no schema available, core definition only ({NO_SCHEMA_AVAILABLE[key]})")
            return []
        if key not in PROVIDER_FACETS:
            return [
                f"{label}: _schemaURL {url} is a generic core definition, not the facet's own schema "
                "(and it is not a known Airflow provider facet)"
            ]
        file_name, definition = PROVIDER_FACETS[key]
        target = f"{self.schemas.packaged[file_name]}#/$defs/{definition}"
        against = f"provider's {file_name}#/$defs/{definition}"
        errors = []
        for where, message in self.errors(facet, target):
            drift = PROVIDER_SCHEMA_DRIFT.get((key[0], name + where, message))
            if drift:
                self.notes.add(f"{label}{where}: {message} (schema {against}) -- allowed: {drift}")
            else:
                errors.append(f"{label}{where}: {message} (schema {against})")
        return errors

    def _resolve(self, url: str) -> tuple[str, str | None]:
        """The registry ``URI#fragment`` a _schemaURL names, or the problem with it."""
        parts = urlsplit(url)
        name = PurePosixPath(parts.path).name
        if OUR_URL_MARK in parts.path:
            index, origin = self.schemas.ours, f"our package ({OUR_SCHEMAS.relative_to(REPO)})"
        elif PROVIDER_URL_MARK in parts.path:
            index, origin = self.schemas.packaged, "the Airflow OpenLineage provider's package"
        elif parts.netloc == SPEC_HOST and parts.path.startswith("/spec/"):
            index, origin = self.schemas.spec, "the OpenLineage spec folder"
        else:
            return "", "names a schema we do not have (not the OpenLineage spec, our package or the provider)"
        if name not in index:
            return "", f"no schema {name} in {origin}"
        uri = index[name]
        if index is self.schemas.spec and uri != url.split("#", 1)[0]:
            # Matched by file name: the version in the URL differs from the stored file's $id.
            self.notes.add(f"{url.split('#', 1)[0]} matched by file name to the stored {uri}")
        if parts.fragment and not parts.fragment.startswith("/"):
            return "", f"fragment #{parts.fragment} is not a JSON Pointer"
        target = f"{uri}#{parts.fragment}"
        try:
            self.schemas.registry.resolver().lookup(target)
        except Unresolvable:
            return "", f"{name} has no definition at #{parts.fragment}"
        return target, None

    def check(self, instance: Any, target: str, label: str, against: str | None = None) -> list[str]:
        """Errors of ``instance`` against the schema at registry ``URI#pointer`` ``target``, as text."""
        suffix = f" (schema {against})" if against else ""
        return [f"{label}{where}: {message}{suffix}" for where, message in self.errors(instance, target)]

    def errors(self, instance: Any, target: str) -> list[tuple[str, str]]:
        """(JSON path inside ``instance``, message) of each most specific error."""
        validator = Draft202012Validator({"$ref": target}, registry=self.schemas.registry, format_checker=FORMATS)
        try:
            return [(_path(e), e.message) for e in _leaves(validator.iter_errors(instance))]
        except Exception as e:  # a broken schema (bad $ref, unknown type): an error, never a pass
            return [("", f"cannot validate against {target}: {type(e).__name__}: {e}")]


def _facets(event: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(where, facet name, facet) for every facet map in the event."""

    def items(where: str, facets: Any) -> Iterator[tuple[str, str, Any]]:
        if isinstance(facets, Mapping):
            for name, facet in facets.items():
                yield where, str(name), facet

    run, job = event.get("run"), event.get("job")
    if isinstance(run, Mapping):
        yield from items("run.facets", run.get("facets"))
    if isinstance(job, Mapping):
        yield from items("job.facets", job.get("facets"))
    for side, extra in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        datasets = event.get(side)
        if not isinstance(datasets, list):
            continue
        for i, ds in enumerate(datasets):
            if isinstance(ds, Mapping):
                yield from items(f"{side}[{i}].facets", ds.get("facets"))
                yield from items(f"{side}[{i}].{extra}", ds.get(extra))


def _leaves(errors: Iterable[ValidationError]) -> Iterator[ValidationError]:
    """The most specific errors: an anyOf/oneOf/allOf failure is replaced by the failures inside it."""
    for error in errors:
        if error.context:
            yield from _leaves(error.context)
        else:
            yield error


def _path(error: ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


@cache
def _default_validator() -> Validator:
    return Validator()


def validate_event(event: dict[str, Any]) -> list[str]:
    """All errors in one OpenLineage event: the core RunEvent, then each facet by its ``_schemaURL``."""
    return _default_validator().validate_event(event)


def notes() -> set[str]:
    """What the default validator matched loosely so far (version substitutions, facets with no schema)."""
    return set(_default_validator().notes)


def facet_errors(facet: Mapping[str, Any]) -> list[str]:
    """Problems of one serialised facet against the schema its ``_schemaURL`` names (spec, ours or the provider's).

    Skips the calling test (fails it in CI) when the spec folder is absent, as every spec test does."""
    validator = _default_validator()
    url = facet["_schemaURL"]
    target, problem = validator._resolve(url)
    if problem:
        return [f"_schemaURL {url}: {problem}"]
    return validator.check(facet, target, "facet", url)
