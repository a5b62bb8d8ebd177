"""Featurize at scale: FeaturizeOperator against plain pandas doing the same read, transform, checks and write.

    .venv/bin/python benchmarks/featurize_scale.py [--sizes 1M,10M] [--rounds 3] [--cache DIR] [--json] [--check]

Data: ``rows`` x 31 columns, the example's raw layout (the 30 breast cancer measurements as float64,
named as scikit-learn names them, and the int64 ``target``), drawn once per size (non-negative normal
values with each column's mean and standard deviation in the real data set; seeded) and written as
Parquet (snappy, 1M-row row groups) into ``--cache`` (default /tmp/featurize_scale_cache), where later
runs find it. 10M rows take ~2.5 GB on disk; free space is checked first (raw + one output).

The two variants, each in a fresh subprocess, alternated (order swapped every round) after one warm-up
each (not timed: it creates the MLflow store's schema and brings the raw file into the page cache):

- **ours**: ``FeaturizeOperator(raw_uri=..., transform=breast_cancer.pipeline.transform, raw_suite=...,
  features_suite=...)`` with the example's two Great Expectations suites, ``execute()`` called with a
  minimal task context (ti: dag_id, run_id, task_id, try_number, map_index, task), as a unit test calls
  it; MLflow on a SQLite store (tracking + registry) and the artifact root in the benchmark's temp dir.
  It reads, fingerprints, validates raw, transforms, validates features, writes content-addressed and
  fingerprinted, and records the step in MLflow.
- **plain**: ``pandas.read_parquet`` -> the same expectations from the same suite files, implemented with
  plain pandas comparisons (row count between, columns match set, values in set, not null, values
  between; an unknown expectation type is an error) -> ``transform`` -> the features suite -> ``to_parquet``.

The raw suite's ``expect_table_row_count_to_be_between`` has ``max_value`` 1,000,000 in the example; a copy
with ``max_value`` raised to the row count is used by both variants above that (otherwise 10M rows would
fail the suite, by design). Everything else is the example's.

Both children import ``airflow.sdk`` first (both run inside an Airflow worker in real life, and that cost
is not featurize's); **step** time runs from after that import to the end of the work (ours includes
importing the operator, Great Expectations and MLflow); **process** time is start to exit as seen by the
parent. **Peak memory** is the child's own ``ru_maxrss`` (VmHWM) at its end. Targets (ratio of medians
of the step time): <= 2x at 1M rows, <= 1.2x at 10M; peak memory <= 1.1x plain.

Bytes hashed (ours): the child wraps the ``blake3`` hasher class (every ``update`` and ``update_mmap``
counted) before the package imports it, so every byte that ``airflow_ml_provider.data.fingerprint`` (or
anything else) hashes is counted; compared with bytes in (raw file size) + bytes out (features file size).
The target is "each byte hashed once": hashed / (in + out) = 1.

Exit status: 0 whatever the figures, unless ``--check``: 1 when a target is missed; 2 when a run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DAGS_EXAMPLES = REPO / "dags_examples"
SUITES = DAGS_EXAMPLES / "breast_cancer"
MARK = "@@FEATURIZE_SCALE@@"
TARGETS = {1_000_000: 2.0, 10_000_000: 1.2}
TARGET_MEMORY = 1.1
CHUNK_ROWS = 1_000_000

GENERATE = """
import sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
from sklearn.datasets import load_breast_cancer
out, rows, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
real = load_breast_cancer(as_frame=True).frame
features = [c for c in real.columns if c != "target"]
mean, std = real[features].mean().to_numpy(), real[features].std().to_numpy()
rng = np.random.default_rng(13)
writer = None
for start in range(0, rows, chunk):
    n = min(chunk, rows - start)
    values = np.abs(rng.normal(mean, std, size=(n, len(features))))
    cols = {name: values[:, i] for i, name in enumerate(features)}
    cols["target"] = rng.integers(0, 2, size=n, dtype=np.int64)
    table = pa.table(cols)
    if writer is None:
        writer = pq.ParquetWriter(out, table.schema, compression="snappy")
    writer.write_table(table, row_group_size=chunk)
