"""``airflow-ml reproduce <target>``: rebuild a model version from its record and compare."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="re-run the DAG run that produced a model version (locally, with dag.test) and compare",
    )
    parser.add_argument("target", help="models:/<name>/<version> or models:/<name>@<alias>")
    parser.add_argument("--set", action="append", default=[], metavar="TASK.PARAM=VALUE",
                        help="change one parameter of a step's callable, e.g. train.C=0.5 (repeatable)")
    parser.add_argument("--from-step", help="reuse recorded outputs upstream of this task (verified) and re-run from it")
    parser.add_argument("--tolerance", type=float, default=1e-9, help="largest metric difference that still counts")
    parser.add_argument("--report-dir", default=None, help="where to write reproduction.md/.json")
    parser.add_argument("--dags-folder", default=None, help="DAGs folder (default: [core] dags_folder)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: MLFLOW_TRACKING_URI)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient

    from airflow_ml_provider.reproduce.original import ReproductionError
    from airflow_ml_provider.reproduce.runner import ReproductionRequest, parse_set, reproduce, write_report

    client = MlflowClient(tracking_uri=args.tracking_uri) if args.tracking_uri else MlflowClient()
    try:
        request = ReproductionRequest(
            target=args.target,
            overrides=parse_set(args.set),
            from_step=args.from_step,
            tolerance=args.tolerance,
            dags_folder=args.dags_folder,
        )
        report = reproduce(client, request)
    except ReproductionError as e:
        print(f"airflow-ml reproduce: {e}", file=sys.stderr)
        return 2
    directory = args.report_dir or f"reproduction-{report.target.split('/', 1)[1].replace('/', '-')}"
    md, js = write_report(report, directory)
    print(report.to_markdown())
    print(f"Report written to {md} and {js}")
    return 0 if report.reproduced else 1
