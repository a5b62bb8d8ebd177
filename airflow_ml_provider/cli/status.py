"""``airflow-ml status <model>``: versions, gate status and the alias, newest first."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("status", help="versions of a registered model, their gate status and the alias")
    parser.add_argument("model", help="registered model name")
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--limit", type=int, default=10)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient

    from airflow_ml_provider.models import TAG_MODEL_FINGERPRINT, current_alias_version
    from airflow_ml_provider.operators.promote import TAG_PREVIOUS_CHAMPION
    from airflow_ml_provider.sensors.model_gate import TAG_GATE_STATUS

    client = MlflowClient()
    versions = sorted(
        client.search_model_versions(f"name = '{args.model}'"), key=lambda v: int(v.version), reverse=True
    )
    if not versions:
        print(f"No versions of {args.model!r} in the registry at {client.tracking_uri}")
        return 1
    champion = current_alias_version(client, args.model, args.alias)
    print(f"{args.model}: {len(versions)} version(s); alias {args.alias!r} -> {champion or '(unset)'}")
    print(f"{'version':>7}  {'gate':<8} {'created':<19}  {'previous champion':<17}  fingerprint")
    for v in versions[: args.limit]:
        created = datetime.fromtimestamp(v.creation_timestamp / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        mark = "*" if str(v.version) == champion else " "
        print(
            f"{mark}{v.version:>6}  {v.tags.get(TAG_GATE_STATUS, '-'):<8} {created:<19}  "
            f"{v.tags.get(TAG_PREVIOUS_CHAMPION, '-'):<17}  {v.tags.get(TAG_MODEL_FINGERPRINT, '-')[:23]}"
        )
    latest = versions[0]
    if str(latest.version) == champion:
        print(f"\nLatest version {latest.version} is the {args.alias}.")
    else:
        gate = latest.tags.get(TAG_GATE_STATUS, "not run")
        print(f"\nLatest version {latest.version} was not promoted; gate: {gate}.")
        for check in _failed_checks(client, latest):
            print(f"  FAILED {check['name']}: {check['reason']}")
    return 0


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
