"""An absent outside requirement (the OpenLineage spec, a PostgreSQL server) skips with a reason on a
developer's machine and fails under AIRFLOW_ML_TESTS_STRICT=1, as .ci/run sets it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = '''
from tests.requirements import requirement_missing

def test_needs_something():
    requirement_missing("the frobnicator is absent", "Install one to run this.")
'''


@pytest.mark.parametrize(("strict", "outcome"), [("", "1 skipped"), ("1", "1 failed")])
def test_absence_skips_locally_and_fails_in_ci(tmp_path: Path, strict: str, outcome: str) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = {**os.environ, "AIRFLOW_ML_TESTS_STRICT": strict}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsf", "-p", "no:cacheprovider", str(probe)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )
    assert outcome in done.stdout, done.stdout + done.stderr
    assert "the frobnicator is absent" in done.stdout and "Install one to run this." in done.stdout


def test_ci_runs_the_suite_strictly() -> None:
    assert "export AIRFLOW_ML_TESTS_STRICT=1" in (ROOT / ".ci" / "run").read_text()
