"""Pipeline benchmark: the example DAG against the same ML work as plain ``@task`` functions.

    .venv/bin/python benchmarks/pipeline.py [--rounds N] [--per-task] [--lineage on|off]
                                            [--mlflow-server] [--no-count] [--json] [--check]

- **ours**: ``dags_examples/breast_cancer_retrain.py`` (7 tasks: featurize -> train -> evaluate & simulate ->
  gate -> promote -> predict), with ``dags_examples/`` as the DAG folder, as ``make demo`` runs it.
- **plain**: ``benchmarks/plain_pipeline_dag.py`` (``breast_cancer_retrain_plain_tasks``): the same task ids
  and edges (checked) and the same ML as plain ``@task`` functions: the raw Parquet read, the example's
  ``transform``, the same seeded split, its ``train``, the same six metrics (also for the champion), the
  example's scenarios file checked with plain code, a threshold gate that raises, a file promotion and the
  predictions written as Parquet (see its docstring). Its DAG folder is a temp folder holding a link to it
  and to ``dags_examples/breast_cancer``.

Each variant gets its own fresh ``AIRFLOW_HOME`` (SQLite metadata DB, ``airflow db migrate`` once, not
timed) and the embedded defaults scripts/demo.sh sets: ``AIRFLOW__ML_PROVIDER__ARTIFACT_ROOT`` and a SQLite
MLflow store (tracking + registry, ``MLFLOW_TRACKING_URI=sqlite:///...``) in the variant's temp dir,
OpenLineage to a file (``--lineage off``: ``AIRFLOW__OPENLINEAGE__DISABLED=true``), the raw data written by
``python -m dags_examples.breast_cancer.data``, ``GIT_PYTHON_REFRESH=quiet``; plus
``MLFLOW_DISABLE_TELEMETRY=true`` (see benchmarks/deployment.py for why). Both variants get the same
settings; the plain DAG simply makes no MLflow call. No inherited ``AIRFLOW__*``/``MLFLOW_*``/
``OPENLINEAGE*`` variable reaches the subprocesses.

One warm-up run of each (not timed) creates the champions, so every timed run also scores a champion
and promotes over it. Then ``--rounds`` rounds, ours and plain alternated, the order swapped every round.

Mode 1 (default): ``airflow dags test <dag_id>`` per run, timed from process start to exit
(perf_counter around ``subprocess.run``); every task runs in that one process, as ``dag.test()`` runs
them. Figures: medians, ratio ours / plain (target <= 1.25), the in-process task durations from the
``[DAG TEST] starting/end task`` log lines, and the load average at the start and the end.

Mode 2 (``--per-task``): one task per fresh process, as a Celery or Kubernetes worker runs them. For each
round a DAG run is created with ``airflow dags trigger -l <logical date>`` (not timed; the DAG is paused, so
the run stays queued and nothing else runs it), then ``airflow tasks test <dag_id> <task_id> <logical date>``
runs each task in order, one process each, timed from start to exit. ``tasks test`` runs the task in
that existing run: it reads its upstreams' XComs and pushes its own, as a worker does (without a run it
would create a temporary one and delete it afterwards, and downstream tasks would find no XCom). Figures
per task: median ours, median plain, difference (target: ours <= plain + 1.0 s).

MLflow calls (unless ``--no-count``): one more, untimed, run of ours (per-task mode: one more round of
processes) with ``sitecustomize.py`` from the benchmark's temp dir on ``PYTHONPATH``. That file (written
by this script, used only in the counting run) adds a SQLAlchemy ``before_cursor_execute`` listener on
every Engine and counts the statements sent to the MLflow store's SQLite file, and wraps
``requests.adapters.HTTPAdapter.send`` to count requests to the MLflow server. Each statement or request
is charged to the task whose operator's ``execute`` is on the stack (or "outside a task", with the innermost
function of ours on the stack and the thread: MLflow moves artifacts in thread pools). With
``--mlflow-server``, the store is a real ``mlflow server`` subprocess (SQLite backend, artifacts served,
port 18650, ``--workers 1``) for the whole benchmark, timed runs included, and the requests are also
counted from its access log (uvicorn, one line per request). The plain DAG makes no MLflow call (it imports
no MLflow), so it is not counted.

Exit status: 0 whatever the figures, unless ``--check``: 1 when a target is missed; 2 when a run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAGS_EXAMPLES = REPO / "dags_examples"
PLAIN_DAG = Path(__file__).resolve().parent / "plain_pipeline_dag.py"
DAG_IDS = {"ours": "breast_cancer_retrain", "plain": "breast_cancer_retrain_plain_tasks"}
TASKS = ("featurize", "train", "evaluate", "simulate", "gate", "promote", "predict")  # a topological order
TARGET_RATIO = 1.25
TARGET_PER_TASK_S = 1.0
SERVER_PORT = 18650
MARK = "@@PIPELINE@@"

# Written into the temp dir; on PYTHONPATH only for the counting runs.
SITECUSTOMIZE = r'''
"""benchmarks/pipeline.py's counter of MLflow SQL statements and HTTP requests (counting runs only)."""
import atexit, json, os, sys, threading

