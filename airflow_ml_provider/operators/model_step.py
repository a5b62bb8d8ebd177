"""Base for steps that work on one registered model version (evaluate, simulate, promote)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.lineage.datasets import LineageDataset, model_dataset
from airflow_ml_provider.operators.base import MLStepOperator
from airflow_ml_provider.records.tags import TAG_MODEL_FINGERPRINT, TAG_MODEL_NAME, TAG_MODEL_VERSION, evidence_tag

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.model.reference import ModelRef
    from airflow_ml_provider.records.step_run import StepRun


class ModelStepOperator(MLStepOperator):
    """
    :param model: TrainOperator's result, ``{"model_name", "version"}`` or ``models:/<name>/<version>`` (templated).
    """

    template_fields: Sequence[str] = (*MLStepOperator.template_fields, "model")

    def __init__(self, *, model: Mapping[str, Any] | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model

    def model_ref(self) -> ModelRef:
        from airflow_ml_provider.model.reference import ModelRef

        return ModelRef.parse(self.model)

    def open_model(self, hook: MlflowHook, run: StepRun) -> tuple[ModelRef, ModelVersion]:
        """Look up the version, record it as the step's model and as a lineage input."""
        from airflow_ml_provider.model.reference import get_version
        from airflow_ml_provider.records.step_record import RecordedModel

        ref = self.model_ref()
        version = get_version(hook, ref)
        fingerprint = version.tags.get(TAG_MODEL_FINGERPRINT)
        run.record.model = RecordedModel(name=ref.name, version=ref.version, uri=ref.uri, fingerprint=fingerprint)
        run.set_tags({TAG_MODEL_NAME: ref.name, TAG_MODEL_VERSION: ref.version})
        self._lineage_inputs.insert(
            0, model_dataset(hook.tracking_uri, ref.name, ref.version, fingerprint)
        )
        return ref, version

    def bind_evidence(self, hook: MlflowHook, ref: ModelRef, run: StepRun) -> None:
        """Point the model version at this run's record, where the gate will look for it."""
        hook.set_model_version_tags(ref.name, ref.version, {evidence_tag(self.step): run.run_id})

    def planned_inputs(self) -> list[LineageDataset]:
        # The model's namespace (the tracking URI) is only known once the connection has been read in
        # execute(); lineage methods must not look connections up (they run in the listener's fork).
        return []
