"""MLflow's output in a task log: Airflow 3's supervisor logs a task's stderr at ERROR, so whatever
MLflow writes there showed as red ERROR lines on a successful task. After
``route_mlflow_output_to_task_log()`` nothing of MLflow's reaches stderr: its messages are log records
at their own level (INFO for the registry messages), and artifact progress bars are off.

Each case runs in a fresh interpreter: MLflow installs its handlers when it is first imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, logging, os, sys, tempfile, warnings
    warnings.showwarning = lambda *a, **k: None  # Python warnings are not MLflow's stream: not under test here
    import mlflow
    if sys.argv[2] == "route":
        from airflow_ml_provider.task_logs import route_mlflow_output_to_task_log
        route_mlflow_output_to_task_log()
        route_mlflow_output_to_task_log()  # idempotent
    records = []
    class Keep(logging.Handler):
        def emit(self, record):
            records.append([record.name, record.levelname, record.getMessage()])
    logging.getLogger().addHandler(Keep())
    logging.getLogger().setLevel(logging.INFO)
    root = sys.argv[1]
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    experiment = mlflow.create_experiment("e", artifact_location=f"{root}/artifacts")
    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):
            return model_input
    with mlflow.start_run(experiment_id=experiment) as run:
        for i in range(3):
            mlflow.log_text("x" * 1000, f"files/f{i}.txt")
        info = mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=[])
    mlflow.register_model(info.model_uri, "echo")
    mlflow.register_model(info.model_uri, "echo")
    mlflow.MlflowClient().download_artifacts(run.info.run_id, "files", tempfile.mkdtemp())
    print(json.dumps(records))
    """
)


def _run(tmp_path: Path, mode: str) -> tuple[str, list[list[str]]]:
    # In-process DAG runs earlier in the session routed this process's MLflow output and exported
    # MLflow's variables (registry URI, progress bar): start from none of them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), mode],
        capture_output=True, text=True, check=False, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr, json.loads(done.stdout.strip().splitlines()[-1])


def test_without_routing_mlflow_writes_its_messages_and_progress_bars_to_stderr(tmp_path: Path) -> None:
    """The defect as users met it (the control for the test below)."""
    stderr, _ = _run(tmp_path, "plain")
    assert "Created version '1' of model 'echo'" in stderr
    assert "Downloading artifacts" in stderr


def test_routed_mlflow_output_reaches_the_task_log_at_info_and_nothing_reaches_stderr(tmp_path: Path) -> None:
    stderr, records = _run(tmp_path, "route")
    assert stderr.strip() == "", stderr
    messages = {message: level for name, level, message in records if name.startswith("mlflow")}
    assert messages.get("Successfully registered model 'echo'.") == "INFO"
    assert messages.get("Created version '1' of model 'echo'.") == "INFO"
    assert messages.get("Created version '2' of model 'echo'.") == "INFO"
    assert not [m for m in messages if "Downloading artifacts" in m]


@pytest.mark.parametrize("enabled", [True, False])
def test_the_line_stream_logs_whole_lines_and_honours_mlflow_disable_logging(enabled: bool) -> None:
    import logging

    from airflow_ml_provider.task_logs import _LinesToLogger

    got: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record.getMessage())

    logger = logging.getLogger("tests.task_logs.lines")
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    stream = _LinesToLogger(logger, None)
    stream.enabled = enabled
    stream.write("first ")
    stream.write("line\nsecond line\n\nthird")
    assert got == (["first line", "second line"] if enabled else [])
    stream.flush()
    assert got == (["first line", "second line", "third"] if enabled else [])
