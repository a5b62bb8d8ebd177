"""The example's raw data: scikit-learn's bundled breast cancer data set, written as Parquet.

Run ``python -m dags_examples.breast_cancer.data OUT.parquet`` (``make demo`` does) to create it.
The target is 0 = malignant, 1 = benign, as scikit-learn ships it.
"""

from __future__ import annotations

import sys
from pathlib import Path


def write_raw_dataset(path: str | Path) -> Path:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(out)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m dags_examples.breast_cancer.data OUT.parquet")
    print(write_raw_dataset(sys.argv[1]))
