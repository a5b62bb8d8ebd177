"""Validate pandas frames against Great Expectations suites stored as JSON files.

Only the standard library is imported at module level: DAG files import our operators (and so this
module) on every parse, and ``import great_expectations`` alone costs seconds. GX and pandas are
imported inside the functions that need them.

Two GX behaviours shape this module (see DESIGN.md, "Great Expectations"):

* building a suite from JSON silently drops expectations GX cannot build (unknown type, bad kwargs)
  and only logs it, and
* a suite with no expectations validates as success.

Either would let bad data through a gate unnoticed, so :func:`load_suite` checks every expectation
in the file was built and refuses empty suites.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.exceptions import AirflowMLError
from airflow_ml_provider.parsing import (
    optional_str,
    require_bool,
    require_keys,
    require_list,
    require_mapping,
    require_text,
)
from airflow_ml_provider.records.json_safe import json_safe

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationSuite
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult

__all__ = [
    "DataExpectationError",
    "ExpectationReport",
    "ExpectationResult",
    "ExpectationSuiteError",
    "load_suite",
    "validate_frame",
]

#: How many example unexpected values a result keeps; enough to diagnose, small enough for a facet.
PARTIAL_UNEXPECTED_LIMIT = 5

#: BASIC, not SUMMARY: it carries everything a report keeps (element and unexpected counts, the observed
#: value, a few unexpected examples), and SUMMARY's extra value counts and row indexes cost GX one more
#: metric per expectation: validation took 1.1-1.3 s with SUMMARY and 0.7 s with BASIC on the example's
#: 64-expectation raw suite (569 rows).
_RESULT_FORMAT: dict[str, Any] = {
    "result_format": "BASIC",
    "partial_unexpected_count": PARTIAL_UNEXPECTED_LIMIT,
}


class ExpectationSuiteError(AirflowMLError, ValueError):
    """The suite file itself is unusable (missing, not JSON, not a GX suite, empty, or lossy on load).

    Separate from :class:`DataExpectationError` because it is a configuration bug in the pipeline,
    not a finding about the data, and must never be mistaken for (or hidden behind) a data result.
    """


# --------------------------------------------------------------------------------------------------
# Report types
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one expectation, reduced to JSON-safe data so it can be logged, stored and gated."""

    expectation_type: str
    column: str | None
    success: bool
    kwargs: dict[str, Any]
    observed: dict[str, Any]
    exception: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; :meth:`from_dict` reverses it."""
        return {
            "expectation_type": self.expectation_type,
            "column": self.column,
            "success": self.success,
            "kwargs": json_safe(self.kwargs, infinity_as_text=True),
            "observed": json_safe(self.observed, infinity_as_text=True),
            "exception": self.exception,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExpectationResult:
        """Rebuild a result from :meth:`to_dict` output (e.g. read back from a step record), strictly:
        a missing or unknown key or a wrong type raises ``ValueError`` naming it (fail closed)."""
        keys = ("expectation_type", "column", "success", "kwargs", "observed", "exception")
        d = require_keys(d, "expectation result", keys)
        return cls(
            expectation_type=require_text(d["expectation_type"], "expectation result expectation_type"),
            column=optional_str(d["column"], "expectation result column"),
            success=require_bool(d["success"], "expectation result success"),
            kwargs=require_mapping(d["kwargs"], "expectation result kwargs"),
            observed=require_mapping(d["observed"], "expectation result observed"),
            exception=optional_str(d["exception"], "expectation result exception"),
        )

    def describe(self) -> str:
        """One human line saying what failed and with what evidence, for error messages and logs."""
        where = f" on column '{self.column}'" if self.column is not None else ""
        head = f"{self.expectation_type}{where}"
        if self.exception:
            return f"{head} raised an error: {self.exception}"
        if self.success:
            return f"{head} passed"
        obs = self.observed
        if obs.get("unexpected_count") is not None:
            total = obs.get("element_count")
            of_total = f" of {total}" if total is not None else ""
            line = f"{head} failed: {obs['unexpected_count']}{of_total} values unexpected"
            examples = obs.get("partial_unexpected_list")
            if examples:
                line += f" (e.g. {json.dumps(examples[:PARTIAL_UNEXPECTED_LIMIT], default=str)})"
            return line
        expected = ", ".join(
            f"{k}={json.dumps(v, default=str)}" for k, v in self.kwargs.items() if k != "column"
        )
        expected_txt = f" (expected {expected})" if expected else ""
        if "observed_value" in obs:
            observed = json.dumps(obs["observed_value"], default=str)
            return f"{head} failed: observed value {observed}{expected_txt}"
        return f"{head} failed{expected_txt}"


@dataclass(frozen=True)
class ExpectationReport:
    """Everything one suite said about one dataset; JSON round-trippable so records and the gate keep it."""

    suite_name: str
    suite_path: str
    dataset: str
    success: bool
    results: tuple[ExpectationResult, ...]

    @property
    def failures(self) -> tuple[ExpectationResult, ...]:
        """The results that did not pass (including those that raised)."""
        return tuple(r for r in self.results if not r.success)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (strict JSON: no NaN); :meth:`from_dict` reverses it."""
        return {
            "suite_name": self.suite_name,
            "suite_path": self.suite_path,
            "dataset": self.dataset,
            "success": self.success,
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExpectationReport:
        """Rebuild a report from :meth:`to_dict` output, strictly (see :meth:`ExpectationResult.from_dict`)."""
        d = require_keys(d, "expectation report", ("suite_name", "suite_path", "dataset", "success", "results"))
        return cls(
            suite_name=require_text(d["suite_name"], "expectation report suite_name"),
            suite_path=require_text(d["suite_path"], "expectation report suite_path"),
            dataset=require_text(d["dataset"], "expectation report dataset"),
            success=require_bool(d["success"], "expectation report success"),
            results=tuple(
                ExpectationResult.from_dict(r) for r in require_list(d["results"], "expectation report results")
            ),
        )

    def failure_summary(self) -> str:
        """One line per failed expectation, so an error message says exactly what to fix."""
        return "\n".join(r.describe() for r in self.failures)


class DataExpectationError(AirflowMLError, ValueError):
    """The data violates its expectation suite; ``report`` carries the full evidence."""

    report: ExpectationReport

    def __init__(self, report: ExpectationReport) -> None:
        self.report = report
        summary = report.failure_summary() or "(no failed expectation reported)"
        super().__init__(
            f"Dataset {report.dataset} failed expectation suite {report.suite_name} "
            f"({report.suite_path}): {summary}"
        )

    def __reduce__(self) -> tuple[type[DataExpectationError], tuple[ExpectationReport]]:
        """Pickle by report, since Airflow/Celery may ship exceptions between processes."""
        return (type(self), (self.report,))


# --------------------------------------------------------------------------------------------------
# Loading suites
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_gx_logging() -> Iterator[None]:
    """Hold GX's logger at WARNING while we call it: its INFO/DEBUG chatter floods Airflow task logs."""
    logger = logging.getLogger("great_expectations")
    previous = logger.level
    if logger.getEffectiveLevel() < logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _read_suite_json(path: Path) -> dict[str, Any]:
    """Read and structurally check the suite file, so every failure names the file and the reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExpectationSuiteError(f"Expectation suite file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ExpectationSuiteError(f"Expectation suite file {path} cannot be read: {e}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ExpectationSuiteError(f"Expectation suite file {path} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ExpectationSuiteError(
            f"Expectation suite file {path} is not a Great Expectations suite: "
            f"expected a JSON object, got {type(data).__name__}"
        )
    if "expectation_suite_name" in data and "name" not in data:
        raise ExpectationSuiteError(
            f"Expectation suite file {path} uses the Great Expectations 0.x format "
            "('expectation_suite_name'); write it with GX 1.x (suite.to_json_dict()): "
            "'name' and expectations with 'type'"
        )
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ExpectationSuiteError(
            f"Expectation suite file {path} is not a Great Expectations suite: missing a non-empty 'name'"
        )
    expectations = data.get("expectations")
    if not isinstance(expectations, list):
        raise ExpectationSuiteError(
            f"Expectation suite file {path} is not a Great Expectations suite: 'expectations' must be a list"
        )
    for i, entry in enumerate(expectations):
        if not isinstance(entry, dict):
            raise ExpectationSuiteError(
                f"Expectation suite file {path}: expectation #{i} is not a JSON object"
            )
        if "type" not in entry:
            legacy = entry.get("expectation_type")
            hint = (
                f" (it uses the GX 0.x key 'expectation_type' = {legacy!r}; GX 1.x calls it 'type')"
                if legacy
                else ""
            )
            raise ExpectationSuiteError(
                f"Expectation suite file {path}: expectation #{i} has no 'type'{hint}"
            )
    if not expectations:
        raise ExpectationSuiteError(
            f"Expectation suite file {path} (suite {name!r}) has no expectations; an empty suite "
            "validates as success and would let any data through"
        )
    return data


def _entry_problems(expectations: list[dict[str, Any]]) -> list[str]:
    """Try to build each expectation alone, so we can say which ones GX would drop and why."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    problems: list[str] = []
    for i, entry in enumerate(expectations):
        try:
            ExpectationConfiguration(**entry).to_domain_obj()
        except Exception as e:  # any failure means GX would drop or reject it
            reason = " ".join(str(e).split())
            problems.append(f"#{i} {entry.get('type')!r}: {reason}")
    return problems


def load_suite(path: str | os.PathLike[str]) -> ExpectationSuite:
    """Load a GX 1.x suite JSON file and prove nothing was lost on the way.

    GX builds a suite from JSON by skipping (and only logging) expectations it cannot build, and an
    empty suite validates as success. Both would silently weaken a gate, so both raise
    :class:`ExpectationSuiteError` naming the file and the offending expectation type(s).
    """
    p = Path(os.fspath(path))
    data = _read_suite_json(p)
    raw = data["expectations"]

    with _quiet_gx_logging():
        import great_expectations as gx

        problems = _entry_problems(raw)
        if problems:
            raise ExpectationSuiteError(
                f"Expectation suite file {p} (suite {data['name']!r}) has {len(problems)} expectation(s) "
                "that Great Expectations cannot build and would silently drop: " + "; ".join(problems)
            )
        try:
            suite = gx.ExpectationSuite(**data)
        except (TypeError, ValueError) as e:
            raise ExpectationSuiteError(
                f"Expectation suite file {p} is not a Great Expectations suite: {e}"
            ) from e

    # Safety net in case GX drops something the per-entry check accepted.
    built = len(suite.expectations)
    if built < len(raw):
        lost = Counter(str(e["type"]) for e in raw) - Counter(e.expectation_type for e in suite.expectations)
        raise ExpectationSuiteError(
            f"Expectation suite file {p} (suite {suite.name!r}) lists {len(raw)} expectations but "
            f"Great Expectations loaded only {built}; dropped: {', '.join(sorted(lost)) or 'unknown'}"
        )
    return suite


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def _exception_message(exception_info: Any) -> str | None:
    """Pull the message(s) out of GX's exception_info, which is flat or keyed by metric id."""
    if not isinstance(exception_info, Mapping):
        return None
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    messages: list[str] = []
    for info in infos:
        if isinstance(info, Mapping) and info.get("raised_exception"):
            msg = str(info.get("exception_message") or "unknown error").strip()
            if msg not in messages:
                messages.append(msg)
    return "; ".join(messages) if messages else None


def _observed(result: Mapping[str, Any] | None) -> dict[str, Any]:
    """JSON-safe copy of GX's result dict, with example lists cut to a few items."""
    out: dict[str, Any] = {}
    for key, value in (result or {}).items():
        if key.startswith("partial_") and isinstance(value, (list, tuple)):
            value = list(value)[:PARTIAL_UNEXPECTED_LIMIT]
        out[str(key)] = json_safe(value, infinity_as_text=True)
    return out


def _clean_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The expectation's own kwargs, without GX's per-run batch_id."""
    return {str(k): json_safe(v, infinity_as_text=True) for k, v in kwargs.items() if k != "batch_id"}


def _to_result(gx_result: ExpectationValidationResult) -> ExpectationResult:
    """Reduce one GX validation result to our JSON-safe record."""
    config = gx_result.expectation_config
    kwargs = _clean_kwargs(dict(config.kwargs) if config is not None else {})
    exception = _exception_message(gx_result.exception_info)
    column = kwargs.get("column")
    return ExpectationResult(
        expectation_type=str(config.type) if config is not None else "unknown",
        column=None if column is None else str(column),
        success=bool(gx_result.success) and exception is None,
        kwargs=kwargs,
        observed=_observed(gx_result.result),
        exception=exception,
    )


def _in_suite_order(suite: ExpectationSuite, results: list[ExpectationResult]) -> list[ExpectationResult]:
    """Put results in the suite's order (GX reorders them) and flag any expectation GX returned nothing for.

    A missing result is reported as a failure rather than ignored: silence is what we must not trust.
    """
    pending = list(results)
    ordered: list[ExpectationResult] = []
    for config in suite.expectation_configurations:
        kwargs = _clean_kwargs(dict(config.kwargs))
        match = next(
            (r for r in pending if r.expectation_type == config.type and r.kwargs == kwargs),
            None,
        )
        if match is None:
            column = kwargs.get("column")
            match = ExpectationResult(
                expectation_type=str(config.type),
                column=None if column is None else str(column),
                success=False,
                kwargs=kwargs,
                observed={},
                exception="Great Expectations returned no result for this expectation",
            )
        else:
            pending.remove(match)
        ordered.append(match)
    return ordered + pending


def validate_frame(df: pd.DataFrame, suite_path: str | os.PathLike[str], dataset: str) -> ExpectationReport:
    """Validate ``df`` against the suite file and return the report; data failures never raise.

    Uses a fresh ephemeral GX context with unique names per call, so repeated calls in one process
    (many tasks in one worker, tests) cannot collide. Raises :class:`ExpectationSuiteError` for a
    bad suite file, ``TypeError`` if ``df`` is not a pandas DataFrame.
    """
    suite = load_suite(suite_path)

    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"validate_frame expects a pandas DataFrame, got {type(df).__name__}")

    with _quiet_gx_logging():
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
            analytics_enabled=False,
        )
        context = gx.get_context(mode="ephemeral", project_config=config)
        unique = uuid.uuid4().hex
        source = context.data_sources.add_pandas(name=f"aml-pandas-{unique}")
        asset = source.add_dataframe_asset(name=f"aml-frame-{unique}")
        batch_definition = asset.add_batch_definition_whole_dataframe(f"aml-whole-{unique}")
        batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
        gx_results = batch.validate(suite, result_format=dict(_RESULT_FORMAT))

    results = _in_suite_order(suite, [_to_result(r) for r in gx_results.results])
    return ExpectationReport(
        suite_name=str(suite.name),
        suite_path=str(Path(os.fspath(suite_path))),
        dataset=str(dataset),
        success=bool(gx_results.success) and all(r.success for r in results),
        results=tuple(results),
    )

