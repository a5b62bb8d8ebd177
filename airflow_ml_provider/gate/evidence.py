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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_ml_provider.parsing import (
    metric_from_json,
    metric_to_json,
    metrics_from_json,
    metrics_to_json,
    optional_str,
    optional_text,
    optional_version,
    parse_time,
    require_bool,
    require_int,
    require_keys,
    require_metrics,
    require_strings,
    require_text,
    require_version,
    set_field,
    time_to_json,
    to_utc,
)

__all__ = [
    "ApprovalEvidence",
    "EvaluationEvidence",
    "Evidence",
    "ExpectationEvidence",
    "ScenarioEvidence",
    "ShadowEvidence",
    "ShadowEvidenceSet",
    "Subject",
]

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
        require_text(self.model_name, "Subject.model_name")
        set_field(self, "model_version", require_version(self.model_version, "Subject.model_version"))
        optional_text(self.model_fingerprint, "Subject.model_fingerprint")

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
        data = require_keys(data, "Subject", ("model_name", "model_version", "model_fingerprint"))
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
        require_text(self.dataset, "ExpectationEvidence.dataset")
        optional_text(self.dataset_fingerprint, "ExpectationEvidence.dataset_fingerprint")
        require_text(self.suite_name, "ExpectationEvidence.suite_name")
        require_bool(self.success, "ExpectationEvidence.success")
        count = self.expectation_count
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"ExpectationEvidence.expectation_count must be an int >= 0, got {count!r}")
        set_field(
            self,
            "failures",
            require_strings(self.failures, "ExpectationEvidence.failures", allow_empty_items=True),
        )
        set_field(
            self,
            "model_version",
            optional_version(self.model_version, "ExpectationEvidence.model_version"),
        )
        set_field(self, "recorded_at", to_utc(self.recorded_at, "ExpectationEvidence.recorded_at"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "dataset_fingerprint": self.dataset_fingerprint,
            "suite_name": self.suite_name,
            "success": self.success,
            "expectation_count": self.expectation_count,
            "failures": list(self.failures),
            "model_version": self.model_version,
            "recorded_at": time_to_json(self.recorded_at),
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
        data = require_keys(data, "ExpectationEvidence", keys)
        return cls(
            dataset=data["dataset"],
            dataset_fingerprint=data["dataset_fingerprint"],
            suite_name=data["suite_name"],
            success=data["success"],
            expectation_count=data["expectation_count"],
            failures=data["failures"],
            model_version=data["model_version"],
            recorded_at=parse_time(data["recorded_at"], "ExpectationEvidence.recorded_at"),
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
        set_field(self, "model_version", require_version(self.model_version, "EvaluationEvidence.model_version"))
        optional_text(self.model_fingerprint, "EvaluationEvidence.model_fingerprint")
        set_field(self, "metrics", require_metrics(self.metrics, "EvaluationEvidence.metrics"))
        set_field(
            self,
            "champion_version",
            optional_version(self.champion_version, "EvaluationEvidence.champion_version"),
        )
        if self.champion_metrics is not None:
            set_field(
                self,
                "champion_metrics",
                require_metrics(self.champion_metrics, "EvaluationEvidence.champion_metrics"),
            )
        set_field(self, "recorded_at", to_utc(self.recorded_at, "EvaluationEvidence.recorded_at"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "model_fingerprint": self.model_fingerprint,
            "metrics": metrics_to_json(self.metrics),
            "champion_version": self.champion_version,
            "champion_metrics": (
                None if self.champion_metrics is None else metrics_to_json(self.champion_metrics)
            ),
            "recorded_at": time_to_json(self.recorded_at),
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
        data = require_keys(data, "EvaluationEvidence", keys)
        champion = data["champion_metrics"]
        return cls(
            model_version=data["model_version"],
            model_fingerprint=data["model_fingerprint"],
            metrics=metrics_from_json(data["metrics"], "EvaluationEvidence.metrics"),
            champion_version=data["champion_version"],
            champion_metrics=(
                None
                if champion is None
                else metrics_from_json(champion, "EvaluationEvidence.champion_metrics")
            ),
            recorded_at=parse_time(data["recorded_at"], "EvaluationEvidence.recorded_at"),
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
        set_field(self, "model_version", require_version(self.model_version, "ScenarioEvidence.model_version"))
        optional_text(self.model_fingerprint, "ScenarioEvidence.model_fingerprint")
        if not isinstance(self.results, Mapping):
            raise ValueError(f"ScenarioEvidence.results must be a mapping, got {self.results!r}")
        set_field(
            self,
            "results",
            {
                require_text(key, "ScenarioEvidence.results key"): require_bool(
                    val, f"ScenarioEvidence.results[{key!r}]"
                )
                for key, val in self.results.items()
            },
        )
        if not isinstance(self.reasons, Mapping):
            raise ValueError(f"ScenarioEvidence.reasons must be a mapping, got {self.reasons!r}")
        reasons = {}
        for key, val in self.reasons.items():
            if not isinstance(val, str):
                raise ValueError(f"ScenarioEvidence.reasons[{key!r}] must be a string, got {val!r}")
            reasons[require_text(key, "ScenarioEvidence.reasons key")] = val
        set_field(self, "reasons", reasons)
        set_field(self, "recorded_at", to_utc(self.recorded_at, "ScenarioEvidence.recorded_at"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "model_fingerprint": self.model_fingerprint,
            "results": dict(self.results),
            "reasons": dict(self.reasons),
            "recorded_at": time_to_json(self.recorded_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScenarioEvidence:
        keys = ("model_version", "model_fingerprint", "results", "reasons", "recorded_at")
        data = require_keys(data, "ScenarioEvidence", keys)
        return cls(
            model_version=data["model_version"],
            model_fingerprint=data["model_fingerprint"],
            results=data["results"],
            reasons=data["reasons"],
            recorded_at=parse_time(data["recorded_at"], "ScenarioEvidence.recorded_at"),
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
        require_bool(self.approved, "ApprovalEvidence.approved")
        optional_text(self.approver, "ApprovalEvidence.approver")
        set_field(self, "decided_at", to_utc(self.decided_at, "ApprovalEvidence.decided_at"))
        optional_str(self.comment, "ApprovalEvidence.comment")
        set_field(
            self,
            "model_version",
            optional_version(self.model_version, "ApprovalEvidence.model_version"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "approved": self.approved,
            "approver": self.approver,
            "decided_at": time_to_json(self.decided_at),
            "comment": self.comment,
            "model_version": self.model_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApprovalEvidence:
        data = require_keys(
            data, "ApprovalEvidence", ("approved", "approver", "decided_at", "comment"), ("model_version",)
        )
        return cls(
            approved=data["approved"],
            approver=data["approver"],
            decided_at=parse_time(data["decided_at"], "ApprovalEvidence.decided_at"),
            comment=data["comment"],
            model_version=data.get("model_version"),
        )


#: Where a piece of shadow evidence comes from: a production predict run (live shadow) or a replay step.
SHADOW_SOURCES = ("live", "replay")
SHADOW_TASKS = ("classification", "regression")
_SHADOW_NUMBERS = ("agreement", "mean_abs_delta", "primary_ms_per_1k_rows", "shadow_ms_per_1k_rows")
_SHADOW_KEYS = (
    "source",
    "run_id",
    "candidate_version",
    "candidate_fingerprint",
    "champion_version",
    "input_fingerprint",
    "task",
    "rows",
    *_SHADOW_NUMBERS,
    "error",
    "recorded_at",
)


@dataclass(frozen=True)
class ShadowEvidence:
    """
    One production input scored by the candidate and by a champion, as one step recorded it.

    Bound to the candidate (``candidate_version``/``candidate_fingerprint``), to the champion it was compared
    with (``champion_version``: evidence against another champion than the current one is stale) and to the
    input (``input_fingerprint``: the gate counts an input once, whichever runs compared it). ``error`` is
    set when the candidate could not be loaded or scored (``rows`` 0, figures None); ``task`` is None then.
    Figures may be NaN (a NaN prediction): ``decide`` fails them.
    """

    source: str
    run_id: str
    candidate_version: str
    candidate_fingerprint: str | None
    champion_version: str
    input_fingerprint: str | None
    task: str | None
    rows: int
    agreement: float | None
    mean_abs_delta: float | None
    primary_ms_per_1k_rows: float | None
    shadow_ms_per_1k_rows: float | None
    error: str | None
    recorded_at: datetime

    def __post_init__(self) -> None:
        if self.source not in SHADOW_SOURCES:
            raise ValueError(f"ShadowEvidence.source must be one of {', '.join(SHADOW_SOURCES)}, got {self.source!r}")
        require_text(self.run_id, "ShadowEvidence.run_id")
        set_field(
            self, "candidate_version", require_version(self.candidate_version, "ShadowEvidence.candidate_version")
        )
        optional_text(self.candidate_fingerprint, "ShadowEvidence.candidate_fingerprint")
        set_field(self, "champion_version", require_version(self.champion_version, "ShadowEvidence.champion_version"))
        optional_text(self.input_fingerprint, "ShadowEvidence.input_fingerprint")
        if self.task is not None and self.task not in SHADOW_TASKS:
            raise ValueError(f"ShadowEvidence.task must be one of {', '.join(SHADOW_TASKS)} or None, got {self.task!r}")
        if require_int(self.rows, "ShadowEvidence.rows") < 0:
            raise ValueError(f"ShadowEvidence.rows must be >= 0, got {self.rows}")
        for name in _SHADOW_NUMBERS:
            value = getattr(self, name)
            if value is not None:
                set_field(self, name, metric_from_json(value, f"ShadowEvidence.{name}"))
        optional_str(self.error, "ShadowEvidence.error")
        set_field(self, "recorded_at", to_utc(self.recorded_at, "ShadowEvidence.recorded_at"))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {key: getattr(self, key) for key in _SHADOW_KEYS}
        for name in _SHADOW_NUMBERS:
            out[name] = None if out[name] is None else metric_to_json(out[name])
        out["recorded_at"] = time_to_json(self.recorded_at)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShadowEvidence:
        data = require_keys(data, "ShadowEvidence", _SHADOW_KEYS)
        values = dict(data)
        values["recorded_at"] = parse_time(data["recorded_at"], "ShadowEvidence.recorded_at")
        return cls(**values)


@dataclass(frozen=True)
class ShadowEvidenceSet:
    """
    All shadow evidence recorded for the candidate, and the champion it would replace *now*.

    ``champion_version`` None means the alias is unset: there is no champion to shadow against.
    ``items`` holds every piece found, stale ones included: ``decide`` says which it does not count.
    """

    champion_alias: str
    champion_version: str | None
    items: tuple[ShadowEvidence, ...] = ()

    def __post_init__(self) -> None:
        require_text(self.champion_alias, "ShadowEvidenceSet.champion_alias")
        set_field(
            self, "champion_version", optional_version(self.champion_version, "ShadowEvidenceSet.champion_version")
        )
        if isinstance(self.items, (str, bytes, Mapping)) or not isinstance(self.items, Iterable):
            raise ValueError(f"ShadowEvidenceSet.items must be a list, got {self.items!r}")
        items = tuple(self.items)
        for item in items:
            if not isinstance(item, ShadowEvidence):
                raise ValueError(f"ShadowEvidenceSet.items must hold ShadowEvidence, got {item!r}")
        set_field(self, "items", items)

    def to_dict(self) -> dict[str, Any]:
        return {
            "champion_alias": self.champion_alias,
            "champion_version": self.champion_version,
            "items": [item.to_dict() for item in self.items],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShadowEvidenceSet:
        data = require_keys(data, "ShadowEvidenceSet", ("champion_alias", "champion_version", "items"))
        items = data["items"]
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
            raise ValueError(f"ShadowEvidenceSet.items must be a list, got {items!r}")
        return cls(
            champion_alias=data["champion_alias"],
            champion_version=data["champion_version"],
            items=tuple(ShadowEvidence.from_dict(item) for item in items),
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
    #: None: not gathered (the policy has no ``shadow`` rule, or the gathering side did not look).
    shadow: ShadowEvidenceSet | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.subject, Subject):
            raise ValueError(f"Evidence.subject must be a Subject, got {self.subject!r}")
        set_field(
            self,
            "training_dataset_fingerprints",
            require_strings(self.training_dataset_fingerprints, "Evidence.training_dataset_fingerprints"),
        )
        if isinstance(self.data_expectations, (str, bytes, Mapping)) or not isinstance(
            self.data_expectations, Iterable
        ):
            raise ValueError(f"Evidence.data_expectations must be a list, got {self.data_expectations!r}")
        expectations = tuple(self.data_expectations)
        for item in expectations:
            if not isinstance(item, ExpectationEvidence):
                raise ValueError(f"Evidence.data_expectations must hold ExpectationEvidence, got {item!r}")
        set_field(self, "data_expectations", expectations)
        for name, kind in (
            ("evaluation", EvaluationEvidence),
            ("scenarios", ScenarioEvidence),
            ("approval", ApprovalEvidence),
            ("shadow", ShadowEvidenceSet),
        ):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise ValueError(f"Evidence.{name} must be a {kind.__name__} or None, got {value!r}")
        set_field(self, "problems", require_strings(self.problems, "Evidence.problems", allow_empty_items=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject.to_dict(),
            "training_dataset_fingerprints": list(self.training_dataset_fingerprints),
            "data_expectations": [item.to_dict() for item in self.data_expectations],
            "evaluation": None if self.evaluation is None else self.evaluation.to_dict(),
            "scenarios": None if self.scenarios is None else self.scenarios.to_dict(),
            "approval": None if self.approval is None else self.approval.to_dict(),
            "problems": list(self.problems),
            **({} if self.shadow is None else {"shadow": self.shadow.to_dict()}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evidence:
        data = require_keys(
            data,
            "Evidence",
            ("subject", "training_dataset_fingerprints"),
            ("data_expectations", "evaluation", "scenarios", "approval", "problems", "shadow"),
        )
        expectations = data.get("data_expectations", ())
        if isinstance(expectations, (str, bytes, Mapping)) or not isinstance(expectations, Iterable):
            raise ValueError(f"Evidence.data_expectations must be a list, got {expectations!r}")
        evaluation = data.get("evaluation")
        scenarios = data.get("scenarios")
        approval = data.get("approval")
        shadow = data.get("shadow")
        return cls(
            subject=Subject.from_dict(data["subject"]),
            training_dataset_fingerprints=data["training_dataset_fingerprints"],
            data_expectations=tuple(ExpectationEvidence.from_dict(item) for item in expectations),
            evaluation=None if evaluation is None else EvaluationEvidence.from_dict(evaluation),
            scenarios=None if scenarios is None else ScenarioEvidence.from_dict(scenarios),
            approval=None if approval is None else ApprovalEvidence.from_dict(approval),
            problems=data.get("problems", ()),
            shadow=None if shadow is None else ShadowEvidenceSet.from_dict(shadow),
        )
