"""BatchPredictOperator: score a dataset with a registered model version (by version or alias)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.lineage.datasets import LineageDataset, file_dataset, uri_dataset
from airflow_ml_provider.model.reference import ModelAlias, parse_model
from airflow_ml_provider.operators.model_step import AliasModelStepOperator
from airflow_ml_provider.records.tags import (
    TAG_FEATURE_COLUMNS,
    TAG_INPUT_FINGERPRINT,
    TAG_MODEL_FINGERPRINT,
    TAG_OUTPUT_FINGERPRINT,
    TAG_SHADOW_MODEL_VERSION,
    TAG_TASK,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from airflow.sdk import Context
    from mlflow.entities.model_registry import ModelVersion

    from airflow_ml_provider.data.datasets import DatasetRef
    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.model.reference import ModelRef
    from airflow_ml_provider.monitoring.shadow import ShadowComparison, ShadowSummary
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


#: Columns of a shadow comparison file (``<artifact_root>/shadow/<blake3>.parquet``), one row per compared row.
SHADOW_COLUMNS = (
    PREDICTION_ID,
    ROW_INDEX,
    "primary_prediction",
    "shadow_prediction",
    "primary_probability",
    "shadow_probability",
)


@dataclass(frozen=True)
class Scores:
    """One model's predictions on some rows, and how long it took (``predict`` and ``predict_proba``)."""

    prediction: np.ndarray
    #: Binary classifiers with ``predict_proba``: the probability of the larger label.
    probability: np.ndarray | None
    positive_class: str | int | float | bool | None
    seconds: float


def score_rows(model: Any, x: pd.DataFrame, *, warm: bool = False) -> Scores:
    """Score ``x`` with a loaded model the way every predictions file is made (predict, and the positive
    class's probability for a binary classifier), timed: what predict, the live shadow and replay share.

    :param warm: score the first row once, untimed, before timing: a model's first call after loading pays
        one-off costs (lazy initialisation, caches), which would otherwise count against whichever model
        of a comparison is called first.
    """
    if warm and len(x):
        score_rows(model, x.iloc[:1])
    import time

    import numpy as np

    start = time.perf_counter()
    n = len(x)
    prediction = np.asarray(model.predict(x)).reshape(n, -1)[:, 0]
    probability, positive = None, None
    if callable(getattr(model, "predict_proba", None)):
        proba = np.asarray(model.predict_proba(x))
        if proba.ndim == 2 and proba.shape[1] == 2:
            probability = proba[:, 1].astype("float64")
            classes = getattr(model, "classes_", None)
            if classes is not None and len(classes) == 2:
                positive = getattr(classes[1], "item", lambda: classes[1])()
    return Scores(prediction, probability, positive, time.perf_counter() - start)


def feature_columns(hook: MlflowHook, ref: ModelRef, version: ModelVersion) -> list[str]:
    """The columns the model is fed, in order: as recorded at training (``airflow_ml.feature_columns``), else
    as its signature names them."""
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


def require_columns(frame: pd.DataFrame, columns: Sequence[str], uri: str, ref: ModelRef) -> None:
    """Every feature column of ``ref`` is in the input, or a :class:`DatasetError` naming the missing ones."""
    from airflow_ml_provider.data.datasets import DatasetError

    present = set(map(str, frame.columns))
    missing = [c for c in columns if c not in present]
    if missing:
        raise DatasetError(
            f"input dataset {uri} lacks feature columns {missing} of {ref.uri} "
            f"(the input has columns {sorted(present)})"
        )


def model_task(version: ModelVersion, scores: Scores) -> str:
    """``classification`` or ``regression``: as recorded at training, else classification when it has probabilities."""
    from airflow_ml_provider.monitoring.shadow import CLASSIFICATION, REGRESSION

    return version.tags.get(TAG_TASK) or (CLASSIFICATION if scores.probability is not None else REGRESSION)


