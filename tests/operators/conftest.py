"""Fixtures for the operator tests: one featurize + train of the example pipeline, shared by the
modules that need a registered model version (evaluate, simulate) so that training runs once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.operators._support import unique
from tests.support import DAGS, make_context

EXAMPLE = DAGS / "breast_cancer"
RAW_SUITE = EXAMPLE / "raw_suite.json"
FEATURES_SUITE = EXAMPLE / "features_suite.json"
SCENARIOS = EXAMPLE / "scenarios.yaml"
SHARED_DAG = "ops_shared"


@pytest.fixture(scope="session")
def client(mlflow_client: Any) -> Any:
    return mlflow_client


@pytest.fixture(scope="session")
def raw_frame(raw_data: Path) -> Any:
    """The example's raw data (scikit-learn's breast cancer set, 569 rows) as written by tests/conftest.py."""
    import pandas as pd

    return pd.read_parquet(raw_data)


@pytest.fixture(scope="session")
def featurized(raw_data: Path, client: Any) -> dict[str, Any]:
    """FeaturizeOperator's result for the example's raw data, with both expectation suites."""
    from airflow_ml_provider.operators.featurize import FeaturizeOperator
    from tests.example import transform

    op = FeaturizeOperator(
        task_id="featurize",
        raw_uri=str(raw_data),
        transform=transform,
        raw_suite=str(RAW_SUITE),
        features_suite=str(FEATURES_SUITE),
    )
    context = make_context(SHARED_DAG, "featurize")
    return {"context": context, "result": op.execute(context)}


@pytest.fixture(scope="session")
def trained(featurized: dict[str, Any], client: Any) -> dict[str, Any]:
    """One model version of the example's classifier, trained by TrainOperator on those features."""
    from airflow_ml_provider.operators.train import TrainOperator
    from tests.example import TARGET, train

    op = TrainOperator(
        task_id="train",
        features=featurized["result"],
        train=train,
        target_column=TARGET,
        registered_model_name=unique("ops_shared_model"),
    )
    context = make_context(SHARED_DAG, "train", run_id=featurized["context"]["ti"].run_id)
    return {"context": context, "result": op.execute(context), "operator": op}
