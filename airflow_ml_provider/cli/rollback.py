"""``airflow-ml rollback <model>``: point the alias back at the version that held it before."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from airflow_ml_provider.cli import store

#: Exit codes: done; refused (nothing changed, the reason is printed); could not complete.
EXIT_RESTORED, EXIT_REFUSED, EXIT_ERROR = 0, 1, 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "rollback",
        help="restore the previous champion of a registered model (same checks as promotion)",
        description=(
            "Point the alias back at the version recorded as the previous holder when the current one was "
            "promoted. The restored version must still have a passing gate verdict for its artifact "
            "fingerprint. The version rolled back from is tagged so that no stale promotion puts it back. "
            f"Exit status: {EXIT_RESTORED} restored, {EXIT_REFUSED} refused (nothing changed), "
            f"{EXIT_ERROR} could not complete (lock or registry failure, or no usable MLflow store; retrying is safe)."
        ),
    )
    parser.add_argument("model", help="registered model name")
    parser.add_argument("--alias", default="champion", help="alias to move back (default: champion)")
    parser.add_argument(
        "--lock-timeout", type=float, default=60.0, help="seconds to wait for a concurrent promotion (default: 60)"
    )
    store.add_arguments(parser)
    parser.set_defaults(func=run)


@store.with_store("error", EXIT_ERROR)
def run(args: argparse.Namespace, mlflow_store: store.Store) -> int:
    from airflow_ml_provider.promotion.attempt import PromotionError, cli_actor, rollback
    from airflow_ml_provider.promotion.rule import Outcome
    from airflow_ml_provider.records.tags import rolled_back_tag

    try:
        result = rollback(
            mlflow_store.hook, args.model, alias=args.alias, actor=cli_actor(), lock_timeout=args.lock_timeout
        )
    except PromotionError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    if result.outcome is not Outcome.RESTORED:
        print(f"Refused: {result.reason}. Alias {args.alias!r} was not changed.", file=sys.stderr)
        print(f"(attempt recorded on {result.recorded_on})", file=sys.stderr)
        return EXIT_REFUSED
    print(
        f"Alias {args.alias!r} of {args.model} rolled back: version {result.holder_before} -> "
        f"version {result.holder_after}."
    )
    print(
        f"Version {result.holder_before} is tagged as rolled back and will not be promoted again until its "
        f"'{rolled_back_tag(args.alias)}' tag is removed. Attempt recorded on {result.recorded_on}."
    )
    return EXIT_RESTORED
