"""Our OpenLineage run facets for ML steps, and their assembly from what a step recorded.

No ML facet exists in the OpenLineage spec yet (proposal OpenLineage#4035), so each facet here is an
attrs class deriving from the client's ``RunFacet`` whose ``_schemaURL`` points at the JSON Schema we
ship in ``airflow_ml_provider/lineage/schemas/<FacetName>.json``.

Importing this module imports the OpenLineage client: only the ``get_openlineage_facets_*`` methods
(and tests) import it, never a DAG file. The assembly functions run in the OpenLineage listener's
forked child with a short timeout: they only reshape plain data gathered during ``execute()``, do no
I/O and never raise (a facet that cannot be built is left out).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attr
from openlineage.client.generated.base import InputDatasetFacet, RunFacet
from openlineage.client.utils import RedactMixin

from airflow_ml_provider import __version__
from airflow_ml_provider.parsing import time_to_json
from airflow_ml_provider.promotion.rule import PromotionResult
from airflow_ml_provider.records.json_safe import json_safe, short_text
from airflow_ml_provider.records.step_record import (
    EvaluateResult,
    FeaturizeResult,
    GateResult,
    PredictResult,
    ShadowResult,
    SimulateResult,
    TrainResult,
)

if TYPE_CHECKING:
    from airflow_ml_provider.records.step_run import StepRun
    from airflow_ml_provider.scenarios.runner import ScenarioRunReport

log = logging.getLogger(__name__)

#: The schemas as released: the tag of the installed version, so a recorded ``_schemaURL`` keeps resolving to the
#: schema the event was written against (``main`` moves on). The shipped files' ``$id`` say the same (tested).
SCHEMA_BASE_URL = (
    f"https://raw.githubusercontent.com/airflow-ml-provider/airflow-ml-provider/v{__version__}/"
    "airflow_ml_provider/lineage/schemas/"
)


def schema_url(name: str) -> str:
    """``_schemaURL`` of our facet ``name``: its shipped schema file, pointing at its definition."""
    return f"{SCHEMA_BASE_URL}{name}.json#/$defs/{name}"


# --- facets --------------------------------------------------------------------------------------


@attr.define
class MLflowRunFacet(RunFacet):
    """The MLflow run that tracks this step (credentials stripped from the tracking URI)."""

    runId: str
    experimentId: str | None = attr.field(default=None)
    parentRunId: str | None = attr.field(default=None)
    trackingUri: str | None = attr.field(default=None)
    manifestPath: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLflowRunFacet")


@attr.define
class MLTrainingRunFacet(RunFacet):
    """How the model version was trained and where it was registered."""

    registeredModelName: str
    mlflowRunId: str
    estimator: str | None = attr.field(default=None)
    hyperparameters: dict[str, Any] = attr.field(factory=dict)
    randomSeed: int | None = attr.field(default=None)
    modelVersion: str | None = attr.field(default=None)
    modelUri: str | None = attr.field(default=None)
    modelFingerprint: str | None = attr.field(default=None)
    flavor: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLTrainingRunFacet")


@attr.define
class MLEnvironmentRunFacet(RunFacet):
    """The software the step ran with: Python, platform, its packages and a digest of all installed ones."""

    pythonVersion: str
    pythonImplementation: str | None = attr.field(default=None)
    platform: str | None = attr.field(default=None)
    packages: dict[str, str] = attr.field(factory=dict)
    packagesDigest: str | None = attr.field(default=None)
    packagesCount: int | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLEnvironmentRunFacet")


@attr.define
class MLHardwareRunFacet(RunFacet):
    """The machine the step ran on."""

    logicalCores: int | None = attr.field(default=None)
    cpuModel: str | None = attr.field(default=None)
    memoryBytes: int | None = attr.field(default=None)
    machine: str | None = attr.field(default=None)
    gpuModel: str | None = attr.field(default=None)
    gpuCount: int | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLHardwareRunFacet")


@attr.define
class MLResourcesRunFacet(RunFacet):
    """What the step's body used (``records.resources.StepResources``, same figures and methods)."""

    wallSeconds: float
    cpuSeconds: float
    childrenCpuSeconds: float | None = attr.field(default=None)
    peakMemoryBytes: int | None = attr.field(default=None)
    #: ``step_reset`` / ``step_rose``: the step's own peak; ``process``: the process's since it started.
    peakMemoryMethod: str | None = attr.field(default=None)
    memoryStartBytes: int | None = attr.field(default=None)
    memoryEndBytes: int | None = attr.field(default=None)
    gpus: list[dict[str, Any]] = attr.field(factory=list)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLResourcesRunFacet")


