"""``airflow-ml reproduce <target>``: rebuild a model version from its record and compare."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from airflow_ml_provider import conf
from airflow_ml_provider.cli import store

#: The options that give --airflow-user and --airflow-password their defaults.
USER_ENV = conf.OPTIONS["airflow_user"].env_var
PASSWORD_ENV = conf.OPTIONS["airflow_password"].env_var


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="re-run the DAG run that produced a model version (locally with dag.test, or on a deployment "
        "with --airflow-url) and compare",
    )
    parser.add_argument("target", help="models:/<name>/<version> or models:/<name>@<alias>")
    parser.add_argument("--set", action="append", default=[], metavar="TASK.PARAM=VALUE",
                        help="change one parameter of a step's callable, e.g. train.C=0.5 (repeatable)")
    parser.add_argument("--from-step",
                        help="reuse recorded outputs upstream of this task (verified) and re-run from it")
    parser.add_argument("--tolerance", type=float, default=1e-9, help="largest metric difference that still counts")
    parser.add_argument("--report-dir", default=None, help="where to write reproduction.md/.json")
    parser.add_argument("--dags-folder", default=None, help="DAGs folder (default: [core] dags_folder)")
    store.add_arguments(parser)
    remote = parser.add_argument_group(
        "running on an Airflow deployment",
        "Trigger the run through the deployment's REST API instead of dag.test. The deployment must write to "
        "the same MLflow store as --tracking-uri, and the raw data must be readable from here (it is verified "
        "here before anything is triggered).",
    )
    remote.add_argument("--airflow-url", default=None, help="base URL of the Airflow 3 API server, e.g. http://host:8080")
    remote.add_argument("--airflow-user", default=None,
                        help=f"user to log in as (default: [ml_provider] airflow_user, ${USER_ENV})")
    remote.add_argument("--airflow-password", default=None,
                        help=f"its password (default: [ml_provider] airflow_password, ${PASSWORD_ENV}; prefer "
                        "the option, arguments show in ps)")
    remote.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds to wait for the triggered run to finish (default: 3600)")
    remote.add_argument("--unpause", action="store_true",
                        help="unpause the DAG if it is paused (this also lets its schedule run); without it a "
                        "paused DAG is an error")
    parser.set_defaults(func=run)


@store.with_store("airflow-ml reproduce")
def run(args: argparse.Namespace, mlflow_store: store.Store) -> int:
    from airflow_ml_provider.reproduce.original import ReproductionError
    from airflow_ml_provider.reproduce.runner import ReproductionRequest, parse_set, reproduce, write_report

    try:
        runner = _runner(args)
        request = ReproductionRequest(
            target=args.target,
            overrides=parse_set(args.set),
            from_step=args.from_step,
            tolerance=args.tolerance,
            dags_folder=args.dags_folder,
        )
        report = reproduce(mlflow_store.hook, request, runner)
    except ReproductionError as e:
        print(f"airflow-ml reproduce: {e}", file=sys.stderr)
        return 2
    directory = args.report_dir or f"reproduction-{report.target.split('/', 1)[1].replace('/', '-')}"
    md, js = write_report(report, directory)
    print(report.to_markdown())
    print(f"Report written to {md} and {js}")
    return 0 if report.reproduced else 1


def _runner(args: argparse.Namespace) -> Any:
    """None (local dag.test) unless --airflow-url is given."""
    from airflow_ml_provider.reproduce.original import ReproductionError

    remote_only = [f"--{n.replace('_', '-')}" for n in ("airflow_user", "airflow_password", "unpause")
                   if getattr(args, n)]
    if not args.airflow_url:
        if remote_only:
            raise ReproductionError(f"{', '.join(remote_only)} only apply with --airflow-url")
        return None
    if args.dags_folder:
        raise ReproductionError("--dags-folder applies to local runs only; with --airflow-url the deployment's "
                                "DAGs folder is used")
    if args.timeout <= 0:
        raise ReproductionError(f"--timeout must be positive, got {args.timeout:g}")
    from airflow_ml_provider.reproduce.remote import AirflowApiRunner

    return AirflowApiRunner(
        url=args.airflow_url,
        username=args.airflow_user or conf.get("airflow_user"),
        password=args.airflow_password if args.airflow_password is not None else conf.get("airflow_password"),
        timeout=args.timeout,
        unpause=args.unpause,
    )
