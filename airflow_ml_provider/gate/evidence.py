"""
Evidence: the facts the sensor gathered, bound to the model version under decision.

These classes only hold and validate data; judging it is ``decide``'s job. Constructors reject
*malformed* data (wrong types, naive datetimes, empty names) with ``ValueError`` so that the I/O
side can turn it into an ``Evidence.problems`` entry; data that is well-formed but *bad* (NaN
metrics, empty suites, missing fingerprints, zero scenarios) is accepted here and failed by
``decide`` with a reason a person can read.

Every class converts to and from a JSON-safe dict: datetimes as ISO-8601 UTC strings and
non-finite metric values as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (strict JSON
has no NaN, and dropping one would hide exactly the value that must fail the gate).
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "ApprovalEvidence",
    "EvaluationEvidence",
    "Evidence",
    "ExpectationEvidence",
    "ScenarioEvidence",
    "Subject",
]

# --------------------------------------------------------------------------------------------
# Validation and JSON helpers shared by the gate modules (private to the package).
# --------------------------------------------------------------------------------------------

_NON_FINITE_TO_JSON = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_NON_FINITE_FROM_JSON = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _check_keys(
    data: object, what: str, required: Iterable[str] = (), optional: Iterable[str] = ()
) -> Mapping[str, Any]:
    """Refuse unknown keys: a misspelt key silently ignored could make the gate laxer than meant."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} must be a mapping, got {type(data).__name__}")
    required = tuple(required)
    allowed = set(required) | set(optional)
    missing = [key for key in required if key not in data]
    if missing:
        raise ValueError(f"{what} is missing {', '.join(repr(k) for k in missing)}")
    unknown = sorted((key for key in data if key not in allowed), key=repr)
    if unknown:
        guesses = {key: difflib.get_close_matches(key, allowed, n=1) for key in unknown if isinstance(key, str)}
        hints = "".join(f" Did you mean {close[0]!r} for {key!r}?" for key, close in guesses.items() if close)
        raise ValueError(
            f"{what} has unknown keys {', '.join(map(repr, unknown))} (allowed: {', '.join(sorted(allowed))}); "
            f"refusing to guess what they mean.{hints}"
        )
    return data


def _text(value: object, name: str) -> str:
    """A required, non-blank string."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _optional_text(value: object, name: str) -> str | None:
    """None or a non-blank string: an empty string would be an ambiguous 'unknown'; use None."""
    return None if value is None else _text(value, name)


def _optional_str(value: object, name: str) -> str | None:
    """None or any string (free text such as a comment)."""
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or None, got {value!r}")
    return value


def _version(value: object, name: str) -> str:
    """A model version; MLflow hands out both ``3`` and ``"3"``, so ints are normalised to strings."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return _text(value, name)


def _optional_version(value: object, name: str) -> str | None:
    return None if value is None else _version(value, name)


def _flag(value: object, name: str) -> bool:
    """A real bool: ``"false"`` or ``0`` read as truthy/falsy by accident is how gates open."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return value


def _number(value: object, name: str) -> float:
    """Any real number except bool, as float; NaN and infinities are kept for ``decide`` to fail."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _finite(value: object, name: str) -> float:
    number = _number(value, name)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number!r}")
    return number


