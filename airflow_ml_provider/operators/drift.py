"""DriftOperator: compare the data a model version scores with the data it was trained on."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.assets import DRIFT_ALIAS, drift_asset
from airflow_ml_provider.exceptions import AirflowMLError
from airflow_ml_provider.lineage.datasets import LineageDataset, file_dataset, uri_dataset
from airflow_ml_provider.monitoring.drift import DriftPolicy
from airflow_ml_provider.operators.model_step import AliasModelStepOperator
from airflow_ml_provider.records.tags import DRIFT_REPORT_ARTIFACT, TAG_DRIFT_STATUS, TAG_TARGET, TAG_TRAINING_RUN

if TYPE_CHECKING:
    import pandas as pd
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import BaseNotifier, Context
    from mlflow.entities.model_registry import ModelVersion

    from airflow_ml_provider.data.datasets import DatasetRef
    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.model.reference import ModelRef
    from airflow_ml_provider.monitoring.drift import DriftReport
    from airflow_ml_provider.records.step_run import StepRun

ON_DRIFT = ("fail", "emit")
#: The predictions file's columns compared when ``predictions`` is given (operators/predict.py writes them).
PREDICTION_COLUMNS = ("prediction", "probability")


class DriftError(AirflowMLError, RuntimeError):
    """Drift was detected (with ``on_drift="fail"``), or the comparison could not be made honestly."""


class DriftOperator(AliasModelStepOperator):
    """
    Detect drift of a batch against a model version's training data
    (:func:`airflow_ml_provider.monitoring.detect_drift`: PSI + Kolmogorov-Smirnov for numeric
    features, chi-square + Jensen-Shannon for categorical ones, Holm-corrected across features).

    The reference is by default the rows the version was trained on, found through its train step's
    record and verified by fingerprint: a reference file changed since training is an error, never a
    silent comparison. The model's target column is left out of the comparison (a production batch
    rarely has labels). With ``predictions``, the prediction distribution is compared too: the
    batch's predictions against the same version's predictions on its training rows.

    Records the report (artifact ``airflow_ml/drift_report.json``), a metric per feature
    (``drift.<feature>``: PSI or JS distance) and ``drift.features_drifted`` on the step run, tagged
    with the model version, and the ``mlDrift`` facet on the batch's lineage input. When drift is
    detected, every notifier is called with the context (``context["drift_report"]`` holds the report
    as a dict), then: ``on_drift="fail"`` fails the task; ``"emit"`` succeeds with an event on
    :func:`~airflow_ml_provider.assets.drift_asset` (the drifted features and their scores in its
    extra), on which a retraining DAG can be scheduled. Fewer rows than the policy's ``min_rows``
    fails the task: "not enough data" is never "no drift".

    Returns (XCom): the report as a dict, plus ``mlflow_run_id``, ``model_name`` and ``version``.

    :param current: the batch: an upstream dataset reference (e.g. ``featurize.output``) or a URI (templated).
    :param model: ``models:/<name>@<alias>`` (default alias: what is serving) or ``models:/<name>/<version>``.
    :param reference: a dataset reference or URI to compare with instead of the training rows (templated).
    :param policy: a :class:`~airflow_ml_provider.monitoring.DriftPolicy` or its dict (templated).
    :param predictions: BatchPredictOperator's result for the batch, to compare predictions too (templated).
    :param on_drift: ``"fail"`` (default) or ``"emit"``.
    :param notifiers: Airflow notifiers (any ``BaseNotifier``) called when drift is detected.
    """

    step = "drift"
    #: Monitoring reads what is serving: a reproduction rebuilds the model, it does not monitor it.
    runs_in_reproduction = False
    asset_alias = DRIFT_ALIAS
    template_fields: Sequence[str] = (
        *AliasModelStepOperator.template_fields,
        "current",
        "reference",
        "policy",
        "predictions",
    )
    ui_color = "#fbeed7"

    def __init__(
        self,
        *,
        current: Mapping[str, Any] | str,
        reference: Mapping[str, Any] | str | None = None,
        policy: DriftPolicy | Mapping[str, Any] | None = None,
        predictions: Mapping[str, Any] | str | None = None,
        on_drift: str = "fail",
        notifiers: Sequence[BaseNotifier] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_drift not in ON_DRIFT:
            raise ValueError(f"on_drift must be one of {', '.join(map(repr, ON_DRIFT))}, got {on_drift!r}")
        if isinstance(policy, Mapping) and "{{" not in repr(policy):
            policy = DriftPolicy.from_dict(policy)  # a wrong literal policy fails when the DAG is parsed
        for notifier in notifiers:
            if not callable(notifier):
                raise TypeError(f"notifiers must be Airflow notifiers (BaseNotifier), got {notifier!r}")
        self.current = current
        self.reference = reference
        self.policy = policy.to_dict() if isinstance(policy, DriftPolicy) else policy
        self.predictions = predictions
        self.on_drift = on_drift
        self.notifiers = list(notifiers)
        self._drift: tuple[LineageDataset, dict[str, Any]] | None = None  # the batch and its report, for lineage

    def planned_inputs(self) -> list[LineageDataset]:
        if isinstance(self.current, Mapping):
            return [file_dataset(self.current)]
        if isinstance(self.current, str) and "{{" not in self.current:
            return [uri_dataset(self.current)]
        return []

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """The step's lineage, with the ``mlDrift`` facet on the batch's input dataset."""
        lineage = super().get_openlineage_facets_on_complete(task_instance)
        if self._drift is not None:
            try:
                from airflow_ml_provider.lineage.facets import drift_facet

                batch, report = self._drift
                for dataset in lineage.inputs:
                    if (dataset.namespace, dataset.name) == (batch.namespace, batch.name):
                        dataset.inputFacets = {**(dataset.inputFacets or {}), "mlDrift": drift_facet(report)}
            except Exception:  # lineage never breaks a task
                self.log.debug("Could not build the mlDrift facet", exc_info=True)
        return lineage

    def run_step(self, context: Context, hook: MlflowHook, run: StepRun) -> dict[str, Any]:
        from airflow_ml_provider.data.datasets import read_verified
        from airflow_ml_provider.monitoring.drift import detect_drift
        from airflow_ml_provider.records.step_record import DriftResult

        self._drift = None
        _, ref, version = self.open_aliased_model(hook, run)
        policy = self._policy(version)
        reference_ref, reference = self._reference(hook, ref, version)
        current_ref, current = read_verified(self.current, "current dataset")
        run.record_input("reference", reference_ref)
        run.record_input("current", current_ref)
        if self.predictions is not None:
            reference, current = self._with_predictions(hook, ref, version, reference, current, run)
        report = detect_drift(reference, current, policy)

        run.record.results = DriftResult(report)
        run.log_dict(report.to_dict(), DRIFT_REPORT_ARTIFACT)
        run.set_tags({TAG_DRIFT_STATUS: report.status})
        run.log_metrics(_metrics(report))
        self._lineage_inputs = [*self._lineage_inputs, file_dataset(reference_ref), file_dataset(current_ref)]
        self._drift = (file_dataset(current_ref), report.to_dict())
        self.log.info("Drift of %s against %s:\n%s", current_ref.uri, reference_ref.uri, feature_table(report))
        self.log.info("%s: %s", ref.uri, report.summary())
        result = {
            **report.to_dict(),
            "mlflow_run_id": run.run_id,
            "model_name": ref.name,
            "version": ref.version,
        }
        if not report.enough_data:
            raise DriftError(
                f"Cannot tell whether {current_ref.uri} drifted: {report.summary()}. Score a larger batch, "
                "or lower the policy's min_rows if fewer rows are enough for your features."
            )
        if report.drifted:
            self._alert(context, report)
            if self.on_drift == "fail":
                raise DriftError(
                    f"{current_ref.uri} drifted from the training data of {ref.uri}: {report.summary()}. "
                    "The report is the drift step's MLflow artifact airflow_ml/drift_report.json; "
                    'set on_drift="emit" to succeed and emit the drift asset event instead.'
                )
            self.emit_asset_event(context, drift_asset(ref.name), _event_extra(report, ref, reference_ref, current_ref))
        return result

    # --- helpers -----------------------------------------------------------------------------------
    def _policy(self, version: ModelVersion) -> DriftPolicy:
        """The policy, with the model's target column ignored unless the policy names it as a feature."""
        policy = DriftPolicy.of(self.policy)
        target = version.tags.get(TAG_TARGET)
        if target and target not in (policy.features or ()) and target not in policy.ignore:
            policy = DriftPolicy.from_dict({**policy.to_dict(), "ignore": [*policy.ignore, target]})
        return policy

    def _reference(self, hook: MlflowHook, ref: ModelRef, version: ModelVersion) -> tuple[DatasetRef, pd.DataFrame]:
        from airflow_ml_provider.data.datasets import read_verified
        from airflow_ml_provider.records.step_record import RecordError, read_step_record

        if self.reference is not None:
            return read_verified(self.reference, "reference dataset")
        training_run = version.tags.get(TAG_TRAINING_RUN) or version.run_id
        if not training_run:
            raise DriftError(f"{ref.uri} names no training run: pass reference= to compare with a dataset.")
        try:
            record = read_step_record(hook, training_run)
        except RecordError as e:
            raise DriftError(
                f"Cannot find the training data of {ref.uri}: {e} Pass reference= to compare with a dataset."
            ) from None
        train_rows = [entry for entry in record.outputs if entry.get("role") == "train"]
        if record.step != "train" or not train_rows:
            raise DriftError(
                f"{ref.uri} was not registered by a TrainOperator that recorded its training rows (run "
                f"{training_run}): pass reference= to compare with a dataset."
            )
        return read_verified(
            train_rows[0],
            f"training data of {ref.uri}",
            remedy=f"It is no longer the data {ref.uri} was trained on: restore the file, retrain the model, "
            "or pass reference= to compare with a dataset.",
        )

    def _with_predictions(
        self,
        hook: MlflowHook,
        ref: ModelRef,
        version: ModelVersion,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        run: StepRun,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Both frames with the prediction columns: the batch's from its predictions file, the reference's
        by scoring the training rows with the same version (the file must come from that version)."""
        from airflow_ml_provider.data.datasets import read_verified
        from airflow_ml_provider.operators.predict import feature_columns, score_rows

        assert self.predictions is not None
        predictions_ref, predictions = read_verified(self.predictions, "predictions")
        run.record_input("predictions", predictions_ref)
        versions = set(map(str, predictions.get("model_version", [])))
        if versions != {ref.version} or len(predictions) != len(current):
            raise DriftError(
                f"predictions {predictions_ref.uri} are not {ref.uri}'s predictions of this batch: they hold "
                f"{len(predictions)} rows of versions {sorted(versions)} for {len(current)} rows"
            )
        columns = [c for c in PREDICTION_COLUMNS if c in predictions.columns]
        scores = score_rows(hook.load_model(ref.uri), reference[feature_columns(hook, ref, version)])
        scored = {"prediction": scores.prediction, "probability": scores.probability}
        if "probability" in columns and scores.probability is None:
            raise DriftError(
                f"predictions {predictions_ref.uri} hold probabilities but {ref.uri} gives none on its training rows"
            )
        reference = reference.assign(**{c: scored[c] for c in columns})
        current = current.assign(**{c: predictions[c].to_numpy() for c in columns})
        return reference, current

    def _alert(self, context: Context, report: DriftReport) -> None:
        """Call every notifier; one that fails is logged and does not hide the drift from the others."""
        if not self.notifiers:
            return
        alert_context = {**context, "drift_report": report.to_dict()}
        for notifier in self.notifiers:
            try:
                notifier(alert_context)
            except Exception:
                self.log.warning("Notifier %r failed to send the drift alert", notifier, exc_info=True)


def _metric_name(feature: str) -> str:
    """MLflow metric names allow letters, digits, ``_ - . / :`` and spaces: anything else becomes ``_``."""
    return "drift." + re.sub(r"[^\w\-./: ]", "_", feature)


def _metrics(report: DriftReport) -> dict[str, float]:
    import math

    metrics = {
        _metric_name(name): feature.statistic
        for name, feature in report.features.items()
        if math.isfinite(feature.statistic)
    }
    metrics["drift.features_drifted"] = float(len(report.drifted_features))
    return metrics


def _event_extra(report: DriftReport, ref: ModelRef, reference: DatasetRef, current: DatasetRef) -> dict[str, Any]:
    import math

    return {
        "model_name": ref.name,
        "version": ref.version,
        "features": {
            name: {
                "method": f.method,
                "statistic": f.statistic if math.isfinite(f.statistic) else None,
                "threshold": f.threshold,
                "reason": f.reason,
            }
            for name, f in report.features.items()
            if f.drifted
        },
        "current": {"uri": current.uri, "fingerprint": current.fingerprint, "rows": current.rows},
        "reference": {"uri": reference.uri, "fingerprint": reference.fingerprint},
    }


def feature_table(report: DriftReport, width: int = 100) -> str:
    """The features as a plain table that fits a log viewer: drifted ones first, then by statistic."""
    rows = sorted(
        report.features.values(), key=lambda f: (not f.drifted, -f.statistic if f.statistic == f.statistic else 0)
    )
    name_width = max(12, min(32, max((len(f.name) for f in rows), default=0)))
    header = f"{'feature':<{name_width}} {'method':<7} {'statistic':>9} {'threshold':>9} {'adj. p':>8}  drifted"
    lines = [header, "-" * len(header)]
    for f in rows:
        p = "" if f.adjusted_p_value is None else f"{f.adjusted_p_value:.2g}"
        name = f.name if len(f.name) <= name_width else f.name[: name_width - 1] + "…"
        lines.append(
            f"{name:<{name_width}} {f.method:<7} {f.statistic:>9.3g} {f.threshold:>9.3g} {p:>8}  "
            f"{'YES' if f.drifted else 'no'}"
        )
    for change in report.schema_changes:
        lines.append(f"schema: {change}"[:width])
    return "\n".join(line[:width] for line in lines)
