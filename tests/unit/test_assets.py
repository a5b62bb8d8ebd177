"""The assets' identities: stable, left as written by Airflow, and the steps' alias outlets."""

from __future__ import annotations

import subprocess
import sys

import pytest
from airflow.sdk import Asset, AssetAlias

from airflow_ml_provider.assets import (
    FEATURES_ALIAS,
    MODEL_VERSIONS_ALIAS,
    PROMOTIONS_ALIAS,
    champion_asset,
    emit,
    features_asset,
    model_asset,
)


def test_uris_and_names_are_stable() -> None:
    assert champion_asset("breast_cancer_classifier") == Asset(
        name="ml-model:breast_cancer_classifier@champion",
        uri="x-airflow-ml://model/breast_cancer_classifier/alias/champion",
    )
    assert champion_asset("m", "challenger").uri == "x-airflow-ml://model/m/alias/challenger"
    assert model_asset("m") == Asset(name="ml-model:m", uri="x-airflow-ml://model/m")
    assert features_asset("retrain", "featurize") == Asset(
        name="ml-features:retrain.featurize", uri="x-airflow-ml://features/retrain/featurize"
    )


def test_parts_are_percent_encoded_so_a_name_cannot_change_the_uri_shape() -> None:
    asset = champion_asset("team/model:v2?x=1#y", "champion")
    assert asset.uri == "x-airflow-ml://model/team%2Fmodel%3Av2%3Fx%3D1%23y/alias/champion"
    assert champion_asset("a/alias/b") != champion_asset("a", "b")


@pytest.mark.parametrize("bad", ["", "  "])
def test_an_empty_name_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="model_name must be a non-empty string"):
        champion_asset(bad)
    with pytest.raises(ValueError, match="alias must be a non-empty string"):
        champion_asset("m", bad)


def test_each_step_declares_its_alias_outlet() -> None:
    from airflow_ml_provider.operators.featurize import FeaturizeOperator
    from airflow_ml_provider.operators.promote import PromoteModelOperator
    from airflow_ml_provider.operators.train import TrainOperator

    def fn(df: object) -> object:
        return df

    user_outlet = Asset("s3://bucket/elsewhere")
    featurize = FeaturizeOperator(task_id="f", raw_uri="/x.parquet", transform=fn, outlets=[user_outlet])
    train = TrainOperator(task_id="t", features="/f.parquet", train=fn, target_column="y", registered_model_name="m")
    promote = PromoteModelOperator(task_id="p", model="models:/m/1")
    assert featurize.outlets == [user_outlet, FEATURES_ALIAS], "the user's outlets are kept"
    assert train.outlets == [MODEL_VERSIONS_ALIAS]
    assert promote.outlets == [PROMOTIONS_ALIAS]
    assert all(isinstance(a, AssetAlias) for a in (FEATURES_ALIAS, MODEL_VERSIONS_ALIAS, PROMOTIONS_ALIAS))


def test_emit_adds_the_asset_to_the_alias_and_is_a_no_op_outside_a_task_run() -> None:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    events = OutletEventAccessors()
    assert emit({"outlet_events": events}, PROMOTIONS_ALIAS, champion_asset("m"), {"version": "2", "previous": "1"})
    [added] = events[PROMOTIONS_ALIAS].asset_alias_events
    assert added.dest_asset_key.uri == "x-airflow-ml://model/m/alias/champion"
    assert added.extra == {"version": "2", "previous": "1"}
    assert emit({}, PROMOTIONS_ALIAS, champion_asset("m"), {}) is False


def test_importing_the_assets_module_is_light() -> None:
    code = (
        "import sys, airflow_ml_provider.assets\n"
        "heavy = ('mlflow', 'great_expectations', 'pandas', 'pyarrow', 'sklearn', 'numpy', 'openlineage.client')\n"
        "print(','.join(h for h in heavy if h in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
