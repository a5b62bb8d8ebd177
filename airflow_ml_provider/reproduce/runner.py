"""Re-run the DAG run that produced a model version, with its recorded conf, and compare."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from airflow_ml_provider.reproduce.compare import ReproductionReport, build_report
from airflow_ml_provider.reproduce.model_check import compare_models
from airflow_ml_provider.reproduce.original import (
    RecordedRun,
    ReproductionError,
    load_recorded_run,
    parent_run_of_version,
    resolve_target,
)
from airflow_ml_provider.reproduce.run_conf import CONF_KEY

if TYPE_CHECKING:
    from airflow_ml_provider.hooks.mlflow import MlflowHook


class RawDataChanged(ReproductionError):
    """A raw input's bytes differ from the record: the rebuild would not use the same data."""


@dataclass
class ReproductionRequest:
    target: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # task_id -> {param: value}
    from_step: str | None = None
    tolerance: float = 1e-9
    dags_folder: str | None = None


def parse_set(assignments: list[str]) -> dict[str, dict[str, Any]]:
    """``["train.C=0.5"]`` -> ``{"train": {"C": 0.5}}``; values are JSON when they parse as JSON."""
    overrides: dict[str, dict[str, Any]] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        task_id, dot, param = key.partition(".")
        if not sep or not dot or not task_id or not param:
            raise ReproductionError(f"--set {item!r}: expected <task_id>.<param>=<value>, e.g. train.C=0.5")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        overrides.setdefault(task_id, {})[param] = value
    return overrides


def verify_raw_inputs(recorded: RecordedRun) -> list[dict[str, Any]]:
    """Every raw input must still have its recorded fingerprint; stop before running anything if not."""
    from airflow_ml_provider.data.datasets import fingerprint_uri

    checked = []
    for record in recorded.steps.values():
        for entry in record.inputs:
            if entry.get("role") != "raw":
                continue
            uri, expected = str(entry["uri"]), str(entry["fingerprint"])
            current = fingerprint_uri(uri, "raw dataset")
            if current is None:
                raise RawDataChanged(f"raw dataset {uri} no longer exists (recorded fingerprint {expected})")
            if current != expected:
                raise RawDataChanged(
                    f"raw dataset {uri} has changed since the original run: recorded fingerprint {expected}, "
                    f"now {current}. Restore the original data to reproduce."
                )
            checked.append({"uri": uri, "recorded": expected, "current": current})
    if not checked:
        raise ReproductionError(f"the run manifest of {recorded.run_id} records no raw input to verify")
    return checked


def reproduction_conf(recorded: RecordedRun, request: ReproductionRequest, ref_uri: str, dag: Any) -> dict[str, Any]:
    """The original conf and resolved params, plus the reproduction instructions for the operators."""
    reuse: dict[str, Any] = {}
    if request.from_step:
        if request.from_step not in dag.task_ids:
            raise ReproductionError(f"--from-step {request.from_step!r}: no such task in {dag.dag_id}")
        upstream = dag.get_task(request.from_step).get_flat_relative_ids(upstream=True)
        for task_id in sorted(upstream):
            record = recorded.steps.get(task_id)
            if record is None:
                continue  # not one of our steps (or not recorded): it runs again
            if record.returned is None:
                raise ReproductionError(f"--from-step: step {task_id} of {recorded.run_id} recorded no result to reuse")
            reuse[task_id] = record.returned
    for task_id in request.overrides:
        if task_id not in dag.task_ids:
            raise ReproductionError(f"--set {task_id}.…: no task {task_id!r} in {dag.dag_id}")
    conf = {**recorded.params, **recorded.conf}
    conf[CONF_KEY] = {"reproduction_of": ref_uri, "overrides": request.overrides, "reuse": reuse}
    return conf


class DagRunner(Protocol):
    """Where the reproduction runs: ``reproduce()`` asks it for the DAG's shape, then to run it once.

    ``load_dag`` returns an object with ``dag_id``, ``task_ids`` and ``get_task(task_id)`` whose result has
    ``get_flat_relative_ids(upstream=True)`` (an Airflow DAG has all three); it is called after the raw
    inputs are verified and before ``run``, so it can fail fast without side effects. ``run`` runs the DAG
    with ``conf`` to completion and returns the run id. ``no_records_hint`` adds a likely cause to the
    error raised when the finished run recorded nothing in MLflow.
    """

    def load_dag(self, dag_id: str) -> Any: ...

    def run(self, dag_id: str, conf: dict[str, Any]) -> str: ...

    def no_records_hint(self, run_id: str) -> str: ...


