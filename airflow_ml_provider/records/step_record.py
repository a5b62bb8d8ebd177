"""The step record: what one ML step read, wrote, used and decided.

Each operator writes one as the MLflow artifact ``airflow_ml/step_record.json`` of its step run.
It is the single source of truth that the gate, lineage and reproduction read back, so it has one
type, one writer (:func:`write_step_record`) and one reader (:func:`read_step_record`, parsing with
:meth:`StepRecord.from_dict`). The reader is strict: an unknown key, a value of the wrong type or a
missing field is a :class:`RecordError` naming the run, the field and what to do, never a guess (the
gate turns it into a failed check).

``results`` holds one typed result per step kind (:data:`RESULT_TYPES`); ``model`` the model version
the step used or produced (:class:`RecordedModel`); ``airflow`` the task try (:class:`AirflowIds`).
The JSON shape on disk is unchanged from the untyped record (schema version 1).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import unquote, urlparse

from airflow_ml_provider.data.expectations import ExpectationReport
from airflow_ml_provider.exceptions import AirflowMLError
from airflow_ml_provider.gate.verdict import Verdict
from airflow_ml_provider.monitoring.drift import DriftReport
from airflow_ml_provider.monitoring.shadow import ShadowSummary
from airflow_ml_provider.parsing import (
    metrics_from_json,
    optional_mapping,
    optional_str,
    optional_text,
    optional_version,
    parse_time,
    require_int,
    require_keys,
    require_list,
    require_mapping,
    require_text,
    require_version,
)
from airflow_ml_provider.promotion.rule import PromotionResult
from airflow_ml_provider.records.resources import StepResources
from airflow_ml_provider.records.tags import RECORD_ARTIFACT_PATH
from airflow_ml_provider.scenarios.runner import ScenarioRunReport

if TYPE_CHECKING:
    from airflow_ml_provider.hooks.mlflow import MlflowHook

SCHEMA_VERSION = 1
#: What a step's status can be: open, closed well, closed failed.
STATUSES = ("running", "success", "failed")
_REDO = (
    "It was written by another version of airflow-ml-provider or edited by hand: run the step that "
    "wrote it again to record it anew"
)


class RecordError(AirflowMLError, RuntimeError):
    """A step record is missing or does not parse; the gate treats this as failed evidence.

    ``run_id`` names the MLflow run whose record it is, ``field`` the first field that does not parse
    (None when the record could not be read at all).
    """

    def __init__(self, message: str, run_id: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.field = field


# --- the parts of a record -----------------------------------------------------------------------


@dataclass(frozen=True)
class AirflowIds:
    """The Airflow task try that ran the step."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    map_index: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "try_number": self.try_number,
            "map_index": self.map_index,
        }

    @classmethod
    def from_dict(cls, data: object, name: str = "airflow") -> AirflowIds:
        data = require_keys(data, name, ("dag_id", "run_id", "task_id", "try_number", "map_index"))
        return cls(
            dag_id=require_text(data["dag_id"], f"{name}.dag_id"),
            run_id=require_text(data["run_id"], f"{name}.run_id"),
            task_id=require_text(data["task_id"], f"{name}.task_id"),
            try_number=require_int(data["try_number"], f"{name}.try_number"),
            map_index=require_int(data["map_index"], f"{name}.map_index"),
        )


@dataclass(frozen=True)
class RecordedModel:
    """The registered model version a step used (or, for train, produced), as the step saw it."""

    name: str
    version: str
    uri: str
    #: Artifact fingerprint recorded at training (None when the version carries none).
    fingerprint: str | None
    #: Train only: the estimator's class and the MLflow flavor it was logged with.
    estimator: str | None = None
    flavor: str | None = None
    #: Predict only: the alias the version was resolved from.
    alias: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "uri": self.uri,
            "fingerprint": self.fingerprint,
        }
        extras = (("estimator", self.estimator), ("flavor", self.flavor), ("alias", self.alias))
        out.update({key: value for key, value in extras if value is not None})  # present only where recorded
        return out

    @classmethod
    def from_dict(cls, data: object, name: str = "model") -> RecordedModel:
        data = require_keys(data, name, ("name", "version", "uri", "fingerprint"), ("estimator", "flavor", "alias"))
        return cls(
            name=require_text(data["name"], f"{name}.name"),
            version=require_version(data["version"], f"{name}.version"),
            uri=require_text(data["uri"], f"{name}.uri"),
            fingerprint=optional_text(data["fingerprint"], f"{name}.fingerprint"),
            estimator=optional_text(data.get("estimator"), f"{name}.estimator"),
            flavor=optional_text(data.get("flavor"), f"{name}.flavor"),
            alias=optional_text(data.get("alias"), f"{name}.alias"),
        )


