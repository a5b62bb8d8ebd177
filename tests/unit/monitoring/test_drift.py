"""detect_drift on the example's real data (scikit-learn's breast cancer set, through the example's transform):
no drift on resamples, a shifted feature detected and named, categorical shifts, schema changes, not enough
data, the policy's validation, the JSON round trip, and the column-by-column file path."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.monitoring import DriftPolicy, DriftReport, detect_drift, detect_drift_in_files
from airflow_ml_provider.monitoring.drift import holm, population_stability_index
from tests.example import example_module

POLICY = {"ignore": ["target"]}


@pytest.fixture(scope="module")
def raw() -> Any:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame


@pytest.fixture(scope="module")
def reference(raw: Any) -> Any:
    return example_module("pipeline").transform(raw.copy())


def batch(raw: Any, seed: int, shift: tuple[str, float] | None = None, rows: int = 500) -> Any:
    data, pipeline = example_module("data"), example_module("pipeline")
    return pipeline.transform(data.sample_batch(raw, rows, shift, seed))


def test_resamples_of_the_training_data_show_no_drift(raw: Any, reference: Any) -> None:
    reports = [detect_drift(reference, batch(raw, seed), POLICY) for seed in range(10)]
    assert [r.status for r in reports] == ["no_drift"] * 10
    assert all(len(r.features) == 30 and "target" not in r.features for r in reports)


def test_a_half_standard_deviation_shift_of_one_feature_is_detected_and_named(raw: Any, reference: Any) -> None:
    report = detect_drift(reference, batch(raw, 3, ("mean texture", 0.5)), POLICY)
    assert report.drifted and report.drifted_features == ["mean_texture"]
    feature = report.features["mean_texture"]
    assert feature.kind == "numeric" and feature.method == "psi+ks"
    assert feature.statistic >= feature.threshold and feature.adjusted_p_value < 0.05
    assert feature.adjusted_p_value >= feature.p_value, "Holm never lowers a p-value"
    assert "Holm-adjusted" in feature.reason
    assert "drift in mean_texture of 30 features" in report.summary()


def test_a_categorical_shift_is_detected_by_chi_square_and_js(reference: Any) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"plan": rng.choice(["free", "pro", "team"], 2000, p=[0.6, 0.3, 0.1])})
    same = pd.DataFrame({"plan": rng.choice(["free", "pro", "team"], 500, p=[0.6, 0.3, 0.1])})
    moved = pd.DataFrame({"plan": rng.choice(["free", "pro", "team", "new"], 500, p=[0.3, 0.3, 0.1, 0.3])})
    assert detect_drift(ref, same).status == "no_drift"
    report = detect_drift(ref, moved)
    assert report.drifted_features == ["plan"]
    assert report.features["plan"].method == "chi2+js" and report.features["plan"].kind == "categorical"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda f: f.drop(columns=["mean_area"]), "column 'mean_area' is missing"),
        (lambda f: f.assign(new_feature=1.0), "new column 'new_feature'"),
        (
            lambda f: f.assign(mean_area=f["mean_area"].map("{:.2f}".format).astype("object")),
            "column 'mean_area' changed type float64 -> object",
        ),
    ],
)
def test_schema_changes_are_always_drift_even_on_a_few_rows(reference: Any, change: Any, expected: str) -> None:
    report = detect_drift(reference, change(reference.head(5)), POLICY)
    assert report.status == "drift" and report.schema_changes == (expected,)
    [name] = report.drifted_features
    assert report.features[name].kind == "schema" and math.isinf(report.features[name].statistic)


def test_fewer_rows_than_min_rows_is_not_enough_data_never_no_drift(raw: Any, reference: Any) -> None:
    report = detect_drift(reference, batch(raw, 1, rows=99), POLICY)
    assert report.status == "not_enough_data" and not report.drifted and not report.enough_data
    assert report.features == {}
    assert "at least 100" in report.summary()
    assert detect_drift(reference, batch(raw, 1, rows=99), {**POLICY, "min_rows": 50}).status == "no_drift"


def test_features_and_ignore_choose_what_is_compared(raw: Any, reference: Any) -> None:
    shifted = batch(raw, 4, ("mean texture", 1.0))
    only = detect_drift(reference, shifted, {"features": ["mean_radius", "worst_area"]})
    assert set(only.features) == {"mean_radius", "worst_area"} and only.status == "no_drift"
    ignored = detect_drift(reference, shifted, {"ignore": ["target", "mean_texture"]})
    assert "mean_texture" not in ignored.features and ignored.status == "no_drift"
    with pytest.raises(ValueError, match="'nope', which the reference does not have"):
        detect_drift(reference, shifted, {"features": ["nope"]})


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"alpha": 0}, "alpha must be between 0 and 1"),
        ({"psi_threshold": "0.1"}, "without quotes"),
        ({"js_threshold": 2}, "at most 1"),
        ({"min_rows": 0}, "min_rows must be >= 1"),
        ({"bins": 1}, "bins must be >= 2"),
        ({"features": []}, "features is empty"),
        ({"features": ["a"], "ignore": ["a"]}, "both features and ignore"),
        ({"treshold": 0.1}, "unknown keys 'treshold'"),
    ],
)
def test_a_wrong_policy_is_refused_with_what_to_fix(policy: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DriftPolicy.from_dict(policy)


def test_the_report_round_trips_through_strict_json(raw: Any, reference: Any) -> None:
    report = detect_drift(reference, batch(raw, 5, ("mean radius", 0.7)).drop(columns=["worst_area"]), POLICY)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert DriftReport.from_dict(data) == report
    with pytest.raises(ValueError, match="unknown keys"):
        DriftReport.from_dict({**data, "extra": 1})


def test_psi_and_holm_on_known_inputs() -> None:
    import numpy as np

    values = np.arange(1000, dtype="float64")
    assert population_stability_index(values, values, 10) == pytest.approx(0.0, abs=1e-12)
    assert population_stability_index(values, values + 500, 10) > 1.0
    with_missing = np.where(values < 200, np.nan, values)
    assert population_stability_index(values, with_missing, 10) > 0.2, "a rise of missing values is a shift"
    constant = np.ones(100)
    assert population_stability_index(constant, constant, 10) == pytest.approx(0.0, abs=1e-12)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_the_files_are_compared_column_by_column_with_the_same_report(raw: Any, reference: Any, tmp_path: Path) -> None:
    current = batch(raw, 6, ("worst radius", 0.5))
    reference.to_parquet(tmp_path / "reference.parquet")
    current.to_parquet(tmp_path / "current.parquet")
    on_files = detect_drift_in_files(str(tmp_path / "reference.parquet"), str(tmp_path / "current.parquet"), POLICY)
    assert on_files == detect_drift(reference, current, POLICY)
    assert on_files.drifted_features == ["worst_radius"]


def test_significance_alone_is_not_drift(raw: Any, reference: Any) -> None:
    """A small shift on a big batch is significant, but under the effect-size threshold: not drift."""
    big = batch(raw, 7, ("mean radius", 0.2), rows=20_000)
    radius = detect_drift(reference, big, {"features": ["mean_radius"]}).features["mean_radius"]
    assert radius.adjusted_p_value is not None and radius.adjusted_p_value < 0.05
    assert radius.statistic < radius.threshold and not radius.drifted and " but " in radius.reason


def test_constant_columns_small_integer_codes_and_missing_values() -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 1000
    ref = pd.DataFrame({"constant": np.ones(n), "code": rng.integers(0, 3, n), "gappy": rng.normal(size=n)})
    same = ref.sample(frac=1.0, random_state=1).reset_index(drop=True)
    report = detect_drift(ref, same)
    assert report.status == "no_drift", report.to_dict()
    assert report.features["code"].method == "psi+chi2", "three values: chi-square on the counts, not KS on ties"
    moved = same.assign(constant=2.0, code=rng.choice([0, 1, 2], n, p=[0.6, 0.2, 0.2]))
    moved.loc[: n // 2 - 1, "gappy"] = np.nan  # half the values missing, the rest from the same distribution
    report = detect_drift(ref, moved)
    assert report.drifted_features == ["constant", "code", "gappy"], report.to_dict()
    gappy = report.features["gappy"]
    assert gappy.method == "psi+ks+missing" and (gappy.reference_missing, gappy.current_missing) == (0, n // 2)
    assert math.isfinite(gappy.statistic), "an emptied bin is smoothed, not infinite"


def test_a_csv_side_is_read_whole_with_the_same_report(raw: Any, reference: Any, tmp_path: Path) -> None:
    current = batch(raw, 8, ("mean radius", 0.5))
    reference.to_parquet(tmp_path / "reference.parquet")
    current.to_csv(tmp_path / "current.csv", index=False)
    on_files = detect_drift_in_files((tmp_path / "reference.parquet").as_uri(), str(tmp_path / "current.csv"), POLICY)
    assert on_files == detect_drift(reference, current, POLICY)


def test_importing_the_package_imports_no_statistics_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import airflow_ml_provider.monitoring; "
        "print(sorted(m for m in ('pandas', 'numpy', 'scipy', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
