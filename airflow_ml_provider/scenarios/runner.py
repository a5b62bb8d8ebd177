"""Run a scenario suite against a candidate model's ``predict`` and record the evidence.

Fail closed: a scenario whose input cannot be built, whose ``predict`` raises, returns the wrong
number of predictions or values that cannot be compared is a failure with a reason, never a crash
of the whole run and never a pass. The report is plain JSON-safe data so it can travel through
XCom, MLflow artifacts and step records, and be read back by the gate.

Only the standard library is imported at module level; pandas and numpy are imported inside
:func:`run_scenarios` (DAG files import our operators at parse time).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.exceptions import AirflowMLError
from airflow_ml_provider.records.json_safe import json_safe, short_text
from airflow_ml_provider.scenarios.spec import (
    Equals,
    Expectation,
    MinAccuracy,
    OneOf,
    Scenario,
    ScenarioSuite,
    Within,
    _fmt,
)

if TYPE_CHECKING:
    import pandas

__all__ = [
    "MAX_RECORDED_PREDICTIONS",
    "ScenarioResult",
    "ScenarioRunReport",
    "run_scenarios",
]

#: How many predictions a result keeps (enough to debug, small enough for XCom and facets).
MAX_RECORDED_PREDICTIONS = 20
_MAX_MESSAGE_CHARS = 2000


@dataclass(frozen=True)
class ScenarioResult:
    """Outcome of one scenario.

    ``error`` is set when the scenario could not be judged at all (predict raised, wrong number of
    predictions, missing feature column, unusable output); it is ``None`` when predictions were
    compared with the expectation, whatever the outcome.
    """

    name: str
    passed: bool
    reason: str
    predictions: tuple[Any, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "name": self.name,
            "passed": self.passed,
            "reason": self.reason,
            "predictions": list(self.predictions),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScenarioResult:
        """Rebuild from :meth:`to_dict` output; malformed input raises ``ValueError`` (fail closed)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"scenario result must be a mapping; got {type(data).__name__}")
        missing = [k for k in ("name", "passed", "reason") if k not in data]
        if missing:
            raise ValueError(f"scenario result is missing key(s) {missing!r}")
        name, passed, reason = data["name"], data["passed"], data["reason"]
        predictions = data.get("predictions", [])
        error = data.get("error")
        if not isinstance(name, str) or not name:
            raise ValueError(f"scenario result 'name' must be a non-empty string; got {name!r}")
        if not isinstance(passed, bool):
            raise ValueError(f"scenario result {name!r}: 'passed' must be a boolean; got {passed!r}")
        if not isinstance(reason, str):
            raise ValueError(f"scenario result {name!r}: 'reason' must be a string; got {reason!r}")
        if not isinstance(predictions, (list, tuple)) or not all(
            p is None or isinstance(p, (str, int, float, bool)) for p in predictions
        ):
            raise ValueError(f"scenario result {name!r}: 'predictions' must be a list of scalars")
        if error is not None and not isinstance(error, str):
            raise ValueError(f"scenario result {name!r}: 'error' must be a string or null; got {error!r}")
        if passed and error is not None:
            raise ValueError(f"scenario result {name!r}: a passed scenario cannot carry an error")
        return cls(name=name, passed=passed, reason=reason, predictions=tuple(predictions), error=error)


