"""Compare a reproduction with the original, step by step. Pure: records in, report out."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_ml_provider.records.step_record import StepRecord

IDENTICAL, WITHIN_TOLERANCE, DIFFERENT, NOT_RUN, REUSED = (
    "identical",
    "within tolerance",
    "different",
    "not re-run",
    "reused",
)


@dataclass
class StepComparison:
    task_id: str
    step: str
    outcome: str
    outputs: list[dict[str, Any]] = field(default_factory=list)  # role, original, reproduced, outcome
    metrics: list[dict[str, Any]] = field(default_factory=list)  # name, original, reproduced, delta, outcome
    changed_params: dict[str, list[Any]] = field(default_factory=dict)  # name -> [original, reproduced]
    rerun_failed: bool = False


@dataclass
class ReproductionReport:
    target: str
    original_run: str
    reproduced_run: str | None
    tolerance: float
    overrides: dict[str, dict[str, Any]]
    reused_steps: list[str]
    reproduced_version: str | None
    steps: list[StepComparison]
    environment_drift: dict[str, list[Any]]
    raw_inputs: list[dict[str, Any]]
    reproduced: bool
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def to_markdown(self) -> str:
        lines = [
            f"# Reproduction of {self.target}",
            "",
            f"**Result: {'REPRODUCED' if self.reproduced else 'NOT REPRODUCED'}** - {self.summary}",
            "",
            f"- original DAG run: `{self.original_run}`",
            f"- reproduction DAG run: `{self.reproduced_run}`",
            f"- reproduced model version: {self.reproduced_version or '(none: training reused)'}",
            f"- metric tolerance: {self.tolerance:g}",
        ]
        if self.overrides:
            changed = (f"{task}.{name}={value!r}" for task, p in self.overrides.items() for name, value in p.items())
            lines.append(f"- changed: {', '.join(changed)}")
        if self.reused_steps:
            lines.append(f"- reused (verified by fingerprint): {', '.join(self.reused_steps)}")
        lines += ["", "## Raw inputs", "", "| dataset | recorded fingerprint | now |", "|---|---|---|"]
        lines += [f"| {r['uri']} | `{r['recorded']}` | `{r['current']}` |" for r in self.raw_inputs]
        lines += ["", "## Steps", "", "| step | outcome | details |", "|---|---|---|"]
        for s in self.steps:
            details = [f"{o['role']}: {o['outcome']}" for o in s.outputs]
            details += [f"param {k}: {v[0]!r} -> {v[1]!r}" for k, v in s.changed_params.items()]
            lines.append(f"| {s.task_id} | {s.outcome} | {'; '.join(details) or '-'} |")
        metric_rows = [(s.task_id, m) for s in self.steps for m in s.metrics]
        if metric_rows:
            lines += ["", "## Metrics", "", "| step | metric | original | reproduced | delta | outcome |"]
            lines.append("|---|---|---|---|---|---|")
            for task, m in metric_rows:
                values = " | ".join(_num(m[k]) for k in ("original", "reproduced", "delta"))
                lines.append(f"| {task} | {m['name']} | {values} | {m['outcome']} |")
        lines += ["", "## Environment drift", ""]
        if self.environment_drift:
            lines += ["| package | recorded | now |", "|---|---|---|"]
            lines += [f"| {p} | {v[0]} | {v[1]} |" for p, v in sorted(self.environment_drift.items())]
        else:
            lines.append("None: the recorded package versions match.")
        return "\n".join(lines) + "\n"


def _num(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _metric_outcome(original: float | None, reproduced: float | None, tolerance: float) -> tuple[float | None, str]:
    if original is None or reproduced is None or math.isnan(original) or math.isnan(reproduced):
        return None, DIFFERENT
    delta = reproduced - original
    if delta == 0:
        return 0.0, IDENTICAL
    return delta, WITHIN_TOLERANCE if abs(delta) <= tolerance else DIFFERENT


def _packages(record: StepRecord) -> Mapping[str, Any]:
    """Versions of the packages the step used, plus the digest of the whole installed set."""
    environment = record.environment if isinstance(record.environment, Mapping) else {}
    packages = dict(environment.get("packages") or {})
    if environment.get("packagesDigest"):
        packages["(all installed packages, digest)"] = environment["packagesDigest"]
    return packages


def compare_step(original: StepRecord, reproduced: StepRecord | None, tolerance: float) -> StepComparison:
    task_id = str(original.airflow.get("task_id"))
    if reproduced is None:
        return StepComparison(task_id, original.step, NOT_RUN)
    outputs = []
    new_outputs = {str(o.get("role")): o for o in reproduced.outputs}
    for o in original.outputs:
        role = str(o.get("role"))
        new = new_outputs.get(role, {})
        outcome = IDENTICAL if new.get("fingerprint") == o.get("fingerprint") else DIFFERENT
        outputs.append({"role": role, "original": o.get("fingerprint"), "reproduced": new.get("fingerprint"),
                        "outcome": outcome})
    metrics = []
    old_metrics = original.results.get("metrics") or {}
    new_metrics = reproduced.results.get("metrics") or {}
    for name in sorted(set(old_metrics) | set(new_metrics)):
        a, b = old_metrics.get(name), new_metrics.get(name)
        delta, outcome = _metric_outcome(a, b, tolerance)
        metrics.append({"name": name, "original": a, "reproduced": b, "delta": delta, "outcome": outcome})
    changed = {
        k: [original.params.get(k), reproduced.params.get(k)]
        for k in sorted(set(original.params) | set(reproduced.params))
        if str(original.params.get(k)) != str(reproduced.params.get(k))
        and not k.endswith(("_uri", "_fingerprint"))  # locations and fingerprints are compared as outputs
    }
    outcomes = [o["outcome"] for o in outputs] + [m["outcome"] for m in metrics]
    if reproduced.status != "success":
        outcome = DIFFERENT
    elif all(x == IDENTICAL for x in outcomes):
        outcome = IDENTICAL
    elif DIFFERENT in outcomes:
        outcome = DIFFERENT
    else:
        outcome = WITHIN_TOLERANCE
    return StepComparison(task_id, original.step, outcome, outputs, metrics, changed, reproduced.status != "success")


def build_report(
    *,
    target: str,
    original_steps: Mapping[str, StepRecord],
    reproduced_steps: Mapping[str, StepRecord],
    original_run: str,
    reproduced_run: str | None,
    tolerance: float,
    overrides: Mapping[str, Mapping[str, Any]],
    reused: list[str],
    raw_inputs: list[dict[str, Any]],
) -> ReproductionReport:
    """The model counts as reproduced when every re-run step's evaluation metrics are within tolerance
    and no re-run step failed. Model artifact bytes are reported but not required to match: MLflow
    writes a creation time and model id into every logged model."""
    steps = []
    for task_id, record in original_steps.items():
        if task_id in reused:
            steps.append(StepComparison(task_id, record.step, REUSED))
        else:
            steps.append(compare_step(record, reproduced_steps.get(task_id), tolerance))
    drift: dict[str, list[Any]] = {}
    for task_id, record in original_steps.items():
        new = reproduced_steps.get(task_id)
        if new is None:
            continue
        old_pkgs, new_pkgs = _packages(record), _packages(new)
        for name in set(old_pkgs) | set(new_pkgs):
            if old_pkgs.get(name) != new_pkgs.get(name):
                drift[name] = [old_pkgs.get(name), new_pkgs.get(name)]
    train = next((r for r in reproduced_steps.values() if r.step == "train"), None)
    version = str((train.model or {}).get("version")) if train and train.model else None
    metric_outcomes = [m["outcome"] for s in steps for m in s.metrics]
    failed = [s.task_id for s in steps if s.rerun_failed]
    reproduced = bool(metric_outcomes) and DIFFERENT not in metric_outcomes and not failed
    if not metric_outcomes:
        summary = "no evaluation was re-run, so the model's metrics could not be compared"
    elif reproduced:
        summary = f"all metrics within {tolerance:g} of the original"
    else:
        bad = [f"{s.task_id}.{m['name']}" for s in steps for m in s.metrics if m["outcome"] == DIFFERENT]
        summary = "; ".join(
            part
            for part in (
                f"metrics differ beyond {tolerance:g}: {', '.join(bad)}" if bad else "",
                f"re-run failed: {', '.join(failed)}" if failed else "",
            )
            if part
        )
    return ReproductionReport(
        target=target,
        original_run=original_run,
        reproduced_run=reproduced_run,
        tolerance=tolerance,
        overrides={k: dict(v) for k, v in overrides.items()},
        reused_steps=list(reused),
        reproduced_version=version,
        steps=steps,
        environment_drift=drift,
        raw_inputs=raw_inputs,
        reproduced=reproduced,
        summary=summary,
    )
