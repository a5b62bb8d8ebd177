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

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attr
from openlineage.client.generated.base import RunFacet
from openlineage.client.utils import RedactMixin

if TYPE_CHECKING:
    from airflow_ml_provider.records.step_run import StepRun

log = logging.getLogger(__name__)

SCHEMA_BASE_URL = (
    "https://raw.githubusercontent.com/airflow-ml-provider/airflow-ml-provider/main/"
    "airflow_ml_provider/lineage/schemas/"
)


def schema_url(name: str) -> str:
    """``_schemaURL`` of our facet ``name``: its shipped schema file, pointing at its definition."""
    return f"{SCHEMA_BASE_URL}{name}.json#/$defs/{name}"


# --- facets --------------------------------------------------------------------------------------


@attr.define
class MLflowRunFacet(RunFacet):
    """The MLflow run that tracks this step (credentials stripped from the tracking URI)."""

    runId: str  # noqa: N815
    experimentId: str | None = attr.field(default=None)  # noqa: N815
    parentRunId: str | None = attr.field(default=None)  # noqa: N815
    trackingUri: str | None = attr.field(default=None)  # noqa: N815
    manifestPath: str | None = attr.field(default=None)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLflowRunFacet")


@attr.define
class MLTrainingRunFacet(RunFacet):
    """How the model version was trained and where it was registered."""

    registeredModelName: str  # noqa: N815
    mlflowRunId: str  # noqa: N815
    estimator: str | None = attr.field(default=None)
    hyperparameters: dict[str, Any] = attr.field(factory=dict)
    randomSeed: int | None = attr.field(default=None)  # noqa: N815
    modelVersion: str | None = attr.field(default=None)  # noqa: N815
    modelUri: str | None = attr.field(default=None)  # noqa: N815
    modelFingerprint: str | None = attr.field(default=None)  # noqa: N815
    flavor: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLTrainingRunFacet")


@attr.define
class MLEnvironmentRunFacet(RunFacet):
    """The software the step ran with: Python, platform, its packages and a digest of all installed ones."""

    pythonVersion: str  # noqa: N815
    pythonImplementation: str | None = attr.field(default=None)  # noqa: N815
    platform: str | None = attr.field(default=None)
    packages: dict[str, str] = attr.field(factory=dict)
    packagesDigest: str | None = attr.field(default=None)  # noqa: N815
    packagesCount: int | None = attr.field(default=None)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLEnvironmentRunFacet")


@attr.define
class MLHardwareRunFacet(RunFacet):
    """The machine the step ran on."""

    logicalCores: int | None = attr.field(default=None)  # noqa: N815
    cpuModel: str | None = attr.field(default=None)  # noqa: N815
    memoryBytes: int | None = attr.field(default=None)  # noqa: N815
    machine: str | None = attr.field(default=None)
    gpuModel: str | None = attr.field(default=None)  # noqa: N815
    gpuCount: int | None = attr.field(default=None)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLHardwareRunFacet")


@attr.define
class MLCodeRunFacet(RunFacet):
    """The user's callable this step ran: name, source hash, and its git commit or distribution."""

    callable: str
    sourceSha256: str | None = attr.field(default=None)  # noqa: N815
    gitCommit: str | None = attr.field(default=None)  # noqa: N815
    gitDirty: bool | None = attr.field(default=None)  # noqa: N815
    gitPath: str | None = attr.field(default=None)  # noqa: N815
    gitRemote: str | None = attr.field(default=None)  # noqa: N815
    distribution: str | None = attr.field(default=None)
    distributionVersion: str | None = attr.field(default=None)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLCodeRunFacet")


@attr.define
class MLEvaluationRunFacet(RunFacet):
    """Metrics of the model version on the holdout, and of the champion on the same rows when compared."""

    metrics: dict[str, float | None]
    mlflowRunId: str | None = attr.field(default=None)  # noqa: N815
    modelName: str | None = attr.field(default=None)  # noqa: N815
    modelVersion: str | None = attr.field(default=None)  # noqa: N815
    task: str | None = attr.field(default=None)
    holdoutFingerprint: str | None = attr.field(default=None)  # noqa: N815
    championVersion: str | None = attr.field(default=None)  # noqa: N815
    championMetrics: dict[str, float | None] | None = attr.field(default=None)  # noqa: N815
    championError: str | None = attr.field(default=None)  # noqa: N815

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
    suiteFingerprint: str | None = attr.field(default=None)  # noqa: N815
    mlflowRunId: str | None = attr.field(default=None)  # noqa: N815
    modelName: str | None = attr.field(default=None)  # noqa: N815
    modelVersion: str | None = attr.field(default=None)  # noqa: N815

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
    modelName: str | None = attr.field(default=None)  # noqa: N815
    modelVersion: str | None = attr.field(default=None)  # noqa: N815
    modelFingerprint: str | None = attr.field(default=None)  # noqa: N815
    decidedAt: str | None = attr.field(default=None)  # noqa: N815
    mlflowRunId: str | None = attr.field(default=None)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLGateVerdictRunFacet")


