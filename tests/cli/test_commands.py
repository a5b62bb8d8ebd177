"""Every ``airflow-ml`` command as a subprocess with only the README's environment (see conftest.py).

Before: ``reproduce`` on the demo failed with ``No module named 'breast_cancer'`` (the DAGs folder was
not on ``sys.path``); ``status`` and ``rollback`` ignored the Airflow connection and, without
``MLFLOW_TRACKING_URI``, MLflow created ./mlflow.db and reported an empty registry; ``status`` called a
reproduction "not promoted" without saying it is one; an unreachable server took ~255 s.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import MODEL, Demo, connection_json, no_store_created

CHAMPION = f"models:/{MODEL}@champion"
#: One invocation of each command that reads the store.
COMMANDS = {
    "status": ["status", MODEL],
    "lineage": ["lineage", CHAMPION],
    "reproduce": ["reproduce", CHAMPION],
    "rollback": ["rollback", MODEL],
}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_after_the_example_run(demo: Demo) -> None:
    result = demo.run("airflow-ml", "status", MODEL)
    assert result.returncode == 0, result.stderr
    assert f"{MODEL}: " in result.stdout and "alias 'champion' -> 1" in result.stdout
    assert "*     1  passed" in result.stdout
    no_store_created(demo)


def test_lineage_after_the_example_run(demo: Demo) -> None:
    result = demo.run("airflow-ml", "lineage", CHAMPION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"models:/{MODEL}/1" in result.stdout and "breast_cancer.parquet" in result.stdout
    no_store_created(demo)


def test_commands_find_the_store_through_the_airflow_connection(demo: Demo) -> None:
    """As the operators find it: connection ``mlflow_default`` (``AIRFLOW_CONN_*``), no MLFLOW_TRACKING_URI."""
    conn = {"AIRFLOW_CONN_MLFLOW_DEFAULT": connection_json(demo.env["MLFLOW_TRACKING_URI"])}
    status = demo.run("airflow-ml", "status", MODEL, set_env=conn, unset=["MLFLOW_TRACKING_URI"])
    assert status.returncode == 0, status.stderr
    assert "alias 'champion' -> 1" in status.stdout
    lineage = demo.run("airflow-ml", "lineage", CHAMPION, set_env=conn, unset=["MLFLOW_TRACKING_URI"])
    assert lineage.returncode == 0, lineage.stderr
    no_store_created(demo)


def test_conn_id_reads_a_connection_from_the_metadata_db(demo: Demo) -> None:
    """A connection made with ``airflow connections add`` (metadata DB), chosen with ``--conn-id``."""
    added = demo.run(
        "airflow", "connections", "add", "mlflow_in_db", "--conn-type", "mlflow",
        "--conn-extra", f'{{"tracking_uri": "{demo.env["MLFLOW_TRACKING_URI"]}"}}',
    )
    assert added.returncode == 0, added.stdout + added.stderr
    result = demo.run("airflow-ml", "status", MODEL, "--conn-id", "mlflow_in_db", unset=["MLFLOW_TRACKING_URI"])
    assert result.returncode == 0, result.stderr
    assert "alias 'champion' -> 1" in result.stdout


def test_without_a_connection_or_tracking_uri_nothing_is_created(demo: Demo) -> None:
    result = demo.run("airflow-ml", "status", MODEL, unset=["MLFLOW_TRACKING_URI"])
    assert result.returncode == 2
    assert "No MLflow connection 'mlflow_default' and MLFLOW_TRACKING_URI is not set" in result.stderr
    assert "No versions" not in result.stdout, "an empty registry must not be reported"
    no_store_created(demo)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_store_that_does_not_exist_is_an_error_naming_it(demo: Demo, command: str, tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "mlflow.db"
    uri = f"sqlite:///{missing}"
    result = demo.run("airflow-ml", *COMMANDS[command], "--tracking-uri", uri)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"There is no MLflow store at {uri} (the tracking URI given)" in result.stderr
    assert "--tracking-uri" in result.stderr and "--conn-id" in result.stderr
    assert not missing.exists() and not missing.parent.exists()
    no_store_created(demo)


def test_a_missing_store_named_by_a_connection_names_the_connection(demo: Demo, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'typo.db'}"
    result = demo.run(
        "airflow-ml", "rollback", MODEL, set_env={"AIRFLOW_CONN_MLFLOW_DEFAULT": connection_json(uri)}
    )
    assert result.returncode == 2
    assert f"There is no MLflow store at {uri} (connection 'mlflow_default')" in result.stderr
    assert not (tmp_path / "typo.db").exists()


@pytest.mark.parametrize(
    ("how", "source"),
    [("--tracking-uri", "the tracking URI given"), ("connection", "connection 'mlflow_default'")],
)
def test_an_unreachable_server_fails_fast_and_says_where(demo: Demo, how: str, source: str, capsys: Any) -> None:
    uri = f"http://127.0.0.1:{closed_port()}"
    args: list[str] = ["--tracking-uri", uri] if how == "--tracking-uri" else []
    set_env = {"AIRFLOW_CONN_MLFLOW_DEFAULT": connection_json(uri)} if how == "connection" else None
    started = time.monotonic()
    result = demo.run("airflow-ml", "status", MODEL, *args, set_env=set_env, timeout=300)
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"\n[measured] airflow-ml status on a closed port ({how}): exit {result.returncode} in {elapsed:.1f} s")
    assert elapsed < 45
    assert result.returncode == 2
    assert f"Cannot reach MLflow at {uri} ({source}): " in result.stderr and "Connection refused" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_imports_nothing_heavy(demo: Demo) -> None:
    """``airflow-ml --help`` stays instant by importing neither Airflow nor MLflow (what it costs is a
    benchmark's business; what it imports is a fact this test can check)."""
    result = demo.run("python", "-X", "importtime", "-m", "airflow_ml_provider.cli.main", "--help")
    assert result.returncode == 0 and all(c in result.stdout for c in COMMANDS)
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    heavy = sorted(imported & {"airflow", "mlflow", "pandas", "great_expectations", "sqlalchemy", "numpy"})
    assert not heavy, f"airflow-ml --help imports {heavy}"


@pytest.fixture(scope="module")
def reproduced(demo: Demo) -> Any:
    """``airflow-ml reproduce`` on the champion, from a directory outside the repository."""
    return demo.run("airflow-ml", "reproduce", CHAMPION)


def test_reproduce_after_a_real_run_of_the_example(demo: Demo, reproduced: Any) -> None:
    assert "No module named 'breast_cancer'" not in reproduced.stderr
    assert reproduced.returncode == 0, reproduced.stdout[-3000:] + reproduced.stderr[-3000:]
    assert f"Reproduction of models:/{MODEL}/1" in reproduced.stdout or f"models:/{MODEL}/1" in reproduced.stdout
    report = demo.cwd / f"reproduction-{MODEL}-1" / "reproduction.md"
    assert report.is_file(), sorted(p.name for p in demo.cwd.iterdir())
    no_store_created(demo)


def test_status_says_a_reproduction_is_one(demo: Demo, reproduced: Any) -> None:
    assert reproduced.returncode == 0, reproduced.stderr[-3000:]
    result = demo.run("airflow-ml", "status", MODEL)
    assert result.returncode == 0, result.stderr
    rows = {line[1:7].strip(): line for line in result.stdout.splitlines() if line[1:7].strip().isdigit()}
    assert rows["2"].rstrip().endswith("reproduction of version 1")
    assert "reproduction" not in rows["1"]
    assert "Latest version 2 is a reproduction of version 1" in result.stdout
    assert "not promoted, by design" in result.stdout
    assert "was not promoted" not in result.stdout


def test_rollback_reads_the_connection_and_refuses_without_a_previous_champion(demo: Demo, reproduced: Any) -> None:
    """One promotion so far (v1; the reproduction v2 is never promoted): nothing to roll back to, said so."""
    conn = {"AIRFLOW_CONN_MLFLOW_DEFAULT": connection_json(demo.env["MLFLOW_TRACKING_URI"])}
    result = demo.run("airflow-ml", "rollback", MODEL, set_env=conn, unset=["MLFLOW_TRACKING_URI"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Refused:" in result.stderr and "Alias 'champion' was not changed" in result.stderr
    status = demo.run("airflow-ml", "status", MODEL)
    assert "alias 'champion' -> 1" in status.stdout
    no_store_created(demo)
