"""Training code in a helper module inside the DAGs folder: its identity is ``ml_steps/pipeline.py:train``."""

from __future__ import annotations

from typing import Any

TARGET = "target"


def train(df: Any, C: float = 1.0, seed: int = 0) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = df.drop(columns=[TARGET]), df[TARGET]
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000, random_state=seed)).fit(x, y)