writer.close()
"""

# argv: variant, raw path, raw suite, features suite, out dir, count hashing (0/1)
CHILD = """
import json, os, resource, sys, time
variant, raw_path, raw_suite, features_suite, out_dir, count_hash = sys.argv[1:7]
import airflow.sdk  # noqa: F401  (both variants: what a worker has loaded before any task)
t0 = time.perf_counter()
hashed = [0, 0]  # bytes, calls
if count_hash == "1":
    import blake3 as _b3
    _orig = _b3.blake3

    class _Counting:
        AUTO = getattr(_orig, "AUTO", -1)
        name = getattr(_orig, "name", "blake3")
        digest_size = getattr(_orig, "digest_size", 32)
        block_size = getattr(_orig, "block_size", 64)
        key_size = getattr(_orig, "key_size", 32)

        def __init__(self, data=None, *args, **kwargs):
            self._h = _orig(*args, **kwargs)
            if data is not None:
                self.update(data)

        def update(self, data, *args, **kwargs):
            hashed[0] += memoryview(data).nbytes
            hashed[1] += 1
            self._h.update(data, *args, **kwargs)
            return self

        def update_mmap(self, path, *args, **kwargs):
            hashed[0] += os.path.getsize(path)
            hashed[1] += 1
            self._h.update_mmap(path, *args, **kwargs)
            return self

        def __getattr__(self, name):
            return getattr(self._h, name)

    _b3.blake3 = _Counting
sys.path.insert(0, os.environ["FEATURIZE_SCALE_USER_PATH"])
from breast_cancer.pipeline import transform

if variant == "ours":
    from types import SimpleNamespace
    from airflow_ml_provider.operators.featurize import FeaturizeOperator

    op = FeaturizeOperator(
        task_id="featurize", raw_uri=raw_path, transform=transform, raw_suite=raw_suite,
        features_suite=features_suite, artifact_root=out_dir,
    )
    run_id = "manual__featurize_scale_" + str(os.getpid()) + "_" + str(time.time_ns())
    ti = SimpleNamespace(dag_id="featurize_scale", run_id=run_id, task_id="featurize", try_number=1,
                         map_index=-1, task=op)
    result = op.execute({"ti": ti, "params": {}, "run_id": run_id})
    out_path = result["uri"]
    if out_path.startswith("file://"):
        out_path = out_path[len("file://"):]
    rows = result["rows"]
else:
    import pandas as pd

    def check(df, suite_path):
        suite = json.load(open(suite_path))
        failed = []
        for e in suite["expectations"]:
            kind, kw = e["type"], e["kwargs"]
            if kind == "expect_table_row_count_to_be_between":
                ok = (kw.get("min_value") is None or len(df) >= kw["min_value"]) and (
                    kw.get("max_value") is None or len(df) <= kw["max_value"])
            elif kind == "expect_table_columns_to_match_set":
                ok = (set(df.columns) == set(kw["column_set"]) if kw.get("exact_match", True)
                      else set(kw["column_set"]) <= set(df.columns))
            elif kind == "expect_column_values_to_not_be_null":
                ok = bool(df[kw["column"]].notna().all())
            elif kind == "expect_column_values_to_be_in_set":
                col = df[kw["column"]]
                ok = bool(col[col.notna()].isin(kw["value_set"]).all())
            elif kind == "expect_column_values_to_be_between":
                col = df[kw["column"]]
                col = col[col.notna()]
                low, high = kw.get("min_value"), kw.get("max_value")
                ok = True
                if low is not None:
                    ok = ok and bool((col > low).all() if kw.get("strict_min") else (col >= low).all())
                if high is not None:
                    ok = ok and bool((col < high).all() if kw.get("strict_max") else (col <= high).all())
            else:
                raise ValueError("unknown expectation type " + kind)
            if not ok:
                failed.append(kind + " " + str(kw.get("column", "")))
        if failed:
            raise ValueError(suite["name"] + " failed: " + ", ".join(failed))

    raw = pd.read_parquet(raw_path)
    check(raw, raw_suite)
    features = transform(raw)
    check(features, features_suite)
    out_path = os.path.join(out_dir, "features.parquet")
    features.to_parquet(out_path, index=False)
    rows = len(features)
