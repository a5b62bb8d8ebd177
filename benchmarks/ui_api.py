"""Models page JSON API at 1,000 versions: request latency on a real api-server, and MLflow queries per request.

    .venv/bin/python benchmarks/ui_api.py [--counts 10 100 1000] [--requests 20] [--json] [--check]

Builds the store from the real example, then grows it by cloning:

1. In a temporary directory (``--dir``, default ``/dev/shm``), with an environment built from nothing but
   PATH and HOME (its own ``AIRFLOW_HOME``, SQLite metadata DB, SQLite MLflow store and artifact
   stores), it writes the raw data and runs ``airflow dags test breast_cancer_retrain`` twice: version 1
   passes its gate and is promoted to ``champion``; the second run (``min_accuracy`` 0.999) registers
   version 2, which fails its gate. Every record the version view reads is a real one.
2. It clones them with ``MlflowClient`` until the model has the next count of versions. Each clone
   copies the tags of version 1 (gate passed) or, for one version in four, of version 2 (gate failed),
   and is registered with the same source and run id, so its evidence tags point at the real
   featurize, simulate and gate runs. Each clone gets its own evaluate step run, as the evaluate task
   would make it: the real run's tags (``airflow_ml.model_version`` = the clone), params and metrics
   (``log_batch``, accuracy and roc_auc nudged per version) and its step record (the real one, with the
   run id and model version changed); the clone's ``airflow_ml.evidence.evaluate`` names that run. A
   copy of the real train step run, made the same way, is its ``airflow_ml.training_run_id``, so that
   the lineage walk finds a training record for the clone (the version's own ``run_id`` and source stay
   those of the real version).
   Every 100th version is promoted: it carries a promotion attempt tag (the real attempt's JSON, with
   its version, the previous holder and a new attempt id), ``promoted_by`` and ``previous_champion``,
   and the ``champion`` alias moves to it. With the default counts, version 1000 is the champion.
3. At each count, in this process: ``ModelCatalog(MlflowHook(tracking_uri=...))`` ``.versions(name,
   Everyone())`` and ``.version(name, <newest>, Everyone())``, each on a new hook (the app makes one per
   request), after one warm-up call (the median in-process time of 5 more is printed too). It counts
   the SQL statements sent to the MLflow store's engines (a SQLAlchemy ``before_cursor_execute``
   listener, also by table; statements on any other engine are counted apart and should be 0) and the
   MlflowClient calls (instrumentation: the hook's client instance has every
   public method wrapped by a counter; a client method called from inside another counts once).
4. At the last count: a real ``airflow api-server`` (one worker) with the plugin loaded from its
   installed ``airflow.plugins`` entry point, SimpleAuthManager (user ``admin``, role admin, password
   from a passwords file), on a free port in 32200-32299. It takes a token from ``POST /auth/token``,
   makes 2 warm-up requests of each route, then ``--requests`` timed requests of
   ``GET /ml/api/models/{name}/versions`` and of ``GET /ml/api/models/{name}/versions/{newest}``,
   alternately, each a new HTTP connection with ``Authorization: Bearer``, timed from sending to the
   last byte read. Target: median < 200 ms for each route. The server is stopped (its process group)
   however the script ends.

The load average (``os.getloadavg``) is printed at the start, before the timed requests and at the end.
Exit status 0 whatever the figures unless ``--check``: then 1 when a target is missed or the number of
SQL statements per request differs between counts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL = "breast_cancer_classifier"
DAG_ID = "breast_cancer_retrain"
TARGET_MS = 200.0
PORTS = range(32200, 32300)
USER, PASSWORD = "admin", "bench-admin-pw"
#: One version in this many is cloned from the version whose gate failed.
FAILED_EVERY = 4
#: Every this many versions, one is promoted to champion.
PROMOTED_EVERY = 100
#: In-process timings (median) of each catalog read per count, besides the counted one.
IN_PROCESS_RUNS = 5


def loadavg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# --- the environment and the real example runs ---------------------------------------------------------
def environment(base: Path) -> dict[str, str]:
    """A user's shell with the README's settings, built from nothing but PATH and HOME."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", str(base)),
        "LANG": "C.UTF-8",
        "AIRFLOW_HOME": str(base / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags_examples"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "airflow-ml-bench-ui",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(base / "events.jsonl"), "append": True}
        ),
        "AIRFLOW__ML_PROVIDER__ARTIFACT_ROOT": str(base / "artifacts"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlflow.db'}",
        "AIRFLOW__ML_PROVIDER__MLFLOW_ARTIFACT_LOCATION": str(base / "mlflow-artifacts"),
        "AIRFLOW__ML_PROVIDER__LOCK_DIR": str(base / "locks"),
        "BREAST_CANCER_RAW_URI": str(base / "data" / "breast_cancer.parquet"),
        "GIT_PYTHON_REFRESH": "quiet",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }


