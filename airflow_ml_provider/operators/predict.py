"""BatchPredictOperator: score a dataset with a registered model version (by version or alias)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.lineage.datasets import LineageDataset, file_dataset, uri_dataset
from airflow_ml_provider.operators.model_step import AliasModelStepOperator
from airflow_ml_provider.records.tags import (
    TAG_FEATURE_COLUMNS,
    TAG_INPUT_FINGERPRINT,
    TAG_OUTPUT_FINGERPRINT,
)

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context
    from mlflow.entities.model_registry import ModelVersion

    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.model.reference import ModelRef
    from airflow_ml_provider.records.step_run import StepRun

#: Columns every predictions file has (``probability`` only for binary classifiers with ``predict_proba``).
PREDICTION_ID, ROW_INDEX, PREDICTION, PROBABILITY = "prediction_id", "row_index", "prediction", "probability"
MODEL_NAME, MODEL_VERSION = "model_name", "model_version"
RESERVED_COLUMNS = (PREDICTION_ID, ROW_INDEX, PREDICTION, PROBABILITY, MODEL_NAME, MODEL_VERSION)
_ID_NAMESPACE_URL = "https://github.com/airflow-ml-provider/predictions"


def prediction_ids(input_fingerprint: str, model_uri: str, model_fingerprint: str | None, rows: int) -> list[str]:
    """One UUID per row, derived from the input's content, the model version and the row index: the
    same input scored by the same model version gets the same ids on every run."""
    import uuid

    namespace = uuid.uuid5(uuid.NAMESPACE_URL, _ID_NAMESPACE_URL)
    batch = uuid.uuid5(namespace, f"{input_fingerprint}|{model_uri}|{model_fingerprint or ''}")
    return [str(uuid.uuid5(batch, str(i))) for i in range(rows)]


class BatchPredictOperator(AliasModelStepOperator):
    """
    Score a dataset with a registered model version and write the predictions, content-addressed, to
    ``<artifact_root>/predictions/<blake3>.parquet``.

    The model is given by version or by alias; an alias is resolved when the task runs and the
    resolved version is what gets recorded. The model is fed the feature columns recorded at training
    (``airflow_ml.feature_columns``, else its MLflow signature), in that order.

    The predictions file has one row per input row: ``prediction_id`` (a UUID stable across reruns on
    the same input bytes with the same model version), ``row_index`` (the row's position in the input),
    the ``keep_columns``, ``prediction``, ``probability`` (of the larger label, for binary classifiers
    with ``predict_proba``), ``model_name`` and ``model_version``.

    Lineage: the input dataset and the model -> the predictions. The MLflow run is tagged with the
    predictions fingerprint (``airflow_ml.output_fingerprint``), which is how ``airflow-ml lineage``
    finds it from a predictions file.

    Returns (XCom): the predictions' dataset reference (``uri``, ``fingerprint``, ``rows``, ``columns``,
    ``schema``, ``size_bytes``) plus ``mlflow_run_id``, ``model_name``, ``version``, ``model_uri`` and
    ``alias`` (or None).

    :param model: TrainOperator's result, ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` (templated).
    :param input: dataset to score: an upstream dataset reference (e.g. ``featurize.output``, verified by
        fingerprint) or a local path / ``file://`` URI to Parquet or CSV (templated).
    :param keep_columns: input columns copied into the predictions (e.g. an entity id) (templated).
    """

    step = "predict"
    #: Scoring with the live alias is a serving effect: a reproduction rebuilds the model, it does not serve it.
    runs_in_reproduction = False
    template_fields: Sequence[str] = (*AliasModelStepOperator.template_fields, "input", "keep_columns")
    ui_color = "#e3f4d7"

    def __init__(
        self,
        *,
        input: Mapping[str, Any] | str,
        keep_columns: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input = input
        self.keep_columns = list(keep_columns or [])
        reserved = sorted(set(self.keep_columns) & set(RESERVED_COLUMNS))
        if reserved:
            raise ValueError(f"keep_columns {reserved} clash with the predictions' own columns {RESERVED_COLUMNS}")

    def planned_inputs(self) -> list[LineageDataset]:
        if isinstance(self.input, Mapping):
            return [file_dataset(self.input)]
        if isinstance(self.input, str) and "{{" not in self.input:
            return [uri_dataset(self.input)]
        return []

    def run_step(self, context: Context, hook: MlflowHook, run: StepRun) -> dict[str, Any]:
        from airflow_ml_provider.data.datasets import read_verified, write_frame
        from airflow_ml_provider.records.step_record import PredictResult

        requested, ref, version = self.open_aliased_model(hook, run)

        input_ref, frame = read_verified(self.input, "input dataset")
        self._lineage_inputs.insert(0, file_dataset(input_ref))
        producer = self.input.get("mlflow_run_id") if isinstance(self.input, Mapping) else None
        run.record.inputs.append(
            {"role": "input", **input_ref.to_dict(), **({"producer_run_id": producer} if producer else {})}
        )
        run.set_tags({TAG_INPUT_FINGERPRINT: input_ref.fingerprint})

        columns = self._feature_columns(hook, ref, version)
        self._check_columns(frame, columns, input_ref.uri, ref)
        params = {
            "model": requested.uri,
            "model_alias": self.alias,
            "model_version": ref.version,
            "input_uri": input_ref.uri,
            "input_fingerprint": input_ref.fingerprint,
            "feature_columns": columns,
            "keep_columns": self.keep_columns,
        }
        run.log_params({k: v for k, v in params.items() if v is not None})

        fingerprint = run.record.model.fingerprint if run.record.model else None
        predictions, positive_class = self._score(hook, ref, frame, columns, input_ref.fingerprint, fingerprint)
        out = write_frame(predictions, self.resolve_artifact_root(), "predictions")
        self._lineage_outputs = [file_dataset(out)]
        run.record.outputs.append({"role": "predictions", **out.to_dict()})
        run.record.results = PredictResult(
            rows=out.rows,
            model_version=ref.version,
            alias=self.alias,
            positive_class=positive_class,
        )
        run.set_tags({TAG_OUTPUT_FINGERPRINT: out.fingerprint})
        run.log_metrics({"predictions_rows": out.rows})
        self.log.info(
            "Scored %d rows of %s with %s -> %s (%s)", out.rows, input_ref.uri, ref.uri, out.uri, out.fingerprint
        )
        return {
            **out.to_dict(),
            "mlflow_run_id": run.run_id,
            "model_name": ref.name,
            "version": ref.version,
            "model_uri": ref.uri,
            "alias": self.alias,
        }

    # --- helpers -----------------------------------------------------------------------------------
    def _feature_columns(self, hook: MlflowHook, ref: ModelRef, version: ModelVersion) -> list[str]:
        from airflow_ml_provider.model import reference as models
        from airflow_ml_provider.model.reference import ModelReferenceError

        columns = models.feature_columns(version)
        if columns:
            return list(columns)
        signature = hook.model_info(ref.uri).signature
        names = signature.inputs.input_names() if signature is not None and signature.inputs is not None else []
        if not names or not all(isinstance(n, str) for n in names):
            raise ModelReferenceError(
                f"{ref.uri} records no feature columns (tag {TAG_FEATURE_COLUMNS}) and its signature "
                "names no input columns: cannot tell which input columns to score"
            )
        return list(names)

    def _check_columns(self, frame: pd.DataFrame, columns: Sequence[str], uri: str, ref: ModelRef) -> None:
        from airflow_ml_provider.data.datasets import DatasetError

        present = set(map(str, frame.columns))
        missing = [c for c in columns if c not in present]
        if missing:
            raise DatasetError(
                f"input dataset {uri} lacks feature columns {missing} of {ref.uri} "
                f"(the input has columns {sorted(present)})"
            )
        missing_keep = [c for c in self.keep_columns if c not in present]
        if missing_keep:
            raise DatasetError(f"input dataset {uri} has no keep_columns {missing_keep}")

    def _score(
        self,
        hook: MlflowHook,
        ref: ModelRef,
        frame: pd.DataFrame,
        columns: Sequence[str],
        input_fingerprint: str,
        model_fingerprint: str | None,
    ) -> tuple[pd.DataFrame, Any]:
        import numpy as np
        import pandas as pd

        n = len(frame)
        out = pd.DataFrame(
            {
                PREDICTION_ID: prediction_ids(input_fingerprint, ref.uri, model_fingerprint, n),
                ROW_INDEX: np.arange(n, dtype="int64"),
            }
        )
        for column in self.keep_columns:
            out[column] = frame[column].to_numpy()
        positive_class = None
        if n:
            model = hook.load_model(ref.uri)
            x = frame[list(columns)]
            out[PREDICTION] = np.asarray(model.predict(x)).reshape(n, -1)[:, 0]
            if callable(getattr(model, "predict_proba", None)):
                proba = np.asarray(model.predict_proba(x))
                if proba.ndim == 2 and proba.shape[1] == 2:
                    out[PROBABILITY] = proba[:, 1].astype("float64")
                    classes = getattr(model, "classes_", None)
                    if classes is not None and len(classes) == 2:
                        positive_class = getattr(classes[1], "item", lambda: classes[1])()
        else:
            out[PREDICTION] = pd.Series([], dtype="float64")
        out[MODEL_NAME] = ref.name
        out[MODEL_VERSION] = ref.version
        return out, positive_class
