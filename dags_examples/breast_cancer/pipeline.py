"""The example's ML code: plain functions that know nothing about Airflow or MLflow.

The operators own I/O, tracking, fingerprints and lineage; these functions own the ML.
Heavy imports stay inside the functions so the DAG file parses fast.
"""

from __future__ import annotations

import re
from typing import Any

TARGET = "target"


def snake_case(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def transform(raw: Any, clip_quantile: float = 0.995) -> Any:
    """Feature names in snake_case, extreme values clipped to the given upper quantile."""
    features = raw.rename(columns=snake_case)
    numeric = [c for c in features.columns if c != TARGET]
    upper = features[numeric].quantile(clip_quantile)
    features[numeric] = features[numeric].clip(upper=upper, axis=1)
    features[TARGET] = features[TARGET].astype("int64")
    return features


def train(df: Any, C: float = 1.0, max_iter: int = 1000, seed: int = 0) -> Any:
    """Standardised logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = df.drop(columns=[TARGET]), df[TARGET]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))
    return model.fit(x, y)
