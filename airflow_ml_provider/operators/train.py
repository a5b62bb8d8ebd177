"""TrainOperator: features -> deterministic train/holdout split -> user ``train`` -> registered model version."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.assets import MODEL_VERSIONS_ALIAS
from airflow_ml_provider.lineage.datasets import LineageDataset, file_dataset, model_dataset
from airflow_ml_provider.links import MODEL_STEP_LINKS
from airflow_ml_provider.operators.base import MLStepOperator, call_user, require_callable
from airflow_ml_provider.records.environment import callable_name
from airflow_ml_provider.records.tags import (
    GATE_PENDING,
    TAG_DAG_ID,
    TAG_FEATURE_COLUMNS,
    TAG_FEATURES_FINGERPRINT,
    TAG_GATE_STATUS,
    TAG_MODEL_FINGERPRINT,
    TAG_REPRODUCTION_OF,
    TAG_RUN_ID,
    TAG_TARGET,
    TAG_TASK,
    TAG_TASK_ID,
    TAG_TRAINING_RUN,
    evidence_tag,
)
from airflow_ml_provider.templating import coerce_to_annotations, templated_keys

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.records.step_run import StepRun


class TrainOperator(MLStepOperator):
    """
    Train a model on the features and register it as a new version of ``registered_model_name``.

    The features are split into train and holdout rows with ``seed`` (both splits are written
    content-addressed and recorded), ``train(train_df, **train_params)`` fits the model on the
    train split, and the model is logged with the scikit-learn flavor when it is a scikit-learn
    estimator (pyfunc otherwise). The version is tagged with the Airflow dag_id, run_id, task_id,
    the features fingerprint and the model artifact fingerprint, and its gate status is ``pending``
    from registration until the gate's verdict. A version this task registered and never got a verdict
    for, because the attempt failed or was killed, is marked ``abandoned`` (by the attempt itself, or by
    the task's next try), so the gate and promotion refuse it and ``airflow-ml status`` shows it.

    Returns (XCom): ``model_name``, ``version``, ``run_id``, ``model_uri``, ``model_fingerprint``,
    ``train`` and ``holdout`` dataset references. Emits an event on
    :func:`~airflow_ml_provider.assets.model_asset` with the ``version`` and its ``fingerprint``; the task
    page links to the MLflow run and the model version (:mod:`airflow_ml_provider.links`).

    :param features: FeaturizeOperator's result (or any dataset reference) (templated).
    :param train: ``train(df, **train_params) -> fitted model`` with a ``predict(frame)`` method.
    :param target_column: the label column; the model is fed all other columns.
    :param registered_model_name: registry name for the new version (templated).
    :param train_params: keyword arguments for ``train`` (templated), logged as MLflow params. Their names
        are checked against ``train``'s signature when the DAG is parsed; a templated value that renders
        as text ("0.5", without ``render_template_as_native_obj``) is converted to the type ``train``
        annotates the parameter with (``int``, ``float`` or ``bool``).
    :param holdout_fraction: share of rows held out for evaluation (0 < f < 1).
    :param seed: split seed, also passed to ``train`` when it declares a ``seed`` argument.
    :param pip_requirements: requirements logged with the model; default the installed versions of
        mlflow, the model's library and its serialisation dependencies.
    :param task: ``classification`` or ``regression``, recorded for evaluation; default: classification
        when the model has ``predict_proba``.
    """

    step = "train"
    asset_alias = MODEL_VERSIONS_ALIAS
    operator_extra_links = MODEL_STEP_LINKS
    user_params_attribute = "train_params"
    user_callable_attribute = "train"
    template_fields: Sequence[str] = (
        *MLStepOperator.template_fields,
        "features",
        "train_params",
        "registered_model_name",
        "target_column",
    )

    def __init__(
        self,
        *,
        features: Mapping[str, Any] | str,
        train: Callable[..., Any],
        target_column: str,
        registered_model_name: str,
        train_params: Mapping[str, Any] | None = None,
        holdout_fraction: float = 0.2,
        seed: int = 42,
        task: str | None = None,
        pip_requirements: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)  # so that train.output["holdout"] works
        super().__init__(**kwargs)
        if not 0 < holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be between 0 and 1 (exclusive), got {holdout_fraction}")
        self.features = features
        self.target_column = target_column
        self.registered_model_name = registered_model_name
        self.train_params = dict(train_params or {})
        self.holdout_fraction = holdout_fraction
        self.seed = seed
        self.train = require_callable(train, "train", n_args=1, params=self.train_params, seed=seed)
        self._templated_params = templated_keys(self.train_params)
        if task not in (None, "classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
        self.task = task
        self.pip_requirements = list(pip_requirements) if pip_requirements else None

    @property
    def code(self) -> str:
        return callable_name(self.train)

    def planned_inputs(self) -> list[LineageDataset]:
        return [file_dataset(self.features)] if isinstance(self.features, Mapping) else []

    def run_step(self, context: Context, hook: MlflowHook, run: StepRun) -> dict[str, Any]:
        from airflow_ml_provider.data.datasets import DatasetError, read_verified, write_frame
        from airflow_ml_provider.gate.store import abandon_earlier_attempts
        from airflow_ml_provider.reproduce.run_conf import settings_for

        if run.record.airflow.try_number > 1:  # a killed try left its version without a verdict: mark it
            abandon_earlier_attempts(hook, run, self.registered_model_name)
        features_ref, features = read_verified(self.features, "features")
        self._lineage_inputs = [file_dataset(features_ref)]
        run.record_input("features", features_ref)
        if self.target_column not in features.columns:
            raise DatasetError(
                f"features {features_ref.uri} have no target column {self.target_column!r}; "
                f"columns are {list(features.columns)}"
            )
        self.train_params = coerce_to_annotations(self.train, self.train_params, self._templated_params, "train")
        holdout = features.sample(frac=self.holdout_fraction, random_state=self.seed)
        train_df = features.drop(index=holdout.index)
        if train_df.empty or holdout.empty:
            raise DatasetError(
                f"features {features_ref.uri} ({len(features)} rows) are too small to split "
                f"with holdout_fraction={self.holdout_fraction}"
            )
        root = self.resolve_artifact_root()
        train_ref = write_frame(train_df.reset_index(drop=True), root, "splits")
        holdout_ref = write_frame(holdout.reset_index(drop=True), root, "splits")
        run.record.outputs += [
            {"role": "train", **train_ref.to_dict()},
            {"role": "holdout", **holdout_ref.to_dict()},
        ]
        run.log_params(
            {
                "features_uri": features_ref.uri,
                "features_fingerprint": features_ref.fingerprint,
                "target_column": self.target_column,
                "holdout_fraction": self.holdout_fraction,
                "split_seed": self.seed,
                **self.train_params,
            }
        )

        from airflow_ml_provider.operators.base import effective_kwargs
        from airflow_ml_provider.records.redaction import redact_secrets
        from airflow_ml_provider.records.step_record import RecordedModel, TrainResult

        run.record.results = TrainResult(
            registered_model_name=self.registered_model_name,
            hyperparameters=redact_secrets(effective_kwargs(self.train, 1, self.train_params, self.seed)),
            seed=self.seed,
        )
        self.log.info("Training %s on %d rows (holdout %d rows)", self.code, len(train_df), len(holdout))
        model = call_user(self.train, [train_df], self.train_params, "train", self.seed)
        if not callable(getattr(model, "predict", None)):
            raise TypeError(
                f"train {self.code} returned {type(model).__name__}, which has no predict() method; "
                "it must return a fitted model (e.g. a scikit-learn estimator)"
            )

        x_train = train_df.drop(columns=[self.target_column])
        info = self._log_model(hook, model, x_train, run)
        from airflow_ml_provider.model.reference import fingerprint_model

        fingerprint = fingerprint_model(info["model_uri"], hook)
        task = self.task or ("classification" if hasattr(model, "predict_proba") else "regression")
        # Registered with every tag in one request, the gate status ``pending`` among them: a version never
        # exists without its identity, and a step that fails before this leaves no version behind.
        tags = {
            TAG_GATE_STATUS: GATE_PENDING,
            TAG_DAG_ID: run.record.airflow.dag_id,
            TAG_RUN_ID: run.record.airflow.run_id,
            TAG_TASK_ID: run.record.airflow.task_id,
            TAG_TRAINING_RUN: run.run_id,
            TAG_MODEL_FINGERPRINT: fingerprint,
            TAG_FEATURES_FINGERPRINT: features_ref.fingerprint,
            TAG_TARGET: self.target_column,
            TAG_FEATURE_COLUMNS: json.dumps(list(x_train.columns)),
            TAG_TASK: task,
        }
        reproduction_of = settings_for(context).reproduction_of
        if reproduction_of:
            tags[TAG_REPRODUCTION_OF] = reproduction_of
        featurize_run = self.features.get("mlflow_run_id") if isinstance(self.features, Mapping) else None
        if featurize_run:
            tags[evidence_tag("featurize")] = featurize_run
        version = hook.register_model(self.registered_model_name, info["model_uri"], tags)

        run.record.model = RecordedModel(
            name=self.registered_model_name,
            version=version,
            uri=f"models:/{self.registered_model_name}/{version}",
            fingerprint=fingerprint,
            estimator=f"{type(model).__module__}.{type(model).__qualname__}",
            flavor=info["flavor"],
        )
        self._lineage_outputs = [
            model_dataset(hook.tracking_uri, self.registered_model_name, version, fingerprint),
            file_dataset(train_ref),
            file_dataset(holdout_ref),
        ]
        self.log.info("Registered %s version %s (%s)", self.registered_model_name, version, fingerprint)
        from airflow_ml_provider.assets import model_asset

        self.emit_asset_event(
            context,
            model_asset(self.registered_model_name),
            {
                "model_name": self.registered_model_name,
                "version": version,
                "fingerprint": fingerprint,
                "model_uri": f"models:/{self.registered_model_name}/{version}",
            },
        )
        return {
            "model_name": self.registered_model_name,
            "version": version,
            "run_id": run.run_id,
            "model_uri": f"models:/{self.registered_model_name}/{version}",
            "model_fingerprint": fingerprint,
            "train": train_ref.to_dict(),
            "holdout": holdout_ref.to_dict(),
        }

    def _log_model(self, hook: MlflowHook, model: Any, x_train: pd.DataFrame, run: StepRun) -> dict[str, Any]:
        """Log the model in the step's run (registered once fingerprinted); returns its URI and flavor."""
        from mlflow.models import infer_signature

        from airflow_ml_provider.model.reference import default_pip_requirements, is_sklearn_estimator

        example = x_train.head(5)
        signature = infer_signature(example, model.predict(example))
        flavor = "sklearn" if is_sklearn_estimator(model) else "pyfunc"
        # Explicit requirements: MLflow's inference runs a subprocess (~9 s) and pins whatever the
        # task process happens to import (pytest, rich...). The installed versions are exact.
        requirements = self.pip_requirements or default_pip_requirements(flavor, model)
        if flavor == "sklearn":
            model_kwargs: dict[str, Any] = {"sk_model": model}
        else:
            from airflow_ml_provider.model.pyfunc import PredictWrapper

            model_kwargs = {"python_model": PredictWrapper(model)}
        info = hook.log_model(
            run.run_id,
            flavor,
            **model_kwargs,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=requirements,
        )
        return {"model_uri": info.model_uri, "flavor": flavor}