@attr.define
class MLCodeRunFacet(RunFacet):
    """The user's callable this step ran: name, source hash, and its git commit or distribution."""

    callable: str
    sourceSha256: str | None = attr.field(default=None)
    gitCommit: str | None = attr.field(default=None)
    gitDirty: bool | None = attr.field(default=None)
    gitPath: str | None = attr.field(default=None)
    gitRemote: str | None = attr.field(default=None)
    distribution: str | None = attr.field(default=None)
    distributionVersion: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLCodeRunFacet")


@attr.define
class MLEvaluationRunFacet(RunFacet):
    """Metrics of the model version on the holdout, and of the champion on the same rows when compared."""

    metrics: dict[str, float | None]
    mlflowRunId: str | None = attr.field(default=None)
    modelName: str | None = attr.field(default=None)
    modelVersion: str | None = attr.field(default=None)
    task: str | None = attr.field(default=None)
    holdoutFingerprint: str | None = attr.field(default=None)
    championVersion: str | None = attr.field(default=None)
    championMetrics: dict[str, float | None] | None = attr.field(default=None)
    championError: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLEvaluationRunFacet")


@attr.define
class MLScenarioResult(RedactMixin):
    """One must-pass scenario's outcome."""

    name: str
    passed: bool
    reason: str | None = attr.field(default=None)

    _skip_redact: ClassVar[list[str]] = ["name", "passed"]


@attr.define
class MLScenariosRunFacet(RunFacet):
    """Per-scenario pass/fail of the must-pass scenarios run against the model version."""

    passed: bool
    scenarios: list[MLScenarioResult] = attr.field(factory=list)
    suiteFingerprint: str | None = attr.field(default=None)
    mlflowRunId: str | None = attr.field(default=None)
    modelName: str | None = attr.field(default=None)
    modelVersion: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLScenariosRunFacet")


@attr.define
class MLGateCheck(RedactMixin):
    """One check of the gate's verdict."""

    name: str
    passed: bool
    reason: str | None = attr.field(default=None)

    _skip_redact: ClassVar[list[str]] = ["name", "passed"]


@attr.define
class MLGateVerdictRunFacet(RunFacet):
    """The gate's verdict on one model version: every check with its reason, and the overall status."""

    status: str
    checks: list[MLGateCheck] = attr.field(factory=list)
    modelName: str | None = attr.field(default=None)
    modelVersion: str | None = attr.field(default=None)
    modelFingerprint: str | None = attr.field(default=None)
    decidedAt: str | None = attr.field(default=None)
    mlflowRunId: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLGateVerdictRunFacet")


@attr.define
class MLPromotionRunFacet(RunFacet):
    """One attempt to move a registry alias to a model version: its outcome and the alias before and after."""

    alias: str
    outcome: str | None = attr.field(default=None)
    mode: str | None = attr.field(default=None)
    modelName: str | None = attr.field(default=None)
    modelVersion: str | None = attr.field(default=None)
    previousVersion: str | None = attr.field(default=None)
    aliasVersion: str | None = attr.field(default=None)
    reason: str | None = attr.field(default=None)
    mlflowRunId: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLPromotionRunFacet")


