"""Each step pays only for what it uses (issue 13): run under ``airflow dags test`` in a fresh process, a
featurize step without expectation suites imports no Great Expectations, and a step that loads no model
imports no skops (MLflow's sklearn flavor's serializer)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.dag

DAG_FILE = '''
import sys

from airflow.sdk import DAG, task

from airflow_ml_provider.operators.featurize import FeaturizeOperator


def transform(df):
    return df.assign(ratio=df["mean radius"] / df["mean texture"])


with DAG("light_featurize", schedule=None):

    @task
    def loaded_modules() -> None:
        heavy = ("great_expectations", "skops.io", "mlflow.sklearn")
        print("HEAVY=" + ",".join(m for m in heavy if m in sys.modules))

    FeaturizeOperator(task_id="featurize", raw_uri={raw!r}, transform=transform) >> loaded_modules()
'''


def test_featurize_without_suites_imports_neither_great_expectations_nor_skops(
    airflow_db: Path, raw_data: Path, tmp_path: Path
) -> None:
    (tmp_path / "light_featurize.py").write_text(textwrap.dedent(DAG_FILE.format(raw=str(raw_data))))
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "light_featurize"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "state=success" in out, out[-3000:]
    printed = [line for line in out.splitlines() if "HEAVY=" in line and "print(" not in line]
    assert len(printed) == 1, out[-3000:]
    heavy = printed[0].split("HEAVY=", 1)[1].split(" ", 1)[0].strip()
    assert heavy == "", f"a featurize step without suites imported {heavy}"
