"""The example DAG on the native Celery deployment, N runs at once, against the same ML work in plain operators.

``.venv/bin/python benchmarks/deployment.py [--n 1 4 8]`` starts ONE deployment of docker-compose.yaml's
topology with deploy/native.py (project ``bench``, state /tmp/bench-deploy, ports 29100-29199, Redis
database 9; MLflow server on PostgreSQL, api-server, scheduler, dag-processor, triggerer, two Celery
workers) with ``benchmarks/deployment_dags/`` as its DAG folder, and stops and purges it at the end
whatever happens. That folder holds:

- ``breast_cancer_retrain`` ("ours"): the example DAG itself, loaded from dags_examples/ with
  ``max_active_runs`` raised so N runs can be active together and without the gate's comparison with
  the champion, which fails all but the first of N concurrent runs by design (see that file); its
  gate defers to the triggerer;
- ``breast_cancer_retrain_plain_ml`` ("plain"): the same tasks, edges and ML (pandas, the example's
  ``transform`` and ``train``, sklearn metrics, the scenarios, the same thresholds, predictions) in
  PythonOperators and a PythonSensor, with pickled models instead of MLflow (see its docstring).

One warm-up run of each (not measured) creates the champions, so every measured run of either DAG
also scores a champion. Then, for each N, N runs of one DAG are triggered back to back through the
REST API and awaited, then N runs of the other: the batches alternate, never overlap, and the order
flips at every N (ours first at the first N, plain first at the second, ...), so neither side always
runs on the warmer machine. Every run reads its own copy of the raw data, one cell nudged by a
relative 1e-9 * k: a new file and fingerprint for every run, the same model, so the gate passes.

Figures, per DAG and N (from the REST API's dag runs and task instances, server clocks):

- **run wall**: dag run ``queued_at`` (the trigger accepted) -> ``end_date``; median and max.
- **batch wall**: first run's ``queued_at`` -> last run's ``end_date``.
- **idle**: per run, the part of its wall time when none of its tasks was running (the union of the
  task instances' ``start_date``..``end_date``, subtracted): the scheduler noticing finished upstreams,
  queueing, Celery delivery; median over runs. Our gate's interval spans its deferral (resuming keeps
  the first ``start_date``), so that is not idle.
- **queued wait**: per run, the sum over its task executions of ``start_date - queued_when`` (time in
  the Celery queue until a worker started it), median over runs. Resuming a deferred task overwrites
  its ``queued_when`` but keeps ``start_date``, so for our gate the first execution's ``queued_when``
  is the one the benchmark saw while polling (every ``--poll`` s; a run whose gate was never seen
  queued gets no figure), and the resumed execution counts from the final ``queued_when`` to its first
  log line.
- **gate deferral round trip** (ours only; the plain gate pokes in the worker): from the gate's log
  line "Pausing task as DEFERRED." to the first log line of its resumed execution on a worker, read from
  the task's log through the REST API (worker and triggerer lines, each with its own timestamp). It is
  split into *pickup* (deferred -> the triggerer starts the trigger), *check* (the trigger's evidence
  check against MLflow, in the triggerer; the evidence is complete by then, so one check) and
  *resume* (trigger fired -> the scheduler re-queues it -> a worker starts it).
- **ours / plain**: the ratio of the medians (and of the batch walls).

A per-task table gives each task's median duration (``end_date - start_date``; for our gate both
executions and the deferral). ``--json PATH`` writes every run and task instance.

MLflow's telemetry is switched off in every process (``--env MLFLOW_DISABLE_TELEMETRY=true``): without
network its config thread removes ``_MLFLOW_TELEMETRY_SESSION_ID`` from ``os.environ`` while requests
iterates the environment in the task's main thread, and MLflow calls then fail at random with
``KeyError: '_MLFLOW_TELEMETRY_SESSION_ID'`` (seen in 2 of the first 2 runs on this machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NATIVE = ROOT / "deploy" / "native.py"
DAGS = Path(__file__).resolve().parent / "deployment_dags"
OURS, PLAIN = "breast_cancer_retrain", "breast_cancer_retrain_plain_ml"
LABEL = {OURS: "ours", PLAIN: "plain"}
TASKS = ("featurize", "train", "evaluate", "simulate", "gate", "promote", "predict")
RUN_DONE = {"success", "failed"}
#: Settings for every process besides the compose file's (why: see the module docstring).
EXTRA_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true"}


class BenchmarkError(RuntimeError):
    """The benchmark cannot go on; the message says why and where to look."""


def at(value: str) -> datetime:
    """An API timestamp (ISO 8601, "Z" for UTC, which Python 3.10's fromisoformat does not read)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def seconds(start: str | None, end: str | None) -> float | None:
    return (at(end) - at(start)).total_seconds() if start and end else None


# ------------------------------------------------------------------------------------ deployment


@dataclass
class Deployment:
    """deploy/native.py for one project and state directory."""

    project: str
    state: Path
    port_base: int
    redis_db: int

    def _native(self, *args: str, capture: bool = False) -> str:
        argv = [sys.executable, str(NATIVE), "--project", self.project, "--state", str(self.state), *args]
        done = subprocess.run(argv, capture_output=capture, text=True, check=False)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout or "")[-3000:] if capture else "(its output is above)"
            raise BenchmarkError(f"`{' '.join(argv[1:])}` failed (exit {done.returncode}): {detail}")
        return done.stdout or ""

    def up(self, env: dict[str, str]) -> None:
        if (self.state / "native.json").exists():
            raise BenchmarkError(
                f"a deployment is already recorded in {self.state}; stop it first with "
                f"`{sys.executable} {NATIVE} --project {self.project} --state {self.state} down --purge`"
            )
        self._native(
            "up", "--port-base", str(self.port_base), "--redis-db", str(self.redis_db),
            "--mount", f"/opt/airflow/dags={DAGS}", *(f"--env={k}={v}" for k, v in env.items()),
        )

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self._native("status", "--json", capture=True)))

    def down(self) -> None:
        if (self.state / "native.json").exists():
            self._native("down", "--purge")