def compare_scores(task: str, ids: Any, rows: Any, primary: Scores, shadow: Scores) -> ShadowComparison:
    """:func:`~airflow_ml_provider.monitoring.shadow.compare_predictions` on two models' scores of the same rows."""
    from airflow_ml_provider.monitoring.shadow import compare_predictions

    return compare_predictions(
        task,
        primary.prediction,
        shadow.prediction,
        prediction_ids=ids,
        row_indexes=rows,
        primary_probability=primary.probability,
        shadow_probability=shadow.probability,
        primary_seconds=primary.seconds,
        shadow_seconds=shadow.seconds,
    )


def shadow_frame(
    ids: Sequence[str], rows: Sequence[int], primary: Scores, shadow: Scores
) -> pd.DataFrame:
    """The rows both models scored, side by side (:data:`SHADOW_COLUMNS`; probabilities only where both have one)."""
    import pandas as pd

    columns: dict[str, Any] = {
        PREDICTION_ID: list(ids),
        ROW_INDEX: pd.array(rows, dtype="int64"),
        "primary_prediction": primary.prediction,
        "shadow_prediction": shadow.prediction,
    }
    if primary.probability is not None and shadow.probability is not None:
        columns.update(primary_probability=primary.probability, shadow_probability=shadow.probability)
    return pd.DataFrame(columns)


