"""Tag names and artifact paths are the contract with records already written: their values are pinned
here, and no module but ``records/tags.py`` spells one out."""

from __future__ import annotations

import ast
from pathlib import Path

from airflow_ml_provider.records import tags

PACKAGE = Path(__file__).resolve().parents[3] / "airflow_ml_provider"


def test_names_written_by_earlier_releases_are_unchanged() -> None:
    assert tags.TAG_STEP == "airflow_ml.step" and tags.TAG_KIND == "airflow_ml.kind"
    assert tags.TAG_MODEL_FINGERPRINT == "airflow_ml.model_fingerprint"
    assert tags.TAG_GATE_STATUS == "airflow_ml.gate.status"
    assert tags.RECORD_ARTIFACT_PATH == "airflow_ml/step_record.json"
    assert tags.VERDICT_ARTIFACT == "airflow_ml/verdict.json"
    assert tags.MANIFEST_DIR == "airflow_ml/manifest"
    assert tags.evidence_tag("evaluate") == "airflow_ml.evidence.evaluate"
    assert tags.previous_tag("champion") == "airflow_ml.previous_champion"
    assert tags.previous_tag("staging") == "airflow_ml.previous.staging"
    assert tags.rolled_back_tag("champion") == "airflow_ml.rolled_back.champion"
    assert tags.expectations_artifact("raw") == "airflow_ml/expectations/raw.json"
    assert tags.manifest_step_artifact("train") == "airflow_ml/manifest/steps/train.json"


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """String literals of a module, docstrings left out (they may name a tag to explain it)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_module_but_tags_spells_a_tag_or_artifact_path() -> None:
    prefixes = ("airflow_ml.", "airflow_ml/", "airflow.dag_id", "airflow.run_id", "airflow.task_id", "mlflow.parent")
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "records" / "tags.py"
        for line, text in _string_constants(path)
        if text.startswith(prefixes)
    ]
    assert not found, "define these in airflow_ml_provider/records/tags.py:\n" + "\n".join(found)
