"""Every MLflow tag name and artifact path the provider writes or reads, in one place.

Tags and artifacts are the provider's contract with its own past runs: the gate, promotion, lineage,
reproduction and ``airflow-ml status`` find each other's work only through these names. Changing one
orphans every record written before, so they live here, with what writes and what reads them, and
nowhere else. Plain strings only: importing this module costs nothing.
"""

from __future__ import annotations

# --- on every step run (records/step_run.py writes them; reproduce, lineage and the gate search them)
TAG_KIND = "airflow_ml.kind"
#: Values of :data:`TAG_KIND`: a step's run, or the DAG run's parent run that holds the manifest.
KIND_STEP = "step"
KIND_DAG_RUN = "dag_run"
TAG_STEP = "airflow_ml.step"
TAG_DAG_ID = "airflow.dag_id"
TAG_RUN_ID = "airflow.run_id"
TAG_TASK_ID = "airflow.task_id"
TAG_TRY = "airflow.try_number"
TAG_MAP_INDEX = "airflow.map_index"
TAG_OL_RUN_ID = "openlineage.run_id"
TAG_CODE_CALLABLE = "airflow_ml.code.callable"
TAG_CODE_SHA = "airflow_ml.code.sha256"
TAG_CODE_GIT_COMMIT = "airflow_ml.code.git_commit"
TAG_ENV_DIGEST = "airflow_ml.environment.packages_digest"
#: MLflow's own nesting tag: a step run's DAG-run parent.
TAG_PARENT_RUN = "mlflow.parentRunId"
#: On a DAG-run parent run, once its :data:`MANIFEST_DAG_RUN` is written (value: that file's path); steps
#: that find it set do not write the file again.
TAG_MANIFEST = "airflow_ml.manifest"

# --- on the step runs of model steps and of rollback (the gate finds promote attempts by them)
TAG_MODEL_NAME = "airflow_ml.model_name"
TAG_MODEL_VERSION = "airflow_ml.model_version"
TAG_ALIAS = "airflow_ml.alias"
#: On a featurize run: the features' fingerprint (``airflow-ml lineage`` finds the producer by it).
TAG_FEATURES_FINGERPRINT = "airflow_ml.features_fingerprint"

# --- on a batch-predict run
TAG_OUTPUT_FINGERPRINT = "airflow_ml.output_fingerprint"
TAG_INPUT_FINGERPRINT = "airflow_ml.input_fingerprint"
TAG_MODEL_ALIAS = "airflow_ml.model_alias"
#: On a predict run with a live shadow: the version (of the same registered model) that shadowed the served one.
#: The gate finds every run in which a candidate was shadowed by it (gate/gather.py); the record holds the figures.
TAG_SHADOW_MODEL_VERSION = "airflow_ml.shadow_model_version"

# --- on a drift run (the model fields above name the version whose data was compared)
#: ``drift``, ``no_drift`` or ``not_enough_data`` (monitoring/drift.py's statuses).
TAG_DRIFT_STATUS = "airflow_ml.drift.status"

# --- on a model version, written by TrainOperator; read by evaluate, simulate, the gate and promote
TAG_TRAINING_RUN = "airflow_ml.training_run_id"
TAG_MODEL_FINGERPRINT = "airflow_ml.model_fingerprint"
# TAG_FEATURES_FINGERPRINT (above) is also set on the version: the features it was trained on.
TAG_TARGET = "airflow_ml.target_column"
TAG_FEATURE_COLUMNS = "airflow_ml.feature_columns"
TAG_TASK = "airflow_ml.task"
#: Set on versions built by ``airflow-ml reproduce``: the ``models:/`` URI of the original.
TAG_REPRODUCTION_OF = "airflow_ml.reproduction_of"
#: ``<prefix><step>`` -> the MLflow run id holding that step's record for this version.
EVIDENCE_TAG_PREFIX = "airflow_ml.evidence."

