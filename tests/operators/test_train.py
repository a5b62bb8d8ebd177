"""TrainOperator: error paths (nothing registered, step run FAILED) and the registered version's tags.

Failing cases use their own registered model name, so "no new version" is checked as "the name has
no version at all". The happy path reuses the session's shared version (tests/operators/conftest.py)
and trains one more model that is not a scikit-learn estimator, to check the pyfunc flavor.
"""

from __future__ import annotations

import inspect
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from blake3 import blake3

from airflow_ml_provider.data.datasets import DatasetError, write_frame
from airflow_ml_provider.hooks.mlflow import MlflowHook
from airflow_ml_provider.model import reference as models
from airflow_ml_provider.operators.train import TrainOperator
from airflow_ml_provider.records.environment import callable_name
from airflow_ml_provider.records.tags import (
    TAG_ABANDONED_BY,
    TAG_FEATURES_FINGERPRINT,
    TAG_GATE_STATUS,
    TAG_MODEL_FINGERPRINT,
    TAG_TARGET,
    TAG_TASK,
    evidence_tag,
)
from tests.operators._support import (
    assert_step_failed,
    assert_step_succeeded,
    model_versions,
    unique,
)
from tests.support import ROOT, FakeTaskInstance, make_context

DAG = "ops_train"
TARGET = "label"


# --- user-code helpers -----------------------------------------------------------------------------


def fit_logistic(df: pd.DataFrame, C: float = 1.0, seed: int = 0) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, random_state=seed).fit(df.drop(columns=[TARGET]), df[TARGET])


def returns_none(df: pd.DataFrame) -> None:
    return None


def returns_coefficients(df: pd.DataFrame) -> dict[str, float]:
    return {"x1": 0.5, "x2": -0.25}  # an object, but not a model: no predict()


class ThresholdModel:
    """A model that is not a scikit-learn estimator: label 1 when x1 + x2 > 0."""

    def __init__(self, bias: float = 0.0) -> None:
        self.bias = bias

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return ((frame["x1"] + frame["x2"] + self.bias) > 0).astype("int64").to_numpy()


def fit_threshold(df: pd.DataFrame) -> ThresholdModel:
    return ThresholdModel(bias=0.0)


class UnpicklableModel(ThresholdModel):
    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()  # cannot be pickled: logging the model fails


def fit_unpicklable(df: pd.DataFrame) -> UnpicklableModel:
    return UnpicklableModel()


# --- fixtures --------------------------------------------------------------------------------------


def synthetic_frame(rows: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    return pd.DataFrame({"x1": x1, "x2": x2, TARGET: (x1 + x2 > 0).astype("int64")})


@pytest.fixture
def features(tmp_path: Path) -> dict[str, Any]:
    """A features reference as FeaturizeOperator would pass it (content-addressed file + fingerprint)."""
    return write_frame(synthetic_frame(), tmp_path / "artifacts", "features").to_dict()


def trainer(features: Any, train: Any = fit_logistic, **kwargs: Any) -> TrainOperator:
    kwargs.setdefault("target_column", TARGET)
    kwargs.setdefault("registered_model_name", unique("ops_train_model"))
    return TrainOperator(task_id="train", features=features, train=train, **kwargs)


def run_failing(op: TrainOperator, error_type: type[BaseException], client: Any) -> tuple[dict[str, Any], Any]:
    context = make_context(DAG, op.task_id)
    with pytest.raises(error_type) as excinfo:
        op.execute(context)
    assert model_versions(client, op.registered_model_name) == [], "a failed train registered a version"
    return context, excinfo


# --- the features reference -------------------------------------------------------------------------


def test_features_changed_since_recorded(features: dict[str, Any], client: Any) -> None:
    path = Path(features["uri"].removeprefix("file://"))
    synthetic_frame(rows=81, seed=1).to_parquet(path, index=False)  # same file, other rows
    actual = "blake3:" + blake3(path.read_bytes()).hexdigest()
    assert actual != features["fingerprint"]

    context, excinfo = run_failing(trainer(features), DatasetError, client)

    message = str(excinfo.value)
    assert features["uri"] in message and "changed since it was recorded" in message
    assert actual in message and features["fingerprint"] in message
    assert_step_failed(client, context, excinfo.value, actual, features["fingerprint"])


def test_features_reference_that_is_not_one(client: Any) -> None:
    context, excinfo = run_failing(trainer({"uri": "/tmp/features.parquet"}), DatasetError, client)
    assert "features is missing fingerprint, rows, columns" in str(excinfo.value)
    assert_step_failed(client, context, excinfo.value, "fingerprint")


def test_target_column_missing(features: dict[str, Any], client: Any) -> None:
    context, excinfo = run_failing(trainer(features, target_column="diagnosis"), DatasetError, client)
    message = str(excinfo.value)
    assert "'diagnosis'" in message and features["uri"] in message and "['x1', 'x2', 'label']" in message
    assert_step_failed(client, context, excinfo.value, "diagnosis")


def test_features_too_small_to_split(tmp_path: Path, client: Any) -> None:
    tiny = write_frame(synthetic_frame(rows=1), tmp_path, "features").to_dict()
    context, excinfo = run_failing(trainer(tiny, holdout_fraction=0.5), DatasetError, client)
    assert "too small to split" in str(excinfo.value) and "holdout_fraction=0.5" in str(excinfo.value)
    assert_step_failed(client, context, excinfo.value, "too small")


# --- the user's train function ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("train", "returned"), [(returns_none, "NoneType"), (returns_coefficients, "dict")], ids=["none", "dict"]
)
def test_train_not_returning_a_model(features: dict[str, Any], client: Any, train: Any, returned: str) -> None:
    context, excinfo = run_failing(trainer(features, train=train), TypeError, client)
    message = str(excinfo.value)
    assert callable_name(train) in message and f"returned {returned}" in message and "predict()" in message
    record = assert_step_failed(client, context, excinfo.value, train.__name__)
    assert record.model is None  # nothing claims a model for this run


