"""Tests for must-pass scenario files (parsing) and the scenario runner.

The runner is exercised with a real scikit-learn model, plus small plain-Python predict functions
for the edge cases a real model does not produce on demand (raising, wrong length, NaN, odd types).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from airflow_ml_provider.scenarios import (
    MAX_RECORDED_PREDICTIONS,
    Equals,
    MinAccuracy,
    OneOf,
    Scenario,
    ScenarioFileError,
    ScenarioResult,
    ScenarioRunReport,
    ScenarioSuite,
    Within,
    load_scenarios,
    parse_scenarios,
    run_scenarios,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FEATURES = ["mean radius", "mean texture"]


# --------------------------------------------------------------------------------------------------
# helpers and fixtures
# --------------------------------------------------------------------------------------------------


def write(tmp_path: Path, doc: Any, fmt: str = "yaml", name: str = "scenarios") -> Path:
    """Write a python document as YAML or JSON; the suffix picks the parser."""
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "json":
        path.write_text(json.dumps(doc), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def suite_of(*scenarios: dict[str, Any]) -> ScenarioSuite:
    """Build a suite in memory through the same validation as files."""
    return ScenarioSuite(
        path="inline.yaml", scenarios=parse_scenarios({"scenarios": list(scenarios)}), fingerprint="0" * 64
    )


def constant(value: Any) -> Callable[[pd.DataFrame], list[Any]]:
    """A predict that answers ``value`` for every row."""
    return lambda frame: [value] * len(frame)


def scenario(name: str = "s", rows: int = 3, **expect: Any) -> dict[str, Any]:
    """A minimal valid scenario dict with ``rows`` rows."""
    return {"name": name, "rows": [{"x": i} for i in range(rows)], "expect": expect}


@pytest.fixture(scope="module")
def model() -> Any:
    """A real classifier: benign (1) when the radius is below 15, malignant (0) otherwise."""
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    radius = rng.uniform(5, 25, 200)
    texture = rng.uniform(10, 30, 200)
    frame = pd.DataFrame({"mean radius": radius, "mean texture": texture})
    labels = (radius < 15).astype(int)
    return DecisionTreeClassifier(random_state=0).fit(frame, labels)


MODEL_SUITE = """\
scenarios:
  - name: typical_benign
    description: small, smooth tumours are benign
    rows:
      # keys in a different order than training, plus a column the model never saw
      - {mean texture: 14.0, mean radius: 9.0, patient_id: p1}
      - {mean texture: 20.0, mean radius: 11.0, patient_id: p2}
      - {mean texture: 25.0, mean radius: 12.5, patient_id: p3}
    expect:
      equals: 1
  - name: typical_malignant
    rows:
      - {mean radius: 21.0, mean texture: 22.0}
      - {mean radius: 23.5, mean texture: 15.0}
    expect:
      one_of: [0]
  - name: mixed_labelled
    rows:
      - {mean radius: 8.0, mean texture: 12.0}
      - {mean radius: 22.0, mean texture: 18.0}
      - {mean radius: 10.0, mean texture: 28.0}
      - {mean radius: 19.0, mean texture: 11.0}
    expect:
      min_accuracy: 0.9
    labels: [1, 0, 1, 0]