_OUT = os.environ.get("PIPELINE_BENCH_COUNT_FILE")
_DB = os.environ.get("PIPELINE_BENCH_MLFLOW_DB")
_URL = os.environ.get("PIPELINE_BENCH_MLFLOW_URL")


def _install():
    lock = threading.Lock()
    state = {"pid": os.getpid(), "sql": {}, "http": {}, "sql_other": 0, "http_paths": {}, "sql_kinds": {}}

    def task_on_stack():
        f = sys._getframe(2)
        ours = None  # the innermost frame in our package, to say where a call outside execute() came from
        while f is not None:
            if ours is None and "airflow_ml_provider" in f.f_code.co_filename:
                module = f.f_code.co_filename.rsplit("airflow_ml_provider", 1)[1].strip("/").replace("/", ".")
                ours = module[:-3] + ":" + f.f_code.co_name
            obj = f.f_locals.get("self") if f.f_code.co_name in ("execute", "poke") else None
            task_id = getattr(obj, "task_id", None)
            if isinstance(task_id, str):
                return task_id
            f = f.f_back
        # MLflow uploads and downloads artifacts in thread pools: their stacks do not reach the operator.
        thread = threading.current_thread()
        where = ours or "not our code"
        if thread is not threading.main_thread():
            where += ", thread " + thread.name.rsplit("_", 1)[0]
        return "(outside a task: " + where + ")"

    def bump(kind, key):
        with lock:
            state[kind][key] = state[kind].get(key, 0) + 1

    def reset_in_child():
        state.update(pid=os.getpid(), sql={}, http={}, sql_other=0, http_paths={}, sql_kinds={})

    os.register_at_fork(after_in_child=reset_in_child)

    if _DB:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        real_db = os.path.realpath(_DB)

        @event.listens_for(Engine, "before_cursor_execute")
        def _count(conn, cursor, statement, parameters, context, executemany):
            database = conn.engine.url.database or ""
            if database and os.path.realpath(database) == real_db:
                bump("sql", task_on_stack())
                words = statement.lstrip().split(None, 1)
                bump("sql_kinds", words[0].upper() if words else "?")
            else:
                with lock:
                    state["sql_other"] += 1

    if _URL:
        import requests.adapters

        send = requests.adapters.HTTPAdapter.send

        def counting_send(self, request, *args, **kwargs):
            if request.url.startswith(_URL):
                task = task_on_stack()
                bump("http", task)
                path = request.url[len(_URL):].split("?")[0]
                with lock:
                    state["http_paths"][path] = state["http_paths"].get(path, 0) + 1
            return send(self, request, *args, **kwargs)

        requests.adapters.HTTPAdapter.send = counting_send

    def dump():
        if state["pid"] != os.getpid():
            return
        with open(_OUT, "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "argv": sys.argv[1:6], **state}) + "\n")

    atexit.register(dump)


if _OUT:
    _install()
'''


class BenchError(RuntimeError):
    pass


@dataclass
class Variant:
    name: str
    dag_id: str
    root: Path
    dags_folder: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "airflow"


def base_env() -> dict[str, str]:
    """The caller's environment without Airflow, MLflow or OpenLineage settings."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "OPENLINEAGE", "MLFLOW_", "PIPELINE_BENCH_"))
        and k not in ("AIRFLOW_HOME", "PYTHONPATH", "BREAST_CANCER_RAW_URI")
    }


def make_variant(name: str, tmp: Path, raw: Path, args: argparse.Namespace, server_url: str | None) -> Variant:
    root = tmp / name
    if name == "ours":
        dags = DAGS_EXAMPLES
    else:
        dags = tmp / "plain_dags"
        dags.mkdir()
        (dags / PLAIN_DAG.name).symlink_to(PLAIN_DAG)
        (dags / "breast_cancer").symlink_to(DAGS_EXAMPLES / "breast_cancer")
        (dags / ".airflowignore").write_text("breast_cancer/\n")
    v = Variant(name, DAG_IDS[name], root, dags)
    for sub in ("airflow", "mlflow", "artifacts", "lineage"):
        (root / sub).mkdir(parents=True)
    env = base_env()
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(v.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "airflow-ml-bench",
            "AIRFLOW__ML_PROVIDER__ARTIFACT_ROOT": str(root / "artifacts"),
            "BREAST_CANCER_RAW_URI": str(raw),
            "GIT_PYTHON_REFRESH": "quiet",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
    )
    if args.lineage == "on":
        transport = {"type": "file", "log_file_path": str(root / "lineage" / "events.jsonl"), "append": True}
        env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(transport)
    else:
        env["AIRFLOW__OPENLINEAGE__DISABLED"] = "true"
    if server_url:
        env["MLFLOW_TRACKING_URI"] = server_url
    else:
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
        env["AIRFLOW__ML_PROVIDER__MLFLOW_ARTIFACT_LOCATION"] = str(root / "mlflow" / "artifacts")
    v.env = env
    return v


def run(cmd: list[str], env: dict[str, str], log: Path, what: str) -> tuple[float, str]:
    """Run ``cmd``; (wall seconds, combined output). Output also goes to ``log``."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    log.write_text(proc.stdout)
    if proc.returncode != 0:
        raise BenchError(f"{what}: exit {proc.returncode} ({' '.join(cmd)}); log {log}\n{proc.stdout[-3000:]}")
    return wall, proc.stdout


_TS = r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z?"
_START = re.compile(_TS + r".*\[DAG TEST\] starting task_id=(\S+)", re.M)
_END = re.compile(_TS + r".*\[DAG TEST\] end task task_id=(\S+)", re.M)


def task_durations(output: str) -> dict[str, float]:
    """In-process task durations from ``airflow dags test``'s own log lines."""
    starts = {t: datetime.fromisoformat(ts) for ts, t in _START.findall(output)}
    out = {}
    for ts, t in _END.findall(output):
        if t in starts:
            out[t] = (datetime.fromisoformat(ts) - starts[t]).total_seconds()
    return out


def check_dag_test(output: str, v: Variant, log: Path) -> None:
    m = re.findall(r"DagRun Finished: dag_id=(\S+?), .*? state=(\w+)", output)
    if not m or m[-1][1] != "success":
        state = m[-1] if m else "no DagRun Finished line"
        raise BenchError(f"{v.name}: the DAG run did not succeed ({state}); log {log}")


def check_task_test(output: str, v: Variant, task_id: str, log: Path) -> None:
    states = re.findall(r"new_state=(\w+)", output)
    if not states or states[-1] != "success":
        raise BenchError(f"{v.name}.{task_id}: task ended {states[-1] if states else 'without a state'}; log {log}")


def dag_shape(v: Variant, path: Path) -> list:
    code = f"""
import importlib.util, json, sys
sys.path.insert(0, {str(v.dags_folder)!r})
spec = importlib.util.spec_from_file_location("pipeline_bench_dag", {str(path)!r})
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
print({MARK!r} + json.dumps(sorted([t.task_id, sorted(t.upstream_task_ids)] for t in mod.dag.tasks)))
"""
    proc = subprocess.run([sys.executable, "-c", code], env=v.env, capture_output=True, text=True, cwd=REPO)
    lines = [x for x in proc.stdout.splitlines() if x.startswith(MARK)]
    if proc.returncode or not lines:
        raise BenchError(f"could not load {path}: {proc.stderr[-2000:]}")
    return json.loads(lines[-1][len(MARK) :])


@contextmanager
def mlflow_server(tmp: Path) -> Iterator[tuple[str, Path]]:
    root = tmp / "mlflow-server"
    root.mkdir()
    log = root / "server.log"
    env = base_env()
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    cmd = [
        str(BIN / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(SERVER_PORT), "--workers", "1",
    ]  # fmt: skip
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{SERVER_PORT}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise BenchError(f"mlflow server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"mlflow server not healthy after 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, log
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


_ACCESS = re.compile(r'"(GET|POST|PUT|PATCH|DELETE|HEAD) (/\S*) HTTP/[\d.]+"')


def access_log_requests(log: Path, offset: int) -> tuple[int, int]:
    """(requests logged after byte ``offset``, new offset)."""
    data = log.read_bytes()
    text = data[offset:].decode(errors="replace")
    n = sum(1 for m in _ACCESS.finditer(text) if not m.group(2).startswith("/health"))
    return n, len(data)


def alternate(rounds: int, measure: Callable[[str, int], Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"ours": [], "plain": []}
    for i in range(rounds):
        for name in ("ours", "plain") if i % 2 == 0 else ("plain", "ours"):
            out[name].append(measure(name, i))
    return out


def read_counts(path: Path) -> dict[str, Any]:
    totals: dict[str, Any] = {"sql": {}, "http": {}, "http_paths": {}, "sql_kinds": {}, "processes": 0, "sql_other": 0}
    if not path.exists():
        return totals
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        totals["processes"] += 1
        totals["sql_other"] += rec.get("sql_other", 0)
        for kind in ("sql", "http", "http_paths", "sql_kinds"):
            for k, n in rec.get(kind, {}).items():
                totals[kind][k] = totals[kind].get(k, 0) + n
    return totals


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="pipeline_bench_", dir=args.tmp))
    try:
        with contextmanager_or_none(args.mlflow_server, tmp) as server:
            server_url, server_log = server if server else (None, None)
            return _benchmark(args, tmp, server_url, server_log)
    finally:
        if args.keep:
            print(f"(kept {tmp})", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def contextmanager_or_none(enabled: bool, tmp: Path) -> Iterator[tuple[str, Path] | None]:
    if not enabled:
        yield None
        return
    with mlflow_server(tmp) as server:
        yield server


def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _benchmark(args: argparse.Namespace, tmp: Path, server_url: str | None, server_log: Path | None) -> dict:
    raw = tmp / "data" / "breast_cancer.parquet"
    env0 = base_env()
    subprocess.run(
        [sys.executable, "-m", "dags_examples.breast_cancer.data", str(raw)], env=env0, cwd=REPO, check=True,
        capture_output=True,
    )  # fmt: skip
    variants = {n: make_variant(n, tmp, raw, args, server_url) for n in ("ours", "plain")}
    shapes = {n: dag_shape(v, DAGS_EXAMPLES / "breast_cancer_retrain.py" if n == "ours" else PLAIN_DAG)
              for n, v in variants.items()}  # fmt: skip
    if shapes["ours"] != shapes["plain"]:
        raise BenchError(f"the two DAGs differ in shape:\n  ours : {shapes['ours']}\n  plain: {shapes['plain']}")
    airflow = str(BIN / "airflow")
    logs = tmp / "logs"
    logs.mkdir()
    for v in variants.values():
        progress(f"{v.name}: airflow db migrate")
        run([airflow, "db", "migrate"], v.env, logs / f"{v.name}-migrate.log", f"{v.name} db migrate")
    for v in variants.values():  # warm-up: creates the champion; dags test also serializes the DAG
        progress(f"{v.name}: warm-up airflow dags test (not timed)")
        log = logs / f"{v.name}-warmup.log"
        _, out = run([airflow, "dags", "test", v.dag_id], v.env, log, f"{v.name} warm-up")
        check_dag_test(out, v, log)

    load_start = os.getloadavg()
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "mode": "per-task" if args.per_task else "dags-test",
        "rounds": args.rounds,
        "lineage": args.lineage,
        "mlflow": "server" if server_url else "sqlite",
        "dag_ids": DAG_IDS,
        "tasks": len(shapes["ours"]),
    }
    server_offset = server_log.stat().st_size if server_log else 0

    if not args.per_task:
        durations: dict[str, list[dict[str, float]]] = {"ours": [], "plain": []}
        server_requests: list[int] = []

        def measure(name: str, i: int) -> float:
            nonlocal server_offset
            v = variants[name]
            progress(f"round {i + 1}/{args.rounds}: {name} airflow dags test")
            log = logs / f"{name}-round{i}.log"
            wall, out = run([airflow, "dags", "test", v.dag_id], v.env, log, f"{name} round {i}")
            check_dag_test(out, v, log)
            durations[name].append(task_durations(out))
            if server_log and name == "ours":
                n, server_offset = access_log_requests(server_log, server_offset)
                server_requests.append(n)
            progress(f"  {wall:.1f} s")
            return wall

        walls = alternate(args.rounds, measure)
        load_end = os.getloadavg()
        ratio = med(walls["ours"]) / med(walls["plain"])
        result.update(
            {
                "wall_s": {n: {"median": med(w), "min": min(w), "max": max(w), "samples": w} for n, w in walls.items()},
                "ratio": ratio,
                "target_ratio": TARGET_RATIO,
                "passed": ratio <= TARGET_RATIO,
                "task_in_process_s": {
                    n: {t: med([d[t] for d in ds if t in d]) for t in TASKS} for n, ds in durations.items()
                },
                "server_requests_per_timed_run": server_requests or None,
            }
        )
    else:
        per_task: dict[str, dict[str, list[float]]] = {"ours": {t: [] for t in TASKS}, "plain": {t: [] for t in TASKS}}
        server_per_task: dict[str, list[int]] = {t: [] for t in TASKS}

        def run_tasks(name: str, i: int, env: dict[str, str], tag: str) -> dict[str, float]:
            nonlocal server_offset
            v = variants[name]
            logical_date = f"2030-01-{i + 1:02d}T03:00:00+00:00" if tag == "timed" else "2030-02-01T03:00:00+00:00"
            run(
                [airflow, "dags", "trigger", v.dag_id, "-l", logical_date, "-r", f"bench_{tag}_{i}"],
                env, logs / f"{name}-{tag}{i}-trigger.log", f"{name} trigger",
            )  # fmt: skip
            times = {}
            for t in TASKS:
                log = logs / f"{name}-{tag}{i}-{t}.log"
                wall, out = run([airflow, "tasks", "test", v.dag_id, t, logical_date], env, log, f"{name}.{t}")
                check_task_test(out, v, t, log)
                times[t] = wall
                if server_log and name == "ours" and tag == "timed":
                    n, server_offset = access_log_requests(server_log, server_offset)
                    server_per_task[t].append(n)
            return times

        def measure(name: str, i: int) -> dict[str, float]:
            progress(f"round {i + 1}/{args.rounds}: {name}, 7 x airflow tasks test")
            times = run_tasks(name, i, variants[name].env, "timed")
            for t, s in times.items():
                per_task[name][t].append(s)
            progress("  " + ", ".join(f"{t} {s:.1f}" for t, s in times.items()))
            return times

        alternate(args.rounds, measure)
        load_end = os.getloadavg()
        rows = {}
        for t in TASKS:
            o, p = med(per_task["ours"][t]), med(per_task["plain"][t])
            rows[t] = {"ours_s": o, "plain_s": p, "diff_s": o - p, "passed": o - p <= TARGET_PER_TASK_S,
                       "ours_samples": per_task["ours"][t], "plain_samples": per_task["plain"][t]}  # fmt: skip
        total_o = sum(r["ours_s"] for r in rows.values())
        total_p = sum(r["plain_s"] for r in rows.values())
        result.update(
            {
                "per_task": rows,
                "sum_of_medians_s": {"ours": total_o, "plain": total_p},
                "ratio": total_o / total_p,
                "target_per_task_s": TARGET_PER_TASK_S,
                "passed": all(r["passed"] for r in rows.values()),
                "server_requests_per_task_timed": {t: med(list(map(float, n))) for t, n in server_per_task.items()}
                if server_log
                else None,
            }
        )
    result["loadavg_start"] = [round(x, 2) for x in load_start]
    result["loadavg_end"] = [round(x, 2) for x in load_end]

    if not args.no_count:
        v = variants["ours"]
        (tmp / "count").mkdir()
        (tmp / "count" / "sitecustomize.py").write_text(SITECUSTOMIZE)
        counts_file = tmp / "count" / "counts.jsonl"
        env = dict(v.env)
        env["PYTHONPATH"] = str(tmp / "count")
        env["PIPELINE_BENCH_COUNT_FILE"] = str(counts_file)
        if server_url:
            env["PIPELINE_BENCH_MLFLOW_URL"] = server_url
        else:
            env["PIPELINE_BENCH_MLFLOW_DB"] = str(v.root / "mlflow" / "mlflow.db")
        offset = server_log.stat().st_size if server_log else 0
        if args.per_task:
            progress("counting round: ours, 7 x airflow tasks test (not timed)")
            run_tasks("ours", 0, env, "count")
        else:
            progress("counting run: ours airflow dags test (not timed)")
            log = logs / "ours-count.log"
            _, out = run([airflow, "dags", "test", v.dag_id], env, log, "ours counting run")
            check_dag_test(out, v, log)
        counts = read_counts(counts_file)
        counts["server_access_log_requests"] = access_log_requests(server_log, offset)[0] if server_log else None
        counts["kind"] = "http" if server_url else "sql"
        per = counts["http" if server_url else "sql"]
        counts["per_task"] = {t: per.get(t, 0) for t in TASKS} | {k: n for k, n in per.items() if k not in TASKS}
        counts["total"] = sum(per.values())
        result["mlflow_calls"] = counts
    return result


def print_human(r: dict[str, Any]) -> None:
    print(f"Pipeline benchmark  {r['date']}  python {r['python']}  {r['cpus']} CPUs")
    print(f"  ours : {DAG_IDS['ours']} (dags_examples/breast_cancer_retrain.py)")
    print(f"  plain: {DAG_IDS['plain']} (benchmarks/{PLAIN_DAG.name}); same {r['tasks']} task ids and edges")
    print(
        f"  mode {r['mode']}, {r['rounds']} rounds alternated after 1 warm-up each; lineage {r['lineage']};"
        f" MLflow store {r['mlflow']}"
    )
    print(f"  load average (1, 5, 15 min): start {r['loadavg_start']}, end {r['loadavg_end']}\n")
    if r["mode"] == "dags-test":
        w = r["wall_s"]
        print("airflow dags test <dag_id>, process start to exit")
        for n in ("ours", "plain"):
            s = w[n]
            print(f"  {n:<5} median {s['median']:6.2f} s   min {s['min']:6.2f} s   max {s['max']:6.2f} s")
        verdict = "PASS" if r["passed"] else "FAIL"
        print(f"  ratio ours/plain (medians) {r['ratio']:.3f}   target <= {TARGET_RATIO}   {verdict}\n")
        print("In-process task durations (median, from the [DAG TEST] log lines)")
        print(f"  {'task':<10} {'ours':>8} {'plain':>8} {'diff':>8}")
        d = r["task_in_process_s"]
        for t in TASKS:
            print(f"  {t:<10} {d['ours'][t]:8.2f} {d['plain'][t]:8.2f} {d['ours'][t] - d['plain'][t]:+8.2f}")
        if r.get("server_requests_per_timed_run"):
            print(f"  MLflow server requests per timed run (access log): {r['server_requests_per_timed_run']}")
    else:
        print("airflow tasks test <dag_id> <task_id> <logical_date>, one process per task, start to exit (medians)")
        print(f"  {'task':<10} {'ours':>8} {'plain':>8} {'diff':>8}   target diff <= +{TARGET_PER_TASK_S:.1f} s")
        for t, row in r["per_task"].items():
            verdict = "PASS" if row["passed"] else "FAIL"
            print(f"  {t:<10} {row['ours_s']:8.2f} {row['plain_s']:8.2f} {row['diff_s']:+8.2f}   {verdict}")
        s = r["sum_of_medians_s"]
        diff = s["ours"] - s["plain"]
        print(f"  {'sum':<10} {s['ours']:8.2f} {s['plain']:8.2f} {diff:+8.2f}   ratio {r['ratio']:.3f}")
        if r.get("server_requests_per_task_timed"):
            print("  MLflow server requests per task (access log, timed rounds):", r["server_requests_per_task_timed"])
    c = r.get("mlflow_calls")
    if c:
        what = "HTTP requests to the MLflow server" if c["kind"] == "http" else "SQL statements on the MLflow store"
        print(f"\nMLflow calls of one run of ours ({what}; counting run, not timed; plain makes none)")
        for t, n in c["per_task"].items():
            print(f"  {t:<18} {n:6d}" if t in TASKS else f"  {n:6d}  {t}")
        print(f"  {'total per DAG run':<18} {c['total']:6d}   ({c['processes']} processes counted)")
        if c.get("server_access_log_requests") is not None:
            print(f"  server access log: {c['server_access_log_requests']} requests in the counting run")
        if c["kind"] == "sql" and c["sql_kinds"]:
            kinds = sorted(c["sql_kinds"].items(), key=lambda x: -x[1])
            print("  by statement: " + ", ".join(f"{k} {n}" for k, n in kinds))
            pragmas = c["sql_kinds"].get("PRAGMA", 0)
            print(
                f"  ~{pragmas // 3} MLflow store sessions: on SQLite MLflow sends 3 PRAGMAs per session"
                " (make_managed_session), one session per store call"
            )
        if c["kind"] == "http" and c["http_paths"]:
            top = sorted(c["http_paths"].items(), key=lambda x: -x[1])[:12]
            print("  by endpoint: " + ", ".join(f"{p} {n}" for p, n in top))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per variant (default 5)")
    parser.add_argument("--per-task", action="store_true", help="one fresh process per task (airflow tasks test)")
    parser.add_argument(
        "--lineage", choices=("on", "off"), default="on", help="OpenLineage to a file (on, as make demo) or disabled"
    )
    parser.add_argument("--mlflow-server", action="store_true", help=f"a real mlflow server on port {SERVER_PORT}")
    parser.add_argument("--no-count", action="store_true", help="skip the counting run of MLflow calls")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, homes, stores)")
    parser.add_argument("--tmp", default=None, help="parent of the temp dir (default: the system's)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    try:
        result = benchmark(args)
    except BenchError as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print_human(result)
    return 1 if args.check and not result["passed"] else 0


if __name__ == "__main__":
    sys.exit(main())
