"""decorators/: ``@task.ml_featurize`` / ``ml_train`` / ``ml_evaluate`` resolved through Airflow's ``task``, the
call's arguments mapped onto the operator's, and the mistakes a DAG author can make refused when the DAG is built.
No DAG run here (tests/taskflow runs the example)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk import DAG, task

from airflow_ml_provider.operators.evaluate import EvaluateOperator
from airflow_ml_provider.operators.featurize import FeaturizeOperator
from airflow_ml_provider.operators.train import TrainOperator
from tests.support import ROOT


@pytest.fixture
def dag() -> Iterator[DAG]:
    with DAG(dag_id="decorators_unit", schedule=None) as d:
        yield d


def transform(raw: Any, clip: float = 1.0, scale: int = 1) -> Any:
    return raw


def fit(df: Any, C: float = 1.0, seed: int = 0) -> Any:
    return df


def metric(y_true: Any, y_pred: Any) -> dict[str, float]:
    return {"m": 1.0}


def test_the_decorators_resolve_through_airflow_task_to_ours() -> None:
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    from airflow_ml_provider.decorators.steps import ml_evaluate_task, ml_featurize_task, ml_train_task

    assert task.ml_featurize is ml_featurize_task
    assert task.ml_train is ml_train_task
    assert task.ml_evaluate is ml_evaluate_task
    decorators = ProvidersManagerTaskRuntime().taskflow_decorators
    assert {"ml_featurize", "ml_train", "ml_evaluate"} <= set(decorators)


def test_a_decorated_featurize_is_a_featurize_operator_with_the_function_as_transform(dag: DAG) -> None:
    featurize = task.ml_featurize(raw_suite="raw.json", seed=3)(transform)
    featurize("{{ params.raw_uri }}", 0.5, scale=2)
    op = dag.get_task("transform")
    assert isinstance(op, FeaturizeOperator)
    assert op.transform is transform and op.python_callable is transform
    assert op.raw_uri == "{{ params.raw_uri }}"
    assert op.transform_params == {"clip": 0.5, "scale": 2}, "positional params are passed by name"
    assert op.raw_suite == "raw.json" and op.seed == 3
    assert op.op_args == [] and op.op_kwargs == {}, "the operator's own fields carry the call"
    assert tuple(op.template_fields) == tuple(FeaturizeOperator.template_fields), "the operator's fields, rendered"
    assert op.custom_operator_name == "@task.ml_featurize"
    assert op.multiple_outputs is False


def test_train_takes_the_features_then_params_and_always_has_multiple_outputs(dag: DAG) -> None:
    featurize = task.ml_featurize(transform)
    train = task.ml_train(target_column="y", registered_model_name="m", train_params={"seed": 1})(fit)
    model = train(featurize("raw.parquet"), C="{{ params.C }}")
    op = dag.get_task("fit")
    assert isinstance(op, TrainOperator) and op.train is fit
    assert op.train_params == {"seed": 1, "C": "{{ params.C }}"}, "decorator and call params merged"
    assert op.upstream_task_ids == {"transform"}, "the features' XComArg makes the dependency"
    assert op.multiple_outputs is True, "so that model['holdout'] is the holdout's reference"
    assert model.operator is op


def test_evaluate_takes_the_model_and_the_holdout_and_the_function_as_metric_fn(dag: DAG) -> None:
    train = task.ml_train(target_column="y", registered_model_name="m")(fit)
    model = train("features.parquet")
    task.ml_evaluate(metrics=["accuracy"])(metric)(model, holdout=model["holdout"])
    op = dag.get_task("metric")
    assert isinstance(op, EvaluateOperator) and op.metric_fn is metric
    assert op.metrics == ["accuracy"]
    assert op.upstream_task_ids == {"fit"}
    assert op.multiple_outputs is False, "the metric function's dict annotation is not the task's output"


def test_task_ids_follow_taskflow(dag: DAG) -> None:
    featurize = task.ml_featurize(transform)
    featurize("a.parquet")
    featurize("b.parquet")
    featurize.override(task_id="named")("c.parquet")
    assert sorted(dag.task_ids) == ["named", "transform", "transform__1"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: f(), "is missing its first argument 'raw': the data reference"),
        (lambda f: f("a", raw="b"), "got multiple values for argument 'raw'"),
        (lambda f: f("a", 1.0, 2, 3), "takes 3 positional arguments but 4 were given"),
        (lambda f: f("a", 1.0, clip=2.0), "got multiple values for argument 'clip'"),
        (lambda f: f("a", gamma=1), "cannot be called with params ['gamma']"),
    ],
)
def test_a_featurize_call_that_does_not_fit_is_refused_when_the_dag_is_built(dag: DAG, call: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message.replace("[", r"\[").replace("(", r"\(")):
        call(task.ml_featurize(transform))


def test_a_param_in_the_decorator_and_the_call_is_refused(dag: DAG) -> None:
    train = task.ml_train(target_column="y", registered_model_name="m", train_params={"C": 1.0})(fit)
    with pytest.raises(TypeError, match=r"got \['C'\] both in the call and in the decorator's train_params"):
        train("features.parquet", C=2.0)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("m",), {}, "is missing 'holdout'"),
        (("m", "h", "x"), {}, "takes 2 arguments, got 3 positional ones"),
        (("m", "h"), {"C": 1}, "got an unexpected keyword argument 'C'"),
        (("m",), {"model": "n", "holdout": "h"}, "got multiple values for argument 'model'"),
    ],
)
def test_an_evaluate_call_that_does_not_fit_is_refused(dag: DAG, args: Any, kwargs: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        task.ml_evaluate(metric)(*args, **kwargs)


def test_a_function_without_a_data_argument_is_refused(dag: DAG) -> None:
    def no_data(**params: Any) -> Any:
        return None

    with pytest.raises(TypeError, match="must take the data as its first positional argument"):
        task.ml_train(target_column="y", registered_model_name="m")(no_data)(C=1)


def test_parsing_the_taskflow_example_imports_no_heavy_module() -> None:
    """DESIGN.md: parse-time cost is zero -- the decorators import what the operators import, no more."""
    code = (  # parsed as Airflow's dag processor parses the DAGs folder
        "import sys; from pathlib import Path;"
        "from airflow.dag_processing.dagbag import BundleDagBag;"
        "folder = Path('dags_examples').resolve();"
        "bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name='dags-folder');"
        "assert not bag.import_errors, bag.import_errors;"
        "assert bag.dags['breast_cancer_retrain_taskflow'].task_ids;"
        "heavy = ('mlflow', 'great_expectations', 'pandas', 'pyarrow', 'sklearn', 'numpy', 'openlineage.client');"
        "print([m for m in heavy if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
