"""``main()`` called in-process (as some tests do) leaves the process environment as it found it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow_ml_provider.cli.main import PROGRESS_BAR_ENV, main


def test_progress_bar_variable_is_taken_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, the first in-process command left MLflow's progress bars off for the rest of the process."""
    monkeypatch.delenv(PROGRESS_BAR_ENV, raising=False)
    assert main(["status", "m", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
    assert PROGRESS_BAR_ENV not in os.environ
    monkeypatch.setenv(PROGRESS_BAR_ENV, "true")  # the user's own setting stays
    assert main(["status", "m", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
    assert os.environ[PROGRESS_BAR_ENV] == "true"