@attr.define
class MLShadowRunFacet(RunFacet):
    """A shadow comparison: the candidate (shadow) and the champion (primary) on the same production rows."""

    kind: str
    status: str
    modelName: str | None = attr.field(default=None)
    primaryVersion: str | None = attr.field(default=None)
    shadowVersion: str | None = attr.field(default=None)
    shadowUri: str | None = attr.field(default=None)
    inputFingerprints: list[str] = attr.field(factory=list)
    task: str | None = attr.field(default=None)
    rows: int | None = attr.field(default=None)
    agreement: float | None = attr.field(default=None)
    meanAbsDelta: float | None = attr.field(default=None)
    p95AbsDelta: float | None = attr.field(default=None)
    primaryMsPer1kRows: float | None = attr.field(default=None)
    shadowMsPer1kRows: float | None = attr.field(default=None)
    error: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLShadowRunFacet")


#: run facet key -> our facet class (the keys our schemas' top-level ``properties`` name).
@attr.define
class MLDriftFeature(RedactMixin):
    """One feature's drift comparison."""

    name: str
    method: str
    drifted: bool
    statistic: float | None = attr.field(default=None)
    threshold: float | None = attr.field(default=None)
    adjustedPValue: float | None = attr.field(default=None)
    reason: str | None = attr.field(default=None)

    _skip_redact: ClassVar[list[str]] = ["name", "method", "drifted"]


@attr.define
class MLDriftInputDatasetFacet(InputDatasetFacet):
    """Drift of this input (a batch a model scores) against the model's training data."""

    status: str
    driftedFeatures: list[str] = attr.field(factory=list)
    features: list[MLDriftFeature] = attr.field(factory=list)
    schemaChanges: list[str] = attr.field(factory=list)
    referenceRows: int | None = attr.field(default=None)
    currentRows: int | None = attr.field(default=None)
    correction: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLDriftInputDatasetFacet")


#: Our dataset facets, by key (their schemas derive from the spec's InputDatasetFacet).
DATASET_FACETS: dict[str, type[InputDatasetFacet]] = {"mlDrift": MLDriftInputDatasetFacet}

FACETS: dict[str, type[RunFacet]] = {
    "mlflowRun": MLflowRunFacet,
    "mlTraining": MLTrainingRunFacet,
    "mlEnvironment": MLEnvironmentRunFacet,
    "mlHardware": MLHardwareRunFacet,
    "mlCode": MLCodeRunFacet,
    "mlResources": MLResourcesRunFacet,
    "mlEvaluation": MLEvaluationRunFacet,
    "mlScenarios": MLScenariosRunFacet,
    "mlGateVerdict": MLGateVerdictRunFacet,
    "mlPromotion": MLPromotionRunFacet,
    "mlShadow": MLShadowRunFacet,
}

#: Longest free text (reasons, errors) kept in a facet, so one event stays small.
TEXT_LIMIT = 1000


# --- helpers ---------------------------------------------------------------------------------------


def _text(value: Any, limit: int = TEXT_LIMIT) -> str | None:
    return None if value is None else short_text(value, limit)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _numbers(values: Any) -> dict[str, float | None]:
    return {str(k): _number(v) for k, v in (values or {}).items()} if isinstance(values, Mapping) else {}


def _int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


# --- builders: plain data -> facets -----------------------------------------------------------------


def drift_facet(report: Mapping[str, Any]) -> MLDriftInputDatasetFacet:
    """The ``mlDrift`` input facet from a drift report (``DriftReport.to_dict()``); non-finite numbers left out."""
    features = [
        MLDriftFeature(
            name=str(f["name"]),
            method=str(f["method"]),
            drifted=bool(f["drifted"]),
            statistic=_number(f.get("statistic")),
            threshold=_number(f.get("threshold")),
            adjustedPValue=_number(f.get("adjusted_p_value")),
            reason=_text(f.get("reason")),
        )
        for f in (report.get("features") or {}).values()
    ]
    return MLDriftInputDatasetFacet(
        status=str(report["status"]),
        driftedFeatures=[str(n) for n in report.get("drifted_features") or ()],
        features=features,
        schemaChanges=[str(c) for c in report.get("schema_changes") or ()],
        referenceRows=_int(report.get("reference_rows")),
        currentRows=_int(report.get("current_rows")),
        correction=_opt_str(report.get("correction")),
    )


