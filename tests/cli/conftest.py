"""``airflow-ml`` as users run it: a subprocess with only the README's environment.

The environment is the one ``make demo`` writes to ``.demo/env.sh`` (taken from scripts/demo.sh, so the
two cannot drift apart), pointed at a temporary state directory instead of ``.demo``, on top of a bare
``PATH``/``HOME``: no ``PYTHONPATH``, nothing of this test process, and every command runs from a
working directory outside the repository. The example DAG runs once, for real, with
``airflow dags test`` as ``make demo`` runs it.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_SCRIPT = ROOT / "scripts" / "demo.sh"
MODEL = "breast_cancer_classifier"
#: What a login shell has before ``source .demo/env.sh``.
BARE = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


def readme_env_script(state: Path) -> str:
    """The text of ``.demo/env.sh`` as scripts/demo.sh writes it, for demo state in ``state``."""
    script = DEMO_SCRIPT.read_text()
    start, end = 'cat > "$DEMO/env.sh" <<ENV\n', "\nENV\n"
    assert start in script and end in script.split(start, 1)[1], f"{DEMO_SCRIPT} no longer writes env.sh as expected"
    body = script.split(start, 1)[1].split(end, 1)[0]
    return body.replace("$ROOT", str(ROOT)).replace("$DEMO", str(state)).replace("\\$PATH", "$PATH")


@dataclass(frozen=True)
class Demo:
    """A demo state directory and the environment ``source .demo/env.sh`` gives for it."""

    state: Path
    env: Mapping[str, str]
    #: The working directory commands run from: outside the repository, and empty of stores.
    cwd: Path

    def run(
        self,
        *command: str,
        set_env: Mapping[str, str] | None = None,
        unset: Sequence[str] = (),
        timeout: float = 900,
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in self.env.items() if k not in unset}
        env.update(set_env or {})
        return subprocess.run(
            list(command), cwd=self.cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )


def _sourced(env_sh: Path, home: Path) -> dict[str, str]:
    out = subprocess.run(
        ["bash", "-c", f'source "{env_sh}" && env -0'],
        env={**BARE, "HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pairs = (item.split("=", 1) for item in out.split("\0") if "=" in item)
    return {k: v for k, v in pairs if k not in ("_", "SHLVL", "PWD", "OLDPWD")}


@pytest.fixture(scope="session")
def demo() -> Demo:
    """``make demo``'s steps with the README's environment: raw data, ``airflow db migrate``, one real run."""
    base = Path(tempfile.mkdtemp(prefix="airflow-ml-cli-"))
    state, home, cwd = base / "demo", base / "home", base / "cwd"
    for d in (home, cwd, *(state / s for s in ("airflow", "mlflow", "artifacts", "lineage", "data"))):
        d.mkdir(parents=True)
    env_sh = state / "env.sh"
    env_sh.write_text(readme_env_script(state))
    env = _sourced(env_sh, home)
    assert "PYTHONPATH" not in env
    demo = Demo(state, env, cwd)

    # As scripts/demo.sh does it (it writes the raw data from the repository's root).
    data = subprocess.run(
        ["python", "-m", "dags_examples.breast_cancer.data", env["BREAST_CANCER_RAW_URI"]],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )
    assert data.returncode == 0, data.stderr
    migrate = demo.run("airflow", "db", "migrate")
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
    run = demo.run("airflow", "dags", "test", "breast_cancer_retrain")
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    return demo


def no_store_created(demo: Demo) -> None:
    """MLflow's default store (./mlflow.db, ./mlruns) must never appear where a command ran."""
    created = sorted(p.name for p in demo.cwd.iterdir() if p.name in ("mlflow.db", "mlruns"))
    assert not created, f"a command created an MLflow store in {demo.cwd}: {created}"


def connection_json(tracking_uri: str) -> str:
    """An ``AIRFLOW_CONN_*`` value (JSON form) for an MLflow connection."""
    return json.dumps({"conn_type": "mlflow", "extra": {"tracking_uri": tracking_uri}})