def run(args: list[str], env: dict[str, str], log: Path, *, check: bool = True) -> int:
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(args)}\n")
        out.flush()
        code = subprocess.run(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    if check and code != 0:
        tail = "\n".join(log.read_text().splitlines()[-40:])
        raise SystemExit(f"{' '.join(args)} exited {code} (full log: {log}):\n{tail}")
    return code


def run_example(base: Path, env: dict[str, str], log: Path) -> None:
    """Versions 1 (gate passed, champion) and 2 (gate failed) from two real runs of the example."""
    for sub in ("airflow", "data", "artifacts", "locks"):
        (base / sub).mkdir(exist_ok=True)
    run([sys.executable, "-m", "dags_examples.breast_cancer.data", env["BREAST_CANCER_RAW_URI"]], env, log)
    run(["airflow", "db", "migrate"], env, log)
    run(["airflow", "dags", "test", DAG_ID], env, log)
    # Its gate fails by design (accuracy ~0.98 < 0.999), so the command exits non-zero; checked below.
    run(["airflow", "dags", "test", DAG_ID, "-c", json.dumps({"min_accuracy": 0.999})], env, log, check=False)


# --- cloning -------------------------------------------------------------------------------------------
class Cloner:
    """Adds versions of MODEL made from the two real ones (see the module docstring, step 2)."""

    def __init__(self, uri: str) -> None:
        from mlflow import MlflowClient

        from airflow_ml_provider.hooks.mlflow import MlflowHook
        from airflow_ml_provider.records.tags import (
            GATE_FAILED,
            GATE_PASSED,
            RECORD_ARTIFACT_PATH,
            TAG_ATTEMPT_PREFIX,
            TAG_GATE_STATUS,
            TAG_PREVIOUS_CHAMPION,
            TAG_PROMOTED_BY,
            TAG_TRAINING_RUN,
            evidence_tag,
        )

        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        hook = MlflowHook(tracking_uri=uri)
        self.templates: dict[str, dict[str, Any]] = {}
        for number in ("1", "2"):
            v = self.client.get_model_version(MODEL, number)
            evaluate = self.client.get_run(v.tags[evidence_tag("evaluate")])
            train = self.client.get_run(v.tags[TAG_TRAINING_RUN])
            self.templates[v.tags[TAG_GATE_STATUS]] = {
                "version": v,
                "evaluate": evaluate,
                "record": hook.read_json_artifact(evaluate.info.run_id, RECORD_ARTIFACT_PATH),
                "train": train,
                "train_record": hook.read_json_artifact(train.info.run_id, RECORD_ARTIFACT_PATH),
            }
        if set(self.templates) != {GATE_PASSED, GATE_FAILED}:
            raise SystemExit(
                f"expected version 1 to pass its gate and version 2 to fail it, got {sorted(self.templates)}; "
                "see the setup log"
            )
        promoted = self.templates[GATE_PASSED]["version"]
        attempts = [val for key, val in promoted.tags.items() if key.startswith(TAG_ATTEMPT_PREFIX)]
        if len(attempts) != 1:
            raise SystemExit(f"expected one promotion attempt on version 1, found {len(attempts)}")
        self.attempt = json.loads(attempts[0])
        self.champion = self.client.get_registered_model(MODEL).aliases.get("champion")
        self.passed, self.failed = GATE_PASSED, GATE_FAILED
        self.record_path = RECORD_ARTIFACT_PATH
        self.evaluate_tag, self.training_tag = evidence_tag("evaluate"), TAG_TRAINING_RUN
        self.tag_attempt_prefix = TAG_ATTEMPT_PREFIX
        self.tag_promoted_by, self.tag_previous = TAG_PROMOTED_BY, TAG_PREVIOUS_CHAMPION
        self.rng = random.Random(7)
        self.count = len(self.client.search_model_versions(f"name = '{MODEL}'"))

    def grow(self, total: int) -> float:
        """Clone until the model has ``total`` versions; returns the seconds it took."""
        started = time.perf_counter()
        while self.count < total:
            self.count += 1
            self.clone(self.count)
        return time.perf_counter() - started

    def copy_step_run(self, source: Any, record: dict[str, Any], version: str,
                      metrics: dict[str, float] | None = None) -> str:
        """A new step run like ``source`` (tags, params, metrics, step record) for the clone ``version``."""
        from mlflow.entities import Metric, Param

        from airflow_ml_provider.records.step_record import StepRecord
        from airflow_ml_provider.records.tags import TAG_MODEL_VERSION

        now = int(time.time() * 1000)
        tags = {k: v for k, v in source.data.tags.items() if k != "mlflow.runName"}
        if TAG_MODEL_VERSION in tags:
            tags[TAG_MODEL_VERSION] = version
        run_id = self.client.create_run(
            source.info.experiment_id, start_time=now, tags=tags, run_name=source.info.run_name
        ).info.run_id
        metrics = {**source.data.metrics, **(metrics or {})}
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in source.data.params.items()],
        )
        record = json.loads(json.dumps(record))
        record["mlflow_run_id"] = run_id
        record["model"] = {**record["model"], "version": version, "uri": f"models:/{MODEL}/{version}"}
        for key, value in metrics.items():
            if key in ((record.get("results") or {}).get("metrics") or {}):
                record["results"]["metrics"][key] = value
        self.client.log_dict(run_id, StepRecord.from_dict(record).to_dict(), self.record_path)
        self.client.set_terminated(run_id, "FINISHED", end_time=now + 100)
        return run_id

    def clone(self, number: int) -> None:
        version = str(number)
        status = self.failed if number % FAILED_EVERY == 3 and number % PROMOTED_EVERY else self.passed
        template = self.templates[status]
        source_version, evaluate = template["version"], template["evaluate"]
        nudge = self.rng.uniform(-0.01, 0.005)
        metrics = {k: min(1.0, evaluate.data.metrics[k] + nudge) for k in ("accuracy", "roc_auc")}
        evaluate_run = self.copy_step_run(evaluate, template["record"], version, metrics)
        training_run = self.copy_step_run(template["train"], template["train_record"], version)

        version_tags = {
            k: v
            for k, v in source_version.tags.items()
            if not k.startswith(self.tag_attempt_prefix) and k not in (self.tag_promoted_by, self.tag_previous)
        }
        version_tags[self.evaluate_tag] = evaluate_run
        version_tags[self.training_tag] = training_run
        promote = number % PROMOTED_EVERY == 0
        if promote:
            attempt_id = uuid.uuid4().hex
            at = datetime.now(timezone.utc)
            attempt = {
                **self.attempt,
                "version": version,
                "holder_before": self.champion,
                "holder_after": version,
                "reason": f"version {version} beats version {self.champion}",
                "attempt_id": attempt_id,
                "at": at.isoformat(),
                "recorded_on": f"models:/{MODEL}/{version}",
            }
            version_tags[f"{self.tag_attempt_prefix}{at.strftime('%Y%m%dT%H%M%S.%fZ')}.{attempt_id}"] = json.dumps(
                attempt
            )
            version_tags[self.tag_promoted_by] = attempt_id
            version_tags[self.tag_previous] = self.champion or "none"
        created = self.client.create_model_version(
            MODEL, source_version.source, run_id=source_version.run_id, tags=version_tags
        )
        if str(created.version) != version:
            raise SystemExit(f"registered version {created.version}, expected {version}")
        if promote:
            self.client.set_registered_model_alias(MODEL, "champion", version)
            self.champion = version