t1 = time.perf_counter()
r = resource.getrusage(resource.RUSAGE_SELF)
c = resource.getrusage(resource.RUSAGE_CHILDREN)
print(__MARK__ + json.dumps({
    "step_s": t1 - t0, "rows": rows, "out_path": out_path, "out_bytes": os.path.getsize(out_path),
    "maxrss_kib": r.ru_maxrss, "children_maxrss_kib": c.ru_maxrss,
    "cpu_s": r.ru_utime + r.ru_stime, "hashed_bytes": hashed[0], "hash_calls": hashed[1],
}))
""".replace("__MARK__", repr(MARK))


class BenchError(RuntimeError):
    pass


def parse_size(text: str) -> int:
    t = text.strip().upper().replace("_", "")
    mult = 1
    if t.endswith("M"):
        mult, t = 1_000_000, t[:-1]
    elif t.endswith("K"):
        mult, t = 1_000, t[:-1]
    return int(float(t) * mult)


def label(rows: int) -> str:
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return str(rows)


def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def base_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "OPENLINEAGE", "MLFLOW_", "FEATURIZE_SCALE_"))
        and k not in ("AIRFLOW_HOME", "PYTHONPATH")
    }


def ensure_data(cache: Path, rows: int) -> Path:
    path = cache / f"raw_{rows}x31.parquet"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    need = rows * 31 * 8 * 1.1 * 2  # the raw file, then one features file at a time (deleted after each run)
    free = shutil.disk_usage(cache).free
    if free < need:
        raise BenchError(f"{cache}: {free / 1e9:.1f} GB free, {need / 1e9:.1f} GB needed for {label(rows)} rows")
    progress(f"generating {label(rows)} rows x 31 columns into {path}")
    tmp = path.with_name(path.name + ".tmp")
    subprocess.run([sys.executable, "-c", GENERATE, str(tmp), str(rows), str(CHUNK_ROWS)], check=True, env=base_env())
    tmp.replace(path)
    return path


def raw_suite_for(rows: int, tmp: Path) -> Path:
    """The example's raw suite; above its row-count maximum, a copy with the maximum raised to ``rows``."""
    suite = json.loads((SUITES / "raw_suite.json").read_text())
    changed = False
    for e in suite["expectations"]:
        if e["type"] == "expect_table_row_count_to_be_between":
            high = e["kwargs"].get("max_value")
            if high is not None and high < rows:
                e["kwargs"]["max_value"] = rows
                changed = True
    if not changed:
        return SUITES / "raw_suite.json"
    out = tmp / f"raw_suite_{rows}.json"
    out.write_text(json.dumps(suite, indent=2))
    return out


