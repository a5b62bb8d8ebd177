"""FeaturizeOperator: raw dataset -> (expectations) -> user transform -> (expectations) -> features."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.assets import FEATURES_ALIAS
from airflow_ml_provider.lineage.datasets import LineageDataset, file_dataset, uri_dataset
from airflow_ml_provider.operators.base import MLStepOperator, call_user, require_callable
from airflow_ml_provider.records.environment import callable_name
from airflow_ml_provider.records.tags import TAG_FEATURES_FINGERPRINT, expectations_artifact
from airflow_ml_provider.templating import coerce_to_annotations, templated_keys

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.records.step_run import StepRun


class FeaturizeOperator(MLStepOperator):
    """
    Read a raw dataset, check it, turn it into features with the user's ``transform``, check
    those, and write them content-addressed under the artifact root.

    Returns (XCom) the features' dataset reference: ``uri``, ``fingerprint``, ``rows``, ``columns``,
    ``schema``, ``size_bytes`` and the step's ``mlflow_run_id``. Emits an event on
    :func:`~airflow_ml_provider.assets.features_asset` (this DAG and task) with the ``uri``,
    ``fingerprint`` and ``rows``.

    :param raw_uri: raw dataset, a ``.parquet`` or ``.csv`` file: a local path or any fsspec URL (templated).
    :param transform: ``transform(df, **transform_params) -> DataFrame``.
    :param transform_params: keyword arguments for ``transform`` (templated); checked and converted as
        :class:`~airflow_ml_provider.operators.train.TrainOperator` does its ``train_params``.
    :param raw_suite: Great Expectations suite (JSON file) the raw data must pass (templated).
    :param features_suite: suite the features must pass (templated).
    :param seed: passed to ``transform`` when it declares a ``seed`` argument.
    """

    step = "featurize"
    asset_alias = FEATURES_ALIAS
    user_params_attribute = "transform_params"
    user_callable_attribute = "transform"
    template_fields: Sequence[str] = (
        *MLStepOperator.template_fields,
        "raw_uri",
        "transform_params",
        "raw_suite",
        "features_suite",
    )

    def __init__(
        self,
        *,
        raw_uri: str,
        transform: Callable[..., pd.DataFrame],
        transform_params: Mapping[str, Any] | None = None,
        raw_suite: str | None = None,
        features_suite: str | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.raw_uri = raw_uri
        self.transform_params = dict(transform_params or {})
        self.raw_suite = raw_suite
        self.features_suite = features_suite
        self.seed = seed
        self.transform = require_callable(transform, "transform", n_args=1, params=self.transform_params, seed=seed)
        self._templated_params = templated_keys(self.transform_params)

    @property
    def code(self) -> str:
        return callable_name(self.transform)

    def planned_inputs(self) -> list[LineageDataset]:
        return [uri_dataset(self.raw_uri)]

    def run_step(self, context: Context, hook: MlflowHook, run: StepRun) -> dict[str, Any]:
        import pandas as pd

        from airflow_ml_provider.data.datasets import describe, read_frame, write_frame

        self.transform_params = coerce_to_annotations(
            self.transform, self.transform_params, self._templated_params, "transform"
        )
        raw = read_frame(self.raw_uri, "raw dataset")
        raw_ref = describe(self.raw_uri, raw)
        self._lineage_inputs = [file_dataset(raw_ref)]
        run.record_input("raw", raw_ref)
        run.log_params(
            {"raw_uri": raw_ref.uri, "raw_fingerprint": raw_ref.fingerprint, **self.transform_params}
        )
        self.log.info("Raw dataset %s: %d rows x %d columns", raw_ref.uri, raw_ref.rows, len(raw_ref.columns))

        if self.raw_suite:
            self._check(run, raw, self.raw_suite, raw_ref.uri, role="raw")

        features = call_user(self.transform, [raw], self.transform_params, "transform", self.seed)
        if not isinstance(features, pd.DataFrame):
            raise TypeError(
                f"transform {self.code} returned {type(features).__name__}; it must return a pandas DataFrame"
            )
        if self.features_suite:
            self._check(run, features, self.features_suite, f"features of {raw_ref.uri}", role="features")

        ref = write_frame(features, self.resolve_artifact_root(), "features")
        self._lineage_outputs = [file_dataset(ref)]
        run.record.outputs.append({"role": "features", **ref.to_dict()})
        run.log_metrics(
            {"raw_rows": raw_ref.rows, "feature_rows": ref.rows, "feature_columns": len(ref.columns)}
        )
        run.set_tags({TAG_FEATURES_FINGERPRINT: ref.fingerprint})
        self.log.info("Features written to %s (%s)", ref.uri, ref.fingerprint)
        self._emit_features(context, run, ref.uri, ref.fingerprint, ref.rows)
        return {**ref.to_dict(), "mlflow_run_id": run.run_id}

    def _emit_features(self, context: Context, run: StepRun, uri: str, fingerprint: str, rows: int) -> None:
        from airflow_ml_provider.assets import features_asset
        from airflow_ml_provider.records.redaction import strip_credentials

        ids = run.record.airflow
        extra = {"uri": strip_credentials(uri), "fingerprint": fingerprint, "rows": rows}
        self.emit_asset_event(context, features_asset(ids.dag_id, ids.task_id), extra)

    def _check(self, run: StepRun, df: pd.DataFrame, suite: str, dataset: str, role: str) -> None:
        """Validate ``df``; the report is recorded whether it passes or not, then failure raises."""
        from airflow_ml_provider.data.expectations import DataExpectationError, validate_frame
        from airflow_ml_provider.records.step_record import FeaturizeResult

        report = validate_frame(df, suite, dataset)
        recorded = run.record.results if isinstance(run.record.results, FeaturizeResult) else FeaturizeResult()
        run.record.results = recorded.with_report(role, report)
        if role == "raw" and self._lineage_inputs:
            # The raw input carries the suite as data-quality assertions. The spec's facet for that is an
            # input facet only: the features suite goes into the run's TestRunFacet instead.
            from dataclasses import replace

            from airflow_ml_provider.lineage.datasets import expectation_assertions

            assertions = expectation_assertions(report.to_dict())
            self._lineage_inputs = [replace(self._lineage_inputs[0], assertions=assertions), *self._lineage_inputs[1:]]
        run.log_dict(report.to_dict(), expectations_artifact(role))
        run.log_metrics({f"expectations_{role}_success": float(report.success)})
        self.log.info(
            "Expectation suite %s on %s: %s (%d expectations)",
            report.suite_name,
            dataset,
            "passed" if report.success else "FAILED",
            len(report.results),
        )
        if not report.success:
            raise DataExpectationError(report)
