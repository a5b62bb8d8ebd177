"""``airflow-ml``: look at models, verdicts, lineage and promotions without opening a UI."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Each module under airflow_ml_provider.cli named here provides ``register(subparsers)``.
COMMANDS = ("status", "lineage", "reproduce", "rollback")


def main(argv: Sequence[str] | None = None) -> int:
    import os

    # MLflow's download progress bars would interleave with our output on the terminal.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    parser = argparse.ArgumentParser(prog="airflow-ml", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"airflow_ml_provider.cli.{name}").register(subparsers)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
