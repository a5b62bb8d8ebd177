"""The shadow comparison (pure): agreement, differences, the rows that disagree most, latency; the seeded
sample; the record types' strict JSON round trip; old predict records without a shadow still parse."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from airflow_ml_provider.monitoring.shadow import (
    ShadowBatch,
    ShadowComparison,
    ShadowSummary,
    compare_predictions,
    sample_rows,
)
from airflow_ml_provider.records.step_record import PredictResult

IDS = ["a", "b", "c", "d", "e"]
ROWS = [0, 2, 4, 6, 8]


def classification(**kwargs: Any) -> ShadowComparison:
    return compare_predictions(
        "classification", [1, 0, 1, 1, 0], [1, 1, 0, 1, 0], prediction_ids=IDS, row_indexes=ROWS, **kwargs
    )


def test_classification_agreement_and_the_most_different_rows_by_probability() -> None:
    found = classification(
        primary_probability=[0.9, 0.4, 0.6, 0.8, 0.1],
        shadow_probability=[0.8, 0.55, 0.2, 0.8, 0.1],
        primary_seconds=0.002,
        shadow_seconds=0.004,
    )
    assert found.rows == 5 and found.agreement == pytest.approx(0.6)
    assert found.abs_delta is None
    assert [(d.prediction_id, d.row_index, d.primary, d.shadow) for d in found.disagreements] == [
        ("c", 4, 1, 0),  # |0.6 - 0.2| = 0.4 first
        ("b", 2, 0, 1),  # |0.4 - 0.55| = 0.15
    ]
    assert found.disagreements[0].abs_delta == pytest.approx(0.4)
    assert found.probability_abs_delta is not None and found.probability_abs_delta.max == pytest.approx(0.4)
    assert found.primary_ms_per_1k_rows == pytest.approx(400.0) and found.shadow_ms_per_1k_rows == pytest.approx(800.0)
    assert found.latency_ratio == pytest.approx(2.0)
    assert "agreement 60.0% (2 of 5 rows differ)" in found.describe()


def test_classification_without_probabilities_names_the_disagreeing_rows_in_order() -> None:
    found = classification(top=1)
    assert found.probability_abs_delta is None and found.latency_ratio is None
    assert [d.prediction_id for d in found.disagreements] == ["b"] and found.disagreements[0].abs_delta is None
    assert "shadow.latency_ratio" not in found.metrics() and found.metrics()["shadow.agreement"] == pytest.approx(0.6)


def test_regression_distribution_of_absolute_differences() -> None:
    primary = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    shadow = np.array([1.5, 2.0, 1.0, 4.1, 5.0])
    found = compare_predictions("regression", primary, shadow, prediction_ids=IDS, row_indexes=ROWS)
    diff = np.abs(primary - shadow)
    assert found.agreement is None and found.abs_delta is not None
    assert found.abs_delta.mean == pytest.approx(diff.mean())
    assert found.abs_delta.p50 == pytest.approx(np.percentile(diff, 50))
    assert found.abs_delta.p95 == pytest.approx(np.percentile(diff, 95))
    assert found.abs_delta.max == pytest.approx(2.0)
    assert [d.prediction_id for d in found.disagreements] == ["c", "a", "d"], "largest first, equal rows left out"


def test_a_nan_prediction_makes_every_figure_nan_and_survives_strict_json() -> None:
    found = compare_predictions("regression", [1.0, math.nan], [1.0, 2.0], prediction_ids=IDS[:2], row_indexes=[0, 1])
    assert found.abs_delta is not None and math.isnan(found.abs_delta.mean)
    assert found.disagreements[0].prediction_id == "b", "a NaN row is the most different"
    again = ShadowComparison.from_dict(json.loads(json.dumps(found.to_dict(), allow_nan=False)))
    assert again.abs_delta is not None and math.isnan(again.abs_delta.max)
    assert "shadow.abs_delta.mean" not in found.metrics(), "MLflow gets finite figures only"


def test_no_rows_compares_nothing() -> None:
    found = compare_predictions("classification", [], [], prediction_ids=[], row_indexes=[], primary_seconds=0.0)
    assert (found.rows, found.agreement, found.disagreements, found.primary_ms_per_1k_rows) == (0, None, (), None)


@pytest.mark.parametrize(
    ("task", "shadow", "message"),
    [("ranking", [1, 0, 1, 1, 0], "task must be one of"), ("classification", [1, 0], "one entry per compared row")],
)
def test_caller_errors_are_refused(task: str, shadow: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compare_predictions(task, [1, 0, 1, 1, 0], shadow, prediction_ids=IDS, row_indexes=ROWS)


def test_the_sample_is_seeded_by_the_input_fingerprint() -> None:
    first = sample_rows("blake3:aa", 1000, 100)
    assert np.array_equal(first, sample_rows("blake3:aa", 1000, 100)), "a rerun samples the same rows"
    assert not np.array_equal(first, sample_rows("blake3:bb", 1000, 100))
    assert len(set(first.tolist())) == 100 and list(first) == sorted(first) and first.max() < 1000
    assert len(sample_rows("blake3:aa", 10, 50)) == 10 and len(sample_rows("blake3:aa", 10, 0)) == 0


def summary(**overrides: Any) -> ShadowSummary:
    values: dict[str, Any] = {
        "kind": "live",
        "status": "compared",
        "model_name": "clf",
        "primary_version": "1",
        "primary_fingerprint": "blake3:p",
        "shadow_uri": "models:/clf@challenger",
        "shadow_version": "2",
        "shadow_fingerprint": "blake3:s",
        "batches": (ShadowBatch("file:///b.parquet", "blake3:b", 50, classification()),),
        "comparison": classification(),
        "fraction": 0.1,
    }
    values.update(overrides)
    return ShadowSummary(**values)


def test_a_summary_round_trips_through_strict_json_and_refuses_unknown_keys() -> None:
    original = summary()
    data = json.loads(json.dumps(original.to_dict(), allow_nan=False))
    assert ShadowSummary.from_dict(data) == original
    assert original.input_fingerprints == ("blake3:b",)
    with pytest.raises(ValueError, match="unknown keys 'rows'"):
        ShadowSummary.from_dict({**data, "rows": 3})
    with pytest.raises(ValueError, match="status must be one of"):
        summary(status="ok")


def test_predict_results_without_a_shadow_parse_as_before_and_with_one_round_trip() -> None:
    old = {"rows": 10, "model_version": "3", "alias": "champion", "positive_class": 1}
    assert PredictResult.from_dict(old).shadow is None
    assert "shadow" not in PredictResult.from_dict(old).to_dict(), "records without a shadow keep their shape"
    shadowed = PredictResult(10, "1", "champion", 1, summary())
    assert PredictResult.from_dict(json.loads(json.dumps(shadowed.to_dict()))) == shadowed