def mlflow_run_facet(run: StepRun) -> MLflowRunFacet:
    from airflow_ml_provider.records.redaction import strip_credentials
    from airflow_ml_provider.records.tags import MANIFEST_DIR

    uri = getattr(run, "tracking_uri", None)
    return MLflowRunFacet(
        runId=str(run.run_id),
        experimentId=_opt_str(getattr(run, "experiment_id", None)),
        parentRunId=_opt_str(getattr(run, "parent_run_id", None)),
        trackingUri=strip_credentials(uri) if uri else None,
        manifestPath=MANIFEST_DIR if getattr(run, "parent_run_id", None) else None,
    )


def environment_facet(env: Mapping[str, Any]) -> MLEnvironmentRunFacet | None:
    if not env or not env.get("pythonVersion"):
        return None
    return MLEnvironmentRunFacet(
        pythonVersion=str(env["pythonVersion"]),
        pythonImplementation=_opt_str(env.get("pythonImplementation")),
        platform=_opt_str(env.get("platform")),
        packages={str(k): str(v) for k, v in (env.get("packages") or {}).items()},
        packagesDigest=_opt_str(env.get("packagesDigest")),
        packagesCount=_int(env.get("packagesCount")),
    )


def hardware_facet(hw: Mapping[str, Any]) -> MLHardwareRunFacet | None:
    if not hw:
        return None
    return MLHardwareRunFacet(
        logicalCores=_int(hw.get("logicalCores")),
        cpuModel=_opt_str(hw.get("cpuModel")),
        memoryBytes=_int(hw.get("memoryBytes")),
        machine=_opt_str(hw.get("machine")),
        gpuModel=_opt_str(hw.get("gpuModel")),
        gpuCount=_int(hw.get("gpuCount")),
    )


def resources_facet(run: StepRun) -> MLResourcesRunFacet | None:
    used = getattr(run.record, "resources", None)
    if used is None:
        return None
    return MLResourcesRunFacet(
        wallSeconds=used.wall_seconds,
        cpuSeconds=used.cpu_seconds,
        childrenCpuSeconds=used.children_cpu_seconds,
        peakMemoryBytes=used.peak_memory_bytes,
        peakMemoryMethod=used.peak_memory_method,
        memoryStartBytes=used.memory_start_bytes,
        memoryEndBytes=used.memory_end_bytes,
        gpus=[
            {
                "index": gpu.index,
                "name": gpu.name,
                "memoryBytes": gpu.memory_bytes,
                "memoryMethod": gpu.memory_method,
                "memoryTotalBytes": gpu.memory_total_bytes,
            }
            for gpu in used.gpus
        ],
    )


def code_facet(code: Mapping[str, Any]) -> MLCodeRunFacet | None:
    if not code or not code.get("callable"):
        return None
    dirty = code.get("gitDirty")
    return MLCodeRunFacet(
        callable=str(code["callable"]),
        sourceSha256=_opt_str(code.get("sourceSha256")),
        gitCommit=_opt_str(code.get("gitCommit")),
        gitDirty=None if dirty is None else bool(dirty),
        gitPath=_opt_str(code.get("gitPath")),
        gitRemote=_opt_str(code.get("gitRemote")),
        distribution=_opt_str(code.get("distribution")),
        distributionVersion=_opt_str(code.get("distributionVersion")),
    )


def training_facet(run: StepRun) -> MLTrainingRunFacet | None:
    result, model = run.record.results, run.record.model
    trained = result if isinstance(result, TrainResult) else None
    name = model.name if model else trained.registered_model_name if trained else None
    if not name:
        return None
    return MLTrainingRunFacet(
        registeredModelName=name,
        mlflowRunId=str(run.run_id),
        estimator=model.estimator if model else None,
        hyperparameters=json_safe(dict(trained.hyperparameters) if trained else {}),
        randomSeed=trained.seed if trained else None,
        modelVersion=model.version if model else None,
        modelUri=model.uri if model else None,
        modelFingerprint=model.fingerprint if model else None,
        flavor=model.flavor if model else None,
    )