def test_train_params_with_unknown_kwarg_fail_when_the_dag_is_parsed(features: dict[str, Any]) -> None:
    """The param names are literal (Airflow renders values, not keys): the mistake is a DAG import error."""
    with pytest.raises(TypeError) as excinfo:
        trainer(features, train_params={"C": "{{ params.C }}", "learning_rate": 0.1})
    message = str(excinfo.value)
    assert "'learning_rate'" in message and callable_name(fit_logistic) in message
    assert str(inspect.signature(fit_logistic)) in message


def test_train_params_changed_at_run_time_are_checked_at_run_time(features: dict[str, Any], client: Any) -> None:
    """A reproduction's --set override can add a param after parsing: the step fails with the same message."""
    op = trainer(features, train_params={"C": 0.5})
    op.apply_overrides({"learning_rate": 0.1})
    context, excinfo = run_failing(op, TypeError, client)
    message = str(excinfo.value)
    assert "'learning_rate'" in message and callable_name(fit_logistic) in message
    assert_step_failed(client, context, excinfo.value, "learning_rate")


def test_templated_params_rendered_as_text_take_the_annotated_type(features: dict[str, Any], client: Any) -> None:
    """Without render_template_as_native_obj, "{{ params.C }}" renders as the text "0.5"; train declares C: float."""
    op = trainer(features, train_params={"C": "{{ params.C }}"})
    op.render_template_fields({"params": {"C": 0.5}})
    assert op.train_params == {"C": "0.5"}  # what Airflow's (non-native) rendering hands the operator
    context = make_context(DAG, op.task_id)
    op.execute(context)
    record = assert_step_succeeded(client, context)
    assert record.results.hyperparameters["C"] == 0.5


def test_templated_param_that_is_not_its_annotated_type_fails_naming_it(features: dict[str, Any], client: Any) -> None:
    op = trainer(features, train_params={"C": "{{ params.C }}"})
    op.render_template_fields({"params": {"C": "strong"}})
    context, excinfo = run_failing(op, TypeError, client)
    assert "train parameter 'C' is annotated float, but its template rendered 'strong'" in str(excinfo.value)
    assert_step_failed(client, context, excinfo.value, "'strong'")


def test_model_that_cannot_be_logged_registers_nothing(features: dict[str, Any], client: Any) -> None:
    """Logging fails after training succeeded (MLflow cannot pickle the model): still no version."""
    from mlflow.exceptions import MlflowException

    context, excinfo = run_failing(trainer(features, train=fit_unpicklable), MlflowException, client)
    assert "serialize" in str(excinfo.value)
    record = assert_step_failed(client, context, excinfo.value, "serialize")
    assert record.model is None


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_holdout_fraction_out_of_range(fraction: float) -> None:
    with pytest.raises(ValueError) as excinfo:
        TrainOperator(
            task_id="train",
            features="f.parquet",
            train=fit_logistic,
            target_column=TARGET,
            registered_model_name="m",
            holdout_fraction=fraction,
        )
    assert "holdout_fraction" in str(excinfo.value) and str(fraction) in str(excinfo.value)


def test_non_callable_train_rejected_at_construction() -> None:
    with pytest.raises(TypeError, match="train must be a callable"):
        TrainOperator(
            task_id="train",
            features="f.parquet",
            train="fit",
            target_column=TARGET,
            registered_model_name="m",
        )


# --- success ------------------------------------------------------------------------------------------


