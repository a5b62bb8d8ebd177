"""docker-compose.yaml is valid, and the native launcher runs exactly its settings.

No Docker engine runs here: Debian's ``docker-compose`` (1.29) validates the file against the compose
specification without one (``docker-compose config``). ``deploy/native.py plan`` shows what ``make
deploy`` would start, so the mapping from containers to this machine is tested without starting it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.requirements import requirement_missing
from tests.support import ROOT

COMPOSE = ROOT / "docker-compose.yaml"
LAUNCHER = ROOT / "deploy" / "native.py"
CONTAINER_HOSTS = ("postgres", "redis", "mlflow", "openlineage", "airflow-apiserver")


def _compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        requirement_missing(
            "docker-compose is not installed", "Install Debian's package: apt-get install docker-compose."
        )
    return subprocess.run([binary, "-f", str(path), "config", "-q"], capture_output=True, text=True,
                          cwd=path.parent, check=False)


def test_docker_compose_accepts_the_file() -> None:
    done = _compose_config(COMPOSE)
    assert done.returncode == 0, done.stderr


def test_docker_compose_rejects_a_broken_copy(tmp_path: Path) -> None:
    """The validation is real: the same file with a worker depending on a service that does not exist fails."""
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["airflow-worker"]["depends_on"] = {"no-such-service": {"condition": "service_healthy"}}
    (tmp_path / "docker-compose.yaml").write_text(yaml.safe_dump(broken))
    done = _compose_config(tmp_path / "docker-compose.yaml")
    assert done.returncode != 0 and "no-such-service" in done.stderr, done.stderr


def _launcher(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(LAUNCHER), *args], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    state = tmp_path_factory.mktemp("plan")
    done = _launcher("--project", "plantest", "--state", str(state), "plan", "--port-base", "45000",
                     "--redis-db", "4")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout), state=str(state))


def test_the_native_plan_runs_every_service_of_the_image_with_its_compose_environment(plan: dict[str, Any]) -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    by_service: dict[str, list[dict[str, Any]]] = {}
    for proc in plan["processes"]:
        by_service.setdefault(proc["service"], []).append(proc)
    built = {n for n, s in compose["services"].items() if "build" in s and not s.get("profiles")}
    assert set(by_service) == built
    assert len(by_service["airflow-worker"]) == 2
    for name, procs in by_service.items():
        for proc in procs:
            assert set(compose["services"][name].get("environment") or {}) <= set(proc["env"]), name
    common = compose["x-airflow-common"]["environment"]
    scheduler = by_service["airflow-scheduler"][0]["env"]
    assert scheduler["AIRFLOW__CORE__EXECUTOR"] == common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert scheduler["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"] == "true"
    assert scheduler["AIRFLOW__ML_PROVIDER__LOCK_URI"].startswith("postgresql://")
    assert json.loads(scheduler["AIRFLOW__OPENLINEAGE__TRANSPORT"])["type"] == "http"
    # One artifact root for every process, on the shared volume's directory.
    roots = {p["env"]["AIRFLOW__ML_PROVIDER__ARTIFACT_ROOT"] for p in plan["processes"]}
    assert roots == {f"{plan['state']}/volumes/shared/ml_artifacts"}


def test_the_native_plan_leaves_no_container_address_or_path_behind(plan: dict[str, Any]) -> None:
    names = "|".join(CONTAINER_HOSTS)
    hosts = re.compile(rf"(//|@)({names})(:\d|/|$)|(?<![\w.-])({names}):\d+")
    for proc in plan["processes"]:
        for text in [*proc["argv"], *proc["env"].values()]:
            assert not hosts.search(text), (proc["name"], text)
            assert "/opt/airflow" not in text, (proc["name"], text)
    env = plan["processes"][0]["env"]
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/4"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql://airflow:airflow@127.0.0.1:5432/plantest_airflow"
    assert {d["database"] for d in plan["databases"]} == {"plantest_airflow", "plantest_mlflow"}
    # Every listening port is distinct: two workers, each with its own log-server port.
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", json.dumps(plan["urls"]))]
    ports += [int(p["env"]["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]) for p in plan["processes"]
              if p["service"] == "airflow-worker"]
    assert len(ports) == len(set(ports)) and all(45000 <= p < 45100 for p in ports), ports


def test_the_launcher_refuses_bad_input_with_a_reason(tmp_path: Path) -> None:
    nothing = _launcher("--project", "none", "--state", str(tmp_path / "none"), "down")
    assert nothing.returncode != 0 and "no deployment recorded" in nothing.stderr, nothing.stderr
    bad_env = _launcher("--state", str(tmp_path / "x"), "plan", "--env", "NO_EQUALS_SIGN")
    assert bad_env.returncode != 0 and "--env must be KEY=VALUE" in bad_env.stderr, bad_env.stderr
    unreachable = _launcher("--project", "unreach", "--state", str(tmp_path / "u"),
                            "--postgres-admin-url", "postgresql://postgres@127.0.0.1:1/postgres", "up")
    assert unreachable.returncode != 0 and "cannot reach the local PostgreSQL" in unreachable.stderr
    assert not (tmp_path / "u" / "native.json").exists(), "nothing may be recorded (or started) when it cannot start"
