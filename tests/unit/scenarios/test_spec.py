"""Tests for must-pass scenario files: loading, parsing and validation (scenarios/spec.py)."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_ml_provider.scenarios.spec import (
    Equals,
    MinAccuracy,
    OneOf,
    ScenarioFileError,
    Within,
    load_scenarios,
)
from tests.support import MODEL_SUITE, scenario

REPO_ROOT = Path(__file__).resolve().parents[3]


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
# import cost
# --------------------------------------------------------------------------------------------------


def test_import_does_not_pull_heavy_modules() -> None:
    code = (
        "import sys\n"
        "import airflow_ml_provider.scenarios.runner, airflow_ml_provider.scenarios.spec\n"
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