def evaluation_facet(run: StepRun) -> MLEvaluationRunFacet | None:
    result, model = run.record.results, run.record.model
    if not isinstance(result, EvaluateResult):
        return None
    champion = result.champion
    return MLEvaluationRunFacet(
        metrics=_numbers(result.metrics),
        mlflowRunId=str(run.run_id),
        modelName=model.name if model else None,
        modelVersion=model.version if model else None,
        task=result.task,
        holdoutFingerprint=result.holdout_fingerprint,
        championVersion=champion.version if champion else None,
        championMetrics=_numbers(champion.metrics) if champion and champion.metrics is not None else None,
        championError=_text(champion.error) if champion else None,
    )


def shadow_facet(run: StepRun) -> MLShadowRunFacet | None:
    """The live shadow of a predict step, or a replay step's comparison (over all its inputs)."""
    result = run.record.results
    if isinstance(result, PredictResult):
        summary = result.shadow
    else:
        summary = result.summary if isinstance(result, ShadowResult) else None
    if summary is None:
        return None
    found = summary.comparison
    delta = None if found is None else (found.abs_delta or found.probability_abs_delta)
    return MLShadowRunFacet(
        kind=summary.kind,
        status=summary.status,
        modelName=summary.model_name,
        primaryVersion=summary.primary_version,
        shadowVersion=summary.shadow_version,
        shadowUri=summary.shadow_uri,
        inputFingerprints=list(summary.input_fingerprints),
        task=None if found is None else found.task,
        rows=None if found is None else found.rows,
        agreement=None if found is None else _number(found.agreement),
        meanAbsDelta=None if delta is None else _number(delta.mean),
        p95AbsDelta=None if delta is None else _number(delta.p95),
        primaryMsPer1kRows=None if found is None else _number(found.primary_ms_per_1k_rows),
        shadowMsPer1kRows=None if found is None else _number(found.shadow_ms_per_1k_rows),
        error=_text(summary.error),
    )


def _scenario_report(run: StepRun) -> ScenarioRunReport | None:
    result = run.record.results
    return result.scenarios if isinstance(result, SimulateResult) else None


def scenarios_facet(run: StepRun) -> MLScenariosRunFacet | None:
    report = _scenario_report(run)
    if report is None:
        return None
    model = run.record.model
    return MLScenariosRunFacet(
        passed=report.passed,
        scenarios=[MLScenarioResult(name=r.name, passed=r.passed, reason=_text(r.reason)) for r in report.results],
        suiteFingerprint=_opt_str(report.suite_fingerprint),
        mlflowRunId=str(run.run_id),
        modelName=model.name if model else None,
        modelVersion=model.version if model else None,
    )


def scenarios_test_facet(run: StepRun) -> Any:
    """The spec's ``TestRunFacet``: each scenario as a test (type ``scenario``, severity ``error``)."""
    report = _scenario_report(run)
    if report is None:
        return None
    from openlineage.client.generated.test_run import TestExecution, TestRunFacet

    return TestRunFacet(
        tests=[
            TestExecution(
                name=r.name,
                status="pass" if r.passed else "fail",
                severity="error",
                type="scenario",
                actual=_text(r.reason),
                params=None,
            )
            for r in report.results
        ]
    )


def expectations_test_facet(reports: Sequence[Mapping[str, Any]]) -> Any:
    """The spec's ``TestRunFacet`` for expectation reports that no input dataset can carry."""
    from openlineage.client.generated.test_run import TestExecution, TestRunFacet

    from airflow_ml_provider.lineage.datasets import expectation_assertions

    tests = []
    for report in reports:
        for a in expectation_assertions(report):
            tests.append(
                TestExecution(
                    name=str(a.get("name")),
                    status="pass" if a.get("success") else "fail",
                    severity="error",
                    type=str(a.get("assertion")),
                    expected=a.get("expected"),
                    actual=a.get("actual"),
                    params={"column": a["column"]} if a.get("column") else None,
                )
            )
    return TestRunFacet(tests=tests) if tests else None


