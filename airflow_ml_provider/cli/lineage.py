"""``airflow-ml lineage <target>``: the upstream graph of a model version or a predictions file.

Reads only MLflow (step records, model version tags and aliases): no OpenLineage backend needed.
The graph itself is built by the pure functions in :mod:`airflow_ml_provider.lineage.graph`.

Exit codes: 0 the graph is complete; 1 the target was not found, or the graph is incomplete (it is
printed anyway, with what is missing); 2 the target is neither a model reference nor a file, or the
MLflow store cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.cli import store

if TYPE_CHECKING:
    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.records.step_record import StepRecord

_MAX_PRODUCER_RUNS = 50


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "lineage",
        help="upstream lineage of a model version, an alias or a predictions file, from the records in MLflow",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "target", help="models:/<name>/<version>, models:/<name>@<alias>, or a predictions (or features) file"
    )
    parser.add_argument("--format", choices=("text", "json", "dot"), default="text", help="output format")
    store.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from airflow_ml_provider.lineage.graph import (
        LineageError,
        build_graph,
        parse_target,
        render_dot,
        render_json,
        render_text,
    )

    try:
        target = parse_target(args.target)
        if target.kind == "file":
            target = _file_target(args.target)
    except LineageError as e:
        print(f"airflow-ml lineage: {e}", file=sys.stderr)
        return 2

    try:
        mlflow_store = store.open_store(args)
    except store.StoreError as e:
        print(f"airflow-ml lineage: {e}", file=sys.stderr)
        return 2
    try:
        graph = build_graph(target, MlflowRecordSource(mlflow_store.hook))
    except LineageError as e:
        print(f"airflow-ml lineage: {e} (tracking URI {mlflow_store.tracking_uri}, {mlflow_store.source})",
              file=sys.stderr)
        return 1
    render = {"text": render_text, "json": render_json, "dot": render_dot}[args.format]
    print(render(graph))
    if not graph.complete:
        print(f"airflow-ml lineage: incomplete lineage: {'; '.join(graph.problems)}", file=sys.stderr)
        return 1
    return 0


def _file_target(text: str) -> Any:
    from airflow_ml_provider.data.datasets import DatasetError, local_path
    from airflow_ml_provider.data.fingerprint import fingerprint_file
    from airflow_ml_provider.lineage.graph import LineageError, Target

    try:
        path = local_path(text)
    except DatasetError as e:
        raise LineageError(str(e)) from None
    if not path.is_file():
        raise LineageError(
            f"{text!r} is neither a model reference (models:/<name>/<version>, models:/<name>@<alias>) "
            "nor an existing file"
        )
    return Target(kind="file", text=text, path=path.as_uri(), fingerprint=fingerprint_file(path))


class MlflowRecordSource:
    """:class:`~airflow_ml_provider.lineage.graph.RecordSource` over an MLflow tracking store and registry."""

    def __init__(self, hook: MlflowHook) -> None:
        self.hook = hook
        self._experiment_ids: list[str] | None = None

    def record(self, run_id: str) -> StepRecord | None:
        """The run's record; None when it cannot be read, :class:`RecordError` when it does not parse."""
        from airflow_ml_provider.records.step_record import RecordError, read_step_record

        try:
            return read_step_record(self.hook, run_id)
        except RecordError as e:
            if e.field is None:  # missing or unreadable: not there
                return None
            raise

    def model_version(self, name: str, version: str) -> Mapping[str, Any] | None:
        from mlflow.exceptions import MlflowException

        try:
            v = self.hook.model_version(name, version)
        except MlflowException:
            return None
        if v is None:
            return None
        return {
            "name": v.name,
            "version": str(v.version),
            "tags": dict(v.tags or {}),
            "aliases": list(getattr(v, "aliases", None) or []),
            "run_id": v.run_id,
        }

    def alias_version(self, name: str, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        from airflow_ml_provider.lineage.graph import LineageError

        try:
            return self.hook.alias_version(name, alias)
        except MlflowException as e:
            raise LineageError(f"cannot resolve models:/{name}@{alias}: {e.message}") from e

    def producers(self, fingerprint: str) -> list[str]:
        from airflow_ml_provider.records.tags import (
            KIND_STEP,
            TAG_FEATURES_FINGERPRINT,
            TAG_KIND,
            TAG_OUTPUT_FINGERPRINT,
        )

        experiments = self.experiment_ids()
        if not experiments:
            return []
        runs: dict[str, Any] = {}
        # Predict tags its run with its output; featurize with its features (same tag name as the
        # model version tag). Other steps' outputs are reached through the records that read them.
        for tag in (TAG_OUTPUT_FINGERPRINT, TAG_FEATURES_FINGERPRINT):
            for r in self.hook.search_runs(
                experiments,
                f"tags.`{tag}` = '{fingerprint}' and tags.`{TAG_KIND}` = '{KIND_STEP}'",
                order_by=["attributes.start_time DESC"],
                max_results=_MAX_PRODUCER_RUNS,
            ):
                runs[r.info.run_id] = r
        ordered = sorted(runs.values(), key=lambda r: (r.info.start_time or 0, r.info.run_id), reverse=True)
        return [r.info.run_id for r in ordered]

    def experiment_ids(self) -> list[str]:
        if self._experiment_ids is None:
            self._experiment_ids = self.hook.experiment_ids()
        return self._experiment_ids
