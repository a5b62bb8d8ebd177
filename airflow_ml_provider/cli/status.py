"""``airflow-ml status <model>``: versions, gate status and the alias, newest first.

Exit codes: 0 shown; 1 the model has no versions in the store; 2 the MLflow store cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import Any

from airflow_ml_provider.cli import store


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="versions of a registered model, their gate status and the alias",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="registered model name")
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--limit", type=int, default=10)
    store.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from airflow_ml_provider.model.reference import TAG_MODEL_FINGERPRINT, current_alias_version
    from airflow_ml_provider.operators.promote import TAG_PREVIOUS_CHAMPION
    from airflow_ml_provider.sensors.model_gate import TAG_GATE_STATUS

    try:
        mlflow_store = store.open_store(args)
    except store.StoreError as e:
        print(f"airflow-ml status: {e}", file=sys.stderr)
        return 2
    client = mlflow_store.client
    versions = sorted(
        client.search_model_versions(f"name = '{args.model}'"), key=lambda v: int(v.version), reverse=True
    )
    if not versions:
        print(f"No versions of {args.model!r} in the registry at {mlflow_store.registry_uri} ({mlflow_store.source})")
        return 1
    champion = current_alias_version(client, args.model, args.alias)
    print(f"{args.model}: {len(versions)} version(s); alias {args.alias!r} -> {champion or '(unset)'}")
    print(f"{'version':>7}  {'gate':<8} {'created':<19}  {'previous champion':<17}  {'fingerprint':<23}  note")
    for v in versions[: args.limit]:
        created = datetime.fromtimestamp(v.creation_timestamp / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        mark = "*" if str(v.version) == champion else " "
        line = (
            f"{mark}{v.version:>6}  {v.tags.get(TAG_GATE_STATUS, '-'):<8} {created:<19}  "
            f"{v.tags.get(TAG_PREVIOUS_CHAMPION, '-'):<17}  {v.tags.get(TAG_MODEL_FINGERPRINT, '-')[:23]:<23}  "
            f"{_reproduction_of(v, args.model) or ''}"
        )
        print(line.rstrip())
    latest = versions[0]
    gate = latest.tags.get(TAG_GATE_STATUS, "not run")
    original = _reproduction_of(latest, args.model)
    if str(latest.version) == champion:
        print(f"\nLatest version {latest.version} is the {args.alias}.")
    elif original:
        print(
            f"\nLatest version {latest.version} is a {original} (`airflow-ml reproduce`): "
            f"not promoted, by design; gate: {gate}."
        )
    else:
        print(f"\nLatest version {latest.version} was not promoted; gate: {gate}.")
    if str(latest.version) != champion:
        for check in _failed_checks(client, latest):
            print(f"  FAILED {check['name']}: {check['reason']}")
    return 0


def _reproduction_of(version: Any, model: str) -> str | None:
    """'reproduction of version N' for a version built by ``airflow-ml reproduce``, else None."""
    from airflow_ml_provider.model.reference import TAG_REPRODUCTION_OF

    original = version.tags.get(TAG_REPRODUCTION_OF)
    if not original:
        return None
    number = original.removeprefix(f"models:/{model}/")
    return f"reproduction of version {number}" if number != original else f"reproduction of {original}"


def _failed_checks(client: Any, version: Any) -> list[dict[str, Any]]:
    """The failed checks of the version's recorded verdict (empty when there is none to read)."""
    import json
    import tempfile
    from pathlib import Path

    from airflow_ml_provider.sensors.model_gate import TAG_GATE_RUN, VERDICT_ARTIFACT

    run_id = version.tags.get(TAG_GATE_RUN)
    if not run_id:
        return []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            verdict = json.loads(Path(client.download_artifacts(run_id, VERDICT_ARTIFACT, tmp)).read_text())
    except Exception as e:  # the status view must still print
        return [{"name": "verdict", "reason": f"cannot be read: {e}"}]
    return [c for c in verdict.get("checks", []) if not c.get("passed")]