def run_child(variant: str, raw: Path, raw_suite: Path, out_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    args = [variant, str(raw), str(raw_suite), str(SUITES / "features_suite.json"), str(out_dir)]
    cmd = [sys.executable, "-c", CHILD, *args, "1" if variant == "ours" else "0"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = [x for x in proc.stdout.splitlines() if x.startswith(MARK)]
    if proc.returncode or not lines:
        raise BenchError(
            f"{variant} failed (exit {proc.returncode}) on {raw.name}\n--- stdout ---\n{proc.stdout[-2000:]}"
            f"\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    res = json.loads(lines[-1][len(MARK) :])
    res["process_s"] = wall
    shutil.rmtree(out_dir, ignore_errors=True)  # 10M rows: 2.4 GB per output
    return res


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def bench_size(rows: int, rounds: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    raw = ensure_data(Path(args.cache), rows)
    suite = raw_suite_for(rows, tmp)
    env = base_env()
    env.update(
        {
            "AIRFLOW_HOME": str(tmp / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow' / 'mlflow.db'}",
            "AIRFLOW__ML_PROVIDER__MLFLOW_ARTIFACT_LOCATION": str(tmp / "mlflow" / "artifacts"),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "GIT_PYTHON_REFRESH": "quiet",
            "FEATURIZE_SCALE_USER_PATH": str(DAGS_EXAMPLES),
        }
    )
    (tmp / "mlflow").mkdir(exist_ok=True)
    (tmp / "airflow").mkdir(exist_ok=True)
    samples: dict[str, list[dict[str, Any]]] = {"ours": [], "plain": []}
    for variant in ("ours", "plain"):
        progress(f"{label(rows)}: warm-up {variant} (not timed)")
        run_child(variant, raw, suite, tmp / "out" / variant, env)
    load_start = os.getloadavg()
    for i in range(rounds):
        for variant in ("ours", "plain") if i % 2 == 0 else ("plain", "ours"):
            res = run_child(variant, raw, suite, tmp / "out" / variant, env)
            progress(
                f"{label(rows)} round {i + 1}/{rounds} {variant}: step {res['step_s']:.2f} s, process"
                f" {res['process_s']:.2f} s, peak {res['maxrss_kib'] / 2**20:.2f} GiB"
            )
            samples[variant].append(res)
    load_end = os.getloadavg()
    raw_bytes = raw.stat().st_size
    summary: dict[str, Any] = {
        "rows": rows,
        "raw_bytes": raw_bytes,
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in load_end],
    }
    for variant, rs in samples.items():
        summary[variant] = {
            "step_s": med([r["step_s"] for r in rs]),
            "process_s": med([r["process_s"] for r in rs]),
            "cpu_s": med([r["cpu_s"] for r in rs]),
            "peak_rss_bytes": med([r["maxrss_kib"] * 1024 for r in rs]),
            "out_bytes": rs[-1]["out_bytes"],
            "samples": rs,
        }
    o, p = summary["ours"], summary["plain"]
    target = TARGETS.get(rows)
    summary["ratio_step"] = o["step_s"] / p["step_s"]
    summary["ratio_process"] = o["process_s"] / p["process_s"]
    summary["ratio_memory"] = o["peak_rss_bytes"] / p["peak_rss_bytes"]
    summary["target_ratio"] = target
    hashed = med([r["hashed_bytes"] for r in samples["ours"]])
    summary["hashed_bytes"] = hashed
    summary["hash_calls"] = med([r["hash_calls"] for r in samples["ours"]])
    summary["hashed_over_in_plus_out"] = hashed / (raw_bytes + o["out_bytes"])
    summary["passed"] = (target is None or summary["ratio_step"] <= target) and summary["ratio_memory"] <= TARGET_MEMORY
    return summary


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    rounds = [int(x) for x in args.rounds.split(",")]
    if len(rounds) == 1:
        rounds = rounds * len(sizes)
    if len(rounds) != len(sizes):
        raise BenchError("--rounds takes one number, or one per size")
    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "sizes": [],
    }
    for rows, n in zip(sizes, rounds, strict=True):
        tmp = Path(tempfile.mkdtemp(prefix="featurize_scale_", dir=args.tmp))
        try:
            out["sizes"].append({"rounds": n, **bench_size(rows, n, args, tmp)})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    out["passed"] = all(s["passed"] for s in out["sizes"])
    return out


def print_human(r: dict[str, Any]) -> None:
    gib = 2**30
    print(f"Featurize at scale  {r['date']}  python {r['python']}  {r['cpus']} CPUs")
    print("  ours : FeaturizeOperator.execute() with the example's raw and features suites (GX), MLflow on SQLite")
    print("  plain: pandas read_parquet -> same expectations as pandas comparisons -> transform -> to_parquet")
    print("  step = after `import airflow.sdk` to the end of the work; process = start to exit; medians\n")
    for s in r["sizes"]:
        o, p = s["ours"], s["plain"]
        print(f"{label(s['rows'])} rows x 31 columns ({s['raw_bytes'] / 1e9:.2f} GB raw Parquet), {s['rounds']} rounds;"
              f" load average start {s['loadavg_start']}, end {s['loadavg_end']}")  # fmt: skip
        print(f"  {'':<6} {'step':>9} {'process':>9} {'cpu':>9} {'peak RSS':>10}")
        for n, v in (("ours", o), ("plain", p)):
            print(
                f"  {n:<6} {v['step_s']:8.2f}s {v['process_s']:8.2f}s {v['cpu_s']:8.2f}s"
                f" {v['peak_rss_bytes'] / gib:8.2f}GiB"
            )
        target = s["target_ratio"]
        t = f"target <= {target}" if target else "no target at this size"
        verdict = "PASS" if s["passed"] else "FAIL"
        print(
            f"  ratio ours/plain: step {s['ratio_step']:.2f} ({t}), process {s['ratio_process']:.2f},"
            f" peak memory {s['ratio_memory']:.2f} (target <= {TARGET_MEMORY})   {verdict}"
        )
        io = s["raw_bytes"] + o["out_bytes"]
        print(
            f"  hashed {s['hashed_bytes'] / 1e9:.2f} GB in {int(s['hash_calls'])} updates"
            f" for {s['raw_bytes'] / 1e9:.2f} GB in + {o['out_bytes'] / 1e9:.2f} GB out = {io / 1e9:.2f} GB:"
            f" {s['hashed_over_in_plus_out']:.2f}x"
            " (target 1.00x)\n"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1M,10M", help="row counts, comma-separated (default 1M,10M; 100k works)")
    parser.add_argument("--rounds", default="3", help="timed rounds per variant: one number or one per size")
    parser.add_argument("--cache", default="/tmp/featurize_scale_cache", help="where the generated raw files stay")
    parser.add_argument("--tmp", default=None, help="parent of the per-size temp dirs (MLflow store, outputs)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    try:
        result = benchmark(args)
    except BenchError as exc:
        print(f"featurize_scale: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print_human(result)
    return 1 if args.check and not result["passed"] else 0


if __name__ == "__main__":
    sys.exit(main())