def test_registered_version_is_tagged(trained: dict[str, Any], featurized: dict[str, Any], client: Any) -> None:
    result, ti = trained["result"], trained["context"]["ti"]
    version = client.get_model_version(result["model_name"], result["version"])
    tags = version.tags
    assert tags["airflow.dag_id"] == ti.dag_id
    assert tags["airflow.run_id"] == ti.run_id
    assert tags["airflow.task_id"] == ti.task_id
    assert tags[TAG_MODEL_FINGERPRINT] == result["model_fingerprint"]
    # the bytes the gate re-verifies (the version's source) are the bytes fingerprinted at training
    assert models.fingerprint_model(version.source, MlflowHook(tracking_uri=client.tracking_uri)) == result[
        "model_fingerprint"
    ]
    assert tags[TAG_FEATURES_FINGERPRINT] == featurized["result"]["fingerprint"]
    assert tags[evidence_tag("featurize")] == featurized["result"]["mlflow_run_id"]
    assert tags[TAG_TARGET] == "target" and tags[TAG_TASK] == "classification"
    assert tags[TAG_GATE_STATUS] == "pending"  # no verdict yet: promotion refuses it until the gate has run
    assert model_versions(client, result["model_name"]) == [result["version"]]

    record = assert_step_succeeded(client, trained["context"])
    assert record.model is not None and record.model.flavor == "sklearn"
    assert record.model.fingerprint == result["model_fingerprint"]
    for split in ("train", "holdout"):
        ref = result[split]
        path = Path(ref["uri"].removeprefix("file://"))
        assert path.name == ref["fingerprint"].split(":", 1)[1] + ".parquet"
    assert result["train"]["rows"] + result["holdout"]["rows"] == featurized["result"]["rows"]


def test_returned_fingerprint_matches_the_returned_model_uri(trained: dict[str, Any], client: Any) -> None:
    """XCom pairs ``model_uri`` with ``model_fingerprint``: fingerprinting that URI with the package's own
    ``models.fingerprint_model`` must give that fingerprint, or nobody downstream can verify the model."""
    result = trained["result"]
    hook = MlflowHook(tracking_uri=client.tracking_uri)
    assert models.fingerprint_model(result["model_uri"], hook) == result["model_fingerprint"]


def test_non_sklearn_model_is_logged_as_pyfunc_and_loads_back(features: dict[str, Any], client: Any) -> None:
    import mlflow
    from mlflow.models import get_model_info

    op = trainer(features, train=fit_threshold)
    context = make_context(DAG, "train")
    result = op.execute(context)

    assert model_versions(client, op.registered_model_name) == [result["version"]]
    flavors = get_model_info(result["model_uri"]).flavors
    assert "python_function" in flavors and "sklearn" not in flavors
    record = assert_step_succeeded(client, context)
    assert record.model is not None and record.model.flavor == "pyfunc"
    assert record.model.estimator.endswith("ThresholdModel")

    import gc
    import tempfile

    def downloads() -> set[Path]:
        return set(Path(tempfile.gettempdir()).glob("airflow-ml-model-*"))

    before = downloads()
    loaded = MlflowHook(tracking_uri=client.tracking_uri).load_model(result["model_uri"])
    assert isinstance(loaded, mlflow.pyfunc.PyFuncModel)
    assert len(downloads() - before) == 1, "a pyfunc model's files stay while the model is in use"
    frame = synthetic_frame(rows=20, seed=3).drop(columns=[TARGET])
    np.testing.assert_array_equal(np.asarray(loaded.predict(frame)), ThresholdModel().predict(frame))
    del loaded
    gc.collect()
    assert downloads() - before == set(), "the downloaded files outlived the model"
    tags = client.get_model_version(op.registered_model_name, result["version"]).tags
    assert tags[TAG_MODEL_FINGERPRINT] == result["model_fingerprint"]
    assert tags["airflow.task_id"] == "train"


def test_logging_a_model_does_not_flood_the_task_log_with_airflow_deprecations(features: dict[str, Any]) -> None:
    """skops walks every loaded module while serialising; each deprecated Airflow attribute it touches
    would otherwise become a warning line in the task log (over a thousand per train task)."""
    import importlib
    import warnings

    for module in ("airflow.utils.timezone", "airflow.utils.trigger_rule"):  # loaded in a task process
        importlib.import_module(module)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer(features).execute(make_context(DAG, "train"))

    assert [str(w.message) for w in caught if "airflow.utils" in str(w.message)] == []


# --- attempts that did not complete: no version is left without a verdict and unmarked -------------------