def verdict_facet(run: StepRun) -> MLGateVerdictRunFacet | None:
    result = run.record.results
    if not isinstance(result, GateResult):
        return None
    verdict = result.verdict
    subject = verdict.subject
    return MLGateVerdictRunFacet(
        status="passed" if verdict.passed else "failed",
        checks=[MLGateCheck(name=c.name, passed=c.passed, reason=_text(c.reason)) for c in verdict.checks],
        modelName=subject.model_name,
        modelVersion=subject.model_version,
        modelFingerprint=subject.model_fingerprint
        or (run.record.model.fingerprint if run.record.model else None),
        decidedAt=time_to_json(verdict.decided_at),
        mlflowRunId=str(run.run_id),
    )


def promotion_facet(run: StepRun) -> MLPromotionRunFacet | None:
    """From the promotion result (:class:`~airflow_ml_provider.promotion.rule.PromotionResult`) the step recorded."""
    result, model = run.record.results, run.record.model
    if not isinstance(result, PromotionResult):
        return None
    return MLPromotionRunFacet(
        alias=result.alias,
        outcome=result.outcome.value,
        mode=result.mode.value,
        modelName=result.model_name,
        modelVersion=result.version or (model.version if model else None),
        previousVersion=result.holder_before,
        aliasVersion=result.holder_after,
        reason=_text(result.reason),
        mlflowRunId=str(run.run_id),
    )


def _featurize_test_facet(run: StepRun) -> Any:
    """The features' expectation reports (the raw one travels on the raw input as assertions)."""
    result = run.record.results
    checks = result.expectations if isinstance(result, FeaturizeResult) else ()
    return expectations_test_facet([c.to_dict() for c in checks if c.role != "raw"])


#: step -> [(facet key, builder)] for the facets only that step emits.
_STEP_FACETS: dict[str, list[tuple[str, Callable[[Any], Any]]]] = {
    "train": [("mlTraining", training_facet)],
    "evaluate": [("mlEvaluation", evaluation_facet)],
    "simulate": [("mlScenarios", scenarios_facet), ("test", scenarios_test_facet)],
    "gate": [("mlGateVerdict", verdict_facet)],
    "promote": [("mlPromotion", promotion_facet)],
    "featurize": [("test", _featurize_test_facet)],
    "predict": [("mlShadow", shadow_facet)],
    "shadow": [("mlShadow", shadow_facet)],
}


def step_run_facets(run: StepRun | None) -> dict[str, Any]:
    """All run facets of one step, from its :class:`~airflow_ml_provider.records.step_run.StepRun`.

    Pure reshaping of what ``execute()`` gathered; a facet whose data is missing or malformed is
    left out (logged at debug), so this never raises.
    """
    if run is None:
        return {}
    record = run.record
    env = dict(getattr(record, "environment", None) or {})
    builders: list[tuple[str, Callable[[Any], Any]]] = [
        ("mlflowRun", mlflow_run_facet),
        ("mlEnvironment", lambda _: environment_facet(env)),
        ("mlHardware", lambda _: hardware_facet(env.get("hardware") or {})),
        ("mlCode", lambda r: code_facet(getattr(r.record, "code_identity", None) or {})),
        ("mlResources", resources_facet),
        *_STEP_FACETS.get(record.step, []),
    ]
    facets: dict[str, Any] = {}
    for key, build in builders:
        try:
            facet = build(run)
        except Exception:  # lineage never breaks a task
            log.debug("Could not build the %s facet of step %s", key, record.step, exc_info=True)
            continue
        if facet is not None:
            facets[key] = facet
    return facets
