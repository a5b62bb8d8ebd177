"""Base for steps that work on one registered model version (evaluate, simulate, promote)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.lineage.datasets import LineageDataset, model_dataset
from airflow_ml_provider.model.reference import ModelAlias, parse_model, resolve_alias
from airflow_ml_provider.operators.base import MLStepOperator
from airflow_ml_provider.records.tags import (
    TAG_MODEL_ALIAS,
    TAG_MODEL_FINGERPRINT,
    TAG_MODEL_NAME,
    TAG_MODEL_VERSION,
    evidence_tag,
)

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


class AliasModelStepOperator(ModelStepOperator):
    """A model step that also takes ``models:/<name>@<alias>``, resolved when the task runs; the resolved
    version is what gets recorded (with the alias). Serving-side steps: predict, drift."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(self.model, str) and "{{" not in self.model:
            parse_model(self.model)  # a malformed literal reference fails when the DAG is parsed
        self._resolved: ModelRef | None = None
        self._alias: ModelAlias | None = None

    def model_ref(self) -> ModelRef:
        """The version to use: the alias's version once resolved by :meth:`open_aliased_model`."""
        if self._resolved is not None:
            return self._resolved
        ref = parse_model(self.model)
        if isinstance(ref, ModelAlias):
            raise RuntimeError(f"{ref.uri} has not been resolved to a version yet")
        return ref

    @property
    def alias(self) -> str | None:
        """The alias the model was given by, once resolved (None for a version)."""
        return self._alias.alias if self._alias else None

    def open_aliased_model(
        self, hook: MlflowHook, run: StepRun
    ) -> tuple[ModelAlias | ModelRef, ModelRef, ModelVersion]:
        """Resolve the alias (if any), then :meth:`open_model`; returns what was asked for, the version and
        its registry entry."""
        from dataclasses import replace

        self._alias, self._resolved = None, None
        requested = parse_model(self.model)
        if isinstance(requested, ModelAlias):
            self._alias, self._resolved = requested, resolve_alias(hook, requested)
            self.log.info("Alias %s resolves to version %s", requested.uri, self._resolved.version)
        else:
            self._resolved = requested
        ref, version = self.open_model(hook, run)
        if self._alias and run.record.model is not None:
            run.record.model = replace(run.record.model, alias=self._alias.alias)
            run.set_tags({TAG_MODEL_ALIAS: self._alias.alias})
        return requested, ref, version
