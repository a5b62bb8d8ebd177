"""What the Models page and its JSON API show, read from MLflow in a fixed number of queries.

The page must stay fast at thousands of versions, so a listing never reads per-version records:
everything a table row needs is a model version tag (written by train, the gate and promotion) or a
metric of the version's evaluate run, fetched for all versions in one search. Only the view of one
version reads step records (its verdict, evidence and lineage), a number of reads that depends on its
lineage, not on how many versions exist.

Who may see what is decided outside: every function takes a :class:`Visibility`, and a version whose
producing DAG the caller may not read is left out of listings and refused on its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from airflow_ml_provider.exceptions import AirflowMLError
from airflow_ml_provider.records.redaction import REDACTED, strip_credentials
from airflow_ml_provider.records.tags import (
    GATE_FAILED,
    GATE_PASSED,
    KIND_STEP,
    TAG_ATTEMPT_PREFIX,
    TAG_DAG_ID,
    TAG_GATE_RUN,
    TAG_GATE_STATUS,
    TAG_KIND,
    TAG_MODEL_FINGERPRINT,
    TAG_MODEL_NAME,
    TAG_MODEL_VERSION,
    TAG_REPRODUCTION_OF,
    TAG_RUN_ID,
    TAG_STEP,
    TAG_TASK_ID,
    evidence_tag,
)

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.records.step_record import StepRecord

#: The newest batch-prediction runs of a version drawn in its lineage graph.
MAX_PREDICTION_RUNS = 5
#: The alias the page calls "champion" (the one the example and the gate's champion comparison use).
CHAMPION = "champion"


class CatalogError(AirflowMLError, LookupError):
    """A model or version the caller asked for is not there (HTTP 404)."""


class NotVisible(AirflowMLError, PermissionError):
    """The caller may not read the DAG that produced the version (HTTP 403)."""


class Visibility(Protocol):
    """Whether the caller may read what the DAG ``dag_id`` produced (None: produced outside any DAG)."""

    def can_read(self, dag_id: str | None) -> bool: ...


@dataclass(frozen=True)
class Everyone:
    """Visibility for callers that may read every DAG (the CLI, benchmarks)."""

    def can_read(self, dag_id: str | None) -> bool:
        return True


# --- pure shaping -------------------------------------------------------------------------------------
def iso_millis(millis: int | None) -> str | None:
    if millis is None:
        return None
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def alias_events(versions: Iterable[ModelVersion]) -> list[dict[str, Any]]:
    """Every promotion and rollback that moved an alias, oldest first, from the attempts recorded on
    the versions (``airflow_ml.promotion.<time>.<id>`` tags). Unreadable attempt tags are skipped: an
    event list is history for a person, not evidence for a decision."""
    from airflow_ml_provider.promotion.rule import PromotionResult

    events: dict[str, dict[str, Any]] = {}
    for v in versions:
        for key, value in (v.tags or {}).items():
            if not key.startswith(TAG_ATTEMPT_PREFIX):
                continue
            try:
                result = PromotionResult.from_dict(json.loads(value))
            except (ValueError, TypeError):
                continue
            if not result.changed or result.holder_after is None:
                continue
            events[result.attempt_id] = {
                "kind": "promotion" if result.mode.value == "promote" else "rollback",
                "alias": result.alias,
                "version": result.holder_after,
                "previous": result.holder_before,
                "at": result.at,
                "by": result.by,
            }
    return sorted(events.values(), key=lambda e: (e["at"] or "", e["version"]))


def clean_tags(v: ModelVersion) -> dict[str, str]:
    """The version's tags with credentials stripped from URI values, before any is used in a response or
    a link (a quoted link would hide a credential from :func:`scrub`)."""
    return {k: strip_credentials(val) if "://" in val else val for k, val in (v.tags or {}).items()}


def version_row(v: ModelVersion, aliases: Mapping[str, str], metrics: Mapping[str, float]) -> dict[str, Any]:
    """One row of the versions table."""
    tags = clean_tags(v)
    version = str(v.version)
    held = sorted(a for a, held_by in aliases.items() if held_by == version)
    return {
        "version": version,
        "created": iso_millis(v.creation_timestamp),
        "dag_id": tags.get(TAG_DAG_ID),
        "dag_run_id": tags.get(TAG_RUN_ID),
        "task_id": tags.get(TAG_TASK_ID),
        "gate_status": tags.get(TAG_GATE_STATUS),
        "metrics": dict(metrics),
        "champion": aliases.get(CHAMPION) == version,
        "aliases": held,
        "reproduction_of": tags.get(TAG_REPRODUCTION_OF),
        "fingerprint": tags.get(TAG_MODEL_FINGERPRINT),
    }


def gate_metric_names(policy: Mapping[str, Any] | None) -> list[str]:
    metrics = (policy or {}).get("metrics")
    return sorted(metrics) if isinstance(metrics, Mapping) else []


def scrub(value: Any, key: str = "") -> Any:
    """``value`` with no credentials in it: user info and secret query values stripped from every URI,
    and values under credential-like keys masked. Applied to every response, whatever produced it."""
    from airflow_ml_provider.records.redaction import is_secret_name

    if isinstance(value, Mapping):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, key) for v in value]
    if isinstance(value, str):
        if key and is_secret_name(key):
            return REDACTED
        return strip_credentials(value) if "://" in value else value
    return value


# --- reading MLflow ------------------------------------------------------------------------------------
class ModelCatalog:
    """Read-only views of registered models for the page and the API."""

    def __init__(self, hook: MlflowHook) -> None:
        self.hook = hook

    # listings (a fixed number of queries whatever the number of versions)
    def models(self, visible: Visibility) -> list[dict[str, Any]]:
        """Every registered model with at least one version the caller may read."""
        by_model: dict[str, list[ModelVersion]] = {}
        for v in self.hook.every_model_version():
            if visible.can_read((v.tags or {}).get(TAG_DAG_ID)):
                by_model.setdefault(v.name, []).append(v)
        out = []
        for model in self.hook.registered_models():
            versions = sorted(by_model.get(model.name, []), key=lambda v: int(v.version), reverse=True)
            if not versions:
                continue
            readable = {str(v.version) for v in versions}
            aliases = {a: ver for a, ver in _aliases(model).items() if ver in readable}
            latest = versions[0]
            events = [e for e in alias_events(versions) if e["version"] in readable]
            out.append({
                "name": model.name,
                "description": model.description or None,
                "aliases": aliases,
                "champion": aliases.get(CHAMPION),
                "versions": len(versions),
                "latest": {
                    "version": str(latest.version),
                    "gate_status": (latest.tags or {}).get(TAG_GATE_STATUS),
                    "created": iso_millis(latest.creation_timestamp),
                },
                "last_promotion": events[-1] if events else None,
            })
        return out

    def versions(self, name: str, visible: Visibility) -> dict[str, Any]:
        """Every version of ``name`` the caller may read, newest first, with its evaluate metrics."""
        model = self._registered_model(name)
        versions = [v for v in self.hook.model_versions(name) if visible.can_read((v.tags or {}).get(TAG_DAG_ID))]
        if not versions:
            raise CatalogError(f"registered model {name!r} has no version you can read")
        readable = {str(v.version) for v in versions}
        aliases = {a: ver for a, ver in _aliases(model).items() if ver in readable}
        metrics = self._evaluate_metrics(name, versions)
        return {
            "name": name,
            "description": model.description or None,
            "aliases": aliases,
            "champion": aliases.get(CHAMPION),
            "gate_metrics": self._gate_metrics(versions),
            "versions": [version_row(v, aliases, metrics.get(str(v.version), {})) for v in versions],
            "events": [e for e in alias_events(versions) if e["version"] in readable],
        }

    def run_versions(self, dag_id: str, run_id: str, visible: Visibility) -> list[dict[str, str]]:
        """The model versions the DAG run produced (one registry search)."""
        if not visible.can_read(dag_id):
            raise NotVisible(f"you cannot read DAG {dag_id!r}")
        found = self.hook.search_model_versions(
            f"tags.`{TAG_DAG_ID}` = {_literal(dag_id)} and tags.`{TAG_RUN_ID}` = {_literal(run_id)}"
        )
        return [{"name": v.name, "version": str(v.version)} for v in found]

    # one version
    def version(self, name: str, version: str, visible: Visibility) -> dict[str, Any]:
        """Everything about one version: row, verdict, evidence, history, reproductions and lineage."""
        v = self.hook.model_version(name, version)
        if v is None:
            raise CatalogError(f"version {version} of registered model {name!r} does not exist")
        tags = clean_tags(v)
        if not visible.can_read(tags.get(TAG_DAG_ID)):
            raise NotVisible(
                f"version {version} of {name!r} was produced by DAG {tags.get(TAG_DAG_ID)!r}, which you cannot read"
            )
        model = self._registered_model(name)
        aliases = _aliases(model)
        siblings = [s for s in self.hook.model_versions(name) if visible.can_read((s.tags or {}).get(TAG_DAG_ID))]
        row = version_row(v, aliases, {})
        detail: dict[str, Any] = {"name": name, **row}
        detail["champion"] = aliases.get(CHAMPION)
        detail["is_champion"] = row["champion"]
        verdict, problem = self._verdict(tags)
        detail["verdict"] = verdict
        detail["verdict_problem"] = problem
        evidence = self._evidence(tags)
        detail["metrics"] = evidence["metrics"]["candidate"]
        detail["evidence"] = evidence
        detail["history"] = [e for e in alias_events(siblings) if e["version"] == str(v.version) or
                             e["previous"] == str(v.version)]
        detail["reproductions"] = [
            {"version": str(s.version), "gate_status": (s.tags or {}).get(TAG_GATE_STATUS)}
            for s in siblings
            if (s.tags or {}).get(TAG_REPRODUCTION_OF) == f"models:/{name}/{v.version}"
        ]
        detail["links"] = self._links(v)
        detail["lineage"] = self._lineage(name, str(v.version))
        return detail

    # --- parts ---------------------------------------------------------------------------------------------
    def _registered_model(self, name: str) -> RegisteredModel:
        model = self.hook.registered_model(name)
        if model is None:
            raise CatalogError(f"registered model {name!r} does not exist")
        return model

    def _evaluate_metrics(self, name: str, versions: Sequence[ModelVersion]) -> dict[str, dict[str, float]]:
        """version -> the metrics of the evaluate run its evidence tag names (one search for all versions)."""
        wanted = {(v.tags or {}).get(evidence_tag("evaluate")): str(v.version) for v in versions}
        wanted.pop(None, None)
        if not wanted:
            return {}
        runs = self.hook.search_all_runs(
            self.hook.experiment_ids(),
            f"tags.`{TAG_KIND}` = '{KIND_STEP}' and tags.`{TAG_STEP}` = 'evaluate' "
            f"and tags.`{TAG_MODEL_NAME}` = {_literal(name)}",
        )
        return {wanted[r.info.run_id]: _metrics(r) for r in runs if r.info.run_id in wanted}

    def _gate_metrics(self, versions: Sequence[ModelVersion]) -> list[str]:
        """The metrics the newest recorded verdict's policy checks (one record read)."""
        for v in versions:
            if (v.tags or {}).get(TAG_GATE_STATUS) in (GATE_PASSED, GATE_FAILED) and (v.tags or {}).get(TAG_GATE_RUN):
                record = self._record((v.tags or {})[TAG_GATE_RUN])
                verdict = getattr(record.results, "verdict", None) if record else None
                return gate_metric_names(verdict.policy if verdict else None)
        return []

    def _record(self, run_id: str | None) -> StepRecord | None:
        from airflow_ml_provider.records.step_record import RecordError, read_step_record

        if not run_id:
            return None
        try:
            return read_step_record(self.hook, run_id)
        except RecordError:
            return None

    def _verdict(self, tags: Mapping[str, str]) -> tuple[dict[str, Any] | None, str | None]:
        from airflow_ml_provider.records.step_record import RecordError, read_step_record

        run_id = tags.get(TAG_GATE_RUN)
        if not run_id:
            return None, f"no gate verdict is recorded (gate status: {tags.get(TAG_GATE_STATUS) or 'not run'})"
        try:
            record = read_step_record(self.hook, run_id)
        except RecordError as e:
            return None, str(e)
        verdict = getattr(record.results, "verdict", None)
        if verdict is None:
            return None, f"the gate run {run_id} recorded no verdict (status {record.status})"
        return {
            "passed": verdict.passed,
            "checks": [c.to_dict() for c in verdict.checks],
            "decided_at": verdict.decided_at.isoformat(),
            "policy": verdict.policy,
            "gate_run_id": run_id,
        }, None

    def _evidence(self, tags: Mapping[str, str]) -> dict[str, Any]:
        evaluate = self._record(tags.get(evidence_tag("evaluate")))
        simulate = self._record(tags.get(evidence_tag("simulate")))
        featurize = self._record(tags.get(evidence_tag("featurize")))
        candidate: dict[str, float] = {}
        champion = None
        if evaluate is not None and evaluate.results is not None:
            candidate = dict(getattr(evaluate.results, "metrics", {}) or {})
            score = getattr(evaluate.results, "champion", None)
            if score is not None:
                champion = {"version": score.version, "metrics": dict(score.metrics or {}) or None,
                            "error": score.error}
        suites = []
        for check in getattr(featurize.results, "expectations", ()) if featurize else ():
            report = check.report
            suites.append({
                "role": check.role,
                "suite": report.suite_name,
                "success": report.success,
                "evaluated": len(report.results),
                "failed": [f"{r.expectation_type}({r.column})" if r.column else r.expectation_type
                           for r in report.failures],
            })
        scenarios = None
        report = getattr(simulate.results, "scenarios", None) if simulate else None
        if report is not None:
            scenarios = {
                "passed": sum(1 for r in report.results if r.passed),
                "failed": len(report.failures),
                "results": [{"name": r.name, "passed": r.passed, "reason": r.reason or None} for r in report.results],
            }
        return {"metrics": {"candidate": candidate, "champion": champion}, "suites": suites, "scenarios": scenarios}

    def _links(self, v: ModelVersion) -> dict[str, str | None]:
        """Where to look further: MLflow's UI (when the store has one) and the Airflow run and task."""
        from airflow_ml_provider.links import mlflow_ui_url, model_version_url, run_url

        tags = clean_tags(v)
        dag_id, run_id, task_id = tags.get(TAG_DAG_ID), tags.get(TAG_RUN_ID), tags.get(TAG_TASK_ID)
        ui = mlflow_ui_url(self.hook.tracking_uri)
        experiment_id = None
        if ui and v.run_id:
            try:
                experiment_id = self.hook.get_run(v.run_id).info.experiment_id
            except Exception:  # a deleted training run leaves the version; the link is just absent
                experiment_id = None
        airflow_run = f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}" if dag_id and run_id else None
        return {
            "mlflow_run": run_url(ui, experiment_id, v.run_id) or None,
            "mlflow_version": model_version_url(ui, v.name, str(v.version)) if ui else None,
            "dag_run": airflow_run,
            "task_instance": f"{airflow_run}/tasks/{quote(task_id, safe='')}" if airflow_run and task_id else None,
        }

    def _lineage(self, name: str, version: str) -> dict[str, Any]:
        """The upstream walk of ``airflow-ml lineage`` plus the newest batch predictions made with the version."""
        from airflow_ml_provider.lineage.graph import LineageError, Target, add_downstream, build_graph
        from airflow_ml_provider.lineage.source import MlflowRecordSource
        from airflow_ml_provider.records.step_record import RecordError

        source = MlflowRecordSource(self.hook)
        target = Target(kind="version", text=f"models:/{name}/{version}", name=name, version=version)
        try:
            graph = build_graph(target, source)
            predictions = self.hook.search_runs(
                source.experiment_ids(),
                f"tags.`{TAG_KIND}` = '{KIND_STEP}' and tags.`{TAG_STEP}` = 'predict' "
                f"and tags.`{TAG_MODEL_NAME}` = {_literal(name)} and tags.`{TAG_MODEL_VERSION}` = '{version}'",
                order_by=["attributes.start_time DESC"],
                max_results=MAX_PREDICTION_RUNS,
            )
            add_downstream(graph, source, [r for r in map(self._record, (p.info.run_id for p in predictions)) if r])
        except (LineageError, RecordError) as e:
            return {"requested": target.text, "target": None, "complete": False, "problems": [str(e)],
                    "sources": [], "nodes": [], "edges": []}
        return graph.to_dict()


def _aliases(model: RegisteredModel) -> dict[str, str]:
    raw = getattr(model, "aliases", None) or {}
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    return {str(a.alias): str(a.version) for a in raw}


def _metrics(run: Run) -> dict[str, float]:
    """The version's own metrics of an evaluate run (it also logs the champion's, as ``champion_<name>``, and
    what the step used, as ``airflow_ml.resources.*``)."""
    from airflow_ml_provider.records.tags import RESOURCES_METRIC_PREFIX

    return {
        k: float(v)
        for k, v in (run.data.metrics or {}).items()
        if not k.startswith(("champion_", RESOURCES_METRIC_PREFIX))
    }


def _literal(text: str) -> str:
    """``text`` as an MLflow filter literal. MLflow's filter parser has no escapes: a value is quoted with
    whichever quote it does not contain, and one containing both cannot be searched for."""
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    raise CatalogError(f"{text!r} contains both quote characters; MLflow cannot search for it")
