"""EvaluateOperator: score a model version and the current champion on the same holdout."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.lineage.datasets import LineageDataset, file_dataset
from airflow_ml_provider.operators.base import require_callable
from airflow_ml_provider.operators.model_step import ModelStepOperator
from airflow_ml_provider.records.environment import callable_name
from airflow_ml_provider.records.tags import TAG_TARGET, TAG_TASK

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.records.step_run import StepRun


class EvaluateOperator(ModelStepOperator):
    """
    Score the model version on a holdout dataset and, when the registry alias ``champion_alias``
    points to another version, score that champion on the same rows. Both sets of metrics are
    logged to MLflow and recorded as the gate's evaluation evidence for this exact version.

    :param model: see :class:`ModelStepOperator` (templated).
    :param holdout: dataset reference (e.g. ``train.output["holdout"]``) or URI (templated).
    :param metrics: built-in metric names; default all for the task
        (classification: accuracy, precision, recall, f1, roc_auc, log_loss; regression: rmse, mae, mse, r2;
        see :data:`airflow_ml_provider.model.metrics.BUILTIN` for which way each is better).
    :param metric_fn: optional ``metric_fn(y_true, y_pred) -> {name: value}`` for custom metrics.
    :param target_column: label column; default the one recorded at training.
    :param task: ``classification`` or ``regression``; default the one recorded at training.
    :param champion_alias: registry alias of the current champion.
    """

    step = "evaluate"
    user_callable_attribute = "metric_fn"
    template_fields: Sequence[str] = (*ModelStepOperator.template_fields, "holdout", "champion_alias")

    def __init__(
        self,
        *,
        holdout: Mapping[str, Any] | str,
        metrics: Sequence[str] | None = None,
        metric_fn: Callable[..., dict[str, float]] | None = None,
        target_column: str | None = None,
        task: str | None = None,
        champion_alias: str = "champion",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from airflow_ml_provider.model.metrics import validate_metric_names

        if task not in (None, "classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
        if metrics is not None:
            validate_metric_names(metrics, task)
        self.holdout = holdout
        self.metrics = list(metrics) if metrics is not None else None
        self.metric_fn = require_callable(metric_fn, "metric_fn") if metric_fn is not None else None
        self.target_column = target_column
        self.task = task
        self.champion_alias = champion_alias

    @property
    def code(self) -> str | None:
        return callable_name(self.metric_fn) if self.metric_fn else None

    def planned_inputs(self) -> list[LineageDataset]:
        planned = super().planned_inputs()
        if isinstance(self.holdout, Mapping):
            planned.append(file_dataset(self.holdout))
        return planned

    def run_step(self, context: Context, hook: MlflowHook, run: StepRun) -> dict[str, Any]:
        from airflow_ml_provider.data.datasets import DatasetError, read_verified
        from airflow_ml_provider.model import reference as models
        from airflow_ml_provider.model.metrics import default_metrics, score_model, validate_metric_names

        ref, version = self.open_model(hook, run)
        holdout_ref, holdout = read_verified(self.holdout, "holdout dataset")
        self._lineage_inputs.append(file_dataset(holdout_ref))
        run.record_input("holdout", holdout_ref)

        target = self.target_column or version.tags.get(TAG_TARGET)
        task = self.task or version.tags.get(TAG_TASK) or "classification"
        if not target:
            raise ValueError(f"{ref.uri} has no recorded target column; pass target_column")
        if target not in holdout.columns:
            raise DatasetError(
                f"holdout dataset {holdout_ref.uri} has no target column {target!r}; "
                f"columns are {list(holdout.columns)}"
            )
        names = self.metrics or list(default_metrics(task))
        validate_metric_names(names, task)
        columns = models.feature_columns(version) or [c for c in holdout.columns if c != target]
        missing = [c for c in columns if c not in holdout.columns]
        if missing:
            raise DatasetError(
                f"holdout dataset {holdout_ref.uri} lacks feature columns {missing} of {ref.uri}"
            )
        x, y = holdout[columns], holdout[target]

        metrics = score_model(hook.load_model(ref.uri), x, y, task, names, self.metric_fn)
        run.log_metrics(metrics)
        run.log_params(
            {
                "holdout_uri": holdout_ref.uri,
                "holdout_fingerprint": holdout_ref.fingerprint,
                "target_column": target,
                "task": task,
                "metrics": names,
            }
        )
        self.log.info("%s on %s: %s", ref.uri, holdout_ref.uri, _fmt(metrics))

        from airflow_ml_provider.records.step_record import ChampionScore, EvaluateResult

        champion = self._score_champion(hook, ref, x, y, task, names, run)
        run.record.results = EvaluateResult(
            task=task,
            metrics=metrics,
            champion=None if champion is None else ChampionScore(**champion),
            holdout_fingerprint=holdout_ref.fingerprint,
        )
        self.bind_evidence(hook, ref, run)
        return {"model_name": ref.name, "version": ref.version, "metrics": metrics, "champion": champion}

    def _score_champion(
        self, hook: MlflowHook, ref: Any, x: Any, y: Any, task: str, names: Sequence[str], run: StepRun
    ) -> dict[str, Any] | None:
        """Champion metrics on the same rows; a broken champion is recorded, not hidden."""
        from mlflow.exceptions import MlflowException

        from airflow_ml_provider.model.metrics import score_model
        from airflow_ml_provider.model.reference import ModelRef

        try:
            champion = hook.alias_version(ref.name, self.champion_alias)
        except MlflowException as e:
            return {"version": None, "error": f"cannot resolve alias {self.champion_alias!r}: {e.message}"}
        if champion is None:
            self.log.info("No %r alias on %s yet: nothing to compare with", self.champion_alias, ref.name)
            return None
        if champion == ref.version:
            return None
        try:
            metrics = score_model(
                hook.load_model(ModelRef(ref.name, champion).uri), x, y, task, names, self.metric_fn
            )
        except Exception as e:
            self.log.warning("Champion %s v%s could not be scored: %s", ref.name, champion, e)
            return {"version": champion, "error": f"{type(e).__name__}: {e}"}
        run.log_metrics(metrics, prefix="champion_")
        self.log.info("Champion %s v%s: %s", ref.name, champion, _fmt(metrics))
        return {"version": champion, "metrics": metrics}


def _fmt(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
