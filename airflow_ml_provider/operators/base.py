"""What every ML step operator shares: MLflow step run, step record, user callables, lineage."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from airflow_ml_provider import conf
from airflow_ml_provider.lineage.datasets import LineageDataset, to_input, to_output
from airflow_ml_provider.links import STEP_LINKS
from airflow_ml_provider.records.environment import callable_name

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Asset, AssetAlias, BaseOperatorLink, Context

    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.records.step_run import StepRun


def require_callable(
    fn: Any, argument: str, *, n_args: int = 0, params: Mapping[str, Any] | None = None, seed: int | None = None
) -> Callable[..., Any]:
    """``fn`` if callable; with ``params``, also checked to accept ``n_args`` data arguments and them.

    Operators pass their user params here in ``__init__``: their names are literal (Airflow renders
    a dict's values, never its keys), so a misspelt or missing parameter is a DAG import error.
    """
    if not callable(fn):
        raise TypeError(f"{argument} must be a callable (a plain Python function), got {type(fn).__name__}")
    if params is not None:
        _user_kwargs(fn, n_args, params, argument, seed)
    return fn


def _user_kwargs(
    fn: Callable[..., Any], n_args: int, params: Mapping[str, Any], argument: str, seed: int | None
) -> dict[str, Any]:
    """The keyword arguments for ``fn`` (params, plus ``seed`` when declared and not set), or a
    TypeError naming the parameter that does not fit and the function's signature."""
    kwargs = dict(params)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: let the call tell
        return kwargs
    if seed is not None and "seed" in signature.parameters and "seed" not in kwargs:
        kwargs["seed"] = seed
    try:
        signature.bind(*([None] * n_args), **kwargs)
    except TypeError as e:
        raise TypeError(
            f"{argument} {callable_name(fn)}{signature} cannot be called with "
            f"params {sorted(kwargs)}: {e}. Fix the operator's params or the function's arguments."
        ) from None
    return kwargs


def call_user(
    fn: Callable[..., Any], args: Sequence[Any], params: Mapping[str, Any], argument: str, seed: int | None
) -> Any:
    """Call the user's function with its params, checking the params against its signature first.

    A ``seed`` argument is passed when the function declares one and the params do not set it, so
    that training is deterministic and the seed used is the one recorded.
    """
    return fn(*args, **_user_kwargs(fn, len(args), params, argument, seed))


def effective_kwargs(
    fn: Callable[..., Any], n_args: int, params: Mapping[str, Any], seed: int | None
) -> dict[str, Any]:
    """The keyword arguments :func:`call_user` passes, with the function's defaults filled in.

    What lineage records as the callable's configuration (e.g. a training function's hyperparameters):
    the first ``n_args`` positional arguments (the data) and ``*args``/``**kwargs`` catch-alls are left out.
    """
    kwargs = dict(params)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return kwargs
    if seed is not None and "seed" in signature.parameters and "seed" not in kwargs:
        kwargs["seed"] = seed
    out: dict[str, Any] = {}
    for i, (name, p) in enumerate(signature.parameters.items()):
        if i < n_args or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name in kwargs:
            out[name] = kwargs[name]
        elif p.default is not p.empty:
            out[name] = p.default
    out.update({k: v for k, v in kwargs.items() if k not in out})
    return out


class MLStepOperator(BaseOperator):
    """
    Base of the ML step operators: opens the step's MLflow run, writes its step record and keeps
    what OpenLineage needs. Subclasses implement :meth:`run_step` and may override
    :meth:`planned_inputs` for the START event.

    :param mlflow_conn_id: MLflow connection (type ``mlflow``); default from
        ``[ml_provider] mlflow_conn_id``, then ``mlflow_default``, then ``MLFLOW_TRACKING_URI``.
    :param experiment_name: MLflow experiment; default the connection's default experiment, then the DAG id.
    :param artifact_root: directory or fsspec URL (e.g. ``s3://bucket/ml``) for datasets the step writes;
        default ``[ml_provider] artifact_root``,
        then ``$AIRFLOW_HOME/ml_artifacts``.
    """

    step: ClassVar[str]
    #: Attribute holding the keyword arguments of the user's callable (what ``--set`` may change).
    user_params_attribute: ClassVar[str | None] = None
    #: Steps with effects outside the run (promotion, serving) are skipped when reproducing.
    runs_in_reproduction: ClassVar[bool] = True
    #: Attribute holding the user's callable, whose identity (source hash, git commit) lineage records.
    user_callable_attribute: ClassVar[str | None] = None
    #: The step's outlet (:mod:`airflow_ml_provider.assets`), to which it adds the concrete asset at run time.
    asset_alias: ClassVar[AssetAlias | None] = None
    template_fields: Sequence[str] = ("experiment_name", "artifact_root")
    ui_color = "#d7ecfb"
    #: "MLflow run" (and, on the steps about one model version, "Model version"): :mod:`airflow_ml_provider.links`.
    operator_extra_links: Collection[BaseOperatorLink] = STEP_LINKS

    def __init__(
        self,
        *,
        mlflow_conn_id: str | None = None,
        experiment_name: str | None = None,
        artifact_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if self.asset_alias is not None:
            self.add_outlets([self.asset_alias])
        self.mlflow_conn_id = mlflow_conn_id
        self.experiment_name = experiment_name
        self.artifact_root = artifact_root
        self._lineage_inputs: list[LineageDataset] = []
        self._lineage_outputs: list[LineageDataset] = []
        self._ml_step_run: StepRun | None = None  # set by tracking.step_run; read by the lineage methods

    # --- configuration -------------------------------------------------------------------------
    def get_hook(self) -> MlflowHook:
        return resolve_hook(self.mlflow_conn_id)

    def resolve_artifact_root(self) -> str:
        """The artifact root this step writes to; the worker-local default is warned about (once per
        process) when the executor may run the next task on another machine."""
        from airflow_ml_provider.deployment import warn_about_artifact_root

        root = self.artifact_root or conf.get("artifact_root")
        is_default = not root
        if not root:
            root = os.path.join(
                os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "ml_artifacts"
            )
        warn_about_artifact_root(root, is_default=is_default)
        return root

    # --- execution -------------------------------------------------------------------------------
    @property
    def code(self) -> str | None:
        """Identity of the user callable this step runs, if any."""
        return None

    def user_callable(self) -> Callable[..., Any] | None:
        """The user's callable this step runs, if any."""
        fn = getattr(self, self.user_callable_attribute, None) if self.user_callable_attribute else None
        return fn if callable(fn) else None

    def execute(self, context: Context) -> Any:
        from airflow_ml_provider.records.step_run import step_run
        from airflow_ml_provider.reproduce.run_conf import settings_for
        from airflow_ml_provider.task_logs import route_mlflow_output_to_task_log

        route_mlflow_output_to_task_log()
        self._lineage_inputs, self._lineage_outputs = [], []
        self._ml_step_run = None
        reproduction = settings_for(context)
        if reproduction.reproduction_of and not self.runs_in_reproduction:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(f"This run reproduces {reproduction.reproduction_of}: {self.step} does not run")
        if self.task_id in reproduction.reuse:
            return self.reuse_recorded(reproduction.reuse[self.task_id])
        self.apply_overrides(reproduction.overrides.get(self.task_id, {}))
        hook = self.get_hook()
        experiment = resolve_experiment(self.experiment_name, hook, context)
        with step_run(hook, experiment, context, self.step, self.code, code_fn=self.user_callable()) as run:
            self._ml_step_run = run
            result = self.run_step(context, hook, run)
            run.record.returned = result
            return result

    def apply_overrides(self, overrides: Mapping[str, Any]) -> None:
        """Change parameters of the user's callable for a reproduction (``--set task.param=value``)."""
        if not overrides:
            return
        if self.user_params_attribute is None:
            raise ValueError(f"{self.task_id} ({self.step}) has no user parameters to override: {sorted(overrides)}")
        current = getattr(self, self.user_params_attribute)
        self.log.info("Reproduction overrides for %s: %s (was %s)", self.task_id, dict(overrides), current)
        setattr(self, self.user_params_attribute, {**current, **overrides})

    def reuse_recorded(self, recorded: Any) -> Any:
        """Return a past run's result instead of running, after checking every dataset it names."""
        from airflow_ml_provider.data.datasets import verify_references

        checked = verify_references(recorded, f"recorded output of {self.task_id}")
        self.log.info("Reusing the recorded result of %s: %d dataset(s) verified by fingerprint", self.task_id, checked)
        return recorded

    def run_step(self, context: Context, hook: MlflowHook, run: StepRun) -> Any:
        raise NotImplementedError

    def emit_asset_event(self, context: Context, asset: Asset, extra: Mapping[str, Any]) -> None:
        """An event on ``asset`` through the step's alias outlet, recorded by Airflow if the task succeeds."""
        from airflow_ml_provider.assets import emit

        if self.asset_alias is not None and emit(context, self.asset_alias, asset, extra):
            self.log.info("Asset event on %s: %s", asset.name, dict(extra))

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
        """Inputs, outputs and run facets from what ``execute()`` gathered: no I/O here (listener's fork)."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        try:
            inputs = self._lineage_inputs or self.planned_inputs()
        except Exception:
            inputs = []
        return OperatorLineage(
            inputs=_build(to_input, inputs),
            outputs=_build(to_output, self._lineage_outputs),
            run_facets=self.lineage_run_facets(),
        )

    def lineage_run_facets(self) -> dict[str, Any]:
        """Our run facets (MLflow link, environment, hardware, code, the step's own); never raises."""
        try:
            from airflow_ml_provider.lineage.facets import step_run_facets

            return step_run_facets(getattr(self, "_ml_step_run", None))
        except Exception:  # lineage never breaks a task
            self.log.debug("Could not build the run facets", exc_info=True)
            return {}

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        return self.get_openlineage_facets_on_complete(task_instance)


def _build(convert: Callable[[LineageDataset], Any], datasets: Sequence[LineageDataset]) -> list[Any]:
    """OpenLineage datasets; one that cannot be built is left out rather than losing the whole event."""
    out = []
    for ds in datasets:
        try:
            out.append(convert(ds))
        except Exception:
            import logging

            logging.getLogger(__name__).debug("Could not build lineage dataset %s", ds, exc_info=True)
    return out


def resolve_hook(mlflow_conn_id: str | None) -> MlflowHook:
    """The operator's connection, else ``[ml_provider] mlflow_conn_id``, else ``mlflow_default``."""
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    conn_id = mlflow_conn_id or conf.get("mlflow_conn_id") or MlflowHook.default_conn_name
    return MlflowHook(mlflow_conn_id=conn_id)


def resolve_experiment(experiment_name: str | None, hook: MlflowHook, context: Context) -> str:
    """The operator's experiment, else the connection's default experiment, else the DAG id."""
    return experiment_name or hook.settings.default_experiment or context["ti"].dag_id

