"""ShadowReplayOperator: the candidate and the champion on inputs the champion actually scored in production."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.lineage.datasets import file_dataset
from airflow_ml_provider.operators.model_step import AliasModelStepOperator
from airflow_ml_provider.records.tags import (
    TAG_MODEL_FINGERPRINT,
    TAG_MODEL_NAME,
    TAG_MODEL_VERSION,
    TAG_STEP,
)

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context
    from mlflow.entities.model_registry import ModelVersion

    from airflow_ml_provider.data.datasets import DatasetRef
    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.model.reference import ModelRef
    from airflow_ml_provider.monitoring.shadow import ShadowBatch, ShadowSummary
    from airflow_ml_provider.operators.predict import Scores
    from airflow_ml_provider.records.step_run import StepRun


class ShadowReplayOperator(AliasModelStepOperator):
    """
    Replay production traffic: score the inputs of the champion's recent batch predictions with the candidate
    and with the champion, and record how they differ.

    The inputs are found through the champion's predict step runs (tagged with its version; each record
    holds its input's URI and fingerprint), newest first, one per distinct input, at most ``max_batches``.
    Each is read and verified by fingerprint: a file that changed since the champion scored it, or is gone,
    is not compared (it is not what the champion saw) and the record says which and why. At most
    ``max_rows`` rows are compared over all batches (a seeded sample of a batch when the budget runs out).

    The comparison is the one the live shadow makes
    (:func:`airflow_ml_provider.monitoring.shadow.compare_predictions`: agreement or the distribution of
    differences, the rows that disagree most, latency per 1,000 rows of each model timed on the same rows),
    per batch and over all of them. It is recorded in the step record (``results.summary``, bound to the
    candidate's and the champion's versions and to every input's fingerprint), as ``shadow.*`` metrics and
    as a content-addressed ``<artifact_root>/shadow/<blake3>.parquet`` of the rows side by side. The
    gate's ``shadow`` policy reads it with the live shadow's evidence.

    A champion that has scored nothing yet is recorded as ``no_traffic``, no champion at all as
    ``no_champion``: neither fails this step (the gate decides what they mean). A candidate that cannot be
    loaded or scored is recorded as ``failed`` (the gate fails on it) and logged as an error.

    Returns (XCom): the summary (``ShadowSummary.to_dict()``) plus ``mlflow_run_id``.

    :param model: the candidate: TrainOperator's result, ``models:/<name>/<version>`` or ``models:/<name>@<alias>``
        (templated).
    :param champion_alias: the alias of the model the candidate would replace.
    :param max_batches: at most this many of the champion's distinct recent inputs.
    :param max_rows: at most this many rows compared over all batches.
    """

    step = "shadow"
    template_fields: Sequence[str] = (*AliasModelStepOperator.template_fields, "champion_alias")
    ui_color = "#ede3f4"

    def __init__(
        self,
        *,
        champion_alias: str = "champion",
        max_batches: int = 10,
        max_rows: int = 100_000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (("max_batches", max_batches), ("max_rows", max_rows)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"task {self.task_id!r}: {name} must be an integer >= 1, got {value!r}")
        self.champion_alias = champion_alias
        self.max_batches = max_batches
        self.max_rows = max_rows

    def run_step(self, context: Context, hook: MlflowHook, run: StepRun) -> dict[str, Any]:
        from dataclasses import replace

        from airflow_ml_provider.model.reference import ModelRef, get_version
        from airflow_ml_provider.monitoring.shadow import (
            FAILED,
            NO_CHAMPION,
            NO_TRAFFIC,
            REPLAY,
            ShadowSummary,
        )
        from airflow_ml_provider.records.step_record import ShadowResult

        _, ref, version = self.open_aliased_model(hook, run)
        self.bind_evidence(hook, ref, run)
        champion_version = hook.alias_version(ref.name, self.champion_alias)
        if champion_version == ref.version:
            raise ValueError(
                f"{ref.uri} is the champion ({self.champion_alias!r}) itself: a model cannot be replayed against "
                "itself; replay a candidate"
            )
        summary = ShadowSummary(
            kind=REPLAY,
            status=NO_CHAMPION,
            model_name=ref.name,
            primary_version=champion_version or "none",
            primary_fingerprint=None,
            shadow_uri=ref.uri,
            shadow_version=ref.version,
            shadow_fingerprint=version.tags.get(TAG_MODEL_FINGERPRINT),
            batches=(),
            comparison=None,
        )
        if champion_version is None:
            self.log.warning("%s has no %r: nothing to replay against", ref.name, self.champion_alias)
        else:
            champion = ModelRef(ref.name, champion_version)
            champion_entry = get_version(hook, champion)
            summary = replace(summary, primary_fingerprint=champion_entry.tags.get(TAG_MODEL_FINGERPRINT))
            inputs, skipped = self._production_inputs(hook, champion)
            summary = replace(summary, skipped=tuple(skipped))
            if not inputs:
                summary = replace(summary, status=NO_TRAFFIC)
                self.log.warning(
                    "%s has scored no input that can still be read: no traffic to replay (%s)",
                    champion.uri,
                    "; ".join(skipped) or "no finished predict step runs of that version",
                )
            else:
                try:
                    summary = self._replay(hook, run, ref, version, champion, champion_entry, inputs, summary)
                except Exception as e:
                    error = f"{type(e).__name__}: {e}"
                    self.log.error("Replaying %s against %s failed: %s", ref.uri, champion.uri, error)
                    summary = replace(summary, status=FAILED, error=error)
        run.record.results = ShadowResult(summary)
        if summary.comparison is not None:
            run.log_metrics(summary.comparison.metrics())
            self.log.info("Replay of %s: %s", ref.uri, summary.comparison.describe())
        return {**summary.to_dict(), "mlflow_run_id": run.run_id}

    # --- the champion's production inputs --------------------------------------------------------------
    def _production_inputs(
        self, hook: MlflowHook, champion: ModelRef
    ) -> tuple[list[tuple[str, DatasetRef, pd.DataFrame]], list[str]]:
        """(source run id, verified reference, frame) of the champion's recent distinct inputs, and the skipped."""
        from airflow_ml_provider.data.datasets import DatasetError, read_verified
        from airflow_ml_provider.records.step_record import RecordError, read_step_record

        name = champion.name.replace("'", "\\'")
        runs = hook.search_runs(
            hook.experiment_ids(),
            filter_string=(
                f"tags.`{TAG_STEP}` = 'predict' and tags.`{TAG_MODEL_NAME}` = '{name}' "
                f"and tags.`{TAG_MODEL_VERSION}` = '{champion.version}' and attributes.status = 'FINISHED'"
            ),
            order_by=["attributes.start_time DESC"],
            max_results=self.max_batches * 5,  # reruns on the same input are skipped below
        )
        found: list[tuple[str, DatasetRef, pd.DataFrame]] = []
        skipped: list[str] = []
        seen: set[str] = set()
        for source in runs:
            if len(found) >= self.max_batches:
                break
            run_id = source.info.run_id
            try:
                record = read_step_record(hook, run_id)
            except RecordError as e:
                skipped.append(f"predict run {run_id}: {e}")
                continue
            for entry in (e for e in record.inputs if e.get("role") == "input"):
                fingerprint = str(entry.get("fingerprint"))
                if fingerprint in seen:
                    continue
                seen.add(fingerprint)
                try:
                    ref, frame = read_verified(entry, f"input of predict run {run_id}")
                except DatasetError as e:
                    skipped.append(str(e))
                    continue
                if len(frame):
                    found.append((run_id, ref, frame))
        return found, skipped

    # --- scoring both ---------------------------------------------------------------------------------
    def _replay(
        self,
        hook: MlflowHook,
        run: StepRun,
        ref: ModelRef,
        version: ModelVersion,
        champion: ModelRef,
        champion_entry: ModelVersion,
        inputs: list[tuple[str, DatasetRef, pd.DataFrame]],
        summary: ShadowSummary,
    ) -> ShadowSummary:
        from dataclasses import replace

        import numpy as np
        import pandas as pd

        from airflow_ml_provider.data.datasets import write_frame
        from airflow_ml_provider.monitoring.shadow import COMPARED, ShadowBatch, sample_rows
        from airflow_ml_provider.operators.predict import (
            PREDICTION_ID,
            ROW_INDEX,
            compare_scores,
            feature_columns,
            model_task,
            prediction_ids,
            require_columns,
            score_rows,
            shadow_frame,
        )

        champion_model, candidate_model = hook.load_model(champion.uri), hook.load_model(ref.uri)
        champion_columns = feature_columns(hook, champion, champion_entry)
        candidate_columns = feature_columns(hook, ref, version)
        champion_fingerprint = champion_entry.tags.get(TAG_MODEL_FINGERPRINT)
        batches: list[ShadowBatch] = []
        frames: list[pd.DataFrame] = []
        parts: list[tuple[Scores, Scores]] = []
        budget = self.max_rows
        for source_run, input_ref, frame in inputs:
            if budget <= 0:
                break
            require_columns(frame, champion_columns, input_ref.uri, champion)
            require_columns(frame, candidate_columns, input_ref.uri, ref)
            n = len(frame)
            rows = sample_rows(input_ref.fingerprint, n, min(n, budget))
            budget -= len(rows)
            sample = frame.iloc[rows]
            primary = score_rows(champion_model, sample[champion_columns], warm=not batches)
            shadow = score_rows(candidate_model, sample[candidate_columns], warm=not batches)
            ids = np.asarray(prediction_ids(input_ref.fingerprint, champion.uri, champion_fingerprint, n))[rows]
            task = model_task(champion_entry, primary)
            comparison = compare_scores(task, ids, rows, primary, shadow)
            batches.append(ShadowBatch(input_ref.uri, input_ref.fingerprint, n, comparison, source_run_id=source_run))
            frames.append(shadow_frame(ids, rows, primary, shadow).assign(input_fingerprint=input_ref.fingerprint))
            parts.append((primary, shadow))
            run.record.inputs.append({"role": "replay", **input_ref.to_dict(), "producer_run_id": source_run})
            self._lineage_inputs.append(file_dataset(input_ref))
        both = pd.concat(frames, ignore_index=True)
        primary_all, shadow_all = (_concat([pair[i] for pair in parts]) for i in (0, 1))
        overall = compare_scores(
            task, both[PREDICTION_ID].to_numpy(), both[ROW_INDEX].to_numpy(), primary_all, shadow_all
        )
        out = write_frame(both, self.resolve_artifact_root(), "shadow")
        run.record.outputs.append({"role": "shadow_comparison", **out.to_dict()})
        return replace(summary, status=COMPARED, batches=tuple(batches), comparison=overall)


def _concat(parts: list[Scores]) -> Scores:
    """Several batches' scores as one (probabilities only when every batch has them)."""
    import numpy as np

    from airflow_ml_provider.operators.predict import Scores

    probabilities = [p.probability for p in parts if p.probability is not None]
    return Scores(
        prediction=np.concatenate([p.prediction for p in parts]),
        probability=np.concatenate(probabilities) if len(probabilities) == len(parts) else None,
        positive_class=parts[0].positive_class,
        seconds=sum(p.seconds for p in parts),
    )