class LocalRunner:
    """Runs the DAG in this process with ``dag.test()``, from the DAGs folder."""

    def __init__(self, dags_folder: str | None = None) -> None:
        self.dags_folder = dags_folder
        self._dags: dict[str, Any] = {}

    def load_dag(self, dag_id: str) -> Any:
        if dag_id not in self._dags:
            self._dags[dag_id] = _load_dag(dag_id, self.dags_folder)
        return self._dags[dag_id]

    def run(self, dag_id: str, conf: dict[str, Any]) -> str:
        return str(self.load_dag(dag_id).test(run_conf=conf).run_id)

    def no_records_hint(self, run_id: str) -> str:
        return ""


def _load_dag(dag_id: str, dags_folder: str | None) -> Any:
    """Parse the DAGs folder as Airflow does (BundleDagBag puts it on ``sys.path``), so that a DAG file's
    imports of modules beside it (``from breast_cancer.pipeline import ...``) resolve here too."""
    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import BundleDagBag

    folder = os.path.abspath(os.path.expanduser(dags_folder or conf.get("core", "dags_folder")))
    bag = BundleDagBag(dag_folder=folder, bundle_path=Path(folder), bundle_name="dags-folder")
    dag = bag.get_dag(dag_id)
    if dag is None:
        errors = "; ".join(f"{path}: {error.strip().splitlines()[-1]}" for path, error in bag.import_errors.items())
        found = f" (import errors: {errors})" if errors else ""
        raise ReproductionError(f"DAG {dag_id!r} not found in the DAGs folder {folder}{found}")
    return dag


def _new_parent_run(hook: MlflowHook, experiment_id: str, dag_id: str, run_id: str, hint: str = "") -> str:
    from airflow_ml_provider.records.tags import KIND_DAG_RUN, TAG_DAG_ID, TAG_KIND, TAG_RUN_ID

    runs = hook.search_runs(
        [experiment_id],
        f"tags.`{TAG_KIND}` = '{KIND_DAG_RUN}' and tags.`{TAG_DAG_ID}` = '{dag_id}' "
        f"and tags.`{TAG_RUN_ID}` = '{run_id}'",
    )
    if not runs:
        raise ReproductionError(f"the reproduction DAG run {run_id} recorded nothing in MLflow{hint}")
    return runs[0].info.run_id


def reproduce(
    hook: MlflowHook, request: ReproductionRequest, runner: DagRunner | None = None
) -> ReproductionReport:
    """Verify, re-run, compare. Raises ReproductionError before running on bad input.

    ``runner`` decides where the DAG runs: by default locally with ``dag.test()`` (``LocalRunner``), or
    e.g. through a deployment's REST API (``airflow_ml_provider.reproduce.remote.AirflowApiRunner``).
    Either way the reproduced run's step records are read back from ``hook``'s MLflow store.
    """
    ref = resolve_target(hook, request.target)
    parent = parent_run_of_version(hook, ref)
    recorded = load_recorded_run(hook, parent)
    raw_inputs = verify_raw_inputs(recorded)
    runner = runner or LocalRunner(request.dags_folder)
    dag = runner.load_dag(recorded.dag_id)
    conf = reproduction_conf(recorded, request, ref.uri, dag)

    run_id = runner.run(recorded.dag_id, conf)
    experiment_id = hook.get_run(parent).info.experiment_id
    new_parent = _new_parent_run(hook, experiment_id, recorded.dag_id, run_id, runner.no_records_hint(run_id))
    reproduced = load_recorded_run(hook, new_parent)
    reused = sorted(conf[CONF_KEY]["reuse"])
    model_comparisons = {
        task_id: compare_models(hook, record, reproduced.steps[task_id], request.tolerance)
        for task_id, record in recorded.steps.items()
        if record.step == "train" and task_id not in reused and task_id in reproduced.steps
    }
    return build_report(
        target=ref.uri,
        original_steps=recorded.steps,
        reproduced_steps=reproduced.steps,
        original_run=recorded.run_id,
        reproduced_run=run_id,
        tolerance=request.tolerance,
        overrides=request.overrides,
        reused=reused,
        raw_inputs=raw_inputs,
        models=model_comparisons,
    )


def write_report(report: ReproductionReport, directory: str | Path) -> tuple[Path, Path]:
    """Write ``reproduction.md``/``.json`` into ``directory``, never over an earlier report.

    When those names are taken (by a report from an earlier reproduction) the pair is numbered:
    ``reproduction-2.md``/``.json``, then ``-3``, and so on. The files are created exclusively, so two
    reproductions writing to one directory at once also get a pair each.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        stem = "reproduction" if n == 1 else f"reproduction-{n}"
        md, js = out / f"{stem}.md", out / f"{stem}.json"
        if md.exists() or js.exists():
            continue
        try:
            with md.open("x") as f:
                f.write(report.to_markdown())
        except FileExistsError:  # another reproduction took this name just now
            continue
        try:
            with js.open("x") as f:
                f.write(report.to_json())
        except FileExistsError:
            md.unlink()
            continue
        return md, js
    raise ReproductionError(f"{out} already holds 9,999 reproduction reports; pass another --report-dir")
