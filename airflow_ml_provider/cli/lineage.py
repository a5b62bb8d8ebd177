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
from typing import Any

from airflow_ml_provider.cli import store
from airflow_ml_provider.lineage.source import MlflowRecordSource


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