# --- counting MLflow queries in this process -----------------------------------------------------------
class SqlCounter:
    """SQL statements per engine while enabled: the MLflow store's engines, and any other (should be none)."""

    def __init__(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        self.mlflow_engines: set[int] = set()
        self.mlflow = 0
        self.other = 0
        self.tables: Counter[str] = Counter()
        self.enabled = False
        event.listen(Engine, "before_cursor_execute", self._before)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self.enabled:
            return
        if id(conn.engine) in self.mlflow_engines:
            self.mlflow += 1
            found = re.search(r"\bFROM\s+(\w+)", statement, re.IGNORECASE)
            self.tables[found.group(1) if found else statement.split()[0].upper()] += 1
        else:
            self.other += 1

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.mlflow = self.other = 0
        self.tables = Counter()
        self.enabled = True
        try:
            yield
        finally:
            self.enabled = False


def count_client_calls(client: Any) -> Counter[str]:
    """Wrap every public method of this client instance with a counter (instrumentation, not the hook's code).
    A client method called from another one is not counted again: these are the calls the provider makes."""
    calls: Counter[str] = Counter()
    depth = [0]
    for name in dir(type(client)):
        if name.startswith("_") or not callable(getattr(type(client), name, None)):
            continue
        method = getattr(client, name)

        def counted(*args: Any, _name: str = name, _method: Any = method, **kwargs: Any) -> Any:
            if depth[0] == 0:
                calls[_name] += 1
            depth[0] += 1
            try:
                return _method(*args, **kwargs)
            finally:
                depth[0] -= 1

        setattr(client, name, counted)
    return calls


def count_queries(uri: str, newest: str, sql: SqlCounter) -> dict[str, Any]:
    """SQL statements and client calls of one versions listing and one version view, in this process."""
    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.plugins.catalog import Everyone, ModelCatalog

    def catalog() -> tuple[Any, Counter[str]]:
        hook = MlflowHook(tracking_uri=uri)
        client = hook.get_client()
        for store in (client._tracking_client.store, client._get_registry_client().store):
            sql.mlflow_engines.add(id(store.engine))  # private attributes: instrumentation only
        return ModelCatalog(hook), count_client_calls(client)

    out: dict[str, Any] = {}
    for route, read in (
        ("versions", lambda c: c.versions(MODEL, Everyone())),
        ("version", lambda c: c.version(MODEL, newest, Everyone())),
    ):
        read(catalog()[0])  # warm-up: imports, MLflow's caches
        models, calls = catalog()
        with sql.counting():
            payload = read(models)
        timings = []
        for _ in range(IN_PROCESS_RUNS):  # informational: without HTTP, auth and JSON
            models = catalog()[0]
            started = time.perf_counter()
            read(models)
            timings.append((time.perf_counter() - started) * 1000)
        elapsed = statistics.median(timings)
        out[route] = {
            "sql": sql.mlflow,
            "sql_other_engines": sql.other,
            "sql_by_table": dict(sql.tables.most_common()),
            "client_calls": sum(calls.values()),
            "by_method": dict(sorted(calls.items())),
            "in_process_ms": round(elapsed, 1),
            "rows": len(payload["versions"]) if route == "versions" else None,
        }
    return out


# --- the api-server ------------------------------------------------------------------------------------
def free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def request(url: str, *, token: str | None = None, body: Any = None) -> tuple[int, bytes]:
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@contextmanager
def api_server(base: Path, env: dict[str, str]) -> Iterator[str]:
    """A real ``airflow api-server`` with the plugin and SimpleAuthManager; yields its URL, stops it after."""
    passwords = base / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **env,
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__WORKERS": "1",
    }
    log = base / "api-server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            ["airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=base, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if request(url + "/api/v2/monitor/health")[0] == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(log.read_text().splitlines()[-40:])
                raise SystemExit(f"airflow api-server did not start (log {log}):\n{tail}")
            time.sleep(0.5)
        yield url
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(server.pid, sig)
            except ProcessLookupError:
                break
            try:
                server.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue


