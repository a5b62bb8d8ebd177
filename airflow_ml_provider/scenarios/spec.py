"""Must-pass scenario files: parsing and validation.

A scenario file names concrete inputs and what the candidate model must answer for them. The gate
treats a failed scenario as a blocker, so a file that cannot be read unambiguously is rejected here
with a message naming the file and the exact place, instead of being half-understood later.

Only the standard library is imported at module level: DAG files import our operators at parse
time, and PyYAML is imported inside :func:`load_scenarios` only when a YAML file is read.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_ml_provider.exceptions import AirflowMLError

__all__ = [
    "EXPECTATION_KINDS",
    "Equals",
    "Expectation",
    "MinAccuracy",
    "OneOf",
    "Scenario",
    "ScenarioFileError",
    "ScenarioSuite",
    "Within",
    "load_scenarios",
    "parse_scenarios",
]

#: The expectation kinds a scenario's ``expect`` mapping may hold (exactly one of them).
EXPECTATION_KINDS: tuple[str, ...] = ("equals", "one_of", "within", "min_accuracy")

_SCENARIO_KEYS: tuple[str, ...] = ("name", "description", "rows", "expect", "labels")
_TOP_LEVEL_KEYS: tuple[str, ...] = ("scenarios",)
_SUFFIXES: dict[str, str] = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}

Scalar = str | int | float | bool


class ScenarioFileError(AirflowMLError, ValueError):
    """A scenario file is missing or malformed; the message names the file and the exact place.

    A ``ValueError`` so callers that already treat bad configuration as ``ValueError`` keep working.
    """

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"{path}: {detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps the exception picklable (the default would call __init__ with the message only).
        return (type(self), (self.path, self.detail))


# --------------------------------------------------------------------------------------------------
# Expectations
# --------------------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    """Render a value for messages so that ``'1'`` (a string) and ``1`` (a number) look different."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class Equals:
    """Every prediction must equal ``value``."""

    value: Scalar

    def describe(self) -> str:
        """Human text used in reasons and summaries."""
        return f"equal {_fmt(self.value)}"


@dataclass(frozen=True)
class OneOf:
    """Every prediction must be one of ``values``."""

    values: tuple[Scalar, ...]

    def describe(self) -> str:
        """Human text used in reasons and summaries."""
        return "in [" + ", ".join(_fmt(v) for v in self.values) + "]"


@dataclass(frozen=True)
class Within:
    """Every prediction must be a finite number with ``min <= p <= max`` (a missing bound is open)."""

    min: float | None = None
    max: float | None = None

    def describe(self) -> str:
        """Human text used in reasons and summaries."""
        if self.min is not None and self.max is not None:
            return f"within [{_fmt(self.min)}, {_fmt(self.max)}]"
        if self.min is not None:
            return f">= {_fmt(self.min)}"
        return f"<= {_fmt(self.max)}"


@dataclass(frozen=True)
class MinAccuracy:
    """The fraction of predictions equal to the scenario's ``labels`` must be at least ``threshold``."""

    threshold: float

    def describe(self) -> str:
        """Human text used in reasons and summaries."""
        return f"accuracy >= {self.threshold:.2f}"


Expectation = Equals | OneOf | Within | MinAccuracy


