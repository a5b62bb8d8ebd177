"""The example's raw data: scikit-learn's bundled breast cancer data set, written as Parquet.

``python -m dags_examples.breast_cancer.data OUT.parquet`` (``make demo`` does) writes the data set;
``python -m dags_examples.breast_cancer.data OUT.parquet --batch-of RAW.parquet [--shift "mean radius=0.5"]``
writes a production-like batch: rows resampled from RAW, optionally with one column's mean shifted by a
number of its standard deviations (what the monitoring example and the demo detect as drift).
The target is 0 = malignant, 1 = benign, as scikit-learn ships it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _write(frame: Any, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(out)
    return out


def write_raw_dataset(path: str | Path) -> Path:
    from sklearn.datasets import load_breast_cancer

    return _write(load_breast_cancer(as_frame=True).frame, path)


def sample_batch(raw: Any, rows: int = 500, shift: tuple[str, float] | None = None, seed: int = 0) -> Any:
    """``rows`` rows drawn with replacement from ``raw``; with ``shift=(column, k)``, that column's values
    moved up by ``k`` of its standard deviations."""
    batch = raw.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)
    if shift is not None:
        column, k = shift
        batch[column] = batch[column] + k * float(raw[column].std())
    return batch


def write_batch(
    raw_path: str | Path, path: str | Path, rows: int = 500, shift: tuple[str, float] | None = None, seed: int = 0
) -> Path:
    import pandas as pd

    return _write(sample_batch(pd.read_parquet(raw_path), rows, shift, seed), path)


def _shift(text: str) -> tuple[str, float]:
    column, _, k = text.rpartition("=")
    if not column:
        raise argparse.ArgumentTypeError(f"--shift takes COLUMN=STANDARD_DEVIATIONS, got {text!r}")
    return column, float(k)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m dags_examples.breast_cancer.data")
    parser.add_argument("out")
    parser.add_argument("--batch-of", help="write a batch resampled from this raw file instead of the data set")
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--shift", type=_shift, help='e.g. "mean radius=0.5"')
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.batch_of:
        print(write_batch(args.batch_of, args.out, args.rows, args.shift, args.seed))
    else:
        print(write_raw_dataset(args.out))