# --- on a model version, written with the gate's verdict; read by PromoteModelOperator and status
TAG_GATE_STATUS = "airflow_ml.gate.status"
TAG_GATE_RUN = "airflow_ml.gate.run_id"
TAG_GATE_FINGERPRINT = "airflow_ml.gate.model_fingerprint"
#: Values of :data:`TAG_GATE_STATUS` (gate/store.py writes them). ``pending``: set by TrainOperator as soon
#: as the version is registered, until a verdict replaces it with ``passed`` or ``failed``. ``abandoned``:
#: the train attempt that registered it did not finish (a later attempt of the task marks it, or the
#: attempt itself when it fails with an error); the gate and promotion refuse it.
GATE_PENDING = "pending"
GATE_PASSED = "passed"
GATE_FAILED = "failed"
GATE_ABANDONED = "abandoned"
#: On an ``abandoned`` version: which attempt abandoned it and why.
TAG_ABANDONED_BY = "airflow_ml.abandoned_by"

# --- on a model version, written by promotion and rollback
#: On the promoted version: the version that held ``champion`` before it ("none" for the first).
TAG_PREVIOUS_CHAMPION = "airflow_ml.previous_champion"
#: The same for any other alias: ``<prefix><alias>``.
TAG_PREVIOUS_PREFIX = "airflow_ml.previous."
#: On the promoted version: the attempt (the promote step's MLflow run id) that promoted it.
TAG_PROMOTED_BY = "airflow_ml.promoted_by"
#: One tag per attempt on the version it was about (on the registered model when there is no such
#: version): ``<prefix><UTC time>.<attempt id>`` = the JSON of the attempt's result.
TAG_ATTEMPT_PREFIX = "airflow_ml.promotion."
#: On a version the alias was rolled back from: ``<prefix><alias>`` = JSON (to, at, by).
TAG_ROLLED_BACK_PREFIX = "airflow_ml.rolled_back."

# --- artifacts of a run (paths relative to the run's artifact root)
ARTIFACT_DIR = "airflow_ml"
#: The step record of a step run (records/step_record.py).
RECORD_ARTIFACT_PATH = f"{ARTIFACT_DIR}/step_record.json"
#: The gate's verdict, on the gate's step run.
VERDICT_ARTIFACT = f"{ARTIFACT_DIR}/verdict.json"
#: The drift report (monitoring/drift.py ``DriftReport.to_dict()``), on the drift step run.
DRIFT_REPORT_ARTIFACT = f"{ARTIFACT_DIR}/drift_report.json"
#: The scenario report, on the simulate step run.
SCENARIOS_ARTIFACT = f"{ARTIFACT_DIR}/scenarios.json"
#: The DAG run's manifest, on its parent run: :data:`MANIFEST_DAG_RUN` and one file per step.
MANIFEST_DIR = f"{ARTIFACT_DIR}/manifest"
#: File names inside :data:`MANIFEST_DIR` (a downloaded manifest is read by these names).
MANIFEST_DAG_RUN = "dag_run.json"
MANIFEST_STEPS = "steps"

# --- metrics of a step run
#: Prefix of the MLflow metrics of what a step used (records/resources.py), kept apart from the step's own metrics.
RESOURCES_METRIC_PREFIX = "airflow_ml.resources."


def evidence_tag(step: str) -> str:
    """Model version tag naming the run that holds ``step``'s record for that version."""
    return EVIDENCE_TAG_PREFIX + step


def previous_tag(alias: str) -> str:
    """Tag holding the previous holder of ``alias`` (``airflow_ml.previous_champion`` for ``champion``)."""
    return TAG_PREVIOUS_CHAMPION if alias == "champion" else TAG_PREVIOUS_PREFIX + alias


def rolled_back_tag(alias: str) -> str:
    """Tag on a version ``alias`` was rolled back from; while it is set, promotion refuses that version."""
    return TAG_ROLLED_BACK_PREFIX + alias


def expectations_artifact(role: str) -> str:
    """The expectation report of one dataset role (``raw``, ``features``...) on a featurize run."""
    return f"{ARTIFACT_DIR}/expectations/{role}.json"


def manifest_step_artifact(task_id: str) -> str:
    """One step's entry in the DAG run's manifest."""
    return f"{MANIFEST_DIR}/{MANIFEST_STEPS}/{task_id}.json"


def resources_metric(name: str) -> str:
    """The step run's metric of one resource figure (``airflow_ml.resources.wall_seconds``)."""
    return RESOURCES_METRIC_PREFIX + name