def _strings(value: object, name: str, *, allow_empty_items: bool = False) -> tuple[str, ...]:
    """A sequence of strings as a tuple; a bare string is refused (it would become its characters)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise ValueError(f"{name} must be a list of strings, got {value!r}")
    items = tuple(value)
    for item in items:
        if allow_empty_items:
            if not isinstance(item, str):
                raise ValueError(f"{name} must contain only strings, got {item!r}")
        else:
            _text(item, f"{name} item")
    return items


def _metrics(value: object, name: str) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping of metric name to number, got {value!r}")
    return {_text(key, f"{name} key"): _number(val, f"{name}[{key!r}]") for key, val in value.items()}


def _to_utc(value: object, name: str) -> datetime:
    """Timezone-aware datetimes only, normalised to UTC: a naive time cannot be compared safely."""
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(timezone.utc)


def _time_to_json(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat()


def _time_from_json(value: object, name: str) -> datetime:
    """Parse ISO-8601 (``Z`` suffix accepted, as Python 3.10 ``fromisoformat`` does not)."""
    if isinstance(value, datetime):
        return _to_utc(value, name)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an ISO-8601 string, got {value!r}")
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{name} is not an ISO-8601 time: {value!r}") from exc
    return _to_utc(parsed, name)


def _metric_to_json(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return _NON_FINITE_TO_JSON[repr(value)]


def _metric_from_json(value: object, name: str) -> float:
    if isinstance(value, str) and value in _NON_FINITE_FROM_JSON:
        return _NON_FINITE_FROM_JSON[value]
    return _number(value, name)


def _metrics_to_json(metrics: Mapping[str, float]) -> dict[str, float | str]:
    return {key: _metric_to_json(val) for key, val in metrics.items()}


def _metrics_from_json(value: object, name: str) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping of metric name to number, got {value!r}")
    return {key: _metric_from_json(val, f"{name}[{key!r}]") for key, val in value.items()}


def _set(obj: object, name: str, value: object) -> None:
    """Normalise a field of a frozen dataclass inside ``__post_init__``."""
    object.__setattr__(obj, name, value)


# --------------------------------------------------------------------------------------------
# Evidence classes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """The exact model version under decision; every piece of evidence must be bound to it."""

    model_name: str
    model_version: str
    model_fingerprint: str | None

    def __post_init__(self) -> None:
        _text(self.model_name, "Subject.model_name")
        _set(self, "model_version", _version(self.model_version, "Subject.model_version"))
        _optional_text(self.model_fingerprint, "Subject.model_fingerprint")

    @property
    def uri(self) -> str:
        """MLflow model URI, the name people search logs for."""
        return f"models:/{self.model_name}/{self.model_version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_fingerprint": self.model_fingerprint,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Subject:
        data = _check_keys(data, "Subject", ("model_name", "model_version", "model_fingerprint"))
        return cls(data["model_name"], data["model_version"], data["model_fingerprint"])


@dataclass(frozen=True)
class ExpectationEvidence:
    """
    One Great Expectations suite validated against one dataset.

    ``model_version`` is None for data evidence gathered before training; such evidence is bound
    to the decision through ``dataset_fingerprint`` instead.
    """

    dataset: str
    dataset_fingerprint: str | None
    suite_name: str
    success: bool
    expectation_count: int
    failures: tuple[str, ...]
    model_version: str | None
    recorded_at: datetime

    def __post_init__(self) -> None:
        _text(self.dataset, "ExpectationEvidence.dataset")
        _optional_text(self.dataset_fingerprint, "ExpectationEvidence.dataset_fingerprint")
        _text(self.suite_name, "ExpectationEvidence.suite_name")
        _flag(self.success, "ExpectationEvidence.success")
        count = self.expectation_count
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"ExpectationEvidence.expectation_count must be an int >= 0, got {count!r}")
        _set(
            self,
            "failures",
            _strings(self.failures, "ExpectationEvidence.failures", allow_empty_items=True),
        )
        _set(
            self,
            "model_version",
            _optional_version(self.model_version, "ExpectationEvidence.model_version"),
        )
        _set(self, "recorded_at", _to_utc(self.recorded_at, "ExpectationEvidence.recorded_at"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "dataset_fingerprint": self.dataset_fingerprint,
            "suite_name": self.suite_name,
            "success": self.success,
            "expectation_count": self.expectation_count,
            "failures": list(self.failures),
            "model_version": self.model_version,
            "recorded_at": _time_to_json(self.recorded_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExpectationEvidence:
        keys = (
            "dataset",
            "dataset_fingerprint",
            "suite_name",
            "success",
            "expectation_count",
            "failures",
            "model_version",
            "recorded_at",
        )
        data = _check_keys(data, "ExpectationEvidence", keys)
        return cls(
            dataset=data["dataset"],
            dataset_fingerprint=data["dataset_fingerprint"],
            suite_name=data["suite_name"],
            success=data["success"],
            expectation_count=data["expectation_count"],
            failures=data["failures"],
            model_version=data["model_version"],
            recorded_at=_time_from_json(data["recorded_at"], "ExpectationEvidence.recorded_at"),
        )


@dataclass(frozen=True)
class EvaluationEvidence:
    """
    Metrics of the candidate, and of the champion it would replace when there is one.

    The champion is present when ``champion_version`` is set; ``champion_metrics`` without a
    version (or a version without metrics) is ambiguous and fails the comparison checks.
    """

    model_version: str
    model_fingerprint: str | None
    metrics: Mapping[str, float]
    champion_version: str | None
    champion_metrics: Mapping[str, float] | None
    recorded_at: datetime

    def __post_init__(self) -> None:
        _set(self, "model_version", _version(self.model_version, "EvaluationEvidence.model_version"))
        _optional_text(self.model_fingerprint, "EvaluationEvidence.model_fingerprint")
        _set(self, "metrics", _metrics(self.metrics, "EvaluationEvidence.metrics"))
        _set(
            self,
            "champion_version",
            _optional_version(self.champion_version, "EvaluationEvidence.champion_version"),
        )
        if self.champion_metrics is not None:
            _set(
                self,
                "champion_metrics",
                _metrics(self.champion_metrics, "EvaluationEvidence.champion_metrics"),
            )
        _set(self, "recorded_at", _to_utc(self.recorded_at, "EvaluationEvidence.recorded_at"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "model_fingerprint": self.model_fingerprint,
            "metrics": _metrics_to_json(self.metrics),
            "champion_version": self.champion_version,
            "champion_metrics": (
                None if self.champion_metrics is None else _metrics_to_json(self.champion_metrics)
            ),
            "recorded_at": _time_to_json(self.recorded_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationEvidence:
        keys = (
            "model_version",
            "model_fingerprint",
            "metrics",
            "champion_version",
            "champion_metrics",
            "recorded_at",
        )
        data = _check_keys(data, "EvaluationEvidence", keys)
        champion = data["champion_metrics"]
        return cls(
            model_version=data["model_version"],
            model_fingerprint=data["model_fingerprint"],
            metrics=_metrics_from_json(data["metrics"], "EvaluationEvidence.metrics"),
            champion_version=data["champion_version"],
            champion_metrics=(
                None
                if champion is None
                else _metrics_from_json(champion, "EvaluationEvidence.champion_metrics")
            ),
            recorded_at=_time_from_json(data["recorded_at"], "EvaluationEvidence.recorded_at"),
        )


@dataclass(frozen=True)
class ScenarioEvidence:
    """One must-pass scenario run: scenario name -> passed, with a reason per scenario where known."""

    model_version: str
    model_fingerprint: str | None
    results: Mapping[str, bool]
    reasons: Mapping[str, str]
    recorded_at: datetime

    def __post_init__(self) -> None:
        _set(self, "model_version", _version(self.model_version, "ScenarioEvidence.model_version"))
        _optional_text(self.model_fingerprint, "ScenarioEvidence.model_fingerprint")
        if not isinstance(self.results, Mapping):
            raise ValueError(f"ScenarioEvidence.results must be a mapping, got {self.results!r}")
        _set(
            self,
            "results",
            {
                _text(key, "ScenarioEvidence.results key"): _flag(val, f"ScenarioEvidence.results[{key!r}]")
                for key, val in self.results.items()
            },
        )
        if not isinstance(self.reasons, Mapping):
            raise ValueError(f"ScenarioEvidence.reasons must be a mapping, got {self.reasons!r}")
        reasons = {}
        for key, val in self.reasons.items():
            if not isinstance(val, str):
                raise ValueError(f"ScenarioEvidence.reasons[{key!r}] must be a string, got {val!r}")
            reasons[_text(key, "ScenarioEvidence.reasons key")] = val
        _set(self, "reasons", reasons)
        _set(self, "recorded_at", _to_utc(self.recorded_at, "ScenarioEvidence.recorded_at"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "model_fingerprint": self.model_fingerprint,
            "results": dict(self.results),
            "reasons": dict(self.reasons),
            "recorded_at": _time_to_json(self.recorded_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScenarioEvidence:
        keys = ("model_version", "model_fingerprint", "results", "reasons", "recorded_at")
        data = _check_keys(data, "ScenarioEvidence", keys)
        return cls(
            model_version=data["model_version"],
            model_fingerprint=data["model_fingerprint"],
            results=data["results"],
            reasons=data["reasons"],
            recorded_at=_time_from_json(data["recorded_at"], "ScenarioEvidence.recorded_at"),
        )


@dataclass(frozen=True)
class ApprovalEvidence:
    """
    A human decision on the candidate.

    ``model_version`` (an addition to the first design) names the version the person approved;
    when set it must match the subject. None is accepted for approvals that do not record it.
    """

    approved: bool
    approver: str | None
    decided_at: datetime
    comment: str | None
    model_version: str | None = None

    def __post_init__(self) -> None:
        _flag(self.approved, "ApprovalEvidence.approved")
        _optional_text(self.approver, "ApprovalEvidence.approver")
        _set(self, "decided_at", _to_utc(self.decided_at, "ApprovalEvidence.decided_at"))
        _optional_str(self.comment, "ApprovalEvidence.comment")
        _set(
            self,
            "model_version",
            _optional_version(self.model_version, "ApprovalEvidence.model_version"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "approved": self.approved,
            "approver": self.approver,
            "decided_at": _time_to_json(self.decided_at),
            "comment": self.comment,
            "model_version": self.model_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApprovalEvidence:
        data = _check_keys(
            data, "ApprovalEvidence", ("approved", "approver", "decided_at", "comment"), ("model_version",)
        )
        return cls(
            approved=data["approved"],
            approver=data["approver"],
            decided_at=_time_from_json(data["decided_at"], "ApprovalEvidence.decided_at"),
            comment=data["comment"],
            model_version=data.get("model_version"),
        )


@dataclass(frozen=True)
class Evidence:
    """
    Everything the sensor gathered about one subject.

    ``problems`` carries what the I/O side could not gather or read (each one fails the gate);
    absent evidence is simply None/empty and is judged against the policy by ``decide``.
    """

    subject: Subject
    training_dataset_fingerprints: tuple[str, ...]
    data_expectations: tuple[ExpectationEvidence, ...] = ()
    evaluation: EvaluationEvidence | None = None
    scenarios: ScenarioEvidence | None = None
    approval: ApprovalEvidence | None = None
    problems: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.subject, Subject):
            raise ValueError(f"Evidence.subject must be a Subject, got {self.subject!r}")
        _set(
            self,
            "training_dataset_fingerprints",
            _strings(self.training_dataset_fingerprints, "Evidence.training_dataset_fingerprints"),
        )
        if isinstance(self.data_expectations, (str, bytes, Mapping)) or not isinstance(
            self.data_expectations, Iterable
        ):
            raise ValueError(f"Evidence.data_expectations must be a list, got {self.data_expectations!r}")
        expectations = tuple(self.data_expectations)
        for item in expectations:
            if not isinstance(item, ExpectationEvidence):
                raise ValueError(f"Evidence.data_expectations must hold ExpectationEvidence, got {item!r}")
        _set(self, "data_expectations", expectations)
        for name, kind in (
            ("evaluation", EvaluationEvidence),
            ("scenarios", ScenarioEvidence),
            ("approval", ApprovalEvidence),
        ):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise ValueError(f"Evidence.{name} must be a {kind.__name__} or None, got {value!r}")
        _set(self, "problems", _strings(self.problems, "Evidence.problems", allow_empty_items=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject.to_dict(),
            "training_dataset_fingerprints": list(self.training_dataset_fingerprints),
            "data_expectations": [item.to_dict() for item in self.data_expectations],
            "evaluation": None if self.evaluation is None else self.evaluation.to_dict(),
            "scenarios": None if self.scenarios is None else self.scenarios.to_dict(),
            "approval": None if self.approval is None else self.approval.to_dict(),
            "problems": list(self.problems),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evidence:
        data = _check_keys(
            data,
            "Evidence",
            ("subject", "training_dataset_fingerprints"),
            ("data_expectations", "evaluation", "scenarios", "approval", "problems"),
        )
        expectations = data.get("data_expectations", ())
        if isinstance(expectations, (str, bytes, Mapping)) or not isinstance(expectations, Iterable):
            raise ValueError(f"Evidence.data_expectations must be a list, got {expectations!r}")
        evaluation = data.get("evaluation")
        scenarios = data.get("scenarios")
        approval = data.get("approval")
        return cls(
            subject=Subject.from_dict(data["subject"]),
            training_dataset_fingerprints=data["training_dataset_fingerprints"],
            data_expectations=tuple(ExpectationEvidence.from_dict(item) for item in expectations),
            evaluation=None if evaluation is None else EvaluationEvidence.from_dict(evaluation),
            scenarios=None if scenarios is None else ScenarioEvidence.from_dict(scenarios),
            approval=None if approval is None else ApprovalEvidence.from_dict(approval),
            problems=data.get("problems", ()),
        )
