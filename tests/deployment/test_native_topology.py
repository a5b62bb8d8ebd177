"""The example pipeline on the deployment users run: docker-compose.yaml's topology started natively
(``deploy/native.py``): Airflow on Celery with two workers and a triggerer, PostgreSQL, Redis, an
MLflow server on PostgreSQL serving artifacts, OpenLineage over HTTP to a receiver.

Every run is triggered through the REST API and observed through what a user sees: the API, the task
log files, the MLflow server and the lineage receiver. Faults are real: a worker is SIGKILLed, the
MLflow server and the lineage receiver are stopped.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.deployment.conftest import MODEL, AirflowAPI, Deployment, run_logs_text, task_log

EXAMPLE = "breast_cancer_retrain"
VARIANT = "breast_cancer_retrain_concurrent"
STEPS = {"featurize", "train", "evaluate", "simulate", "gate", "promote", "predict"}
#: What a raw database error looks like in a log: a driver or SQLAlchemy exception reaching the user.
RAW_DB_ERROR = re.compile(r"psycopg|UniqueViolation|IntegrityError|sqlalchemy\.exc|OperationalError|deadlock detected")


def champion(client: Any) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(MODEL, "champion").version)
    except MlflowException:
        return None


def versions(client: Any) -> dict[str, Any]:
    return {str(v.version): v for v in client.search_model_versions(f"name = '{MODEL}'")}


def version_of_run(client: Any, run_id: str) -> Any:
    """The version the train step of DAG run ``run_id`` registered (tagged with the run's id)."""
    found = [v for v in versions(client).values() if v.tags.get("airflow.run_id") == run_id]
    assert len(found) == 1, f"expected one version from run {run_id}, found {[v.version for v in found]}"
    return found[0]


def events_of(deployment: Deployment, run_id: str) -> list[dict[str, Any]]:
    if not deployment.lineage_events.exists():
        return []
    lines = deployment.lineage_events.read_text().splitlines()
    return [json.loads(line) for line in lines if run_id in line]


def _worker_running(deployment: Deployment, run_id: str, task: str, try_number: int = 1) -> dict[str, Any] | None:
    """The Celery worker whose log shows it received this attempt of the task (Airflow logs the workload)."""
    wanted = (f"task_id='{task}'", f"run_id='{run_id}'", f"try_number={try_number},")
    for proc in deployment.status()["processes"]:
        if proc["service"] == "airflow-worker" and proc["running"]:
            text = Path(proc["log"]).read_text(errors="replace")
            if any(all(w in line for w in wanted) for line in text.splitlines() if "Executing workload" in line):
                return proc
    return None


def test_the_example_runs_on_celery_defers_its_gate_and_promotes_on_the_mlflow_server(
    deployment: Deployment, airflow_api: AirflowAPI
) -> None:
    client = deployment.mlflow()
    run_id = airflow_api.trigger(EXAMPLE)
    assert airflow_api.wait(EXAMPLE, run_id) == "success", airflow_api.task_instances(EXAMPLE, run_id)

    tis = airflow_api.task_instances(EXAMPLE, run_id)
    assert set(tis) == STEPS and all(ti["state"] == "success" for ti in tis.values())
    # Ran on the Celery workers: each task's workload appears in a worker's log.
    for task in STEPS:
        assert _worker_running(deployment, run_id, task) is not None, f"no Celery worker log shows {task}"
    # The gate deferred to the triggerer and resumed there: a trigger log beside its attempt.
    gate_dir = deployment.logs / f"dag_id={EXAMPLE}" / f"run_id={run_id}" / "task_id=gate"
    assert list(gate_dir.glob("attempt=1.log.trigger.*.log")), sorted(p.name for p in gate_dir.iterdir())
    # Promoted on the MLflow server.
    version = version_of_run(client, run_id)
    assert champion(client) == version.version
    assert version.tags["airflow_ml.gate.status"] == "passed"
    # OpenLineage events arrived over HTTP: START and COMPLETE for every task of this run. The last ones
    # may be sent just after the run is marked success: give them a few seconds.
    wanted = {(f"{EXAMPLE}.{task}", kind) for task in STEPS for kind in ("START", "COMPLETE")}
    deadline = time.monotonic() + 60
    while True:
        seen = {(e["job"]["name"], e["eventType"]) for e in events_of(deployment, run_id)}
        if wanted <= seen or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert wanted <= seen, sorted(wanted - seen)


@pytest.mark.timeout(1200)
def test_four_concurrent_runs_race_to_promote_and_the_newest_passing_version_wins(
    deployment: Deployment, airflow_api: AirflowAPI
) -> None:
    client = deployment.mlflow()
    runs = [airflow_api.trigger(VARIANT, {"C": c}) for c in (0.25, 0.5, 2.0, 4.0)]
    states = {run: airflow_api.wait(VARIANT, run, timeout=1100) for run in runs}
    assert set(states.values()) == {"success"}, {r: airflow_api.task_instances(VARIANT, r) for r in runs}

    raced = [version_of_run(client, run) for run in runs]
    assert all(v.tags["airflow_ml.gate.status"] == "passed" for v in raced)
    # The declared rule: the newest gated version wins; an older one never replaces it.
    newest = max(int(v.version) for v in raced)
    assert champion(client) == str(newest)
    # Every attempt is recorded on the version it was about, with its outcome.
    outcomes = {}
    for v in raced:
        attempts = [json.loads(value) for key, value in client.get_model_version(MODEL, v.version).tags.items()
                    if key.startswith("airflow_ml.promotion.")]
        assert len(attempts) == 1, (v.version, attempts)
        outcomes[v.version] = attempts[0]["outcome"]
    assert outcomes[str(newest)] in ("promoted", "unchanged")
    assert set(outcomes.values()) <= {"promoted", "superseded", "unchanged"}, outcomes
    # Losing the race is a correct result, not a database error in anyone's log.
    for run in runs:
        text = run_logs_text(deployment, VARIANT, run)
        assert not RAW_DB_ERROR.search(text), RAW_DB_ERROR.search(text)


def test_a_run_whose_gate_fails_leaves_the_champion_where_it_was(
    deployment: Deployment, airflow_api: AirflowAPI
) -> None:
    client = deployment.mlflow()
    before = champion(client)
    assert before is not None, "an earlier test promotes a champion"
    run_id = airflow_api.trigger(EXAMPLE, {"min_accuracy": 0.9999})
    assert airflow_api.wait(EXAMPLE, run_id) == "failed"
    tis = airflow_api.task_instances(EXAMPLE, run_id)
    assert tis["gate"]["state"] == "failed" and tis["promote"]["state"] == "upstream_failed", tis
    assert champion(client) == before
    assert version_of_run(client, run_id).tags["airflow_ml.gate.status"] == "failed"
    gate_log = " ".join(str(line.get("event")) for line in task_log(deployment, EXAMPLE, run_id, "gate"))
    assert re.search(r"metric:accuracy:threshold\s+FAIL\s+accuracy \S+ is below the minimum", gate_log), gate_log[-999:]


@pytest.mark.timeout(900)
def test_a_worker_killed_during_train_retries_on_the_other_worker_and_the_orphan_is_marked(
    deployment: Deployment, airflow_api: AirflowAPI
) -> None:
    client = deployment.mlflow()
    known = set(versions(client))
    run_id = airflow_api.trigger(VARIANT, {"C": 0.75})
    # Wait until train's first attempt has registered its version (status pending), then kill its worker.
    deadline = time.monotonic() + 300
    orphan = None
    while orphan is None:
        assert time.monotonic() < deadline, airflow_api.task_instances(VARIANT, run_id)
        new = set(versions(client)) - known
        if new:
            orphan = max(new, key=int)
        else:
            time.sleep(0.05)
    worker = _worker_running(deployment, run_id, "train")
    assert worker is not None, "no worker log shows the train task"
    train_before = airflow_api.task_instances(VARIANT, run_id)["train"]
    assert train_before["state"] == "running" and train_before["try_number"] == 1, (
        f"train's first attempt was no longer running when its version appeared: {train_before}"
    )
    os.killpg(worker["pid"], signal.SIGKILL)
    try:
        assert airflow_api.wait(VARIANT, run_id, timeout=700) == "success", airflow_api.task_instances(VARIANT, run_id)
        train = airflow_api.task_instances(VARIANT, run_id)["train"]
        assert train["try_number"] == 2 and train["state"] == "success", train
        retried_on = _worker_running(deployment, run_id, "train", try_number=2)
        assert retried_on is not None and retried_on["name"] != worker["name"], (worker["name"], retried_on)

        # The killed attempt may have tagged its version with the run before it died: two versions of
        # this DAG run, one of them the orphan.
        of_run = {v.version: v for v in versions(client).values() if v.tags.get("airflow.run_id") == run_id}
        others = [v for n, v in of_run.items() if n != orphan]
        assert len(others) == 1, sorted(of_run)
        retried = others[0]
        assert champion(client) == retried.version
        marked = client.get_model_version(MODEL, orphan)
        assert marked.tags.get("airflow_ml.gate.status") == "abandoned", marked.tags
        assert not any(k.startswith("airflow_ml.promotion.") for k in marked.tags), marked.tags
    finally:
        deployment.run("start", worker["name"], timeout=300)


@pytest.mark.timeout(900)
def test_the_mlflow_server_stopped_during_a_run_fails_the_step_naming_it_and_a_rerun_succeeds(
    deployment: Deployment, airflow_api: AirflowAPI
) -> None:
    client = deployment.mlflow()
    before = champion(client)
    run_id = airflow_api.trigger(EXAMPLE)
    deadline = time.monotonic() + 300
    while airflow_api.task_instances(EXAMPLE, run_id)["featurize"]["state"] != "success":
        assert time.monotonic() < deadline, airflow_api.task_instances(EXAMPLE, run_id)
        time.sleep(1)
    deployment.run("stop", "mlflow")
    try:
        assert airflow_api.wait(EXAMPLE, run_id) == "failed"
        tis = airflow_api.task_instances(EXAMPLE, run_id)
        failed = sorted(t for t, ti in tis.items() if ti["state"] == "failed")
        assert failed and tis["promote"]["state"] in ("upstream_failed", "failed"), tis
        # The exception's message is in the record's error_detail, beside the event.
        text = " ".join(json.dumps(line) for line in task_log(deployment, EXAMPLE, run_id, failed[0]))
        assert deployment.urls["mlflow"] in text and "Cannot reach MLflow" in text, text[-3000:]
    finally:
        deployment.run("start", "mlflow", timeout=300)
    assert champion(client) == before, "nothing may be promoted without its evidence"

    airflow_api.clear_failed(EXAMPLE, run_id)
    assert airflow_api.wait(EXAMPLE, run_id) == "success", airflow_api.task_instances(EXAMPLE, run_id)
    assert champion(client) == version_of_run(client, run_id).version


@pytest.mark.timeout(900)
def test_with_the_lineage_receiver_down_every_task_succeeds_and_mlflow_keeps_everything(
    deployment: Deployment, airflow_api: AirflowAPI
) -> None:
    client = deployment.mlflow()
    deployment.run("stop", "openlineage")
    try:
        run_id = airflow_api.trigger(EXAMPLE)
        assert airflow_api.wait(EXAMPLE, run_id) == "success", airflow_api.task_instances(EXAMPLE, run_id)
    finally:
        deployment.run("start", "openlineage")
    # What reached the receiver is not asserted: the last events of a run (predict's COMPLETE, the DAG
    # run's) may be sent after the run is already success, i.e. after the receiver is back (seen in CI).
    steps = client.search_runs(
        experiment_ids=[e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`airflow.run_id` = '{run_id}' and tags.`airflow_ml.kind` = 'step'",
    )
    recorded = {r.data.tags["airflow_ml.step"]: r for r in steps}
    assert set(recorded) >= STEPS, sorted(recorded)
    for step, run in recorded.items():
        assert run.info.status == "FINISHED", (step, run.info.status)
        names = {a.path for a in client.list_artifacts(run.info.run_id, "airflow_ml")}
        assert "airflow_ml/step_record.json" in names, (step, names)
    assert champion(client) == version_of_run(client, run_id).version