def time_routes(url: str, newest: str, versions: int, requests: int) -> dict[str, Any]:
    status, body = request(url + "/auth/token", body={"username": USER, "password": PASSWORD})
    if status not in (200, 201):
        raise SystemExit(f"POST /auth/token answered {status}: {body[:300]!r}")
    token = json.loads(body)["access_token"]
    routes = {
        "versions": f"{url}/ml/api/models/{MODEL}/versions",
        "version": f"{url}/ml/api/models/{MODEL}/versions/{newest}",
    }
    status, body = request(routes["versions"])
    if status != 401:
        raise SystemExit(f"without a token the versions route answered {status}, not 401")

    def get(route: str) -> tuple[float, bytes]:
        started = time.perf_counter()
        status, body = request(routes[route], token=token)
        elapsed = (time.perf_counter() - started) * 1000
        if status != 200:
            raise SystemExit(f"GET {routes[route]} answered {status}: {body[:500]!r}")
        return elapsed, body

    for _ in range(2):  # warm-up
        listing = json.loads(get("versions")[1])
        view = json.loads(get("version")[1])
    if len(listing["versions"]) != versions:
        raise SystemExit(f"the versions route listed {len(listing['versions'])} versions, expected {versions}")
    if not view.get("verdict") or not view.get("evidence", {}).get("metrics", {}).get("candidate"):
        raise SystemExit(f"version {newest}'s view has no verdict or evaluate metrics: {view.get('verdict_problem')}")
    timings: dict[str, list[float]] = {"versions": [], "version": []}
    sizes: dict[str, int] = {}
    for _ in range(requests):
        for route in timings:
            elapsed, body = get(route)
            timings[route].append(elapsed)
            sizes[route] = len(body)
    out = {}
    for route, samples in timings.items():
        samples.sort()
        out[route] = {
            "url": routes[route].removeprefix(url),
            "requests": len(samples),
            "median_ms": round(statistics.median(samples), 1),
            "p90_ms": round(samples[int(0.9 * (len(samples) - 1))], 1),
            "min_ms": round(samples[0], 1),
            "max_ms": round(samples[-1], 1),
            "bytes": sizes[route],
        }
    out["version"]["view"] = {
        "verdict_passed": view["verdict"]["passed"],
        "checks": len(view["verdict"]["checks"]),
        "history_events": len(view.get("history") or []),
        "lineage_nodes": len(view.get("lineage", {}).get("nodes") or []),
        "lineage_problems": view.get("lineage", {}).get("problems") or [],
        "is_champion": view.get("is_champion"),
    }
    out["versions"]["listing"] = {
        "gate_status": dict(Counter(v["gate_status"] for v in listing["versions"])),
        "with_metrics": sum(1 for v in listing["versions"] if v["metrics"]),
        "events": len(listing.get("events") or []),
        "champion": listing.get("champion"),
    }
    return out