@dataclass(frozen=True)
class ScenarioRunReport:
    """Every scenario's result plus the identity (path and sha256) of the suite that was run."""

    suite_path: str
    suite_fingerprint: str
    results: tuple[ScenarioResult, ...]

    @property
    def passed(self) -> bool:
        """True only if at least one scenario ran and every scenario passed (an empty run fails)."""
        return bool(self.results) and all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[ScenarioResult, ...]:
        """The failed results, in suite order."""
        return tuple(r for r in self.results if not r.passed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (``json.dumps(..., allow_nan=False)`` works); ``passed`` is derived."""
        return {
            "suite_path": self.suite_path,
            "suite_fingerprint": self.suite_fingerprint,
            "passed": self.passed,
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScenarioRunReport:
        """Rebuild from :meth:`to_dict` output.

        Raises ``ValueError`` on malformed data, including a stored ``passed`` that disagrees with
        the results: evidence that contradicts itself must not be trusted.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"scenario run report must be a mapping; got {type(data).__name__}")
        missing = [k for k in ("suite_path", "suite_fingerprint", "results") if k not in data]
        if missing:
            raise ValueError(f"scenario run report is missing key(s) {missing!r}")
        path, fingerprint, raw_results = data["suite_path"], data["suite_fingerprint"], data["results"]
        if not isinstance(path, str):
            raise ValueError(f"scenario run report 'suite_path' must be a string; got {path!r}")
        if not isinstance(fingerprint, str):
            raise ValueError(f"scenario run report 'suite_fingerprint' must be a string; got {fingerprint!r}")
        if not isinstance(raw_results, (list, tuple)):
            raise ValueError("scenario run report 'results' must be a list")
        report = cls(
            suite_path=path,
            suite_fingerprint=fingerprint,
            results=tuple(ScenarioResult.from_dict(r) for r in raw_results),
        )
        if "passed" in data and data["passed"] != report.passed:
            raise ValueError(
                f"scenario run report says passed={data['passed']!r} but its results say {report.passed!r}"
            )
        return report

    def summary(self) -> str:
        """Multi-line text for logs and the UI: verdict, suite identity, one line per scenario."""
        total = len(self.results)
        if total == 0:
            verdict = "FAILED (no scenarios were run)"
        elif self.passed:
            verdict = f"PASSED ({total} of {total} scenarios passed)"
        else:
            verdict = f"FAILED ({len(self.failures)} of {total} scenarios failed)"
        lines = [
            f"Scenarios {verdict}",
            f"suite: {self.suite_path} (sha256 {self.suite_fingerprint[:12]})",
        ]
        for r in self.results:
            lines.append(f"  {'PASS' if r.passed else 'FAIL'} {r.name}: {r.reason}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------


class _CannotJudge(AirflowMLError):
    """The scenario could not be evaluated (bad input or unusable output); carries the reason."""

    def __init__(self, reason: str, predictions: tuple[Any, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.predictions = predictions


def run_scenarios(
    suite: ScenarioSuite,
    predict: Callable[[pandas.DataFrame], Sequence[Any]],
    feature_columns: Sequence[str] | None = None,
) -> ScenarioRunReport:
    """Run every scenario of ``suite`` through ``predict`` and judge the predictions.

    Each scenario's rows become one DataFrame. With ``feature_columns`` the frame has exactly those
    columns in that order (extra columns dropped; a row missing one fails that scenario). Problems
    inside a scenario never stop the run; a wrong ``feature_columns`` or ``predict`` argument is a
    caller bug and raises ``TypeError``/``ValueError`` straight away.
    """
    if not callable(predict):
        raise TypeError(f"predict must be callable; got {type(predict).__name__}")
    columns = _check_feature_columns(feature_columns)
    results = tuple(_run_one(scenario, predict, columns) for scenario in suite.scenarios)
    return ScenarioRunReport(suite_path=suite.path, suite_fingerprint=suite.fingerprint, results=results)


def _check_feature_columns(feature_columns: Sequence[str] | None) -> tuple[str, ...] | None:
    """Reject obviously wrong column lists before any scenario runs."""
    if feature_columns is None:
        return None
    if isinstance(feature_columns, (str, bytes)):
        raise TypeError("feature_columns must be a sequence of column names, not a single string")
    columns = tuple(feature_columns)
    if not columns:
        raise ValueError("feature_columns must not be empty (pass None to use the rows' own columns)")
    if not all(isinstance(c, str) for c in columns):
        raise TypeError(f"feature_columns must all be strings; got {list(columns)!r}")
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise ValueError(f"feature_columns has duplicates: {duplicates!r}")
    return columns


def _run_one(
    scenario: Scenario,
    predict: Callable[[pandas.DataFrame], Sequence[Any]],
    columns: tuple[str, ...] | None,
) -> ScenarioResult:
    """Build the input, call predict, judge; every problem becomes a failed result."""
    try:
        frame = _build_frame(scenario, columns)
        output = predict(frame)
        values, recorded = _normalise_output(output, expected_count=len(scenario.rows))
        passed, reason = _judge(scenario, values)
        return ScenarioResult(scenario.name, passed, reason, recorded, None)
    except _CannotJudge as exc:
        return ScenarioResult(scenario.name, False, exc.reason, exc.predictions, exc.reason)
    except Exception as exc:  # a raising scenario is a failure, never a crash
        message = short_text(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, _MAX_MESSAGE_CHARS)
        return ScenarioResult(scenario.name, False, f"scenario raised {message}", (), message)


def _build_frame(scenario: Scenario, columns: tuple[str, ...] | None) -> pandas.DataFrame:
    """One DataFrame per scenario; with ``columns`` it has exactly those columns in that order."""
    import pandas as pd

    rows = [dict(row) for row in scenario.rows]
    if columns is None:
        return pd.DataFrame(rows)
    for number, row in enumerate(rows, start=1):
        missing = [c for c in columns if c not in row]
        if missing:
            what = f"feature column {missing[0]!r}" if len(missing) == 1 else f"feature columns {missing!r}"
            raise _CannotJudge(f"row {number} of {len(rows)} is missing {what}")
    return pd.DataFrame([{c: row[c] for c in columns} for row in rows], columns=list(columns))


def _normalise_output(output: Any, expected_count: int) -> tuple[list[Any], tuple[Any, ...]]:
    """Turn predict's output into python scalars for comparison plus a JSON-safe recorded prefix.

    Accepts 1-D arrays, Series, single-column frames / (n, 1) arrays and plain sequences. Anything
    else (a scalar, a string, a mapping, 2-D probabilities, nested values) cannot be judged.
    """
    import numpy as np
    import pandas as pd

    if output is None:
        raise _CannotJudge("predict returned None; expected one prediction per row")
    if isinstance(output, pd.DataFrame):
        if output.shape[1] != 1:
            raise _CannotJudge(
                f"predict returned a DataFrame with {output.shape[1]} columns; "
                "expected one prediction per row"
            )
        output = output.iloc[:, 0]
    if isinstance(output, (pd.Series, pd.Index)):
        items = list(output.array)
    elif isinstance(output, np.ndarray):
        if output.ndim == 2 and output.shape[1] == 1:
            output = output[:, 0]
        if output.ndim != 1:
            raise _CannotJudge(
                f"predict returned an array of shape {tuple(output.shape)}; expected one prediction per row"
            )
        items = list(output)
    elif isinstance(output, (str, bytes, Mapping, set, frozenset)) or not isinstance(output, Iterable):
        raise _CannotJudge(
            f"predict returned {type(output).__name__}; expected a sequence with one prediction per row"
        )
    else:
        items = list(output)

    values: list[Any] = []
    recorded: list[Any] = []
    bad: tuple[int, Any] | None = None
    for index, item in enumerate(items):
        ok, value = _to_python_scalar(item, np, pd)
        if not ok and bad is None:
            bad = (index, item)
        values.append(value)
        if len(recorded) < MAX_RECORDED_PREDICTIONS:
            recorded.append(json_safe(value))  # NaN and infinities as null: the reason keeps the detail
    prefix = tuple(recorded)

    if len(values) != expected_count:
        raise _CannotJudge(
            f"predict returned {len(values)} prediction(s) for {expected_count} row(s)", prefix
        )
    if bad is not None:
        index, item = bad
        raise _CannotJudge(
            f"prediction {index + 1} of {len(values)} has unsupported type {type(item).__name__}; "
            "expected a string, number or boolean",
            prefix,
        )
    return values, prefix


def _to_python_scalar(item: Any, np: Any, pd: Any) -> tuple[bool, Any]:
    """numpy/pandas scalars -> python (np.int64(1) -> 1); missing markers -> None."""
    if item is None or item is pd.NA or item is pd.NaT:
        return True, None
    if isinstance(item, (bool, np.bool_)):
        return True, bool(item)
    if isinstance(item, (int, np.integer)):
        return True, int(item)
    if isinstance(item, (float, np.floating)):
        return True, float(item)
    if isinstance(item, str):
        return True, str(item)
    if isinstance(item, (np.datetime64, np.timedelta64)) and np.isnat(item):
        return True, None
    return False, None


def _same(prediction: Any, expected: Any) -> bool:
    """Equality the way a scenario author means it.

    Numbers compare by value (1 == 1.0), strings with strings, booleans only with booleans (a
    ``True`` prediction does not satisfy ``equals: 1``). None and NaN never match anything.
    """
    if prediction is None or expected is None:
        return False
    if isinstance(prediction, bool) or isinstance(expected, bool):
        return isinstance(prediction, bool) and isinstance(expected, bool) and prediction == expected
    if isinstance(prediction, (int, float)) and isinstance(expected, (int, float)):
        if isinstance(prediction, float) and math.isnan(prediction):
            return False
        return prediction == expected
    if isinstance(prediction, str) and isinstance(expected, str):
        return prediction == expected
    return False


def _in_range(prediction: Any, within: Within) -> bool:
    """A finite number inside the bounds; NaN, inf, None, strings and booleans never are."""
    if isinstance(prediction, bool) or not isinstance(prediction, (int, float)):
        return False
    if not math.isfinite(prediction):
        return False
    if within.min is not None and prediction < within.min:
        return False
    return not (within.max is not None and prediction > within.max)


def _show(value: Any) -> str:
    """A prediction as it appears in reasons."""
    return "None" if value is None else _fmt(value)


def _judge(scenario: Scenario, values: list[Any]) -> tuple[bool, str]:
    """Compare normalised predictions with the scenario's expectation; return (passed, reason)."""
    expectation: Expectation = scenario.expectation
    n = len(values)

    if isinstance(expectation, MinAccuracy):
        labels = scenario.labels
        if labels is None or len(labels) != n:
            raise _CannotJudge("min_accuracy needs exactly one label per row")
        correct = sum(1 for p, label in zip(values, labels, strict=True) if _same(p, label))
        accuracy = correct / n
        threshold = expectation.threshold
        digits = 2
        while digits < 6 and f"{accuracy:.{digits}f}" == f"{threshold:.{digits}f}" and accuracy != threshold:
            digits += 1
        shown = f"accuracy {accuracy:.{digits}f}"
        required = f"required {threshold:.{digits}f} ({correct} of {n} correct)"
        if accuracy >= threshold:
            return True, f"{shown} >= {required}"
        return False, f"{shown} < {required}"

    if isinstance(expectation, Equals):
        ok = [_same(v, expectation.value) for v in values]
        expected_text = _fmt(expectation.value)
        pass_text = f"equal {expected_text}"
    elif isinstance(expectation, OneOf):
        ok = [any(_same(v, allowed) for allowed in expectation.values) for v in values]
        expected_text = "one of [" + ", ".join(_fmt(a) for a in expectation.values) + "]"
        pass_text = expectation.describe()
    elif isinstance(expectation, Within):
        ok = [_in_range(v, expectation) for v in values]
        expected_text = f"a finite number {expectation.describe()}"
        pass_text = expectation.describe()
    else:  # pragma: no cover - guarded by the parser and the type
        raise _CannotJudge(f"unknown expectation {type(expectation).__name__}")

    failed = [i for i, good in enumerate(ok) if not good]
    if not failed:
        return True, f"all {n} prediction{'s' if n != 1 else ''} {pass_text}"
    first = failed[0]
    reason = f"prediction {first + 1} of {n} was {_show(values[first])}, expected {expected_text}"
    if len(failed) > 1:
        reason += f" ({len(failed)} of {n} predictions failed)"
    return False, reason
