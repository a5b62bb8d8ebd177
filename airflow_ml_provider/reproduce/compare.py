"""Compare a reproduction with the original, step by step. Pure: records in, report out."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_ml_provider.records.step_record import EvaluateResult, StepRecord
from airflow_ml_provider.records.step_record import GateResult as GateStepResult

IDENTICAL, WITHIN_TOLERANCE, DIFFERENT, NOT_RUN, REUSED, NOT_COMPARED, CHANGED = (
    "identical",
    "within tolerance",
    "different",
    "not re-run",
    "reused",
    "not compared",
    "changed by --set",
)
#: Outcomes a reproduced step may have and still count as reproduced.
_REPRODUCED_OUTCOMES = (IDENTICAL, WITHIN_TOLERANCE, REUSED)
#: Steps with effects outside the run (registry aliases, serving): skipped when reproducing, never compared.
_SKIPPED_STEPS = ("promote", "predict")
#: Model serialisations whose bytes are the same for the same fitted model, as ``(flavor, format)``.
#: Pickle and cloudpickle write an estimator's state deterministically (checked: two fits of the same
#: pipeline give the same model.pkl). skops writes a zip archive whose entries carry their write time,
#: so the same model gives different bytes; a pyfunc model is a cloudpickled wrapper whose bytes depend
#: on the code objects of the process. MLflow's own ``MLmodel`` file holds a creation time, model id and
#: run id, so the recorded fingerprint of the whole model directory differs for every rebuild: only the
#: serialised model file is compared, and only for these formats.
DETERMINISTIC_SERIALIZATIONS = frozenset({("sklearn", "pickle"), ("sklearn", "cloudpickle")})


@dataclass
class StepComparison:
    task_id: str
    step: str
    outcome: str
    outputs: list[dict[str, Any]] = field(default_factory=list)  # role, original, reproduced, outcome
    metrics: list[dict[str, Any]] = field(default_factory=list)  # name, original, reproduced, delta, outcome
    changed_params: dict[str, list[Any]] = field(default_factory=dict)  # name -> [original, reproduced]
    rerun_failed: bool = False
    #: For a training step: the two models compared on the recorded holdout (see :func:`compare_predictions`).
    model: dict[str, Any] | None = None
    #: Parameters this reproduction changed on purpose (``--set``).
    overridden: dict[str, Any] = field(default_factory=dict)


@dataclass
class GateResult:
    """The gate's verdict on the rebuilt version (the original's for comparison)."""

    task_id: str
    original: str  # "passed" / "failed" / "not run"
    reproduced: str
    model: str | None = None  # the version the reproduced verdict was given for
    failed_checks: list[str] = field(default_factory=list)
    summary: str | None = None


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
    gates: list[GateResult] = field(default_factory=list)

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
            f"- metric and prediction tolerance: {self.tolerance:g}",
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
            details += [f"set {k}={v!r}" for k, v in s.overridden.items() if k not in s.changed_params]
            if s.model:
                details += _model_details(s.model)
            lines.append(f"| {s.task_id} | {s.outcome} | {'; '.join(details) or '-'} |")
        for g in self.gates:
            checks = f"failed checks: {', '.join(g.failed_checks)}" if g.failed_checks else "-"
            on = f" on {g.model}" if g.model else ""
            lines.append(f"| {g.task_id} | verdict{on}: {g.reproduced} (original: {g.original}) | {checks} |")
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


def _model_details(model: Mapping[str, Any]) -> list[str]:
    if model.get("error"):
        return [f"models not compared: {model['error']}"]
    predictions = f"predictions on the holdout ({model.get('rows')} rows): {model.get('outcome')}"
    if model.get("rows_different"):
        largest = model.get("max_difference")
        predictions += f", {model['rows_different']} rows differ"
        predictions += f", largest difference {_num(largest)}" if largest is not None else " (labels)"
    fingerprint = model.get("fingerprint") or {}
    return [predictions, f"model file: {fingerprint.get('outcome')} ({fingerprint.get('reason')})"]


def compare_predictions(
    original: Mapping[str, Any], reproduced: Mapping[str, Any], tolerance: float
) -> dict[str, Any]:
    """Compare two models' outputs on the same rows: ``{output name: array}`` each (e.g. predict, predict_proba).

    A row differs when any output differs at all; it is beyond tolerance when a numeric output differs by
    more than ``tolerance`` or a non-numeric one (class labels) differs. NaN equals NaN; NaN against a
    number is beyond any tolerance. Outputs only one model produced make the result different.
    """
    import numpy as np

    names = sorted(set(original) | set(reproduced))
    missing = [n for n in names if n not in original or n not in reproduced]
    if missing:
        return {"outcome": DIFFERENT, "rows": None, "rows_different": None, "max_difference": None,
                "outputs": names, "reason": f"only one model produced {', '.join(missing)}"}
    rows = None
    differs: Any = None
    beyond: Any = None
    largest: float | None = None
    for name in names:
        a, b = np.asarray(original[name]), np.asarray(reproduced[name])
        a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
        if a.shape != b.shape:
            return {"outcome": DIFFERENT, "rows": len(a), "rows_different": None, "max_difference": None,
                    "outputs": names, "reason": f"{name} has shape {a.shape} vs {b.shape}"}
        rows = len(a)
        if np.issubdtype(a.dtype, np.number) and np.issubdtype(b.dtype, np.number):
            x, y = a.astype(float), b.astype(float)
            both_nan = np.isnan(x) & np.isnan(y)
            gap = np.where(both_nan, 0.0, np.abs(x - y))
            gap = np.where(np.isnan(gap), np.inf, gap)
            row_differs, row_beyond = (gap > 0).any(axis=1), (gap > tolerance).any(axis=1)
            if rows:
                largest = max(largest or 0.0, float(gap.max()))
        else:
            row_differs = (a != b).any(axis=1)
            row_beyond = row_differs
        differs = row_differs if differs is None else differs | row_differs
        beyond = row_beyond if beyond is None else beyond | row_beyond
    n_differ = int(differs.sum()) if differs is not None else 0
    n_beyond = int(beyond.sum()) if beyond is not None else 0
    outcome = IDENTICAL if n_differ == 0 else WITHIN_TOLERANCE if n_beyond == 0 else DIFFERENT
    return {"outcome": outcome, "rows": rows, "rows_different": n_differ, "rows_beyond_tolerance": n_beyond,
            "max_difference": largest, "outputs": names}


def compare_model_files(original: Mapping[str, Any], reproduced: Mapping[str, Any]) -> dict[str, Any]:
    """Compare the serialised model files where the serialisation is byte-stable (``DETERMINISTIC_SERIALIZATIONS``).

    Each side is ``{"flavor", "serialization", "sha256"}``. Returns ``{"outcome", "reason", "original",
    "reproduced"}``; ``outcome`` is identical, different or not compared (the reason says why).
    """
    kinds = {(o.get("flavor"), o.get("serialization")) for o in (original, reproduced)}
    out = {"original": original.get("sha256"), "reproduced": reproduced.get("sha256")}
    if len(kinds) > 1:
        return {**out, "outcome": DIFFERENT,
                "reason": f"serialised differently: {_kind(original)} vs {_kind(reproduced)}"}
    kind = next(iter(kinds))
    if kind not in DETERMINISTIC_SERIALIZATIONS:
        return {**out, "outcome": NOT_COMPARED, "reason": f"{_kind(original)} is not byte-stable"}
    if not original.get("sha256") or original.get("sha256") != reproduced.get("sha256"):
        return {**out, "outcome": DIFFERENT, "reason": f"{_kind(original)} files differ"}
    return {**out, "outcome": IDENTICAL, "reason": f"{_kind(original)} files are byte-identical"}


def _kind(side: Mapping[str, Any]) -> str:
    return f"{side.get('flavor')}/{side.get('serialization') or '?'}"


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


def compare_step(
    original: StepRecord,
    reproduced: StepRecord | None,
    tolerance: float,
    model: Mapping[str, Any] | None = None,
    overridden: Mapping[str, Any] | None = None,
) -> StepComparison:
    """One step: its outputs' fingerprints, its metrics, its params and, for training, its model.

    A step whose params were changed (``--set``: ``overridden``) is never identical: its outcome is
    ``changed by --set``. A model that could not be compared is ``not compared``, never identical.
    """
    task_id = original.airflow.task_id
    overridden = dict(overridden or {})
    if reproduced is None:
        return StepComparison(task_id, original.step, NOT_RUN, overridden=overridden)
    outputs = []
    new_outputs = {str(o.get("role")): o for o in reproduced.outputs}
    for o in original.outputs:
        role = str(o.get("role"))
        new = new_outputs.get(role, {})
        outcome = IDENTICAL if new.get("fingerprint") == o.get("fingerprint") else DIFFERENT
        outputs.append({"role": role, "original": o.get("fingerprint"), "reproduced": new.get("fingerprint"),
                        "outcome": outcome})
    metrics = []
    old_metrics, new_metrics = _metrics(original), _metrics(reproduced)
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
    if original.step == "train" and original.model and model is None:
        model = {"outcome": NOT_COMPARED, "error": "the two models were not compared"}
    if model is not None:
        outcomes.append(str(model.get("outcome")))
        if (model.get("fingerprint") or {}).get("outcome") == DIFFERENT:
            outcomes.append(DIFFERENT)
    failed = reproduced.status != "success"
    if failed:
        outcome = DIFFERENT
    elif overridden:
        outcome = CHANGED
    elif changed or DIFFERENT in outcomes:
        outcome = DIFFERENT
    elif NOT_COMPARED in outcomes:
        outcome = NOT_COMPARED
    elif all(x == IDENTICAL for x in outcomes):
        outcome = IDENTICAL
    else:
        outcome = WITHIN_TOLERANCE
    return StepComparison(
        task_id, original.step, outcome, outputs, metrics, changed, failed,
        dict(model) if model is not None else None, overridden,
    )


def _metrics(record: StepRecord) -> Mapping[str, float]:
    """The metrics an evaluate step recorded (other steps record none)."""
    return record.results.metrics if isinstance(record.results, EvaluateResult) else {}


def _verdict(record: StepRecord | None) -> GateStepResult | None:
    return record.results if record is not None and isinstance(record.results, GateStepResult) else None


def _verdict_status(record: StepRecord | None) -> str:
    gate = _verdict(record)
    if gate is None:
        return "not run" if record is None else f"no verdict ({record.status})"
    return "passed" if gate.verdict.passed else "failed"


def gate_results(original: Mapping[str, StepRecord], reproduced: Mapping[str, StepRecord]) -> list[GateResult]:
    """Every gate of the original or the rebuild, with its verdict on the rebuilt version."""
    gates = []
    for task_id in sorted({t for steps in (original, reproduced) for t, r in steps.items() if r.step == "gate"}):
        new = reproduced.get(task_id)
        gate = _verdict(new)
        gates.append(
            GateResult(
                task_id=task_id,
                original=_verdict_status(original.get(task_id)),
                reproduced=_verdict_status(new),
                model=new.model.uri if new is not None and new.model else None,
                failed_checks=[c.name for c in gate.verdict.failures] if gate else [],
                summary=new.error if new is not None else None,
            )
        )
    return gates


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
    models: Mapping[str, Mapping[str, Any]] | None = None,
) -> ReproductionReport:
    """The model counts as reproduced when every re-run step is identical or within tolerance: its outputs'
    fingerprints, its evaluation metrics and, for training, the two models' predictions on the recorded
    holdout (``models``: task_id -> :func:`compare_predictions` result with the model file comparison),
    with no step failed, changed by ``--set`` or left out, and at least one evaluation re-run.

    Gate steps are listed with their verdicts on the rebuilt version (:func:`gate_results`), not compared;
    promotion and prediction do not run in a reproduction.
    """
    models = models or {}
    steps = []
    for task_id, record in original_steps.items():
        if record.step == "gate" or record.step in _SKIPPED_STEPS:
            continue
        if task_id in reused:
            steps.append(StepComparison(task_id, record.step, REUSED))
        else:
            steps.append(
                compare_step(record, reproduced_steps.get(task_id), tolerance, models.get(task_id),
                             overrides.get(task_id))
            )
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
    version = train.model.version if train and train.model else None
    metric_outcomes = [m["outcome"] for s in steps for m in s.metrics]
    reproduced = bool(metric_outcomes) and all(s.outcome in _REPRODUCED_OUTCOMES for s in steps)
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
        summary=_summary(steps, tolerance, reproduced),
        gates=gate_results(original_steps, reproduced_steps),
    )


def _summary(steps: list[StepComparison], tolerance: float, reproduced: bool) -> str:
    predictions = "; ".join(
        f"{s.task_id}: predictions {s.model['outcome']} on {s.model.get('rows')} holdout rows"
        for s in steps
        if s.model and not s.model.get("error")
    )
    if reproduced:
        return "; ".join(p for p in (f"all metrics within {tolerance:g} of the original", predictions) if p)
    parts = []
    if not any(s.metrics for s in steps):
        parts.append("no evaluation was re-run, so the model's metrics could not be compared")
    bad = [f"{s.task_id}.{m['name']}" for s in steps for m in s.metrics if m["outcome"] == DIFFERENT]
    if bad:
        parts.append(f"metrics differ beyond {tolerance:g}: {', '.join(bad)}")
    failed = [s.task_id for s in steps if s.rerun_failed]
    if failed:
        parts.append(f"re-run failed: {', '.join(failed)}")
    changed = [f"{s.task_id}.{k}" for s in steps for k in s.overridden]
    if changed:
        parts.append(f"changed by --set: {', '.join(changed)} (a what-if rebuild, not a reproduction)")
    parts += [reason for s in steps if (reason := _model_reason(s))]
    explained = {*failed, *(b.split(".")[0] for b in bad)}
    explained |= {s.task_id for s in steps if s.overridden or _model_reason(s)}
    for outcome in (DIFFERENT, NOT_COMPARED, NOT_RUN):
        others = [s.task_id for s in steps if s.outcome == outcome and s.task_id not in explained]
        if others:
            parts.append(f"{outcome}: {', '.join(others)}")
    return "; ".join(parts) or "not every step was reproduced"


def _model_reason(step: StepComparison) -> str | None:
    """Why a re-trained model does not count as the same model, if it does not."""
    model = step.model or {}
    if model.get("outcome") == NOT_COMPARED:
        return f"{step.task_id}: models not compared: {model.get('error') or model.get('reason')}"
    if model.get("outcome") == DIFFERENT:
        where = f"on {model.get('rows_different')} of {model.get('rows')} holdout rows"
        if model.get("max_difference") is not None:
            where += f" (largest difference {_num(model['max_difference'])})"
        return f"{step.task_id}: model predictions differ {where if model.get('rows_different') else ''}".rstrip()
    fingerprint = model.get("fingerprint") or {}
    if fingerprint.get("outcome") == DIFFERENT:
        return f"{step.task_id}: model files differ ({fingerprint.get('reason')})"
    return None