@attr.define
class MLPromotionRunFacet(RunFacet):
    """One attempt to move a registry alias to a model version: its outcome and the alias before and after."""

    alias: str
    outcome: str | None = attr.field(default=None)
    mode: str | None = attr.field(default=None)
    modelName: str | None = attr.field(default=None)  # noqa: N815
    modelVersion: str | None = attr.field(default=None)  # noqa: N815
    previousVersion: str | None = attr.field(default=None)  # noqa: N815
    aliasVersion: str | None = attr.field(default=None)  # noqa: N815
    reason: str | None = attr.field(default=None)
    mlflowRunId: str | None = attr.field(default=None)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return schema_url("MLPromotionRunFacet")


#: run facet key -> our facet class (the keys our schemas' top-level ``properties`` name).
FACETS: dict[str, type[RunFacet]] = {
    "mlflowRun": MLflowRunFacet,
    "mlTraining": MLTrainingRunFacet,
    "mlEnvironment": MLEnvironmentRunFacet,
    "mlHardware": MLHardwareRunFacet,
    "mlCode": MLCodeRunFacet,
    "mlEvaluation": MLEvaluationRunFacet,
    "mlScenarios": MLScenariosRunFacet,
    "mlGateVerdict": MLGateVerdictRunFacet,
    "mlPromotion": MLPromotionRunFacet,
}

#: Longest free text (reasons, errors) kept in a facet, so one event stays small.
TEXT_LIMIT = 1000


# --- helpers ---------------------------------------------------------------------------------------


