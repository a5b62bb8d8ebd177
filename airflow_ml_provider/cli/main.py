"""``airflow-ml``: look at models, verdicts, lineage and promotions without opening a UI."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Each module under airflow_ml_provider.cli named here provides ``register(subparsers)``.
COMMANDS = ("status", "lineage", "reproduce", "rollback")
#: MLflow reads it before every artifact transfer.
PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def main(argv: Sequence[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(prog="airflow-ml", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"airflow_ml_provider.cli.{name}").register(subparsers)
    args = parser.parse_args(argv)
    # MLflow's download progress bars would interleave with our output on the terminal. A user who set
    # the variable keeps it; ours is taken back afterwards, for a caller in the same process.
    user_set = PROGRESS_BAR_ENV in os.environ
    os.environ.setdefault(PROGRESS_BAR_ENV, "false")
    try:
        return int(args.func(args))
    finally:
        if not user_set:
            os.environ.pop(PROGRESS_BAR_ENV, None)


if __name__ == "__main__":
    sys.exit(main())
