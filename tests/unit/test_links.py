"""Operator extra links: the URLs built from a step's run, and that no credential ever goes into one."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from airflow_ml_provider import links
from airflow_ml_provider.hooks.mlflow import MlflowHook, MlflowSettings
from airflow_ml_provider.links import (
    MLflowRunLink,
    ModelVersionLink,
    model_version_url,
    run_url,
    ui_base_url,
)
from airflow_ml_provider.records.step_record import AirflowIds, RecordedModel, StepRecord
from airflow_ml_provider.records.step_run import STEP_RUN_ATTRIBUTE, StepRun
from tests.support import FakeTaskInstance

SECRET = "s3cr3t-pass"


@pytest.fixture(autouse=True)
def no_configured_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__ML_PROVIDER__MLFLOW_UI_URL", raising=False)
    monkeypatch.delenv("AIRFLOW__API__BASE_URL", raising=False)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://mlflow:5000", "http://mlflow:5000"),
        ("https://mlflow.example.com/", "https://mlflow.example.com"),
        ("HTTPS://mlflow.example.com/tracking//", "https://mlflow.example.com/tracking"),
        (f"http://alice:{SECRET}@mlflow:5000", "http://mlflow:5000"),
        ("https://token@mlflow.example.com", "https://mlflow.example.com"),
        (f"https://mlflow.example.com/?token={SECRET}#frag", "https://mlflow.example.com"),
        ("sqlite:////tmp/mlflow.db", None),
        ("file:///tmp/mlruns", None),
        ("/tmp/mlruns", None),
        ("databricks", None),
        ("", None),
        (None, None),
        ("http://", None),
        ("http://mlflow:notaport", None),
    ],
)
def test_ui_base_url_keeps_only_scheme_host_and_path(url: str | None, expected: str | None) -> None:
    assert ui_base_url(url) == expected


def test_run_url_is_the_mlflow_run_page() -> None:
    assert run_url("http://mlflow:5000", "7", "abc123") == "http://mlflow:5000/#/experiments/7/runs/abc123"
    assert run_url(None, "7", "abc123") == ""
    assert run_url("http://mlflow:5000", None, "abc123") == ""
    assert run_url("http://mlflow:5000", "7", None) == ""


def test_model_version_url_quotes_the_name() -> None:
    url = model_version_url("https://m.example.com", "fraud model/<script>", "3")
    assert url == "https://m.example.com/#/models/fraud%20model%2F%3Cscript%3E/versions/3"
    assert model_version_url("https://m.example.com", "fraud", None) == ""


def test_without_an_mlflow_ui_the_model_link_opens_the_provider_page(monkeypatch: pytest.MonkeyPatch) -> None:
    assert model_version_url(None, "fraud", "3") == "/ml/models/fraud/versions/3"
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", f"https://admin:{SECRET}@airflow.example.com/prod/")
    assert model_version_url(None, "fraud", "3") == "https://airflow.example.com/prod/ml/models/fraud/versions/3"


def test_the_option_wins_over_the_tracking_uri_and_loses_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    assert links.mlflow_ui_url("http://mlflow:5000") == "http://mlflow:5000"
    assert links.mlflow_ui_url("sqlite:////tmp/mlflow.db") is None
    monkeypatch.setenv("AIRFLOW__ML_PROVIDER__MLFLOW_UI_URL", f"https://bob:{SECRET}@mlflow.example.com/")
    assert links.mlflow_ui_url("sqlite:////tmp/mlflow.db") == "https://mlflow.example.com"
    assert links.mlflow_ui_url("http://mlflow:5000") == "https://mlflow.example.com"


def test_a_non_http_option_disables_the_links_and_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AIRFLOW__ML_PROVIDER__MLFLOW_UI_URL", "mlflow.example.com")
    assert links.mlflow_ui_url("http://mlflow:5000") is None
    assert "mlflow_ui_url is not an http(s) URL" in caplog.text


# --- get_link on an operator that ran ------------------------------------------------------------------


class _Operator:
    """What get_link reads of an operator: the step run it opened (set by ``records.step_run``)."""


def _ran(tracking_uri: str, model: RecordedModel | None = None, **ids: Any) -> tuple[_Operator, FakeTaskInstance]:
    airflow = AirflowIds(dag_id="d", run_id="manual__1", task_id="train", try_number=1, map_index=-1)
    hook = MlflowHook(tracking_uri=tracking_uri)
    record = StepRecord(step="train", mlflow_run_id="run42", airflow=airflow, model=model)
    run = StepRun(hook, "run42", "parent1", record)
    run.experiment_id = "5"
    operator = _Operator()
    setattr(operator, STEP_RUN_ATTRIBUTE, run)
    values = {"dag_id": "d", "run_id": "manual__1", "task_id": "train", "try_number": 1, **ids}
    return operator, FakeTaskInstance(**values)


MODEL = RecordedModel(name="fraud", version="3", uri="models:/fraud/3", fingerprint="sha256:x")


def test_links_of_a_step_on_an_http_server_carry_no_credentials() -> None:
    operator, ti = _ran(f"http://alice:{SECRET}@mlflow:5000", MODEL)

    run_link = MLflowRunLink().get_link(operator, ti_key=ti)  # type: ignore[arg-type]
    model_link = ModelVersionLink().get_link(operator, ti_key=ti)  # type: ignore[arg-type]

    assert run_link == "http://mlflow:5000/#/experiments/5/runs/run42"
    assert model_link == "http://mlflow:5000/#/models/fraud/versions/3"
    for link in (run_link, model_link):
        assert SECRET not in link and "alice" not in link and "@" not in link


def test_on_a_sqlite_store_the_run_link_is_empty_and_the_model_link_is_the_provider_page() -> None:
    operator, ti = _ran("sqlite:////tmp/mlflow.db", MODEL)

    assert MLflowRunLink().get_link(operator, ti_key=ti) == ""  # type: ignore[arg-type]
    assert ModelVersionLink().get_link(operator, ti_key=ti) == "/ml/models/fraud/versions/3"  # type: ignore[arg-type]


def test_a_step_without_a_recorded_version_or_run_has_empty_links() -> None:
    operator, ti = _ran("http://mlflow:5000", model=None)
    assert ModelVersionLink().get_link(operator, ti_key=ti) == ""  # type: ignore[arg-type]
    assert MLflowRunLink().get_link(_Operator(), ti_key=ti) == ""  # type: ignore[arg-type]


@pytest.mark.parametrize("other", [{"run_id": "manual__2"}, {"try_number": 2}, {"task_id": "gate"}])
def test_a_run_of_another_task_instance_lends_no_link(other: dict[str, Any]) -> None:
    operator, ti = _ran("http://mlflow:5000", MODEL, **other)
    assert MLflowRunLink().get_link(operator, ti_key=ti) == ""  # type: ignore[arg-type]
    assert ModelVersionLink().get_link(operator, ti_key=ti) == ""  # type: ignore[arg-type]


def test_the_registry_uri_is_the_ui_of_model_versions() -> None:
    operator, ti = _ran("sqlite:////tmp/mlflow.db", MODEL)
    settings = MlflowSettings("sqlite:////tmp/mlflow.db", f"https://u:{SECRET}@reg.example.com", None)
    getattr(operator, STEP_RUN_ATTRIBUTE).hook = MlflowHook.for_settings(settings, "a test")

    assert ModelVersionLink().get_link(operator, ti_key=ti) == "https://reg.example.com/#/models/fraud/versions/3"  # type: ignore[arg-type]
    assert MLflowRunLink().get_link(operator, ti_key=ti) == ""  # type: ignore[arg-type]


# --- which operators have which links; the provider info names them -------------------------------------


def test_every_step_links_its_run_and_the_model_steps_their_version() -> None:
    from airflow_ml_provider.operators.evaluate import EvaluateOperator
    from airflow_ml_provider.operators.featurize import FeaturizeOperator
    from airflow_ml_provider.operators.predict import BatchPredictOperator
    from airflow_ml_provider.operators.promote import PromoteModelOperator
    from airflow_ml_provider.operators.rollback import RollbackModelOperator
    from airflow_ml_provider.operators.simulate import SimulateOperator
    from airflow_ml_provider.operators.train import TrainOperator
    from airflow_ml_provider.sensors.model_gate import ModelGateSensor

    def names(cls: Any) -> list[str]:
        return [link.name for link in cls.operator_extra_links]

    run_only: tuple[type, ...] = (
        FeaturizeOperator, EvaluateOperator, SimulateOperator, RollbackModelOperator, BatchPredictOperator
    )
    for cls in run_only:
        assert names(cls) == ["MLflow run"], cls
    model_steps: tuple[type, ...] = (TrainOperator, ModelGateSensor, PromoteModelOperator)
    for cls in model_steps:
        assert names(cls) == ["MLflow run", "Model version"], cls


def test_the_provider_info_registers_the_link_classes() -> None:
    from airflow_ml_provider.get_provider_info import get_provider_info

    registered = get_provider_info()["extra-links"]
    assert tuple(registered) == links.LINK_CLASSES
    for path in registered:
        module, _, name = path.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, links.BaseOperatorLink)
        assert cls().xcom_key == f"_link_{name}"