def _text(value: Any, limit: int = TEXT_LIMIT) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def json_safe(value: Any) -> Any:
    """Strict-JSON copy of ``value`` (NaN/inf -> None, unknown objects -> str)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, Mapping):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    try:
        return clean(json.loads(json.dumps(value, default=str)))
    except (TypeError, ValueError):
        return str(value)


def _int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


# --- builders: plain data -> facets -----------------------------------------------------------------


def mlflow_run_facet(run: StepRun) -> MLflowRunFacet:
    from airflow_ml_provider.lineage.datasets import strip_credentials
    from airflow_ml_provider.records.step_run import MANIFEST_DIR

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
    results, model = run.record.results or {}, run.record.model or {}
    name = model.get("name") or results.get("registered_model_name")
    if not name:
        return None
    return MLTrainingRunFacet(
        registeredModelName=str(name),
        mlflowRunId=str(run.run_id),
        estimator=_opt_str(model.get("estimator")),
        hyperparameters=json_safe(results.get("hyperparameters") or {}),
        randomSeed=_int(results.get("seed")),
        modelVersion=_opt_str(model.get("version")),
        modelUri=_opt_str(model.get("uri")),
        modelFingerprint=_opt_str(model.get("fingerprint")),
        flavor=_opt_str(model.get("flavor")),
    )


def evaluation_facet(run: StepRun) -> MLEvaluationRunFacet | None:
    results, model = run.record.results or {}, run.record.model or {}
    if "metrics" not in results:
        return None
    champion = results.get("champion") or {}
    return MLEvaluationRunFacet(
        metrics=_numbers(results.get("metrics")),
        mlflowRunId=str(run.run_id),
        modelName=_opt_str(model.get("name")),
        modelVersion=_opt_str(model.get("version")),
        task=_opt_str(results.get("task")),
        holdoutFingerprint=_opt_str(results.get("holdout_fingerprint")),
        championVersion=_opt_str(champion.get("version")),
        championMetrics=_numbers(champion["metrics"]) if champion.get("metrics") is not None else None,
        championError=_text(champion.get("error")),
    )


def _scenario_results(run: StepRun) -> tuple[Mapping[str, Any], list[Mapping[str, Any]]] | None:
    report = (run.record.results or {}).get("scenarios")
    if not isinstance(report, Mapping):
        return None
    return report, [r for r in report.get("results") or () if isinstance(r, Mapping)]


def scenarios_facet(run: StepRun) -> MLScenariosRunFacet | None:
    found = _scenario_results(run)
    if found is None:
        return None
    report, results = found
    model = run.record.model or {}
    return MLScenariosRunFacet(
        passed=bool(report.get("passed")),
        scenarios=[
            MLScenarioResult(name=str(r.get("name")), passed=bool(r.get("passed")), reason=_text(r.get("reason")))
            for r in results
        ],
        suiteFingerprint=_opt_str(report.get("suite_fingerprint")),
        mlflowRunId=str(run.run_id),
        modelName=_opt_str(model.get("name")),
        modelVersion=_opt_str(model.get("version")),
    )


def scenarios_test_facet(run: StepRun) -> Any:
    """The spec's ``TestRunFacet``: each scenario as a test (type ``scenario``, severity ``error``)."""
    found = _scenario_results(run)
    if found is None:
        return None
    from openlineage.client.generated.test_run import TestExecution, TestRunFacet

    _, results = found
    return TestRunFacet(
        tests=[
            TestExecution(
                name=str(r.get("name")),
                status="pass" if r.get("passed") else "fail",
                severity="error",
                type="scenario",
                actual=_text(r.get("reason")),
                params=None,
            )
            for r in results
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
    verdict = (run.record.results or {}).get("verdict")
    if not isinstance(verdict, Mapping):
        return None
    subject = verdict.get("subject") or {}
    model = run.record.model or {}
    passed = bool(verdict.get("passed"))
    return MLGateVerdictRunFacet(
        status="passed" if passed else "failed",
        checks=[
            MLGateCheck(name=str(c.get("name")), passed=bool(c.get("passed")), reason=_text(c.get("reason")))
            for c in verdict.get("checks") or ()
            if isinstance(c, Mapping)
        ],
        modelName=_opt_str(subject.get("model_name") or model.get("name")),
        modelVersion=_opt_str(subject.get("model_version") or model.get("version")),
        modelFingerprint=_opt_str(subject.get("model_fingerprint") or model.get("fingerprint")),
        decidedAt=_opt_str(verdict.get("decided_at")),
        mlflowRunId=str(run.run_id),
    )


def promotion_facet(run: StepRun) -> MLPromotionRunFacet | None:
    """From the promotion result (``promotion.PromotionResult.to_dict()``) the step recorded."""
    results, model = run.record.results or {}, run.record.model or {}
    if not results.get("alias"):
        return None
    return MLPromotionRunFacet(
        alias=str(results["alias"]),
        outcome=_opt_str(results.get("outcome")),
        mode=_opt_str(results.get("mode")),
        modelName=_opt_str(results.get("model_name") or model.get("name")),
        modelVersion=_opt_str(results.get("version") or model.get("version")),
        previousVersion=_opt_str(results.get("holder_before")),
        aliasVersion=_opt_str(results.get("holder_after")),
        reason=_text(results.get("reason")),
        mlflowRunId=str(run.run_id),
    )


def data_quality_assertions(assertions: Sequence[Mapping[str, Any]]) -> Any:
    """The spec's ``DataQualityAssertionsDatasetFacet`` from plain assertion dicts."""
    from openlineage.client.generated.data_quality_assertions_dataset import (
        Assertion,
        DataQualityAssertionsDatasetFacet,
    )

    fields = {f.name for f in attr.fields(Assertion)}
    return DataQualityAssertionsDatasetFacet(
        assertions=[Assertion(**{"params": None, **{k: v for k, v in a.items() if k in fields}}) for a in assertions]
    )


#: step -> [(facet key, builder)] for the facets only that step emits.
_STEP_FACETS: dict[str, list[tuple[str, Callable[[Any], Any]]]] = {
    "train": [("mlTraining", training_facet)],
    "evaluate": [("mlEvaluation", evaluation_facet)],
    "simulate": [("mlScenarios", scenarios_facet), ("test", scenarios_test_facet)],
    "gate": [("mlGateVerdict", verdict_facet)],
    "promote": [("mlPromotion", promotion_facet)],
    "featurize": [
        (
            "test",
            lambda run: expectations_test_facet(
                [r for r in (run.record.results or {}).get("expectations") or () if r.get("role") != "raw"]
            ),
        )
    ],
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
