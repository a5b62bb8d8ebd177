"""The three decorators, registered in the provider info's ``task-decorators``: each a decorated operator
(:class:`~airflow_ml_provider.decorators.base.MLDecoratedOperator` before the step's operator) and the
``task_decorator_factory`` function Airflow's ``task.<name>`` returns."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.decorator import task_decorator_factory

from airflow_ml_provider.decorators.base import MLDecoratedOperator
from airflow_ml_provider.operators.evaluate import EvaluateOperator
from airflow_ml_provider.operators.featurize import FeaturizeOperator
from airflow_ml_provider.operators.train import TrainOperator

if TYPE_CHECKING:
    from airflow.sdk.bases.decorator import TaskDecorator


class _FeaturizeDecoratedOperator(MLDecoratedOperator, FeaturizeOperator):
    """FeaturizeOperator with the decorated function as ``transform``: ``featurize(raw_uri, **params)``."""

    callable_argument, data_arguments, params_argument = "transform", ("raw_uri",), "transform_params"


class _TrainDecoratedOperator(MLDecoratedOperator, TrainOperator):
    """TrainOperator with the decorated function as ``train``: ``train(features, **params)``."""

    callable_argument, data_arguments, params_argument = "train", ("features",), "train_params"


class _EvaluateDecoratedOperator(MLDecoratedOperator, EvaluateOperator):
    """EvaluateOperator with the decorated function as ``metric_fn``: ``evaluate(model, holdout)``."""

    callable_argument, data_arguments = "metric_fn", ("model", "holdout")


def ml_featurize_task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> TaskDecorator:
    """
    ``@task.ml_featurize``: a ``transform(df, **params) -> DataFrame`` as a FeaturizeOperator task.

    The decorator takes FeaturizeOperator's arguments (``raw_suite``, ``features_suite``, ``seed``,
    ``mlflow_conn_id``, ``artifact_root``, ... and any BaseOperator argument); the call takes the raw
    dataset's URI (templated) first, then the transform's params:
    ``features = featurize("{{ params.raw_uri }}", clip_quantile=0.99)``.
    """
    return task_decorator_factory(python_callable, decorated_operator_class=_FeaturizeDecoratedOperator, **kwargs)


def ml_train_task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> TaskDecorator:
    """
    ``@task.ml_train``: a ``train(df, **params) -> fitted model`` as a TrainOperator task.

    The decorator takes TrainOperator's arguments (``target_column``, ``registered_model_name``,
    ``holdout_fraction``, ``seed``, ``task``, ``pip_requirements``, ``train_params``, ... and any BaseOperator
    argument); the call takes the features (a featurize task's result or a dataset reference) first, then the
    training function's params: ``model = train(features, C=0.5)``. The task returns TrainOperator's result
    with ``multiple_outputs``, so ``model["holdout"]`` is the holdout split's reference.
    """
    return task_decorator_factory(python_callable, decorated_operator_class=_TrainDecoratedOperator, **kwargs)


def ml_evaluate_task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> TaskDecorator:
    """
    ``@task.ml_evaluate``: a custom metric function ``fn(y_true, y_pred) -> {name: value}`` as an
    EvaluateOperator task.

    The decorator takes EvaluateOperator's arguments (``metrics``, ``target_column``, ``task``,
    ``champion_alias``, ... and any BaseOperator argument); the call takes the model (a train task's result
    or ``models:/<name>/<version>``) and the holdout dataset, by position or by name:
    ``evaluate(model, model["holdout"])``. The built-in metrics and the function's are scored on the holdout,
    for the model and for the champion, as EvaluateOperator does.
    """
    return task_decorator_factory(python_callable, decorated_operator_class=_EvaluateDecoratedOperator, **kwargs)