# --- one result per step kind --------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectationCheck:
    """One suite's report on one dataset of the step, with the dataset's role (``raw``, ``features``)."""

    role: str
    report: ExpectationReport

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, **self.report.to_dict()}

    @classmethod
    def from_dict(cls, data: object, name: str) -> ExpectationCheck:
        data = require_mapping(data, name)
        role = require_text(data.pop("role", None), f"{name}.role")
        try:
            report = ExpectationReport.from_dict(data)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{name}: {e}") from None
        return cls(role, report)


@dataclass(frozen=True)
class FeaturizeResult:
    """The expectation reports of a featurize step, in the order they ran."""

    expectations: tuple[ExpectationCheck, ...] = ()

    def with_report(self, role: str, report: ExpectationReport) -> FeaturizeResult:
        return replace(self, expectations=(*self.expectations, ExpectationCheck(role, report)))

    def to_dict(self) -> dict[str, Any]:
        return {"expectations": [check.to_dict() for check in self.expectations]}

    @classmethod
    def from_dict(cls, data: object, name: str = "results") -> FeaturizeResult:
        data = require_keys(data, name, ("expectations",))
        items = require_list(data["expectations"], f"{name}.expectations")
        return cls(tuple(ExpectationCheck.from_dict(x, f"{name}.expectations[{i}]") for i, x in enumerate(items)))


@dataclass(frozen=True)
class TrainResult:
    """What a train step trained with: the target registered model, the effective arguments, the seed."""

    registered_model_name: str
    hyperparameters: Mapping[str, Any]
    seed: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "registered_model_name": self.registered_model_name,
            "hyperparameters": dict(self.hyperparameters),
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: object, name: str = "results") -> TrainResult:
        data = require_keys(data, name, ("registered_model_name", "hyperparameters", "seed"))
        seed = data["seed"]
        return cls(
            registered_model_name=require_text(data["registered_model_name"], f"{name}.registered_model_name"),
            hyperparameters=require_mapping(data["hyperparameters"], f"{name}.hyperparameters"),
            seed=None if seed is None else require_int(seed, f"{name}.seed"),
        )


@dataclass(frozen=True)
class ChampionScore:
    """The champion scored on the same rows: its metrics, or why it could not be scored (``error``)."""

    version: str | None
    metrics: Mapping[str, float] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version}
        if self.metrics is not None:
            out["metrics"] = dict(self.metrics)
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_dict(cls, data: object, name: str) -> ChampionScore:
        data = require_keys(data, name, ("version",), ("metrics", "error"))
        metrics = data.get("metrics")
        return cls(
            version=optional_version(data["version"], f"{name}.version"),
            metrics=None if metrics is None else metrics_from_json(metrics, f"{name}.metrics"),
            error=optional_str(data.get("error"), f"{name}.error"),
        )


@dataclass(frozen=True)
class EvaluateResult:
    """An evaluate step's metrics of the version, and of the champion when there was one to compare."""

    task: str
    metrics: Mapping[str, float]
    champion: ChampionScore | None
    holdout_fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "metrics": dict(self.metrics),
            "champion": None if self.champion is None else self.champion.to_dict(),
            "holdout_fingerprint": self.holdout_fingerprint,
        }

    @classmethod
    def from_dict(cls, data: object, name: str = "results") -> EvaluateResult:
        data = require_keys(data, name, ("task", "metrics", "champion", "holdout_fingerprint"))
        champion = data["champion"]
        return cls(
            task=require_text(data["task"], f"{name}.task"),
            metrics=metrics_from_json(data["metrics"], f"{name}.metrics"),
            champion=None if champion is None else ChampionScore.from_dict(champion, f"{name}.champion"),
            holdout_fingerprint=require_text(data["holdout_fingerprint"], f"{name}.holdout_fingerprint"),
        )