"""


# --------------------------------------------------------------------------------------------------
# loading: good files
# --------------------------------------------------------------------------------------------------


def test_load_yaml_builds_typed_scenarios(tmp_path: Path) -> None:
    path = tmp_path / "scenarios.yaml"
    path.write_text(MODEL_SUITE, encoding="utf-8")
    suite = load_scenarios(path)

    assert suite.path == str(path)
    assert suite.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()
    assert suite.names == ("typical_benign", "typical_malignant", "mixed_labelled")
    first, second, third = suite.scenarios
    assert first.description == "small, smooth tumours are benign"
    assert first.rows[0] == {"mean texture": 14.0, "mean radius": 9.0, "patient_id": "p1"}
    assert first.expectation == Equals(1)
    assert first.labels is None
    assert second.description == ""
    assert second.expectation == OneOf((0,))
    assert third.expectation == MinAccuracy(0.9)
    assert third.labels == (1, 0, 1, 0)
    assert isinstance(first.rows, tuple)


def test_load_json_and_yml_suffixes(tmp_path: Path) -> None:
    doc = {
        "scenarios": [
            {"name": "probability", "rows": [{"x": 1}], "expect": {"within": {"min": 0, "max": 1}}},
            {"name": "upper_only", "rows": [{"x": 1}], "expect": {"within": {"max": 0.5}}},
        ]
    }
    from_json = load_scenarios(write(tmp_path, doc, "json"))
    from_yml = load_scenarios(write(tmp_path, doc, "yml"))
    assert from_json.scenarios == from_yml.scenarios
    assert from_json.scenarios[0].expectation == Within(min=0.0, max=1.0)
    assert from_json.scenarios[1].expectation == Within(min=None, max=0.5)
    assert from_json.fingerprint != from_yml.fingerprint  # different bytes, different fingerprint


def test_yaml_merge_keys_may_override_a_base_row(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text(
        "scenarios:\n"
        "  - name: vary_radius\n"
        "    rows:\n"
        "      - &base {mean radius: 10.0, mean texture: 15.0}\n"
        "      - {<<: *base, mean radius: 11.0}\n"
        "    expect: {equals: 1}\n",
        encoding="utf-8",
    )
    rows = load_scenarios(path).scenarios[0].rows
    assert rows[1] == {"mean radius": 11.0, "mean texture": 15.0}


def test_suffix_is_case_insensitive(tmp_path: Path) -> None:
    path = tmp_path / "S.JSON"
    path.write_text(json.dumps({"scenarios": [scenario(equals=1)]}), encoding="utf-8")
    assert load_scenarios(path).names == ("s",)


# --------------------------------------------------------------------------------------------------
# loading: malformed files (each checked as YAML and as JSON)
# --------------------------------------------------------------------------------------------------

S = "scenario #1 ('s')"
KINDS = "equals, one_of, within, min_accuracy"


def one(drop: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
    """A document with one scenario: a valid base with ``fields`` replaced and ``drop`` removed."""
    entry = {"name": "s", "rows": [{"x": 0}, {"x": 1}, {"x": 2}], "expect": {"equals": 1}, **fields}
    return {"scenarios": [{k: v for k, v in entry.items() if k not in drop}]}


def accuracy(threshold: Any, labels: Any = (0, 1, 0)) -> dict[str, Any]:
    """A min_accuracy scenario document (labels given as a list when not None)."""
    extra = {} if labels is None else {"labels": list(labels) if isinstance(labels, tuple) else labels}
    return one(expect={"min_accuracy": threshold}, **extra)


MALFORMED: list[tuple[str, Any, str]] = [
    ("top level is a list", [scenario(equals=1)], "top level must be a mapping"),
    ("top level is a string", "hello", "non-empty 'scenarios' list; got a string"),
    ("unknown top-level key", {"tests": []}, "unknown top-level key(s) ['tests']"),
    ("scenarios key absent", {}, "non-empty 'scenarios' list; it is missing"),
    ("scenarios empty", {"scenarios": []}, "'scenarios' must be a non-empty list; got an empty list"),
    ("scenarios not a list", {"scenarios": {"a": 1}}, "'scenarios' must be a non-empty list; got a mapping"),
    ("scenario not a mapping", {"scenarios": ["typical"]}, "scenario #1: must be a mapping; got a string"),
    ("name missing", one(drop=("name",)), "scenario #1: 'name' is required"),
    ("name empty", one(name="  "), "scenario #1: 'name' must be a non-empty string"),
    ("name not a string", one(name=3), "scenario #1: 'name' must be a non-empty string; got a number"),
    (
        "duplicate name",
        {"scenarios": [scenario("a", equals=1), scenario("b", equals=1), scenario("a", equals=0)]},
        "scenario #3 ('a'): duplicate name 'a' (already used by scenario #1)",
    ),
    ("unknown scenario key", one(expected=1), f"{S}: unknown key(s) ['expected']"),
    ("description not a string", one(description=["x"]), f"{S}: 'description' must be a string"),
    ("rows missing", one(drop=("rows",)), f"{S}: 'rows' is required"),
    ("rows empty", one(rows=[]), f"{S}: 'rows' must be a non-empty list of mappings; got an empty list"),
    (
        "rows not a list",
        one(rows={"x": 1}),
        f"{S}: 'rows' must be a non-empty list of mappings; got a mapping",
    ),
    ("row not a mapping", one(rows=[{"x": 1}, [1, 2]]), f"{S}: row #2 must be a mapping column -> value"),
    ("row empty mapping", one(rows=[{}]), f"{S}: row #1 is an empty mapping"),
    ("row value nested", one(rows=[{"x": [1, 2]}]), f"{S}: row #1, column 'x': value must be"),
    ("expect missing", one(drop=("expect",)), f"{S}: 'expect' is required"),
    ("expect not a mapping", one(expect=1), f"{S}: 'expect' must be a mapping"),
    ("expect empty", one(expect={}), f"{S}: 'expect' must have exactly one of {KINDS}; got []"),
    ("expect unknown kind", one(expect={"equal": 1}), f"{S}: 'expect' has unknown kind(s) ['equal']"),
    (
        "expect two kinds",
        {"scenarios": [scenario("ok", equals=1), scenario("edge_case", equals=1, within={"min": 0})]},
        f"scenario #2 ('edge_case'): 'expect' must have exactly one of {KINDS}; got ['equals', 'within']",
    ),
    (
        "equals null",
        one(expect={"equals": None}),
        f"{S}: 'expect.equals' must be a string, number or boolean",
    ),
    (
        "equals a list",
        one(expect={"equals": [1]}),
        f"{S}: 'expect.equals' must be a string, number or boolean",
    ),
    ("one_of not a list", one(expect={"one_of": 1}), f"{S}: 'expect.one_of' must be a non-empty list; got 1"),
    ("one_of a mapping", one(expect={"one_of": {"a": 1}}), f"{S}: 'expect.one_of' must be a non-empty list"),
    (
        "one_of empty",
        one(expect={"one_of": []}),
        f"{S}: 'expect.one_of' must be a non-empty list; got an empty",
    ),
    ("one_of with null", one(expect={"one_of": [0, None]}), f"{S}: 'expect.one_of' item #2"),
    (
        "within no bounds",
        one(expect={"within": {}}),
        f"{S}: 'expect.within' needs at least one of 'min' or 'max'",
    ),
    ("within null bound", one(expect={"within": {"min": None}}), f"{S}: 'expect.within' needs at least one"),
    (
        "within min > max",
        one(expect={"within": {"min": 1, "max": 0}}),
        f"{S}: 'expect.within' has min 1.0 > max 0.0",
    ),
    (
        "within unknown key",
        one(expect={"within": {"low": 0}}),
        f"{S}: 'expect.within' has unknown key(s) ['low']",
    ),
    (
        "within not numeric",
        one(expect={"within": {"min": "0"}}),
        f"{S}: 'expect.within.min' must be a finite number",
    ),
    (
        "within boolean bound",
        one(expect={"within": {"max": True}}),
        f"{S}: 'expect.within.max' must be a finite",
    ),
    ("within not a mapping", one(expect={"within": [0, 1]}), f"{S}: 'expect.within' must be a mapping"),
    ("min_accuracy above 1", accuracy(1.5), f"{S}: 'expect.min_accuracy' must be between 0 and 1; got 1.5"),
    ("min_accuracy below 0", accuracy(-0.1), f"{S}: 'expect.min_accuracy' must be between 0 and 1; got -0.1"),
    (
        "min_accuracy a string",
        accuracy("90%"),
        f"{S}: 'expect.min_accuracy' must be a number between 0 and 1",
    ),
    (
        "min_accuracy a boolean",
        accuracy(True),
        f"{S}: 'expect.min_accuracy' must be a number between 0 and 1",
    ),
    ("labels missing", accuracy(0.9, labels=None), f"{S}: 'labels' is required with min_accuracy"),
    ("labels wrong length", accuracy(0.9, labels=(1, 0)), f"{S}: 'labels' has 2 item(s) but 'rows' has 3"),
    ("labels not a list", accuracy(0.9, labels=1), f"{S}: 'labels' must be a list"),
    ("label null", accuracy(0.9, labels=(1, None, 0)), f"{S}: label #2 must be a string, number or boolean"),
    (
        "labels without min_accuracy",
        one(labels=[1, 1, 1]),
        f"{S}: 'labels' is only allowed with 'expect: min_accuracy'",
    ),
]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize(("doc", "message"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_documents_name_file_and_place(tmp_path: Path, fmt: str, doc: Any, message: str) -> None:
    path = write(tmp_path, doc, fmt)
    with pytest.raises(ScenarioFileError) as caught:
        load_scenarios(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: "), text
    assert message in text, text
    assert isinstance(caught.value, ValueError)
    assert caught.value.path == str(path)


def test_error_message_matches_documented_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = {"scenarios": [scenario("ok", equals=1), scenario("edge_case", equals=1, within={"min": 0})]}
    (tmp_path / "scenarios.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScenarioFileError) as caught:
        load_scenarios("scenarios.yaml")
    assert str(caught.value) == (
        "scenarios.yaml: scenario #2 ('edge_case'): 'expect' must have exactly one of equals, one_of, "
        "within, min_accuracy; got ['equals', 'within']"
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ScenarioFileError, match="file not found") as caught:
        load_scenarios(path)
    assert str(caught.value).startswith(str(path))


def test_directory_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    with pytest.raises(ScenarioFileError, match="is a directory"):
        load_scenarios(folder)


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "scenarios.toml"
    path.write_text("x = 1", encoding="utf-8")
    with pytest.raises(ScenarioFileError, match=r"unsupported file suffix '\.toml'"):
        load_scenarios(path)


def test_unparseable_yaml_includes_parser_message_and_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("scenarios:\n  - name: a\n   rows: [\n", encoding="utf-8")
    with pytest.raises(ScenarioFileError) as caught:
        load_scenarios(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: invalid YAML at line 3, column 4: ")
    assert "expected <block end>" in text


def test_unparseable_json_includes_parser_message_and_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"scenarios": [\n  {"name": "a",}\n]}', encoding="utf-8")
    with pytest.raises(ScenarioFileError) as caught:
        load_scenarios(path)
    assert str(caught.value) == (
        f"{path}: invalid JSON at line 2, column 16: Expecting property name enclosed in double quotes"
    )


def test_empty_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    with pytest.raises(ScenarioFileError, match="got an empty document"):
        load_scenarios(path)


def test_duplicate_yaml_key_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(
        "scenarios:\n  - name: a\n    rows: [{x: 1}]\n    expect: {equals: 1}\n    expect: {equals: 0}\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioFileError, match="invalid YAML at line 5, column 5: .*duplicate key 'expect'"):
        load_scenarios(path)


def test_duplicate_json_key_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text(
        '{"scenarios": [{"name": "a", "name": "b", "rows": [{"x": 1}], "expect": {"equals": 1}}]}'
    )
    with pytest.raises(ScenarioFileError, match="invalid JSON: duplicate key 'name'"):
        load_scenarios(path)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("scenarios: [{name: caf\u00e9}]".encode("latin-1"))
    with pytest.raises(ScenarioFileError, match="not valid UTF-8"):
        load_scenarios(path)


def test_yaml_non_string_column_name_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "cols.yaml"
    path.write_text(
        "scenarios:\n  - name: a\n    rows: [{yes: 1}]\n    expect: {equals: 1}\n", encoding="utf-8"
    )
    with pytest.raises(ScenarioFileError, match=r"row #1: column names must be non-empty strings; got True"):
        load_scenarios(path)


def test_scenario_file_error_pickles() -> None:
    error = ScenarioFileError("s.yaml", "scenario #1: 'name' is required")
    clone = pickle.loads(pickle.dumps(error))
    assert str(clone) == str(error) and clone.path == "s.yaml" and clone.detail == error.detail


# --------------------------------------------------------------------------------------------------
# running against a real scikit-learn model
# --------------------------------------------------------------------------------------------------


def test_real_model_passes_suite_with_feature_columns(tmp_path: Path, model: Any) -> None:
    path = tmp_path / "scenarios.yaml"
    path.write_text(MODEL_SUITE, encoding="utf-8")
    suite = load_scenarios(path)

    report = run_scenarios(suite, model.predict, feature_columns=FEATURES)

    assert report.passed, report.summary()
    assert report.failures == ()
    assert report.suite_path == str(path) and report.suite_fingerprint == suite.fingerprint
    benign, malignant, mixed = report.results
    assert benign.reason == "all 3 predictions equal 1"
    assert benign.predictions == (1, 1, 1)
    assert all(type(p) is int for p in benign.predictions)  # numpy int64 made JSON-safe
    assert malignant.reason == "all 2 predictions in [0]"
    assert mixed.reason == "accuracy 1.00 >= required 0.90 (4 of 4 correct)"
    assert all(r.error is None for r in report.results)


def test_real_model_without_feature_columns_fails_by_raising(tmp_path: Path, model: Any) -> None:
    """The extra 'patient_id' column reaches sklearn, which raises: a failure, not a crash."""
    path = tmp_path / "scenarios.yaml"
    path.write_text(MODEL_SUITE, encoding="utf-8")

    report = run_scenarios(load_scenarios(path), model.predict)

    benign = report.results[0]
    assert not benign.passed
    assert benign.reason.startswith("scenario raised ValueError: ")
    assert "patient_id" in benign.reason
    assert benign.error is not None and benign.error.startswith("ValueError: ")
    assert report.results[1].passed  # the other scenarios still ran
    assert not report.passed
    assert [f.name for f in report.failures] == ["typical_benign"]


def test_real_model_failing_expectations(model: Any) -> None:
    suite = suite_of(
        {
            "name": "wrong_class",
            "rows": [{"mean radius": 9.0, "mean texture": 14.0}, {"mean radius": 22.0, "mean texture": 20.0}],
            "expect": {"equals": 1},
        },
        {
            "name": "not_allowed",
            "rows": [{"mean radius": 9.0, "mean texture": 14.0}],
            "expect": {"one_of": [0, 2]},
        },
        {
            "name": "accuracy",
            "rows": [{"mean radius": r, "mean texture": 15.0} for r in (8.0, 9.0, 22.0)],
            "expect": {"min_accuracy": 0.9},
            "labels": [1, 0, 0],
        },
    )

    report = run_scenarios(suite, model.predict, feature_columns=FEATURES)

    wrong, not_allowed, accuracy = report.results
    assert wrong.reason == "prediction 2 of 2 was 0, expected 1"
    assert wrong.predictions == (1, 0)
    assert not_allowed.reason == "prediction 1 of 1 was 1, expected one of [0, 2]"
    assert accuracy.reason == "accuracy 0.67 < required 0.90 (2 of 3 correct)"
    assert not report.passed and len(report.failures) == 3
    assert all(r.error is None for r in report.results)


def test_real_model_probabilities_within_bounds(model: Any) -> None:
    rows = [{"mean radius": r, "mean texture": 15.0} for r in (8.0, 22.0)]
    suite = suite_of(
        {"name": "probability", "rows": rows, "expect": {"within": {"min": 0.0, "max": 1.0}}},
        {"name": "too_confident", "rows": rows, "expect": {"within": {"max": 0.5}}},
    )

    report = run_scenarios(suite, lambda frame: model.predict_proba(frame)[:, 1], feature_columns=FEATURES)

    probability, too_confident = report.results
    assert probability.passed and probability.reason == "all 2 predictions within [0.0, 1.0]"
    assert not too_confident.passed
    assert too_confident.reason == "prediction 1 of 2 was 1.0, expected a finite number <= 0.5"


def test_full_probability_matrix_is_not_a_prediction_per_row(model: Any) -> None:
    suite = suite_of(
        {
            "name": "proba",
            "rows": [{"mean radius": 9.0, "mean texture": 15.0}],
            "expect": {"within": {"min": 0}},
        }
    )
    result = run_scenarios(suite, model.predict_proba, feature_columns=FEATURES).results[0]
    assert not result.passed
    assert result.reason == "predict returned an array of shape (1, 2); expected one prediction per row"


# --------------------------------------------------------------------------------------------------
# running: expectation kinds with plain predict functions
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expect", "labels", "answer", "passed", "reason"),
    [
        ({"equals": 1}, None, 1, True, "all 3 predictions equal 1"),
        ({"equals": 1}, None, 1.0, True, "all 3 predictions equal 1"),
        ({"equals": 1}, None, 0, False, "prediction 1 of 3 was 0, expected 1 (3 of 3 predictions failed)"),
        ({"equals": "cat"}, None, "cat", True, "all 3 predictions equal 'cat'"),
        (
            {"equals": 1},
            None,
            "1",
            False,
            "prediction 1 of 3 was '1', expected 1 (3 of 3 predictions failed)",
        ),
        (
            {"equals": 1},
            None,
            True,
            False,
            "prediction 1 of 3 was True, expected 1 (3 of 3 predictions failed)",
        ),
        ({"equals": True}, None, np.bool_(True), True, "all 3 predictions equal True"),
        ({"one_of": [0, 1]}, None, np.int64(1), True, "all 3 predictions in [0, 1]"),
        (
            {"one_of": ["a", "b"]},
            None,
            "c",
            False,
            "prediction 1 of 3 was 'c', expected one of ['a', 'b'] (3 of 3 predictions failed)",
        ),
        ({"within": {"min": 0}}, None, np.float32(0.5), True, "all 3 predictions >= 0.0"),
        (
            {"within": {"min": 0, "max": 1}},
            None,
            -0.25,
            False,
            "prediction 1 of 3 was -0.25, expected a finite number within [0.0, 1.0] "
            "(3 of 3 predictions failed)",
        ),
        (
            {"within": {"min": 0}},
            None,
            "0.5",
            False,
            "prediction 1 of 3 was '0.5', expected a finite number >= 0.0 (3 of 3 predictions failed)",
        ),
        (
            {"within": {"min": 0}},
            None,
            float("inf"),
            False,
            "prediction 1 of 3 was inf, expected a finite number >= 0.0 (3 of 3 predictions failed)",
        ),
        ({"min_accuracy": 0.6}, [1, 1, 0], 1, True, "accuracy 0.67 >= required 0.60 (2 of 3 correct)"),
        ({"min_accuracy": 0.67}, [1, 1, 0], 1, False, "accuracy 0.667 < required 0.670 (2 of 3 correct)"),
        (
            {"min_accuracy": 1},
            [1, 1, 1],
            np.int64(1),
            True,
            "accuracy 1.00 >= required 1.00 (3 of 3 correct)",
        ),
        ({"min_accuracy": 0}, [1, 1, 1], 0, True, "accuracy 0.00 >= required 0.00 (0 of 3 correct)"),
    ],
)
def test_expectation_kinds(
    expect: dict[str, Any], labels: list[Any] | None, answer: Any, passed: bool, reason: str
) -> None:
    entry = scenario(**expect)
    if labels is not None:
        entry["labels"] = labels
    result = run_scenarios(suite_of(entry), constant(answer)).results[0]
    assert (result.passed, result.reason) == (passed, reason)
    assert result.error is None


def test_accuracy_exactly_at_threshold_passes() -> None:
    entry = {
        "name": "s",
        "rows": [{"x": i} for i in range(10)],
        "expect": {"min_accuracy": 0.9},
        "labels": [1] * 9 + [0],
    }
    result = run_scenarios(suite_of(entry), constant(1)).results[0]
    assert result.passed and result.reason == "accuracy 0.90 >= required 0.90 (9 of 10 correct)"


def test_nan_never_satisfies_equals_one_of_or_within() -> None:
    nan = float("nan")
    suite = suite_of(
        scenario("equals", equals=1),
        scenario("one_of", one_of=[0, 1]),
        scenario("within", within={"min": 0, "max": 1}),
    )

    report = run_scenarios(suite, lambda frame: np.array([1.0, nan, 1.0]))

    assert [r.passed for r in report.results] == [False, False, False]
    assert report.results[0].reason == "prediction 2 of 3 was nan, expected 1"
    assert report.results[2].reason == "prediction 2 of 3 was nan, expected a finite number within [0.0, 1.0]"
    assert report.results[1].reason == "prediction 2 of 3 was nan, expected one of [0, 1]"
    # NaN is recorded as null so the report stays strict JSON
    assert report.results[0].predictions == (1.0, None, 1.0)
    json.dumps(report.to_dict(), allow_nan=False)


def test_nan_counts_as_wrong_for_accuracy() -> None:
    entry = {**scenario(min_accuracy=1.0), "labels": [1, 1, 1]}
    result = run_scenarios(suite_of(entry), lambda frame: [1, float("nan"), 1]).results[0]
    assert not result.passed and result.reason == "accuracy 0.67 < required 1.00 (2 of 3 correct)"


def test_missing_values_from_pandas_never_match() -> None:
    suite = suite_of(scenario(equals=1))
    series = pd.Series([1, None, 1], dtype="Int64")
    result = run_scenarios(suite, lambda frame: series).results[0]
    assert not result.passed
    assert result.reason == "prediction 2 of 3 was None, expected 1"
    assert result.predictions == (1, None, 1)


# --------------------------------------------------------------------------------------------------
# running: broken predict functions and inputs
# --------------------------------------------------------------------------------------------------


def test_predict_raising_is_a_failure_and_the_run_continues() -> None:
    calls: list[str] = []

    def predict(frame: pd.DataFrame) -> list[int]:
        calls.append("called")
        if len(calls) == 1:
            raise ValueError("model exploded")
        return [1] * len(frame)

    report = run_scenarios(suite_of(scenario("boom", equals=1), scenario("fine", equals=1)), predict)

    boom, fine = report.results
    assert not boom.passed
    assert boom.reason == "scenario raised ValueError: model exploded"
    assert boom.error == "ValueError: model exploded"
    assert boom.predictions == ()
    assert fine.passed and fine.error is None
    assert not report.passed


def test_predict_raising_without_message() -> None:
    def predict(frame: pd.DataFrame) -> list[int]:
        raise RuntimeError

    result = run_scenarios(suite_of(scenario(equals=1)), predict).results[0]
    assert result.reason == "scenario raised RuntimeError" and not result.passed


def test_keyboard_interrupt_is_not_swallowed() -> None:
    def predict(frame: pd.DataFrame) -> list[int]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_scenarios(suite_of(scenario(equals=1)), predict)


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ([1, 1], "predict returned 2 prediction(s) for 3 row(s)"),
        ([1, 1, 1, 1], "predict returned 4 prediction(s) for 3 row(s)"),
        ([], "predict returned 0 prediction(s) for 3 row(s)"),
        (None, "predict returned None; expected one prediction per row"),
        (1, "predict returned int; expected a sequence with one prediction per row"),
        ("111", "predict returned str; expected a sequence with one prediction per row"),
        ({"a": 1}, "predict returned dict; expected a sequence with one prediction per row"),
        (np.int64(1), "predict returned int64; expected a sequence with one prediction per row"),
        (
            pd.DataFrame({"a": [1, 1, 1], "b": [0, 0, 0]}),
            "predict returned a DataFrame with 2 columns; expected one prediction per row",
        ),
        ([1, [1], 1], "prediction 2 of 3 has unsupported type list; expected a string, number or boolean"),
    ],
)
def test_unusable_output_is_a_failure(output: Any, reason: str) -> None:
    result = run_scenarios(suite_of(scenario(equals=1)), lambda frame: output).results[0]
    assert not result.passed
    assert result.reason == reason
    assert result.error == reason


def test_wrong_length_records_what_came_back() -> None:
    result = run_scenarios(suite_of(scenario(equals=1)), lambda frame: np.array([1, 1])).results[0]
    assert result.predictions == (1, 1) and not result.passed


@pytest.mark.parametrize(
    "output",
    [
        np.array([1, 1, 1]),
        np.array([[1], [1], [1]]),
        pd.Series([1, 1, 1], index=[10, 20, 30]),
        pd.DataFrame({"prediction": [1, 1, 1]}),
        (1, 1, 1),
        (x for x in [1, 1, 1]),
    ],
    ids=["array", "column-vector", "series", "one-column-frame", "tuple", "generator"],
)
def test_accepted_output_shapes(output: Any) -> None:
    result = run_scenarios(suite_of(scenario(equals=1)), lambda frame: output).results[0]
    assert result.passed, result.reason
    assert result.predictions == (1, 1, 1)


def test_missing_feature_column_fails_only_that_scenario() -> None:
    suite = suite_of(
        {"name": "incomplete", "rows": [{"a": 1, "b": 2}, {"a": 1}], "expect": {"equals": 1}},
        {"name": "complete", "rows": [{"b": 2, "a": 1, "extra": "x"}], "expect": {"equals": 1}},
    )
    seen: list[list[str]] = []

    def predict(frame: pd.DataFrame) -> list[int]:
        seen.append(list(frame.columns))
        return [1] * len(frame)

    report = run_scenarios(suite, predict, feature_columns=["a", "b"])

    incomplete, complete = report.results
    assert not incomplete.passed
    assert incomplete.reason == "row 2 of 2 is missing feature column 'b'"
    assert incomplete.error == incomplete.reason
    assert complete.passed
    assert seen == [["a", "b"]]  # predict never saw the incomplete scenario; extra column dropped


def test_missing_several_feature_columns_are_all_named() -> None:
    suite = suite_of({"name": "s", "rows": [{"a": 1}], "expect": {"equals": 1}})
    result = run_scenarios(suite, constant(1), feature_columns=["a", "b", "c"]).results[0]
    assert result.reason == "row 1 of 1 is missing feature columns ['b', 'c']"


def test_frame_without_feature_columns_keeps_row_columns() -> None:
    frames: list[pd.DataFrame] = []

    def predict(frame: pd.DataFrame) -> list[int]:
        frames.append(frame)
        return [1] * len(frame)

    run_scenarios(
        suite_of({"name": "s", "rows": [{"b": 1, "a": 2.5}, {"b": 3, "a": None}], "expect": {"equals": 1}}),
        predict,
    )
    assert list(frames[0].columns) == ["b", "a"]
    assert frames[0]["a"].isna().tolist() == [False, True]


@pytest.mark.parametrize(
    ("columns", "error"),
    [("mean radius", TypeError), ([], ValueError), (["a", "a"], ValueError), (["a", 1], TypeError)],
)
def test_bad_feature_columns_are_caller_errors(columns: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        run_scenarios(suite_of(scenario(equals=1)), constant(1), feature_columns=columns)


def test_predict_must_be_callable() -> None:
    with pytest.raises(TypeError, match="predict must be callable"):
        run_scenarios(suite_of(scenario(equals=1)), "model.pkl")  # type: ignore[arg-type]


def test_recorded_predictions_are_capped() -> None:
    result = run_scenarios(suite_of(scenario(rows=50, equals=1)), constant(np.int64(1))).results[0]
    assert result.passed and result.reason == "all 50 predictions equal 1"
    assert len(result.predictions) == MAX_RECORDED_PREDICTIONS


def test_programmatic_min_accuracy_without_labels_fails_closed() -> None:
    bad = Scenario(name="s", description="", rows=({"x": 1},), expectation=MinAccuracy(0.5), labels=None)
    suite = ScenarioSuite(path="inline", scenarios=(bad,), fingerprint="f")
    result = run_scenarios(suite, constant(1)).results[0]
    assert not result.passed and result.error == "min_accuracy needs exactly one label per row"


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------


def _mixed_report() -> ScenarioRunReport:
    def predict(frame: pd.DataFrame) -> Sequence[Any]:
        if "boom" in frame.columns:
            raise ValueError("no")
        return np.array([1.0, float("nan"), 1.0])[: len(frame)]

    suite = suite_of(
        scenario("ok", rows=1, equals=1),
        scenario("nan", rows=3, equals=1),
        {"name": "raises", "rows": [{"boom": 1}], "expect": {"equals": 1}},
    )
    return run_scenarios(suite, predict)


def test_report_round_trips_through_json() -> None:
    report = _mixed_report()
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))

    assert data["passed"] is False
    assert [r["name"] for r in data["results"]] == ["ok", "nan", "raises"]
    assert ScenarioRunReport.from_dict(data) == report


def test_report_passed_and_failures() -> None:
    report = _mixed_report()
    assert not report.passed
    assert [f.name for f in report.failures] == ["nan", "raises"]
    empty = ScenarioRunReport(suite_path="x", suite_fingerprint="f", results=())
    assert not empty.passed  # nothing ran: never a pass
    assert "FAILED (no scenarios were run)" in empty.summary()


def test_report_summary_is_readable() -> None:
    summary = _mixed_report().summary()
    lines = summary.splitlines()
    assert lines[0] == "Scenarios FAILED (2 of 3 scenarios failed)"
    assert lines[1] == "suite: inline.yaml (sha256 000000000000)"
    assert lines[2] == "  PASS ok: all 1 prediction equal 1"
    assert lines[3] == "  FAIL nan: prediction 2 of 3 was nan, expected 1"
    assert lines[4] == "  FAIL raises: scenario raised ValueError: no"


def test_report_from_dict_rejects_contradictions_and_garbage() -> None:
    data = _mixed_report().to_dict()
    with pytest.raises(ValueError, match="says passed=True"):
        ScenarioRunReport.from_dict({**data, "passed": True})
    with pytest.raises(ValueError, match="missing key"):
        ScenarioRunReport.from_dict({"suite_path": "x"})
    with pytest.raises(ValueError, match="'passed' must be a boolean"):
        ScenarioRunReport.from_dict({**data, "results": [{"name": "a", "passed": "yes", "reason": ""}]})
    with pytest.raises(ValueError, match="cannot carry an error"):
        ScenarioResult.from_dict({"name": "a", "passed": True, "reason": "", "error": "boom"})
    with pytest.raises(ValueError, match="list of scalars"):
        ScenarioResult.from_dict({"name": "a", "passed": False, "reason": "", "predictions": [[1]]})


# --------------------------------------------------------------------------------------------------
# import cost
# --------------------------------------------------------------------------------------------------


def test_import_does_not_pull_heavy_modules() -> None:
    code = (
        "import sys\n"
        "import airflow_ml_provider.scenarios\n"
        "heavy = sorted(m for m in ('pandas', 'numpy', 'yaml', 'sklearn') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
