"""Gate latency: one evidence-gather + decide against a registry holding 1,000 model versions.

    .venv/bin/python benchmarks/gate_latency.py [--versions 1000] [--runs 30] [--json] [--check]

Builds, in a temporary directory, an MLflow SQLite store the way the operators leave it: one logged
scikit-learn model; ``--versions`` versions of one registered model, all pointing at that logged
model (``client.create_model_version``), each tagged as TrainOperator tags it (artifact and features
fingerprints, training run, evidence pointers); one featurize record shared by all, and for every
version its own evaluate and simulate step runs with their step records (so the runs table holds
2 x versions + a few runs); version 1 holds the ``champion`` alias and every evaluation compares
against it.

Then times ``gate.gather.gather(hook, ref, verify_artifact=..., champion_alias="champion")``
followed by ``gate.decide(policy, evidence, now)`` (what one poke of ModelGateSensor does before it
records the verdict) for randomly chosen versions: one warm-up, then ``--runs`` timed checks, with
and without ``verify_artifact`` (which downloads the model artifact and re-fingerprints it). For each
variant it prints the median and p90 in ms, the MLflow client calls and the SQL statements one check
issues (counted with a SQLAlchemy event hook on every engine), and the largest number of rows any
single statement returned, which shows that the check looks things up by version and never lists the
registry. Target: median under 100 ms with verify_artifact (the sensor's default).

Exit status 0 whatever the figures unless ``--check``: then 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODEL = "bench_gate"
TARGET_MS = 100.0
POLICY = {
    "metrics": {
        "accuracy": {"threshold": 0.9, "min_absolute_change": -0.01},
        "roc_auc": {"threshold": 0.95},
    },
    "required_suites": ["raw_suite", "features_suite"],
    "required_scenarios": ["s1", "s2", "s3"],
    "first_version": "allow",
}
CLIENT_CALLS = (
    "get_model_version",
    "get_model_version_by_alias",
    "get_run",
    "get_logged_model",
    "search_runs",
    "search_model_versions",
    "download_artifacts",
)


class SqlCounter:
    """Counts the SQL statements issued on every SQLAlchemy engine in the process while enabled."""

    def __init__(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        self.statements: list[str] = []
        self.enabled = False
        event.listen(Engine, "before_cursor_execute", self._before)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.enabled:
            self.statements.append(" ".join(statement.split()))

    def reset(self) -> None:
        self.statements = []


def _record(step: str, run_id: str, model: dict[str, Any] | None, results: dict[str, Any], **extra: Any) -> dict:
    from airflow_ml_provider.records.step_record import StepRecord

    data = {
        "step": step,
        "mlflow_run_id": run_id,
        "airflow": {"dag_id": "bench", "run_id": "bench", "task_id": step, "try_number": 1, "map_index": -1},
        "inputs": [],
        "outputs": [],
        "params": {},
        "code": None,
        "model": model,
        "results": results,
        "status": "success",
        "error": None,
        "recorded_at": datetime.now(timezone.utc).isoformat(),
        "schema_version": 1,
        **extra,
    }
    return StepRecord.from_dict(data).to_dict()  # what the gate reads must parse strictly


def build_registry(root: Path, versions: int) -> tuple[Any, str]:
    """The store described in the module docstring; returns (client, tracking URI)."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from airflow_ml_provider.model import reference as models
    from airflow_ml_provider.records.tags import (
        RECORD_ARTIFACT_PATH,
        TAG_FEATURES_FINGERPRINT,
        TAG_MODEL_FINGERPRINT,
        TAG_TARGET,
        TAG_TASK,
        TAG_TRAINING_RUN,
        evidence_tag,
    )

    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("bench", artifact_location=str(root / "artifacts"))
    x = np.random.default_rng(0).normal(size=(200, 5))
    y = (x[:, 0] > 0).astype(int)
    with mlflow.start_run(experiment_id=experiment) as training:
        info = mlflow.sklearn.log_model(
            LogisticRegression().fit(x, y),
            name="model",
            pip_requirements=["scikit-learn"],  # no inference subprocess
        )
    model_fp = models.fingerprint_model(info.model_uri, _hook(client))

    raw_fp, features_fp = "blake3:" + "1" * 64, "blake3:" + "2" * 64
    featurize = client.create_run(experiment, tags={"airflow_ml.step": "featurize"}).info.run_id
    expectations = [
        {
            "role": role,
            "suite_name": f"{role}_suite",
            "suite_path": f"/suites/{role}.json",
            "dataset": f"file:///data/{role}.parquet",
            "success": True,
            "results": [
                {
                    "expectation_type": "expect_column_values_to_not_be_null",
                    "column": f"c{i}",
                    "success": True,
                    "kwargs": {"column": f"c{i}"},
                    "observed": {"unexpected_count": 0},
                    "exception": None,
                }
                for i in range(30)
            ],
        }
        for role in ("raw", "features")
    ]
    client.log_dict(
        featurize,
        _record(
            "featurize",
            featurize,
            None,
            {"expectations": expectations},
            inputs=[{"role": "raw", "fingerprint": raw_fp}],
            outputs=[{"role": "features", "fingerprint": features_fp}],
        ),
        RECORD_ARTIFACT_PATH,
    )
    client.set_terminated(featurize, "FINISHED")
    client.create_registered_model(MODEL)
    metrics = {"accuracy": 0.97, "precision": 0.96, "recall": 0.98, "f1": 0.97, "roc_auc": 0.99}
    started = time.perf_counter()
    for number in range(1, versions + 1):
        version = str(number)
        model = {"name": MODEL, "version": version, "uri": f"models:/{MODEL}/{version}", "fingerprint": model_fp}
        runs = {}
        for step, results in (
            (
                "evaluate",
                {
                    "task": "classification",
                    "metrics": metrics,
                    "champion": None if number == 1 else {"version": "1", "metrics": metrics},
                    "holdout_fingerprint": "blake3:" + "3" * 64,
                },
            ),
            (
                "simulate",
                {
                    "scenarios": {
                        "suite_path": "/scenarios.yaml",
                        "suite_fingerprint": "sha256:" + "4" * 64,
                        "results": [{"name": f"s{i}", "passed": True, "reason": "ok"} for i in (1, 2, 3)],
                    }
                },
            ),
        ):
            run_id = client.create_run(experiment, tags={"airflow_ml.step": step}).info.run_id
            client.log_dict(run_id, _record(step, run_id, model, results), RECORD_ARTIFACT_PATH)
            client.set_terminated(run_id, "FINISHED")
            runs[step] = run_id
        client.create_model_version(
            MODEL,
            info.model_uri,
            run_id=training.info.run_id,
            tags={
                TAG_TRAINING_RUN: training.info.run_id,
                TAG_MODEL_FINGERPRINT: model_fp,
                TAG_FEATURES_FINGERPRINT: features_fp,
                TAG_TARGET: "target",
                TAG_TASK: "classification",
                evidence_tag("featurize"): featurize,
                evidence_tag("evaluate"): runs["evaluate"],
                evidence_tag("simulate"): runs["simulate"],
            },
        )
        if number == 1:
            client.set_registered_model_alias(MODEL, "champion", "1")
        if number % 100 == 0:
            print(f"  {number} versions registered ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return client, uri


class CountingClient:
    """Wraps an MlflowClient, counting the calls the gate makes (and the rows search calls return)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()
        self.max_listed = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in CLIENT_CALLS or not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            result = attr(*args, **kwargs)
            if name.startswith("search_"):
                self.max_listed = max(self.max_listed, len(result))
            return result

        return counted


def _hook(client: Any) -> Any:
    """The provider's hook on ``client`` (counting or not): the gate reaches MLflow through the hook only."""
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    hook = MlflowHook(tracking_uri=client.tracking_uri)
    hook.get_client = lambda: client  # type: ignore[method-assign]
    return hook


def check_once(client: Any, version: str, verify_artifact: bool) -> tuple[float, Any]:
    from airflow_ml_provider.gate import GatePolicy, decide
    from airflow_ml_provider.gate.gather import gather
    from airflow_ml_provider.model.reference import ModelRef

    policy = GatePolicy.from_dict(POLICY)
    hook = _hook(client)
    started = time.perf_counter()
    gathered = gather(hook, ModelRef(MODEL, version), verify_artifact=verify_artifact, champion_alias="champion")
    verdict = decide(policy, gathered.evidence, datetime.now(timezone.utc))
    return (time.perf_counter() - started) * 1000, verdict


def measure(client: Any, versions: int, runs: int, verify_artifact: bool, sql: SqlCounter) -> dict[str, Any]:
    rng = random.Random(42)
    check_once(client, str(versions), verify_artifact)  # warm-up
    timings, statements, calls, listed, failed = [], [], [], 0, 0
    for _ in range(runs):
        version = str(rng.randint(2, versions))
        counting = CountingClient(client)
        sql.reset()
        sql.enabled = True
        elapsed, verdict = check_once(counting, version, verify_artifact)
        sql.enabled = False
        timings.append(elapsed)
        statements.append(len(sql.statements))
        calls.append(sum(counting.calls.values()))
        listed = max(listed, counting.max_listed)
        failed += not verdict.passed
        last_calls, last_sql = counting.calls, list(sql.statements)
    tables = Counter(m.group(1) for st in last_sql if (m := re.search(r"\bFROM (\w+)", st, re.IGNORECASE)))
    unbounded = [
        st for st in last_sql if re.search(r"\bFROM model_versions\b", st, re.I) and "version =" not in st.lower()
    ]
    timings.sort()
    return {
        "verify_artifact": verify_artifact,
        "runs": runs,
        "median_ms": round(statistics.median(timings), 2),
        "p90_ms": round(timings[int(0.9 * (len(timings) - 1))], 2),
        "min_ms": round(timings[0], 2),
        "client_calls_per_check": statistics.median(calls),
        "client_calls": dict(last_calls),
        "sql_statements_per_check": statistics.median(statements),
        "sql_statements_by_table": dict(tables),
        "model_version_queries_without_version_predicate": len(unbounded),
        "max_rows_listed_by_a_search_call": listed,
        "verdicts_failed": failed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--dir",
        default="/dev/shm" if os.path.isdir("/dev/shm") else None,
        help="where to build the store (default /dev/shm: registering 1,000 versions on a disk with slow "
        "fsync takes minutes; the timed checks only read, from the page cache either way)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--check", action="store_true", help=f"exit 1 if the median misses {TARGET_MS:g} ms")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

    with tempfile.TemporaryDirectory(prefix="gate-latency-", dir=args.dir) as tmp:
        started = time.perf_counter()
        client, _ = build_registry(Path(tmp), args.versions)
        setup_s = time.perf_counter() - started
        count = len(client.search_model_versions(f"name = '{MODEL}'", max_results=args.versions + 10))
        assert count == args.versions, count
        sql = SqlCounter()
        results = [measure(client, args.versions, args.runs, verify, sql) for verify in (True, False)]

    report = {
        "versions": args.versions,
        "store": f"sqlite in {args.dir or tempfile.gettempdir()}",
        "setup_s": round(setup_s, 1),
        "target_ms": TARGET_MS,
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"registry: {args.versions} versions of {MODEL!r}, {2 * args.versions + 2} step runs "
            f"(setup {setup_s:.0f} s)"
        )
        for r in results:
            print(
                f"gather+decide, verify_artifact={r['verify_artifact']!s:5}: median {r['median_ms']:7.2f} ms, "
                f"p90 {r['p90_ms']:7.2f} ms, min {r['min_ms']:7.2f} ms over {r['runs']} checks; "
                f"{r['client_calls_per_check']:g} MLflow client calls {r['client_calls']}, "
                f"{r['sql_statements_per_check']:g} SQL statements {r['sql_statements_by_table']}; "
                f"model-version queries without a version predicate: "
                f"{r['model_version_queries_without_version_predicate']}; "
                f"largest search result: {r['max_rows_listed_by_a_search_call']} rows; "
                f"failed verdicts: {r['verdicts_failed']}"
            )
        print(f"target: median < {TARGET_MS:g} ms with verify_artifact=True")
    missed = results[0]["median_ms"] >= TARGET_MS or any(r["verdicts_failed"] for r in results)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