@dataclass(frozen=True)
class SimulateResult:
    """A simulate step's scenario run."""

    scenarios: ScenarioRunReport

    def to_dict(self) -> dict[str, Any]:
        return {"scenarios": self.scenarios.to_dict()}

    @classmethod
    def from_dict(cls, data: object, name: str = "results") -> SimulateResult:
        data = require_keys(data, name, ("scenarios",))
        try:
            return cls(ScenarioRunReport.from_dict(data["scenarios"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{name}.scenarios: {e}") from None


@dataclass(frozen=True)
class GateResult:
    """A gate step's verdict."""

    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict.to_dict()}

    @classmethod
    def from_dict(cls, data: object, name: str = "results") -> GateResult:
        data = require_keys(data, name, ("verdict",))
        try:
            return cls(Verdict.from_dict(data["verdict"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{name}.verdict: {e}") from None


@dataclass(frozen=True)
class PredictResult:
    """What a predict step scored: rows, the version (and the alias it came from), the positive class."""

    rows: int
    model_version: str
    alias: str | None
    #: The label ``probability`` is the probability of (binary classifiers with ``predict_proba``).
    positive_class: str | int | float | bool | None
    #: The live shadow's evidence (``shadow=``); None without a shadow and in records written before it existed.
    shadow: ShadowSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rows": self.rows,
            "model_version": self.model_version,
            "alias": self.alias,
            "positive_class": self.positive_class,
        }
        if self.shadow is not None:
            out["shadow"] = self.shadow.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: object, name: str = "results") -> PredictResult:
        data = require_keys(data, name, ("rows", "model_version", "alias", "positive_class"), ("shadow",))
        positive, shadow = data["positive_class"], data.get("shadow")
        if positive is not None and not isinstance(positive, (str, int, float, bool)):
            raise ValueError(f"{name}.positive_class must be a label (string, number or bool), got {positive!r}")
        return cls(
            rows=require_int(data["rows"], f"{name}.rows"),
            model_version=require_version(data["model_version"], f"{name}.model_version"),
            alias=optional_text(data["alias"], f"{name}.alias"),
            positive_class=positive,
            shadow=None if shadow is None else ShadowSummary.from_dict(shadow, f"{name}.shadow"),
        )


@dataclass(frozen=True)
class ShadowResult:
    """A shadow replay step's evidence: the candidate and the champion on the champion's production inputs."""

    summary: ShadowSummary

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary.to_dict()}

    @classmethod
    def from_dict(cls, data: object, name: str = "results") -> ShadowResult:
        data = require_keys(data, name, ("summary",))
        return cls(ShadowSummary.from_dict(data["summary"], f"{name}.summary"))


@dataclass(frozen=True)
class DriftResult:
    """What a drift step found: the whole report, policy included."""

    report: DriftReport

    def to_dict(self) -> dict[str, Any]:
        return {"report": self.report.to_dict()}

    @classmethod
    def from_dict(cls, data: object, name: str = "results") -> DriftResult:
        data = require_keys(data, name, ("report",))
        return cls(DriftReport.from_dict(data["report"], f"{name}.report"))


def _promotion(data: object, name: str = "results") -> PromotionResult:
    try:
        return PromotionResult.from_dict(require_mapping(data, name))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{name}: {e}") from None


StepResult: TypeAlias = (
    FeaturizeResult
    | TrainResult
    | EvaluateResult
    | SimulateResult
    | GateResult
    | PromotionResult
    | PredictResult
    | DriftResult
    | ShadowResult
)
#: The result type of each step kind; a step not listed records no results.
RESULT_TYPES: Mapping[str, type] = {
    "featurize": FeaturizeResult,
    "train": TrainResult,
    "evaluate": EvaluateResult,
    "simulate": SimulateResult,
    "gate": GateResult,
    "promote": PromotionResult,
    "rollback": PromotionResult,
    "predict": PredictResult,
    "drift": DriftResult,
    "shadow": ShadowResult,
}
_RESULT_READERS: Mapping[str, Callable[[object], StepResult]] = {
    "featurize": FeaturizeResult.from_dict,
    "train": TrainResult.from_dict,
    "evaluate": EvaluateResult.from_dict,
    "simulate": SimulateResult.from_dict,
    "gate": GateResult.from_dict,
    "promote": _promotion,
    "rollback": _promotion,
    "predict": PredictResult.from_dict,
    "drift": DriftResult.from_dict,
    "shadow": ShadowResult.from_dict,
}


# --- the record ----------------------------------------------------------------------------------


@dataclass
class StepRecord:
    """One step's record; mutable while the step runs (the operator fills it), typed throughout."""

    step: str
    mlflow_run_id: str
    airflow: AirflowIds
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    #: The user's callable as errors show it: ``<file relative to the DAGs folder>:<qualname>``, e.g.
    #: ``retrain.py:train`` (``records.environment.callable_name``).
    code: str | None = None
    #: The user's callable in detail (see ``records.environment.code_info``): source sha256, git commit, dirty flag.
    code_identity: dict[str, Any] | None = None
    #: Python, platform, package versions + digest of all installed, and ``hardware`` (``records.environment``).
    environment: dict[str, Any] | None = None
    model: RecordedModel | None = None
    #: The step kind's result (:data:`RESULT_TYPES`); None until the step records one.
    results: StepResult | None = None
    status: str = "running"
    #: What the step returned through XCom, so a reproduction can reuse it (``--from-step``).
    returned: Any = None
    error: str | None = None
    #: What the step's body used (``records.resources``), measured by ``step_run``; None in records written before.
    resources: StepResources | None = None
    #: When the step closed: ISO-8601 with its timezone (:attr:`recorded_time` parses it).
    recorded_at: str | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def recorded_time(self) -> datetime | None:
        return None if self.recorded_at is None else parse_time(self.recorded_at, "recorded_at")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; a result of another step kind's type is a bug and raises ``TypeError``."""
        kind = RESULT_TYPES.get(self.step)
        if self.results is not None and (kind is None or not isinstance(self.results, kind)):
            raise TypeError(
                f"a {self.step!r} step record cannot hold a {type(self.results).__name__} "
                f"(its result type is {kind.__name__ if kind else 'none'})"
            )
        return {
            "step": self.step,
            "mlflow_run_id": self.mlflow_run_id,
            "airflow": self.airflow.to_dict(),
            "inputs": [dict(entry) for entry in self.inputs],
            "outputs": [dict(entry) for entry in self.outputs],
            "params": dict(self.params),
            "code": self.code,
            "code_identity": self.code_identity,
            "environment": self.environment,
            "model": None if self.model is None else self.model.to_dict(),
            "results": {} if self.results is None else self.results.to_dict(),
            "status": self.status,
            "returned": self.returned,
            "error": self.error,
            "resources": None if self.resources is None else self.resources.to_dict(),
            "recorded_at": self.recorded_at,
            "schema_version": self.schema_version,
        }

    @classmethod
    def from_dict(cls, data: object, run_id: str | None = None) -> StepRecord:
        """Parse a record strictly; anything that does not parse is a :class:`RecordError`.

        :param run_id: the MLflow run the record was read from, for the error (default: the one it names).
        """
        where = run_id or (data.get("mlflow_run_id") if isinstance(data, Mapping) else None) or "(unknown)"
        try:
            return cls._parse(data)
        except (TypeError, ValueError) as e:
            problem = str(e).rstrip(".")
            field_name = problem.split(" ", 1)[0].split(":", 1)[0] or None
            end = "" if problem.endswith("?") else "."
            raise RecordError(
                f"step record of MLflow run {where} does not parse: {problem}{end} {_REDO}.", where, field_name
            ) from None

    @classmethod
    def _parse(cls, data: object) -> StepRecord:
        data = require_keys(data, "record", _REQUIRED_KEYS, _LEGACY_OPTIONAL_KEYS)
        version = data["schema_version"]
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {version!r} is not one this airflow-ml-provider reads ({SCHEMA_VERSION}); "
                "read it with the version that wrote it"
            )
        step = require_text(data["step"], "step")
        status = data["status"]
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        recorded_at = optional_text(data["recorded_at"], "recorded_at")
        if recorded_at is not None:
            parse_time(recorded_at, "recorded_at")
        model, resources = data["model"], data.get("resources")
        return cls(
            step=step,
            mlflow_run_id=require_text(data["mlflow_run_id"], "mlflow_run_id"),
            airflow=AirflowIds.from_dict(data["airflow"]),
            inputs=_entries(data["inputs"], "inputs"),
            outputs=_entries(data["outputs"], "outputs"),
            params=require_mapping(data["params"], "params"),
            code=optional_text(data["code"], "code"),
            code_identity=optional_mapping(data.get("code_identity"), "code_identity"),
            environment=optional_mapping(data.get("environment"), "environment"),
            model=None if model is None else RecordedModel.from_dict(model),
            results=parse_results(step, data["results"]),
            status=status,
            returned=data.get("returned"),
            error=optional_str(data["error"], "error"),
            resources=None if resources is None else StepResources.from_dict(resources),
            recorded_at=recorded_at,
            schema_version=version,
        )


_REQUIRED_KEYS = (
    "step",
    "mlflow_run_id",
    "airflow",
    "inputs",
    "outputs",
    "params",
    "code",
    "model",
    "results",
    "status",
    "error",
    "recorded_at",
    "schema_version",
)
#: Added to schema 1 after its first records: absent means "not recorded" (None).
_LEGACY_OPTIONAL_KEYS = ("code_identity", "environment", "returned", "resources")


def _entries(value: object, name: str) -> list[dict[str, Any]]:
    """Dataset entries (a dataset reference with its ``role``)."""
    entries = [require_mapping(item, f"{name}[{i}]") for i, item in enumerate(require_list(value, name))]
    for i, entry in enumerate(entries):
        require_text(entry.get("role"), f"{name}[{i}].role")
    return entries


def parse_results(step: str, value: object) -> StepResult | None:
    """A step kind's result from its JSON (``{}``: none recorded); malformed data raises ``ValueError``."""
    if isinstance(value, Mapping) and not value:
        return None
    reader = _RESULT_READERS.get(step)
    if reader is None:
        raise ValueError(f"results: a {step!r} step records no results (known steps: {', '.join(RESULT_TYPES)})")
    result: StepResult = reader(value)
    return result


# --- the one writer and the one reader ----------------------------------------------------------


def write_step_record(hook: MlflowHook, record: StepRecord) -> None:
    hook.log_dict(record.mlflow_run_id, record.to_dict(), RECORD_ARTIFACT_PATH)


def read_step_record(hook: MlflowHook, run_id: str) -> StepRecord:
    """The step record of ``run_id``, parsed strictly; any problem is a :class:`RecordError`.

    One ``get_run`` finds the run's artifact location; the record is read in place when that is a
    local directory (no temporary copy: the gate reads three per check) and downloaded otherwise.
    """
    try:
        local = _local_path(hook.get_run(run_id).info.artifact_uri)
        if local is not None:
            data = json.loads((local / RECORD_ARTIFACT_PATH).read_text())
        else:
            data = hook.read_json_artifact(run_id, RECORD_ARTIFACT_PATH)
    except Exception as e:
        raise RecordError(
            f"step record of MLflow run {run_id} is missing or unreadable: {e}. Check that the run exists and "
            f"that its artifact {RECORD_ARTIFACT_PATH} can be read from here",
            run_id,
        ) from e
    return StepRecord.from_dict(data, run_id)


def _local_path(uri: str | None) -> Path | None:
    """The local directory behind an artifact URI, or None when it is remote."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None
