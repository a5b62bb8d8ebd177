"""Statistical quality and scale of drift detection (``airflow_ml_provider.monitoring``).

    .venv/bin/python benchmarks/drift.py [--batches 40] [--rows 500] [--seed 0]
                                         [--scale-rows 10000000] [--scale-columns 30] [--dir /tmp/drift-core]
                                         [--skip-scale]

"The training distribution" is the example's features: scikit-learn's breast cancer data through
``dags_examples.breast_cancer.pipeline.transform`` (569 rows, 30 float features; the label is
ignored, as a production batch has none). Each batch is ``--rows`` rows resampled with replacement
from it (``dags_examples.breast_cancer.data.sample_batch``), batch ``i`` with seed ``seed + i``:

1. false positives: unchanged batches; the fraction reported as drift (target <= 5%);
2. power: one feature (a different one per batch, in turn) shifted up by 0.5 of its standard
   deviation; the fraction reported as drift *naming that feature* (target >= 95%), and how often
   another feature was named too;
3. schema changes: a column dropped, a column added, a column turned to text; fraction flagged (100%);
4. scale: two Parquet files of ``--scale-rows`` x ``--scale-columns`` float64 columns (the batch with
   one shifted column) in ``--dir``; ``detect_drift_in_files`` runs in a child process, which reports
   its wall time and peak RSS (``VmHWM``), printed next to the size of one frame in memory. Needs
   about 2 x 2.3 GiB of disk at the default size (checked first: pass fewer ``--scale-rows`` if short).

Prints the figures; exits 0 whatever they are (it is a measurement, not a test).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airflow_ml_provider.monitoring import DriftPolicy, detect_drift

TARGET = "target"


def training_features() -> Any:
    from sklearn.datasets import load_breast_cancer

    from dags_examples.breast_cancer.pipeline import transform

    return transform(load_breast_cancer(as_frame=True).frame)


def quality(batches: int, rows: int, seed: int, policy: DriftPolicy) -> None:
    from dags_examples.breast_cancer.data import sample_batch

    reference = training_features()
    features = [c for c in reference.columns if c != TARGET]
    flagged, largest = 0, 0.0
    for i in range(batches):
        report = detect_drift(reference, sample_batch(reference, rows, seed=seed + i), policy)
        flagged += report.drifted
        largest = max(largest, max(f.statistic for f in report.features.values()))
    print(
        f"1. false positives: {flagged}/{batches} unchanged batches flagged ({flagged / batches:.1%}; target <= 5%); "
        f"largest PSI of any feature {largest:.3f} (threshold {policy.psi_threshold:g})"
    )

    named = also = 0
    smallest, weakest = float("inf"), 0.0
    missed: list[str] = []
    for i in range(batches):
        feature = features[i % len(features)]
        report = detect_drift(reference, sample_batch(reference, rows, shift=(feature, 0.5), seed=seed + i), policy)
        shifted = report.features[feature]
        smallest = min(smallest, shifted.statistic)
        weakest = max(weakest, shifted.adjusted_p_value or 0.0)
        if report.drifted and feature in report.drifted_features:
            named += 1
            also += len(report.drifted_features) > 1
        else:
            missed.append(f"{feature} ({report.features[feature].reason})")
    print(
        f"2. power: {named}/{batches} batches with a 0.5-sd shift flagged naming the shifted feature "
        f"({named / batches:.1%}; target >= 95%); {also} of them named another feature too; "
        f"shifted feature's smallest PSI {smallest:.3f}, largest Holm-adjusted p {weakest:.2g}"
    )
    for text in missed:
        print(f"   missed: {text}")

    changes = {
        "missing column": lambda b: b.drop(columns=[features[0]]),
        "new column": lambda b: b.assign(extra=1.0),
        "type change": lambda b: b.assign(**{features[1]: b[features[1]].map("{:.3f}".format)}),
    }
    total = hits = 0
    for name, change in changes.items():
        for i in range(batches):
            report = detect_drift(reference, change(sample_batch(reference, rows, seed=seed + i)), policy)
            total += 1
            hits += report.drifted and bool(report.schema_changes)
        print(f"   {name}: e.g. {report.schema_changes}")
    print(f"3. schema changes: {hits}/{total} flagged ({hits / total:.1%}; target 100%)")


_CHILD = """
import json, sys, time
from airflow_ml_provider.monitoring import detect_drift_in_files
start = time.perf_counter()
report = detect_drift_in_files(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
seconds = time.perf_counter() - start
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "peak_kib": hwm, "drifted": report.drifted_features}))
"""


def scale(rows: int, columns: int, directory: Path, seed: int, policy: DriftPolicy) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    need = 2 * rows * columns * 8 * 1.05
    free = shutil.disk_usage(directory).free
    if free < need * 1.2:
        print(f"4. scale: skipped, {free / 2**30:.1f} GiB free in {directory}, {need / 2**30:.1f} GiB needed")
        return
    frame_bytes = rows * columns * 8
    paths = {}
    start = time.perf_counter()
    for role, shift in (("reference", 0.0), ("current", 0.5)):
        rng = np.random.default_rng(seed + (role == "current"))
        path = directory / f"{role}-{rows}x{columns}.parquet"
        names = [f"f{j:02d}" for j in range(columns)]
        schema = pa.schema([(n, pa.float64()) for n in names])
        with pq.ParquetWriter(path, schema) as writer:  # a row group at a time: the generator stays small
            step = 1_000_000
            for first in range(0, rows, step):
                n = min(step, rows - first)
                block = {name: rng.standard_normal(n) for name in names}
                block["f00"] += shift
                writer.write_table(pa.table(block, schema=schema))
        paths[role] = path
    print(
        f"4. scale: wrote 2 x {rows:,} rows x {columns} float64 columns in {time.perf_counter() - start:.0f} s "
        f"({sum(p.stat().st_size for p in paths.values()) / 2**30:.2f} GiB on disk)"
    )
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(paths["reference"]), str(paths["current"]), json.dumps(policy.to_dict())],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    result = json.loads(out.stdout)
    peak = result["peak_kib"] * 1024
    print(
        f"   detect_drift_in_files: {result['seconds']:.1f} s wall, peak RSS {peak / 2**30:.2f} GiB; one frame "
        f"in memory {frame_bytes / 2**30:.2f} GiB -> peak / frame = {peak / frame_bytes:.2f} (target <= 2); "
        f"drifted: {result['drifted']}"
    )
    for path in paths.values():
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(prog="benchmarks/drift.py")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale-rows", type=int, default=10_000_000)
    parser.add_argument("--scale-columns", type=int, default=30)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/drift-core"))
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--policy", type=json.loads, default={}, help="DriftPolicy fields as JSON")
    args = parser.parse_args()
    policy = DriftPolicy.from_dict({"ignore": [TARGET], **args.policy})
    print(f"policy: {policy.to_dict()}")
    quality(args.batches, args.rows, args.seed, policy)
    if not args.skip_scale:
        scale(args.scale_rows, args.scale_columns, args.dir, args.seed, DriftPolicy.from_dict(args.policy))


if __name__ == "__main__":
    main()