# ------------------------------------------------------------------------------------ REST API


class Api:
    """Airflow's REST API (v2) with the simple auth manager's login; retries what a busy server drops."""

    def __init__(self, base: str, username: str, password: str) -> None:
        self.base, self.username, self.password = base.rstrip("/"), username, password
        self.token = ""

    def _send(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read() or b"{}")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        for attempt in range(5):
            try:
                if not self.token:
                    self.token = self._send("POST", "/auth/token", {"username": self.username,
                                                                   "password": self.password})["access_token"]
                return self._send(method, path, body)
            except urllib.error.HTTPError as e:
                if e.code == 401 and attempt == 0:
                    self.token = ""
                    continue
                if e.code < 500 or attempt == 4:
                    raise BenchmarkError(f"{method} {path} -> HTTP {e.code}: {e.read()[:500]!r}") from e
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                if attempt == 4:
                    raise BenchmarkError(f"{method} {path}: the api-server does not answer ({e})") from e
            time.sleep(2 * (attempt + 1))
        raise AssertionError("unreachable")

    def wait_for_dags(self, dag_ids: Sequence[str], timeout: float) -> None:
        """Until the dag-processor has parsed every DAG; an import error stops at once."""
        deadline = time.monotonic() + timeout
        while True:
            errors = self.call("GET", "/api/v2/importErrors")["import_errors"]
            if errors:
                raise BenchmarkError("DAG import errors:\n" + "\n".join(
                    f"{e['filename']}: {e['stack_trace'][-1500:]}" for e in errors))
            known = {d["dag_id"] for d in self.call("GET", "/api/v2/dags?limit=100")["dags"]}
            if set(dag_ids) <= known:
                return
            if time.monotonic() > deadline:
                raise BenchmarkError(f"DAGs {sorted(set(dag_ids) - known)} were not parsed within {timeout:.0f} s; "
                                     "see the dag-processor log in the state directory's logs/")
            time.sleep(3)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        return str(self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})[
            "dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{_quote(run_id)}"))

    def task_instances(self, dag_id: str, run_ids: Sequence[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.call("POST", "/api/v2/dags/~/dagRuns/~/taskInstances/list", {
                "dag_ids": [dag_id], "dag_run_ids": list(run_ids), "page_limit": 100, "page_offset": len(out)})
            out += page["task_instances"]
            if not page["task_instances"] or len(out) >= page["total_entries"]:
                return out

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> list[dict[str, Any]]:
        path = (f"/api/v2/dags/{dag_id}/dagRuns/{_quote(run_id)}/taskInstances/{task_id}/logs/{try_number}"
                "?full_content=true")
        return [e for e in self.call("GET", path)["content"] if isinstance(e, dict) and e.get("timestamp")]


def _quote(run_id: str) -> str:
    return urllib.parse.quote(run_id, safe="")


# ------------------------------------------------------------------------------------ one batch


@dataclass
class Deferral:
    """Our gate's trip through the triggerer, from its log (seconds)."""

    round_trip: float | None = None
    pickup: float | None = None
    check: float | None = None
    resume: float | None = None
    resumed_at: str | None = None


@dataclass
class RunResult:
    dag_id: str
    n: int
    run_id: str
    state: str
    queued_at: str
    end_date: str | None
    wall: float | None
    queued_wait: float | None
    idle: float | None
    failed_tasks: list[str]
    #: Why each failed task failed: the error lines of its log (read before the deployment is purged).
    failures: dict[str, str]
    task_durations: dict[str, float | None]
    deferral: Deferral | None
    task_instances: list[dict[str, Any]] = field(repr=False)


def deferral_from_log(lines: list[dict[str, Any]]) -> Deferral:
    """Find the deferral, the trigger's start and fire, and the resumed execution's first line."""
    lines = sorted(lines, key=lambda e: str(e["timestamp"]))
    events = [(str(e["timestamp"]), str(e.get("event", ""))) for e in lines]

    def first(after: int, test: Any) -> int | None:
        return next((i for i in range(after, len(events)) if test(events[i][1])), None)

    deferred = first(0, lambda s: s.startswith("Pausing task as DEFERRED"))
    if deferred is None:
        return Deferral()
    started = first(deferred, lambda s: s.startswith("trigger ") and s.endswith(" starting"))
    fired = first(deferred, lambda s: s == "Trigger fired event")
    resumed = first(fired if fired is not None else deferred + 1, lambda s: s.startswith("::group::Pre Execute"))
    at = {k: events[i][0] if i is not None else None
          for k, i in (("deferred", deferred), ("started", started), ("fired", fired), ("resumed", resumed))}
    return Deferral(
        round_trip=seconds(at["deferred"], at["resumed"]),
        pickup=seconds(at["deferred"], at["started"]),
        check=seconds(at["started"], at["fired"]),
        resume=seconds(at["fired"], at["resumed"]),
        resumed_at=at["resumed"],
    )


def idle_time(run: dict[str, Any], tis: list[dict[str, Any]]) -> float | None:
    """Seconds of the run's wall time when none of its tasks was running (union of start..end intervals)."""
    if not run["end_date"]:
        return None
    spans = sorted((at(ti["start_date"]), at(ti["end_date"])) for ti in tis if ti["start_date"] and ti["end_date"])
    covered, reach = 0.0, at(run["queued_at"])
    for start, end in spans:
        if end > reach:
            covered += (end - max(start, reach)).total_seconds()
            reach = end
    return (at(run["end_date"]) - at(run["queued_at"])).total_seconds() - covered


def failure_reason(lines: list[dict[str, Any]]) -> str:
    """The error events of a task's log, each with its exception's message."""
    reasons = []
    for e in lines:
        if str(e.get("level")).lower() in ("error", "critical"):
            details = e.get("error_detail") or []
            reasons.append(" ".join([str(e.get("event")), *(f"{d.get('exc_type')}: {d.get('exc_value')}"
                                                            for d in details if isinstance(d, dict))]))
    return " | ".join(reasons)[:2000] or "no error line in its log"


def run_batch(api: Api, runs_to_trigger: list[tuple[str, dict[str, Any]]], n: int, timeout: float,
              poll: float) -> list[RunResult]:
    """Trigger every (dag id, conf) back to back, wait until all finished, and measure each run."""
    runs = [(dag_id, api.trigger(dag_id, conf)) for dag_id, conf in runs_to_trigger]
    dag_ids = sorted({dag_id for dag_id, _ in runs})
    first_queued: dict[tuple[str, str, str], str] = {}  # what resuming a deferred task overwrites
    state: dict[tuple[str, str], dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while True:
        for dag_id in dag_ids:
            for ti in api.task_instances(dag_id, [r for d, r in runs if d == dag_id]):
                if ti["queued_when"]:
                    first_queued.setdefault((dag_id, ti["dag_run_id"], ti["task_id"]), ti["queued_when"])
        for key in runs:
            if state.get(key, {}).get("state") not in RUN_DONE:
                state[key] = api.run(*key)
        if all(r["state"] in RUN_DONE for r in state.values()):
            break
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{len(runs)} runs of {', '.join(dag_ids)} did not finish within {timeout:.0f} s: "
                                 f"{ {k[1]: v['state'] for k, v in state.items()} }")
        time.sleep(poll)

    tis = {dag_id: api.task_instances(dag_id, [r for d, r in runs if d == dag_id]) for dag_id in dag_ids}
    results = []
    for dag_id, run_id in runs:
        run = state[(dag_id, run_id)]
        own = [ti for ti in tis[dag_id] if ti["dag_run_id"] == run_id]
        deferral = None
        waits: list[float | None] = []
        for ti in own:
            if not ti["start_date"] or not ti["queued_when"]:
                continue
            if dag_id == OURS and ti["task_id"] == "gate":
                deferral = deferral_from_log(api.log(dag_id, run_id, "gate", max(1, ti["try_number"])))
                waits.append(seconds(first_queued.get((dag_id, run_id, "gate")), ti["start_date"]))
                waits.append(seconds(ti["queued_when"], deferral.resumed_at))
            else:
                waits.append(seconds(ti["queued_when"], ti["start_date"]))
        results.append(RunResult(
            dag_id=dag_id, n=n, run_id=run_id, state=run["state"], queued_at=run["queued_at"],
            end_date=run["end_date"], wall=seconds(run["queued_at"], run["end_date"]),
            queued_wait=None if None in waits else sum(w for w in waits if w is not None),
            idle=idle_time(run, own),
            failed_tasks=sorted(ti["task_id"] for ti in own if ti["state"] != "success"),
            failures={ti["task_id"]: failure_reason(api.log(dag_id, run_id, ti["task_id"], ti["try_number"]))
                      for ti in own if ti["state"] == "failed" and ti["try_number"] >= 1},
            task_durations={ti["task_id"]: seconds(ti["start_date"], ti["end_date"]) for ti in own},
            deferral=deferral, task_instances=own,
        ))
    return results


# ------------------------------------------------------------------------------------ data


def raw_copy(source: Path, target: Path, k: int) -> str:
    """The raw data with one cell nudged by a relative 1e-9 * k: a new dataset, the same model."""
    import pandas as pd

    frame = pd.read_parquet(source)
    column = next(c for c in frame.columns if c != "target")
    frame.loc[k % len(frame), column] *= 1 + 1e-9 * k
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(target, index=False)
    return str(target)


@dataclass
class Data:
    """Where runs read their raw copies and the plain DAG keeps its files (the deployment's shared volume)."""

    shared: Path
    counter: int = 0

    def confs(self, dag_id: str, count: int, tag: str) -> list[dict[str, Any]]:
        out = []
        for i in range(count):
            self.counter += 1
            raw = raw_copy(self.shared / "data" / "breast_cancer.parquet",
                           self.shared / "bench" / "raw" / f"{LABEL[dag_id]}-{tag}-{i}.parquet", self.counter)
            conf: dict[str, Any] = {"raw_uri": raw}
            if dag_id == PLAIN:
                conf["work_root"] = str(self.shared / "bench" / "plain")
            out.append(conf)
        return out


# ------------------------------------------------------------------------------------ report


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _max(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def batch_wall(results: list[RunResult]) -> float | None:
    ends = [r.end_date for r in results if r.end_date]
    if not results or len(ends) != len(results):
        return None
    return seconds(min((r.queued_at for r in results), key=at), max(ends, key=at))


def summary(results: list[RunResult], ns: Sequence[int]) -> str:
    rows = ["| N | DAG | runs ok | run wall median | run wall max | batch wall | queued wait / run (median) "
            "| idle / run (median) | gate deferral round trip, median (pickup + check + resume) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for n in ns:
        figures: dict[str, dict[str, float | None]] = {}
        for dag_id in (OURS, PLAIN):
            batch = [r for r in results if r.n == n and r.dag_id == dag_id]
            ok = [r for r in batch if r.state == "success"]
            figures[dag_id] = {
                "median": _median([r.wall for r in ok]), "max": _max([r.wall for r in ok]),
                "batch": batch_wall(batch), "queued": _median([r.queued_wait for r in ok]),
                "idle": _median([r.idle for r in ok]),
            }
            trips = [r.deferral for r in ok if r.deferral]
            gate = "pokes in the worker (no deferral)" if dag_id == PLAIN else (
                f"{_s(_median([d.round_trip for d in trips]))} ({_s(_median([d.pickup for d in trips]))} + "
                f"{_s(_median([d.check for d in trips]))} + {_s(_median([d.resume for d in trips]))})"
                if trips else "-")
            f = figures[dag_id]
            rows.append(f"| {n} | {LABEL[dag_id]} | {len(ok)}/{len(batch)} | {_s(f['median'])} | {_s(f['max'])} "
                        f"| {_s(f['batch'])} | {_s(f['queued'])} | {_s(f['idle'])} | {gate} |")
        o, p = figures[OURS], figures[PLAIN]
        rows.append(f"| {n} | **ours / plain** | | {_ratio(o['median'], p['median'])} | {_ratio(o['max'], p['max'])} "
                    f"| {_ratio(o['batch'], p['batch'])} | {_ratio(o['queued'], p['queued'])} "
                    f"| {_ratio(o['idle'], p['idle'])} | |")
    return "\n".join(rows)


def task_table(results: list[RunResult], ns: Sequence[int]) -> str:
    head = " | ".join(f"N={n} ours | N={n} plain" for n in ns)
    rows = [f"| task | {head} |", "| --- |" + " --- |" * (2 * len(ns))]
    for task in TASKS:
        cells = []
        for n in ns:
            for dag_id in (OURS, PLAIN):
                ok = [r for r in results if r.n == n and r.dag_id == dag_id and r.state == "success"]
                cells.append(_s(_median([r.task_durations.get(task) for r in ok])))
        rows.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 4, 8], help="concurrent runs per batch (default 1 4 8)")
    parser.add_argument("--project", default="bench", help="deploy/native.py project (database prefix)")
    parser.add_argument("--state", type=Path, default=Path("/tmp/bench-deploy"), help="deployment state directory")
    parser.add_argument("--port-base", type=int, default=29100, help="first of the deployment's native ports")
    parser.add_argument("--redis-db", type=int, default=9, help="Redis database for the Celery broker")
    parser.add_argument("--batch-timeout", type=float, default=1800, help="seconds one batch may take")
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between REST polls while a batch runs")
    parser.add_argument("--json", type=Path, help="also write every run and task instance here")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.n):
        parser.error("--n takes positive run counts")

    deployment = Deployment(args.project, args.state.resolve(), args.port_base, args.redis_db)
    results: list[RunResult] = []
    started = time.monotonic()
    loads = {"start": _load()}
    try:
        print(f"load average {loads['start']}; starting the deployment (takes minutes) ...", flush=True)
        deployment.up({**EXTRA_ENV, "BENCH_MAX_ACTIVE_RUNS": str(max(args.n))})
        status = deployment.status()
        api = Api(status["urls"]["airflow-apiserver"], *status["login"])
        api.wait_for_dags((OURS, PLAIN), timeout=600)
        for dag_id in (OURS, PLAIN):
            api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        data = Data(Path(status["extra"]["paths"]["/opt/airflow/shared"]))

        print("warm-up: 1 run of each DAG together (creates the champions; not measured) ...", flush=True)
        warmup = [(dag_id, conf) for dag_id in (OURS, PLAIN) for conf in data.confs(dag_id, 1, "warmup")]
        for result in run_batch(api, warmup, 0, args.batch_timeout, args.poll):
            if result.state != "success":
                raise BenchmarkError(f"the warm-up run of {result.dag_id} failed, so the deployment does not work: "
                                     f"{result.failures or result.failed_tasks}")
            print(f"  {LABEL[result.dag_id]}: {_s(result.wall)}", flush=True)

        for i, n in enumerate(args.n):
            for dag_id in (OURS, PLAIN) if i % 2 == 0 else (PLAIN, OURS):
                before = _load()
                t0 = time.monotonic()
                confs = [(dag_id, conf) for conf in data.confs(dag_id, n, f"n{n}")]
                batch = run_batch(api, confs, n, args.batch_timeout, args.poll)
                results += batch
                failed = {r.run_id: r.failures or r.failed_tasks for r in batch if r.state != "success"}
                print(f"N={n} {LABEL[dag_id]}: {len(batch) - len(failed)}/{n} ok in {time.monotonic() - t0:.0f} s "
                      f"(load average before {before}, after {_load()})" + (f"; FAILED {failed}" if failed else ""),
                      flush=True)
        loads["end"] = _load()
    finally:
        print("stopping and purging the deployment ...", flush=True)
        try:
            deployment.down()
        finally:
            if results:  # also when a later batch failed or was interrupted: report what was measured
                report(results, [n for n in args.n if any(r.n == n for r in results)], loads, started, args.json)
    return 1 if any(r.state != "success" for r in results) else 0


def report(results: list[RunResult], ns: Sequence[int], loads: dict[str, str], started: float,
           json_path: Path | None) -> None:
    print(f"\nload average at start {loads['start']}, at the end of the runs {loads.get('end', '-')}; "
          f"{os.cpu_count()} CPUs; total {time.monotonic() - started:.0f} s\n")
    print(summary(results, ns))
    print("\nMedian task duration (end - start; our gate includes its deferral):\n")
    print(task_table(results, ns))
    print("\nqueued wait = time task executions waited in the Celery queue (start_date - queued_when), per run.\n"
          "idle = part of the run's wall time when none of its tasks was running (scheduling, queueing).\n"
          "gate deferral round trip = our gate's 'Pausing task as DEFERRED.' log line -> first log line of its\n"
          "resumed execution: pickup (-> triggerer starts the trigger), check (the trigger's MLflow evidence check),\n"
          "resume (trigger fired -> re-queued -> a worker starts it).")
    if json_path:
        json_path.write_text(json.dumps({"loads": loads, "runs": [asdict(r) for r in results]}, indent=1))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkError as e:
        sys.exit(f"deployment benchmark: {e}")
