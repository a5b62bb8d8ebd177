"""``airflow-ml status <model>``: versions, gate status and the alias, newest first.

Exit codes: 0 shown; 1 the model has no versions in the store; 2 the MLflow store cannot be used.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.cli import store

if TYPE_CHECKING:
    from airflow_ml_provider.hooks.mlflow import MlflowHook


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


@store.with_store("airflow-ml status")
def run(args: argparse.Namespace, mlflow_store: store.Store) -> int:
    from airflow_ml_provider.records.tags import TAG_GATE_STATUS, TAG_MODEL_FINGERPRINT, TAG_PREVIOUS_CHAMPION

    hook = mlflow_store.hook
    versions = hook.model_versions(args.model)
    if not versions:
        print(f"No versions of {args.model!r} in the registry at {mlflow_store.registry_uri} ({mlflow_store.source})")
        return 1
    champion = hook.alias_version(args.model, args.alias)
    print(f"{args.model}: {len(versions)} version(s); alias {args.alias!r} -> {champion or '(unset)'}")
    print(f"{'version':>7}  {'gate':<9} {'created':<19}  {'previous champion':<17}  {'fingerprint':<23}  note")
    for v in versions[: args.limit]:
        created = datetime.fromtimestamp(v.creation_timestamp / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        mark = "*" if str(v.version) == champion else " "
        line = (
            f"{mark}{v.version:>6}  {v.tags.get(TAG_GATE_STATUS, '-'):<9} {created:<19}  "
            f"{v.tags.get(TAG_PREVIOUS_CHAMPION, '-'):<17}  {v.tags.get(TAG_MODEL_FINGERPRINT, '-')[:23]:<23}  "
            f"{_reproduction_of(v, args.model) or _abandoned_by(v) or ''}"
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
        for check in _failed_checks(hook, latest):
            print(f"  FAILED {check['name']}: {check['reason']}")
    return 0


def _abandoned_by(version: Any) -> str | None:
    """'abandoned by <task try>: <why>' for a version its train attempt left without a verdict, else None."""
    from airflow_ml_provider.records.tags import GATE_ABANDONED, TAG_ABANDONED_BY, TAG_GATE_STATUS

    if version.tags.get(TAG_GATE_STATUS) != GATE_ABANDONED:
        return None
    return f"abandoned by {version.tags.get(TAG_ABANDONED_BY) or 'an unrecorded attempt'}"


def _reproduction_of(version: Any, model: str) -> str | None:
    """'reproduction of version N' for a version built by ``airflow-ml reproduce``, else None."""
    from airflow_ml_provider.model.reference import ModelRef, parse_model_uri
    from airflow_ml_provider.records.tags import TAG_REPRODUCTION_OF

    original = version.tags.get(TAG_REPRODUCTION_OF)
    if not original:
        return None
    ref = parse_model_uri(original)
    if isinstance(ref, ModelRef) and ref.name == model:
        return f"reproduction of version {ref.version}"
    return f"reproduction of {original}"


def _failed_checks(hook: MlflowHook, version: Any) -> list[dict[str, Any]]:
    """The failed checks of the version's recorded verdict (empty when there is none to read)."""
    from airflow_ml_provider.records.tags import TAG_GATE_RUN, VERDICT_ARTIFACT

    run_id = version.tags.get(TAG_GATE_RUN)
    if not run_id:
        return []
    try:
        verdict = hook.read_json_artifact(run_id, VERDICT_ARTIFACT)
    except Exception as e:  # the status view must still print
        return [{"name": "verdict", "reason": f"cannot be read: {e}"}]
    return [c for c in verdict.get("checks", []) if not c.get("passed")]