def shadow_fraction_value(value: Any, where: str) -> float:
    """The share of a batch the shadow scores: a number in (0, 1] (text from a template is read as a number)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{where}: shadow_fraction must be a number in (0, 1], got the text {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value <= 1) or math.isnan(value):
        raise ValueError(f"{where}: shadow_fraction must be a number in (0, 1] (0.1 scores a tenth), got {value!r}")
    return float(value)


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

    **Live shadow** (``shadow="models:/<name>@challenger"``): a sample of each batch (``shadow_fraction`` of its
    rows, at least one, drawn with a generator seeded by the input's fingerprint, so a rerun on the same input
    compares the same rows) is scored by the shadow model too, and both models are timed on those rows. Only
    the served model's predictions are the output (the predictions file does not change). The comparison
    (:func:`airflow_ml_provider.monitoring.shadow.compare_predictions`) goes into the step record
    (``results.shadow``, bound to both versions and the input's fingerprint), the rows side by side into a
    content-addressed ``<artifact_root>/shadow/<blake3>.parquet`` (output role ``shadow_comparison``), the
    figures into ``shadow.*`` metrics, and the run is tagged ``airflow_ml.shadow_model_version`` (the shadow is
    a version of the served registered model): the gate finds every run in which a candidate was shadowed, and the
    evidence accumulates across runs. A shadow that cannot be resolved, loaded or scored never breaks the
    production predictions: the failure is logged as a warning and recorded (the gate fails on it). A shadow
    that resolves to the served version is refused: given literally, when the DAG is parsed; through an
    alias, recorded as a failure.

    Returns (XCom): the predictions' dataset reference (``uri``, ``fingerprint``, ``rows``, ``columns``,
    ``schema``, ``size_bytes``) plus ``mlflow_run_id``, ``model_name``, ``version``, ``model_uri`` and
    ``alias`` (or None).

    :param model: TrainOperator's result, ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` (templated).
    :param input: dataset to score: an upstream dataset reference (e.g. ``featurize.output``, verified by
        fingerprint) or a local path / ``file://`` URI to Parquet or CSV (templated).
    :param keep_columns: input columns copied into the predictions (e.g. an entity id) (templated).
    :param shadow: a model to shadow the served one with, ``models:/<name>@<alias>`` or ``models:/<name>/<version>``
        (templated); None: no shadow.
    :param shadow_fraction: the share of each batch the shadow scores, in (0, 1] (templated).
    """

    step = "predict"
    #: Scoring with the live alias is a serving effect: a reproduction rebuilds the model, it does not serve it.
    runs_in_reproduction = False
    template_fields: Sequence[str] = (
        *AliasModelStepOperator.template_fields,
        "input",
        "keep_columns",
        "shadow",
        "shadow_fraction",
    )
    ui_color = "#e3f4d7"

    def __init__(
        self,
        *,
        input: Mapping[str, Any] | str,
        keep_columns: Sequence[str] | None = None,
        shadow: str | None = None,
        shadow_fraction: float | str = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input = input
        self.keep_columns = list(keep_columns or [])
        reserved = sorted(set(self.keep_columns) & set(RESERVED_COLUMNS))
        if reserved:
            raise ValueError(f"keep_columns {reserved} clash with the predictions' own columns {RESERVED_COLUMNS}")
        self.shadow = shadow
        self.shadow_fraction = shadow_fraction
        # Literal arguments are checked now: a mistake is a DAG import error naming the task.
        if not (isinstance(shadow_fraction, str) and "{{" in shadow_fraction):
            self.shadow_fraction = shadow_fraction_value(shadow_fraction, f"task {self.task_id!r}")
        if isinstance(shadow, str) and "{{" not in shadow:
            requested = parse_model(shadow, "shadow")
            if isinstance(self.model, str) and "{{" not in self.model:
                _same_model(requested.name, parse_model(self.model).name, self.task_id)
            if isinstance(self.model, str) and "{{" not in self.model and parse_model(self.model) == requested:
                raise ValueError(
                    f"task {self.task_id!r}: shadow {shadow} is the served model itself: a model cannot shadow "
                    "itself; shadow it with the candidate (e.g. models:/<name>@challenger)"
                )

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

        columns = feature_columns(hook, ref, version)
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
        model = hook.load_model(ref.uri) if len(frame) else None
        predictions, scores = self._score(ref, model, frame, columns, input_ref.fingerprint, fingerprint)
        out = write_frame(predictions, self.resolve_artifact_root(), "predictions")
        self._lineage_outputs = [file_dataset(out)]
        run.record.outputs.append({"role": "predictions", **out.to_dict()})
        shadow = None
        if self.shadow:
            shadow = self._live_shadow(hook, run, ref, version, model, frame, columns, predictions, scores, input_ref)
        run.record.results = PredictResult(
            rows=out.rows,
            model_version=ref.version,
            alias=self.alias,
            positive_class=scores.positive_class if scores else None,
            shadow=shadow,
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
    def _check_columns(self, frame: pd.DataFrame, columns: Sequence[str], uri: str, ref: ModelRef) -> None:
        from airflow_ml_provider.data.datasets import DatasetError

        require_columns(frame, columns, uri, ref)
        present = set(map(str, frame.columns))
        missing_keep = [c for c in self.keep_columns if c not in present]
        if missing_keep:
            raise DatasetError(f"input dataset {uri} has no keep_columns {missing_keep}")

    def _score(
        self,
        ref: ModelRef,
        model: Any,
        frame: pd.DataFrame,
        columns: Sequence[str],
        input_fingerprint: str,
        model_fingerprint: str | None,
    ) -> tuple[pd.DataFrame, Scores | None]:
        """The predictions file's frame, and the scores (None for an empty input: no model was loaded)."""
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
        scores = None
        if n:
            scores = score_rows(model, frame[list(columns)])
            out[PREDICTION] = scores.prediction
            if scores.probability is not None:
                out[PROBABILITY] = scores.probability
        else:
            out[PREDICTION] = pd.Series([], dtype="float64")
        out[MODEL_NAME] = ref.name
        out[MODEL_VERSION] = ref.version
        return out, scores

    # --- the live shadow ---------------------------------------------------------------------------
    def _live_shadow(
        self,
        hook: MlflowHook,
        run: StepRun,
        ref: ModelRef,
        version: ModelVersion,
        model: Any,
        frame: pd.DataFrame,
        columns: Sequence[str],
        predictions: pd.DataFrame,
        scores: Scores | None,
        input_ref: DatasetRef,
    ) -> ShadowSummary:
        """Score a seeded sample with the shadow and compare; every failure is recorded, never raised."""
        from dataclasses import replace

        from airflow_ml_provider.data.datasets import write_frame
        from airflow_ml_provider.model.reference import get_version, resolve_alias
        from airflow_ml_provider.monitoring.shadow import (
            COMPARED,
            FAILED,
            LIVE,
            NO_TRAFFIC,
            ShadowBatch,
            ShadowSummary,
            sample_rows,
        )

        fraction = shadow_fraction_value(self.shadow_fraction, f"task {self.task_id!r}")
        summary = ShadowSummary(
            kind=LIVE,
            status=FAILED,
            model_name=ref.name,
            primary_version=ref.version,
            primary_fingerprint=version.tags.get(TAG_MODEL_FINGERPRINT),
            shadow_uri=str(self.shadow),
            shadow_version=None,
            shadow_fingerprint=None,
            batches=(),
            comparison=None,
            fraction=fraction,
        )
        n = len(frame)
        batch = ShadowBatch(input_ref.uri, input_ref.fingerprint, n, None)
        try:
            requested = parse_model(self.shadow, "shadow")
            _same_model(requested.name, ref.name, self.task_id)
            shadow_ref = resolve_alias(hook, requested) if isinstance(requested, ModelAlias) else requested
            if shadow_ref == ref:
                raise ValueError(
                    f"shadow {requested.uri} resolves to {ref.uri}, the version being served: a model cannot "
                    "shadow itself, so nothing was compared; point the shadow's alias at the candidate"
                )
            shadow_version = get_version(hook, shadow_ref)
            summary = replace(
                summary,
                shadow_version=shadow_ref.version,
                shadow_fingerprint=shadow_version.tags.get(TAG_MODEL_FINGERPRINT),
            )
            run.set_tags({TAG_SHADOW_MODEL_VERSION: shadow_ref.version})
            if not n or scores is None:
                return replace(summary, status=NO_TRAFFIC, batches=(batch,))
            rows = sample_rows(input_ref.fingerprint, n, max(1, math.ceil(n * fraction)))
            shadow_columns = feature_columns(hook, shadow_ref, shadow_version)
            require_columns(frame, shadow_columns, input_ref.uri, shadow_ref)
            shadow_model = hook.load_model(shadow_ref.uri)
            sample = frame.iloc[rows]
            timed_primary = score_rows(model, sample[list(columns)], warm=True)  # both timed on the same rows
            shadow_scores = score_rows(shadow_model, sample[list(shadow_columns)], warm=True)
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
            self.log.warning(
                "Shadow %s failed; the predictions of %s are unaffected: %s", self.shadow, ref.uri, error
            )
            return replace(summary, batches=(replace(batch, error=error),), error=error)
        primary = Scores(
            scores.prediction[rows],
            None if scores.probability is None else scores.probability[rows],
            scores.positive_class,
            timed_primary.seconds,
        )
        ids = predictions[PREDICTION_ID].to_numpy()[rows]
        comparison = compare_scores(model_task(version, primary), ids, rows, primary, shadow_scores)
        out = write_frame(shadow_frame(ids, rows, primary, shadow_scores), self.resolve_artifact_root(), "shadow")
        run.record.outputs.append({"role": "shadow_comparison", **out.to_dict()})
        run.log_metrics(comparison.metrics())
        self.log.info("Shadow %s on %d of %d rows: %s", self.shadow, comparison.rows, n, comparison.describe())
        compared = replace(batch, comparison=comparison)
        return replace(summary, status=COMPARED, batches=(compared,), comparison=comparison)


def _same_model(shadow_name: str, served_name: str, task_id: str) -> None:
    """The shadow must be a version of the served registered model: the gate compares a candidate with its
    own model's champion, so evidence against another model's version would count for nothing."""
    if shadow_name != served_name:
        raise ValueError(
            f"task {task_id!r}: the shadow is a version of {shadow_name!r}, another registered model than the "
            f"served {served_name!r}: shadow with a version or alias of it (e.g. models:/{served_name}@challenger)"
        )
