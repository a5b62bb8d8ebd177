"""What every ML step operator shares: MLflow step run, step record, user callables, lineage."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from airflow_ml_provider.lineage.datasets import LineageDataset, to_input, to_output

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.tracking import StepRun

CONFIG_SECTION = "ml_provider"


def code_identity(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of a user callable, as recorded in MLflow and lineage."""
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def require_callable(fn: Any, argument: str) -> Callable[..., Any]:
    if not callable(fn):
        raise TypeError(f"{argument} must be a callable (a plain Python function), got {type(fn).__name__}")
    return fn


def call_user(
    fn: Callable[..., Any], args: Sequence[Any], params: Mapping[str, Any], argument: str, seed: int | None
) -> Any:
    """Call the user's function with its params, checking the params against its signature first.

    A ``seed`` argument is passed when the function declares one and the params do not set it, so
    that training is deterministic and the seed used is the one recorded.
    """
    kwargs = dict(params)
    signature = inspect.signature(fn)
    if seed is not None and "seed" in signature.parameters and "seed" not in kwargs:
        kwargs["seed"] = seed
    try:
        signature.bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(
            f"{argument} {code_identity(fn)}{signature} cannot be called with "
            f"params {sorted(kwargs)}: {e}. Fix the operator's params or the function's arguments."
        ) from None
    return fn(*args, **kwargs)


class MLStepOperator(BaseOperator):
    """
    Base of the ML step operators: opens the step's MLflow run, writes its step record and keeps
    what OpenLineage needs. Subclasses implement :meth:`run_step` and may override
    :meth:`planned_inputs` for the START event.

    :param mlflow_conn_id: MLflow connection (type ``mlflow``); default from
        ``[ml_provider] mlflow_conn_id``, then ``mlflow_default``, then ``MLFLOW_TRACKING_URI``.
    :param experiment_name: MLflow experiment; default the connection's default experiment, then the DAG id.
    :param artifact_root: directory for datasets the step writes; default ``[ml_provider] artifact_root``,
        then ``$AIRFLOW_HOME/ml_artifacts``.
    """

    step: ClassVar[str]
    template_fields: Sequence[str] = ("experiment_name", "artifact_root")
    ui_color = "#d7ecfb"

    def __init__(
        self,
        *,
        mlflow_conn_id: str | None = None,
        experiment_name: str | None = None,
        artifact_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id
        self.experiment_name = experiment_name
        self.artifact_root = artifact_root
        self._lineage_inputs: list[LineageDataset] = []
        self._lineage_outputs: list[LineageDataset] = []

    # --- configuration -------------------------------------------------------------------------
    def get_hook(self) -> MlflowHook:
        return resolve_hook(self.mlflow_conn_id)

    def resolve_artifact_root(self) -> str:
        root = self.artifact_root or _config(CONFIG_SECTION, "artifact_root")
        if not root:
            root = os.path.join(
                os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "ml_artifacts"
            )
        return root

    # --- execution -------------------------------------------------------------------------------
    @property
    def code(self) -> str | None:
        """Identity of the user callable this step runs, if any."""
        return None

    def execute(self, context: Context) -> Any:
        from airflow_ml_provider.tracking import step_run

        self._lineage_inputs, self._lineage_outputs = [], []
        hook = self.get_hook()
        experiment = resolve_experiment(self.experiment_name, hook, context)
        with step_run(hook, experiment, context, self.step, self.code) as run:
            return self.run_step(context, hook, run)

    def run_step(self, context: Context, hook: MlflowHook, run: StepRun) -> Any:
        raise NotImplementedError

    # --- OpenLineage ---------------------------------------------------------------------------
    def planned_inputs(self) -> list[LineageDataset]:
        """Inputs known before the step runs (for the START event)."""
        return []

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        from airflow.providers.openlineage.extractors import OperatorLineage

        try:
            inputs = self.planned_inputs()
        except Exception:  # an unrendered or bad reference: the COMPLETE/FAIL event will tell
            inputs = []
        return OperatorLineage(inputs=[to_input(d) for d in inputs])

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        from airflow.providers.openlineage.extractors import OperatorLineage

        inputs = self._lineage_inputs or self.planned_inputs()
        return OperatorLineage(
            inputs=[to_input(d) for d in inputs],
            outputs=[to_output(d) for d in self._lineage_outputs],
        )

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        return self.get_openlineage_facets_on_complete(task_instance)


def resolve_hook(mlflow_conn_id: str | None) -> MlflowHook:
    """The operator's connection, else ``[ml_provider] mlflow_conn_id``, else ``mlflow_default``."""
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    conn_id = mlflow_conn_id or _config(CONFIG_SECTION, "mlflow_conn_id") or MlflowHook.default_conn_name
    return MlflowHook(mlflow_conn_id=conn_id)


def resolve_experiment(experiment_name: str | None, hook: MlflowHook, context: Context) -> str:
    """The operator's experiment, else the connection's default experiment, else the DAG id."""
    return experiment_name or hook.settings.default_experiment or context["ti"].dag_id


def _config(section: str, key: str) -> str | None:
    from airflow.sdk import conf

    value = conf.get(section, key, fallback=None)
    return value or None