#: Try 1 of a train task, in its own process, SIGKILLed right after its version is registered (as a
#: Celery worker dies mid-task). The kill is placed by wrapping the hook's registration (the real one runs,
#: then the process dies): the one point in this test where a real part is changed, because the moment
#: between two MLflow calls cannot be hit from outside.
KILLED_AFTER_REGISTERING = """
import json, os, signal, sys
from airflow_ml_provider.hooks.mlflow import MlflowHook
register = MlflowHook.register_model
def register_then_die(self, *args, **kwargs):
    register(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
MlflowHook.register_model = register_then_die
from airflow_ml_provider.operators.train import TrainOperator
from tests.example import TARGET, train
from tests.support import FakeTaskInstance
args = json.loads(sys.argv[1])
TrainOperator(
    task_id="train", features=args["features"], train=train, target_column=TARGET,
    registered_model_name=args["model"],
).execute({"ti": FakeTaskInstance(args["dag_id"], args["run_id"], "train", try_number=1)})
"""


def test_retry_marks_the_version_of_a_killed_try_abandoned_and_promotion_refuses_it(
    featurized: dict[str, Any], client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import os
    import subprocess
    import sys

    from airflow.sdk.exceptions import AirflowFailException

    from airflow_ml_provider.operators.promote import PromoteModelOperator
    from tests.example import TARGET, train

    name = unique("ops_train_killed")
    run_id = make_context(DAG, "train")["ti"].run_id
    args = {"features": featurized["result"], "model": name, "dag_id": DAG, "run_id": run_id}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_REGISTERING, json.dumps(args)],
        cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=600,
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    [orphan] = model_versions(client, name)
    assert client.get_model_version(name, orphan).tags[TAG_GATE_STATUS] == "pending"  # registered so

    retry = TrainOperator(task_id="train", features=featurized["result"], train=train, target_column=TARGET,
                          registered_model_name=name)
    result = retry.execute({"ti": FakeTaskInstance(DAG, run_id, "train", try_number=2)})

    assert model_versions(client, name) == [orphan, result["version"]]
    tags = client.get_model_version(name, orphan).tags
    assert tags[TAG_GATE_STATUS] == "abandoned"
    assert tags[TAG_ABANDONED_BY] == (
        f"{DAG}/{run_id}/train try 2: superseded by a retry (registered by try 1); never gated"
    )
    assert client.get_model_version(name, result["version"]).tags[TAG_GATE_STATUS] == "pending"

    from airflow_ml_provider.cli.main import main

    capsys.readouterr()
    assert main(["status", name, "--tracking-uri", client.tracking_uri]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line[:7].strip().isdigit()}
    assert rows[orphan].split()[1] == "abandoned" and rows[orphan].endswith(f"abandoned by {tags[TAG_ABANDONED_BY]}")
    assert rows[result["version"]].split()[1] == "pending"

    with pytest.raises(AirflowFailException) as excinfo:
        PromoteModelOperator(task_id="promote", model=f"models:/{name}/{orphan}").execute(
            make_context(DAG, "promote", run_id)
        )
    message = str(excinfo.value)
    assert f"Refusing to promote models:/{name}/{orphan}" in message
    assert f"it was abandoned ({tags[TAG_ABANDONED_BY]})" in message
    assert client.get_model_version(name, orphan).tags[TAG_GATE_STATUS] == "abandoned"


def test_a_try_that_fails_before_registering_leaves_no_version(
    features: dict[str, Any], client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The artifact cannot be read back right after logging it: a fault a live store does not produce on
    demand, so the fingerprinting step is replaced by one that raises (the only replaced part here). The
    version is registered only once fingerprinted, with all its tags in one request: nothing half-written."""

    def unreadable(*args: Any, **kwargs: Any) -> str:
        raise OSError("artifact store unreadable")

    monkeypatch.setattr(models, "fingerprint_model", unreadable)
    op = trainer(features)
    context = make_context(DAG, op.task_id)
    with pytest.raises(OSError, match="artifact store unreadable") as excinfo:
        op.execute(context)

    assert model_versions(client, op.registered_model_name) == []
    assert_step_failed(client, context, excinfo.value, "artifact store unreadable")


def test_a_retry_leaves_versions_with_a_verdict_alone(features: dict[str, Any], client: Any) -> None:
    """Try 1 completed and its version was gated; the task was cleared and runs again: the verdict stands."""
    op = trainer(features)
    run_id = make_context(DAG, "train")["ti"].run_id
    first = op.execute({"ti": FakeTaskInstance(DAG, run_id, "train", try_number=1)})
    client.set_model_version_tag(op.registered_model_name, first["version"], TAG_GATE_STATUS, "failed")

    op.execute({"ti": FakeTaskInstance(DAG, run_id, "train", try_number=2)})

    tags = client.get_model_version(op.registered_model_name, first["version"]).tags
    assert tags[TAG_GATE_STATUS] == "failed" and TAG_ABANDONED_BY not in tags
