"""``models:/`` references: one parser, MLflow's rule (mlflow/store/artifact/utils/models.py)."""

from __future__ import annotations

import pytest

from airflow_ml_provider.exceptions import AirflowMLError
from airflow_ml_provider.lineage.graph import LineageError, parse_target
from airflow_ml_provider.model.reference import (
    ModelAlias,
    ModelRef,
    ModelReferenceError,
    parse_model,
    parse_model_uri,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:/clf/3", ModelRef("clf", "3")),
        ("models:/clf@champion", ModelAlias("clf", "champion")),
        ("models:/my-model_2/10", ModelRef("my-model_2", "10")),
        # MLflow splits an alias at the last "@": a name may contain "@", an alias may not.
        ("models:/team@clf@champion", ModelAlias("team@clf", "champion")),
        # ... and a two-segment path is always <name>/<version>, "@" or not.
        ("models:/clf@x/3", ModelRef("clf@x", "3")),
    ],
)
def test_references_mlflow_accepts(text: str, expected: ModelRef | ModelAlias) -> None:
    assert parse_model_uri(text) == expected
    assert parse_model(text) == expected
    assert expected.uri == text


@pytest.mark.parametrize(
    "text",
    [
        "models:/team/clf/3",  # MLflow model names cannot contain "/"
        "models:/clf",  # no version or alias
        "models:/clf/",
        "models:/clf@",
        "models:/@champion",
        "models:/ /3",
        "models:/clf/latest",  # MLflow's "latest" and stages are not pinned: refused here
        "models:/clf/Production",
        "models:/clf/³",  # str.isdigit() is true for superscripts; MLflow versions are ASCII numbers
        "models:/clf@champion/3x",
        "runs:/abc/model",
        "clf/3",
    ],
)
def test_references_refused(text: str) -> None:
    assert parse_model_uri(text) is None
    with pytest.raises(ModelReferenceError):
        parse_model(text)
    with pytest.raises(ModelReferenceError):
        ModelRef.parse(text)


def test_version_parser_refuses_an_alias_and_accepts_xcom_results() -> None:
    with pytest.raises(ModelReferenceError, match="models:/<name>/<version>"):
        ModelRef.parse("models:/clf@champion")
    assert ModelRef.parse({"model_name": "clf", "version": 3}) == ModelRef("clf", "3")
    assert ModelRef.parse({"name": "clf", "version": "4"}) == ModelRef("clf", "4")
    assert parse_model({"model_name": "clf", "version": 3}) == ModelRef("clf", "3")


def test_lineage_targets_use_the_same_parser() -> None:
    assert parse_target("models:/team@clf@champion").alias == "champion"
    assert parse_target("models:/team@clf@champion").name == "team@clf"
    with pytest.raises(LineageError):
        parse_target("models:/team/clf/3")


def test_errors_share_the_provider_base() -> None:
    assert issubclass(ModelReferenceError, AirflowMLError) and issubclass(ModelReferenceError, ValueError)


def test_reproduce_resolves_an_alias_split_at_the_last_at() -> None:
    """``airflow-ml reproduce models:/team@clf@champion`` split at the first ``@`` before (model ``team``)."""
    from airflow_ml_provider.reproduce.original import resolve_target

    class Hook:
        def alias_version(self, name: str, alias: str) -> str:
            assert (name, alias) == ("team@clf", "champion")
            return "7"

    assert resolve_target(Hook(), "models:/team@clf@champion") == ModelRef("team@clf", "7")  # type: ignore[arg-type]