# --------------------------------------------------------------------------------------------------
# Scenario and suite
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One named must-pass case: input rows and what the model has to answer for them."""

    name: str
    description: str
    rows: tuple[dict[str, Any], ...]
    expectation: Expectation
    labels: tuple[Scalar, ...] | None = None


@dataclass(frozen=True)
class ScenarioSuite:
    """A parsed scenario file; ``fingerprint`` (sha256 of the file bytes) ties evidence to the file."""

    path: str
    scenarios: tuple[Scenario, ...]
    fingerprint: str

    @property
    def names(self) -> tuple[str, ...]:
        """Scenario names in file order."""
        return tuple(s.name for s in self.scenarios)


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def load_scenarios(path: str | os.PathLike[str]) -> ScenarioSuite:
    """Read, parse and validate a scenario file (format chosen by suffix: .yaml, .yml or .json).

    Raises :class:`ScenarioFileError` for anything that is not a well-formed, non-empty suite.
    """
    where = os.fspath(path)
    file = Path(where)
    fmt = _SUFFIXES.get(file.suffix.lower())
    if fmt is None:
        raise ScenarioFileError(
            where, f"unsupported file suffix {file.suffix!r}; expected one of .yaml, .yml, .json"
        )
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ScenarioFileError(where, "file not found") from None
    except IsADirectoryError:
        raise ScenarioFileError(where, "is a directory, not a scenario file") from None
    except OSError as exc:
        raise ScenarioFileError(where, f"cannot read file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScenarioFileError(where, f"file is not valid UTF-8: {exc}") from exc

    data = _parse_yaml(text, where) if fmt == "yaml" else _parse_json(text, where)
    scenarios = parse_scenarios(data, source=where)
    return ScenarioSuite(path=where, scenarios=scenarios, fingerprint=hashlib.sha256(raw).hexdigest())


class _DuplicateKey(AirflowMLError):
    """Raised from the JSON object hook; turned into a ScenarioFileError by the caller."""


def _parse_json(text: str, where: str) -> Any:
    """Parse JSON, rejecting duplicate keys (the stdlib silently keeps the last one)."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise _DuplicateKey(key)
            out[key] = value
        return out

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise ScenarioFileError(
            where, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc
    except _DuplicateKey as exc:
        raise ScenarioFileError(where, f"invalid JSON: duplicate key {exc.args[0]!r}") from None


def _parse_yaml(text: str, where: str) -> Any:
    """Parse YAML safely, rejecting duplicate keys (PyYAML silently keeps the last one)."""
    import yaml

    try:
        return yaml.load(text, Loader=_strict_yaml_loader())  # a SafeLoader subclass: safe
    except yaml.MarkedYAMLError as exc:
        parts = [p for p in (exc.context, exc.problem) if p]
        problem = "; ".join(parts) or "parse error"
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ScenarioFileError(where, f"invalid YAML{at}: {problem}") from exc
    except yaml.YAMLError as exc:
        raise ScenarioFileError(where, f"invalid YAML: {exc}") from exc


_LOADER_CACHE: dict[str, Any] = {}


def _strict_yaml_loader() -> Any:
    """A SafeLoader that refuses duplicate mapping keys (built lazily so yaml is imported late)."""
    cached = _LOADER_CACHE.get("loader")
    if cached is not None:
        return cached
    import yaml
    from yaml.constructor import ConstructorError

    class StrictSafeLoader(yaml.SafeLoader):
        """SafeLoader + duplicate-key detection; merge keys (``<<``) may still be overridden."""

    def construct_mapping(loader: StrictSafeLoader, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable key: let the stock constructor report it
                continue
            if duplicate:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return loader.construct_mapping(node, deep=deep)

    StrictSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    _LOADER_CACHE["loader"] = StrictSafeLoader
    return StrictSafeLoader


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    """Name a parsed value's type the way a file author thinks of it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, Mapping):
        return "mapping"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    """Numbers only: YAML/JSON booleans are ints in Python but are not accepted as numbers here."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_row_value(value: Any) -> bool:
    """Row cells must be plain scalars (null allowed: a missing feature value is a legitimate test)."""
    return value is None or isinstance(value, (str, int, float, bool))


def _is_expected_value(value: Any) -> bool:
    """Expected values must be comparable: non-null scalars, no NaN/inf (they could never match)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool))


def parse_scenarios(data: Any, source: str = "<scenarios>") -> tuple[Scenario, ...]:
    """Validate an already-parsed document (``{'scenarios': [...]}``) and build the scenarios.

    ``source`` names the document in error messages. Useful for scenarios defined inline in code.
    """
    if not isinstance(data, Mapping):
        got = "an empty document" if data is None else f"a {_type_name(data)}"
        raise ScenarioFileError(
            source, f"top level must be a mapping with a non-empty 'scenarios' list; got {got}"
        )
    unknown = [k for k in data if k not in _TOP_LEVEL_KEYS]
    if unknown:
        raise ScenarioFileError(
            source, f"unknown top-level key(s) {unknown!r}; allowed: {list(_TOP_LEVEL_KEYS)!r}"
        )
    if "scenarios" not in data:
        raise ScenarioFileError(source, "top level must have a non-empty 'scenarios' list; it is missing")
    entries = data["scenarios"]
    if not isinstance(entries, list):
        raise ScenarioFileError(source, f"'scenarios' must be a non-empty list; got a {_type_name(entries)}")
    if not entries:
        raise ScenarioFileError(source, "'scenarios' must be a non-empty list; got an empty list")

    scenarios: list[Scenario] = []
    first_seen: dict[str, int] = {}
    for number, entry in enumerate(entries, start=1):
        scenario = _parse_one(entry, number, source)
        if scenario.name in first_seen:
            raise ScenarioFileError(
                source,
                f"scenario #{number} ({scenario.name!r}): duplicate name {scenario.name!r} "
                f"(already used by scenario #{first_seen[scenario.name]})",
            )
        first_seen[scenario.name] = number
        scenarios.append(scenario)
    return tuple(scenarios)


def _parse_one(entry: Any, number: int, source: str) -> Scenario:
    """Validate one scenario entry; every error message carries ``scenario #N ('name')``."""
    if not isinstance(entry, Mapping):
        raise ScenarioFileError(source, f"scenario #{number}: must be a mapping; got a {_type_name(entry)}")

    raw_name = entry.get("name")
    has_name = isinstance(raw_name, str) and raw_name.strip() != ""
    where = f"scenario #{number} ({raw_name!r})" if has_name else f"scenario #{number}"

    def fail(detail: str) -> ScenarioFileError:
        return ScenarioFileError(source, f"{where}: {detail}")

    unknown = [k for k in entry if k not in _SCENARIO_KEYS]
    if unknown:
        raise fail(f"unknown key(s) {unknown!r}; allowed: {list(_SCENARIO_KEYS)!r}")

    if "name" not in entry:
        raise fail("'name' is required")
    if not isinstance(raw_name, str):
        raise fail(f"'name' must be a non-empty string; got a {_type_name(raw_name)}")
    if not has_name:
        raise fail("'name' must be a non-empty string; got an empty string")
    name: str = raw_name

    description = entry.get("description")
    if description is None:
        description = ""
    elif not isinstance(description, str):
        raise fail(f"'description' must be a string; got a {_type_name(description)}")

    rows = _parse_rows(entry, fail)
    expectation = _parse_expect(entry, fail)

    labels: tuple[Scalar, ...] | None = None
    if isinstance(expectation, MinAccuracy):
        if "labels" not in entry or entry["labels"] is None:
            raise fail("'labels' is required with min_accuracy (one label per row)")
        raw_labels = entry["labels"]
        if not isinstance(raw_labels, list):
            raise fail(f"'labels' must be a list (one label per row); got a {_type_name(raw_labels)}")
        if len(raw_labels) != len(rows):
            raise fail(f"'labels' has {len(raw_labels)} item(s) but 'rows' has {len(rows)}; they must match")
        for index, label in enumerate(raw_labels, start=1):
            if not _is_expected_value(label):
                raise fail(
                    f"label #{index} must be a string, number or boolean (not null, NaN or inf); "
                    f"got {_describe_bad(label)}"
                )
        labels = tuple(raw_labels)
    elif "labels" in entry:
        raise fail("'labels' is only allowed with 'expect: min_accuracy'")

    return Scenario(name=name, description=description, rows=rows, expectation=expectation, labels=labels)


def _parse_rows(
    entry: Mapping[str, Any], fail: Callable[[str], ScenarioFileError]
) -> tuple[dict[str, Any], ...]:
    """Rows: a non-empty list of non-empty mappings from column name (string) to scalar value."""
    if "rows" not in entry:
        raise fail("'rows' is required (a non-empty list of mappings column -> value)")
    raw_rows = entry["rows"]
    if not isinstance(raw_rows, list):
        raise fail(f"'rows' must be a non-empty list of mappings; got a {_type_name(raw_rows)}")
    if not raw_rows:
        raise fail("'rows' must be a non-empty list of mappings; got an empty list")
    rows: list[dict[str, Any]] = []
    for index, row in enumerate(raw_rows, start=1):
        if not isinstance(row, Mapping):
            raise fail(f"row #{index} must be a mapping column -> value; got a {_type_name(row)}")
        if not row:
            raise fail(f"row #{index} is an empty mapping")
        for column, value in row.items():
            if not isinstance(column, str) or column == "":
                raise fail(
                    f"row #{index}: column names must be non-empty strings; got {column!r} (quote it in YAML)"
                )
            if not _is_row_value(value):
                raise fail(
                    f"row #{index}, column {column!r}: value must be a string, number, boolean or null; "
                    f"got a {_type_name(value)}"
                )
        rows.append(dict(row))
    return tuple(rows)


def _parse_expect(entry: Mapping[str, Any], fail: Callable[[str], ScenarioFileError]) -> Expectation:
    """``expect`` holds exactly one known kind with a valid value."""
    kinds = ", ".join(EXPECTATION_KINDS)
    if "expect" not in entry:
        raise fail(f"'expect' is required (exactly one of {kinds})")
    expect = entry["expect"]
    if not isinstance(expect, Mapping):
        raise fail(f"'expect' must be a mapping with exactly one of {kinds}; got a {_type_name(expect)}")
    unknown = [k for k in expect if k not in EXPECTATION_KINDS]
    if unknown:
        raise fail(f"'expect' has unknown kind(s) {unknown!r}; expected exactly one of {kinds}")
    present = list(expect)
    if len(present) != 1:
        raise fail(f"'expect' must have exactly one of {kinds}; got {present!r}")
    kind = present[0]
    value = expect[kind]

    if kind == "equals":
        if not _is_expected_value(value):
            raise fail(
                f"'expect.equals' must be a string, number or boolean (not null, NaN or inf); "
                f"got {_describe_bad(value)}"
            )
        return Equals(value)

    if kind == "one_of":
        if not isinstance(value, list):
            raise fail(f"'expect.one_of' must be a non-empty list; got {_describe_bad(value)}")
        if not value:
            raise fail("'expect.one_of' must be a non-empty list; got an empty list")
        for index, item in enumerate(value, start=1):
            if not _is_expected_value(item):
                raise fail(
                    f"'expect.one_of' item #{index} must be a string, number or boolean "
                    f"(not null, NaN or inf); got {_describe_bad(item)}"
                )
        return OneOf(tuple(value))

    if kind == "within":
        if not isinstance(value, Mapping):
            raise fail(
                f"'expect.within' must be a mapping with 'min' and/or 'max'; got {_describe_bad(value)}"
            )
        extra = [k for k in value if k not in ("min", "max")]
        if extra:
            raise fail(f"'expect.within' has unknown key(s) {extra!r}; allowed: ['min', 'max']")
        bounds: dict[str, float | None] = {"min": None, "max": None}
        for bound in ("min", "max"):
            if bound in value and value[bound] is not None:
                b = value[bound]
                if not _is_number(b) or not math.isfinite(b):
                    raise fail(f"'expect.within.{bound}' must be a finite number; got {_describe_bad(b)}")
                bounds[bound] = float(b)
        low, high = bounds["min"], bounds["max"]
        if low is None and high is None:
            raise fail("'expect.within' needs at least one of 'min' or 'max'")
        if low is not None and high is not None and low > high:
            raise fail(f"'expect.within' has min {_fmt(low)} > max {_fmt(high)}")
        return Within(min=low, max=high)

    # min_accuracy
    if not _is_number(value) or not math.isfinite(value):
        raise fail(f"'expect.min_accuracy' must be a number between 0 and 1; got {_describe_bad(value)}")
    if not 0 <= value <= 1:
        raise fail(f"'expect.min_accuracy' must be between 0 and 1; got {_fmt(value)}")
    return MinAccuracy(float(value))


def _describe_bad(value: Any) -> str:
    """Show scalars literally and containers by type, for 'got ...' in messages."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return _fmt(value) if value is not None else "null"
    return f"a {_type_name(value)}"