# --- main ----------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 100, 1000],
                        help="numbers of versions to count queries at; the last is also timed over HTTP")
    parser.add_argument("--requests", type=int, default=20, help="timed requests of each route")
    parser.add_argument(
        "--dir",
        default="/dev/shm" if os.path.isdir("/dev/shm") else None,
        help="where to build the stores (default /dev/shm: on a disk with slow fsync, 1,000 SQLite "
        "registrations take minutes)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the directory (and say where it is)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    counts = sorted(set(args.counts))
    if counts[0] < 2:
        raise SystemExit("--counts: at least 2 (the example's own two versions)")

    load_start = loadavg()
    print(f"load average (1/5/15 min) at start: {load_start}", file=sys.stderr)
    base = Path(tempfile.mkdtemp(prefix="bench-ui-api-", dir=args.dir))
    env = environment(base)
    # MLFLOW_TRACKING_URI too: MLflow's SQL registry resolves a ``models:/m-<id>`` source through the
    # process's default tracking store, whatever store the client was given.
    os.environ.update({k: env[k] for k in ("AIRFLOW_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_DISABLE_TELEMETRY",
                                           "GIT_PYTHON_REFRESH", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",
                                           "AIRFLOW__CORE__LOAD_EXAMPLES")})
    uri = env["MLFLOW_TRACKING_URI"]
    log = base / "setup.log"
    try:
        started = time.perf_counter()
        run_example(base, env, log)
        example_s = time.perf_counter() - started
        print(f"example run twice in {example_s:.0f} s (log {log})", file=sys.stderr)

        sql = SqlCounter()
        cloner = Cloner(uri)
        table, clone_s = [], 0.0
        for count in counts:
            clone_s += cloner.grow(count)
            print(f"  {count} versions ({clone_s:.0f} s of cloning so far)", file=sys.stderr)
            table.append({"count": count, **count_queries(uri, str(count), sql)})
        newest = str(counts[-1])

        load_before = loadavg()
        with api_server(base, env) as url:
            http = time_routes(url, newest, counts[-1], args.requests)
        load_end = loadavg()
    finally:
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)

    constant = {route: len({row[route]["sql"] for row in table}) == 1 for route in ("versions", "version")}
    passed = {route: http[route]["median_ms"] < TARGET_MS for route in ("versions", "version")}
    report = {
        "versions": counts[-1],
        "store": f"sqlite in {args.dir or tempfile.gettempdir()}",
        "setup": {"example_s": round(example_s, 1), "clone_s": round(clone_s, 1),
                  "cloned": counts[-1] - 2},
        "load_average": {"start": load_start, "before_requests": load_before, "end": load_end},
        "queries": table,
        "http": http,
        "target_ms": TARGET_MS,
        "pass": passed,
        "sql_constant": constant,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"load average (1/5/15 min): start {load_start}, before the requests {load_before}, end {load_end}")
        print(
            f"store: {counts[-1]} versions of {MODEL!r} in SQLite ({report['store']}): 2 from real runs of "
            f"{DAG_ID} ({example_s:.0f} s), {counts[-1] - 2} cloned with MlflowClient ({clone_s:.0f} s, "
            f"{clone_s / max(1, counts[-1] - 2) * 1000:.0f} ms per version with its evaluate and train runs)"
        )
        print()
        print("MLflow queries per request, in-process (ModelCatalog over MlflowHook, Everyone()):")
        print("| versions | SQL statements (versions list) | client calls | SQL statements (version view) "
              "| client calls | in-process median ms (list / view) |")
        print("| --- | --- | --- | --- | --- | --- |")
        for row in table:
            lv, vv = row["versions"], row["version"]
            print(f"| {row['count']} | {lv['sql']} | {lv['client_calls']} | {vv['sql']} | {vv['client_calls']} "
                  f"| {lv['in_process_ms']:.0f} / {vv['in_process_ms']:.0f} |")
        last = table[-1]
        for route in ("versions", "version"):
            print(f"  {route}, at {last['count']}: client calls {last[route]['by_method']}; "
                  f"SQL on other engines: {last[route]['sql_other_engines']}")
            for row in (table[0], last) if len(table) > 1 else (last,):
                print(f"    SQL by table at {row['count']}: {row[route]['sql_by_table']}")
        for route, same in constant.items():
            print(f"  SQL statements per {route} request the same at every count: {'yes' if same else 'NO'}")
        print()
        print(f"real airflow api-server with the plugin, SimpleAuthManager, {args.requests} timed requests each:")
        for route in ("versions", "version"):
            r = http[route]
            print(f"  GET {r['url']}: median {r['median_ms']:.1f} ms, p90 {r['p90_ms']:.1f} ms, "
                  f"min {r['min_ms']:.1f} ms, max {r['max_ms']:.1f} ms, {r['bytes'] / 1024:.0f} KiB; "
                  f"target < {TARGET_MS:g} ms: {'PASS' if passed[route] else 'FAIL'}")
        print(f"  listing: {http['versions']['listing']}")
        print(f"  view of version {newest}: {http['version']['view']}")
    missed = not all(passed.values()) or not all(constant.values())
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
