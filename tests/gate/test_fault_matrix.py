"""The gate's fault matrix: each fault ends in a blocked gate, with its own reason, and the champion unchanged.

Every case starts from the session baseline (v1 trained, gated and promoted champion) and a fresh
candidate version of the same logged model with real evaluation and scenario evidence, which passes
the gate as is (``test_control_candidate_passes``). Each case then breaks exactly one thing, runs
the real gate, reads the verdict back from MLflow and checks that the failed checks are the ones
that fault explains, that the champion alias did not move, and that promotion refuses the version.
"""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gate.conftest import (
    EXPERIMENT,
    MODEL,
    POLICY,
    RAW_SUITE,
    SCENARIOS,
    Baseline,
    context,
    promote,
    run_gate,
    simulate,
)
from tests.support import RAW_URI, champion, read_record, write_record


def test_control_candidate_passes(baseline: Baseline) -> None:
    version = baseline.candidate()
    outcome = run_gate(baseline.client, MODEL, version)
    assert outcome.passed, outcome.message
    assert outcome.verdict is not None and outcome.verdict["passed"] is True
    names = {c["name"] for c in outcome.verdict["checks"]}
    assert {"binding:evaluation", "binding:scenarios", "metric:accuracy:vs_champion_absolute"} <= names


def test_mlflow_unreachable(baseline: Baseline, assert_blocked: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    version = baseline.candidate()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        outcome = run_gate(baseline.client, MODEL, version)
        # Read under the same environment: unset globals follow MLFLOW_TRACKING_URI, so reading them
        # after undo() would compare two environments, and fail whenever an earlier test left them unset.
        after = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    finally:
        monkeypatch.undo()
    # The gate's hook left MLflow's globals alone (it used to repoint them, and the next test's store with them).
    assert after == previous

    assert not outcome.passed
    assert f"cannot read evidence for models:/{MODEL}/{version} from MLflow" in outcome.message
    assert "Connection refused" in outcome.message or "Failed to establish" in outcome.message
    assert outcome.verdict is None, "nothing can be recorded in an unreachable MLflow"
    assert_blocked(version)


def test_evidence_missing(baseline: Baseline, assert_blocked: Any) -> None:
    version = baseline.candidate(scenarios=None)  # evaluated, scenarios never run

    outcome = run_gate(baseline.client, MODEL, version)

    assert not outcome.passed
    assert set(outcome.failures) == {"scenarios"}
    assert outcome.failures["scenarios"][0].startswith(
        "no scenario evidence: the policy requires a must-pass scenario run (including typical_benign"
    )
    assert_blocked(version)


def test_evidence_for_another_version(baseline: Baseline, assert_blocked: Any) -> None:
    version = baseline.candidate(scenarios=None)
    champion = baseline.client.get_model_version(MODEL, baseline.champion)
    # The scenario evidence of the champion, pointed at by the candidate.
    baseline.client.set_model_version_tag(
        MODEL, version, "airflow_ml.evidence.simulate", champion.tags["airflow_ml.evidence.simulate"]
    )

    outcome = run_gate(baseline.client, MODEL, version)

    assert not outcome.passed
    assert set(outcome.failures) == {"binding:scenarios"}
    assert outcome.failures["binding:scenarios"] == [
        f"scenarios evidence is for model version '{baseline.champion}', not version '{version}' under decision"
    ]
    assert_blocked(version)


def _gate_bound_to_failed_featurize(baseline: Baseline, **suites: str) -> tuple[str, Any, str]:
    """Point a fresh candidate's data evidence at a featurize run that refused its suite, run the gate,
    and return the version, the outcome and its single evidence problem (which must name the suite error)."""
    failed_run = _featurize(baseline, **suites)
    version = baseline.candidate()
    baseline.client.set_model_version_tag(MODEL, version, "airflow_ml.evidence.featurize", failed_run)
    outcome = run_gate(baseline.client, MODEL, version)
    assert not outcome.passed
    [problem] = outcome.failures["evidence:problem"]
    assert problem.startswith("featurize evidence comes from a run that did not succeed (failed: ExpectationSuiteError")
    return version, outcome, problem


def _featurize(baseline: Baseline, **suites: str) -> str:
    """Run FeaturizeOperator, expecting it to refuse the suite; returns its (failed) MLflow run id."""
    from airflow_ml_provider.data.expectations import ExpectationSuiteError
    from airflow_ml_provider.operators.featurize import FeaturizeOperator
    from airflow_ml_provider.records.tags import TAG_STEP
    from tests.example import transform

    ctx = context("featurize")
    with pytest.raises(ExpectationSuiteError):
        FeaturizeOperator(
            task_id="featurize",
            raw_uri=str(RAW_URI),
            transform=transform,
            experiment_name=EXPERIMENT,
            **suites,
        ).execute(ctx)
    experiment = baseline.client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = baseline.client.search_runs(
        [experiment],
        filter_string=f"tags.`airflow.run_id` = '{ctx['ti'].run_id}' and tags.`{TAG_STEP}` = 'featurize'",
    )
    assert len(runs) == 1
    return runs[0].info.run_id


def _suite(tmp_path: Path, name: str, expectations: list[dict[str, Any]]) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"name": name, "expectations": expectations}))
    return str(path)


def test_expectation_suite_with_no_expectations(baseline: Baseline, assert_blocked: Any, tmp_path: Path) -> None:
    empty = _suite(tmp_path, "breast_cancer_features", [])
    version, outcome, problem = _gate_bound_to_failed_featurize(
        baseline, raw_suite=str(RAW_SUITE), features_suite=empty
    )
    assert "has no expectations; an empty suite validates as success" in problem
    # and, because of it, no data evidence at all:
    assert set(outcome.failures) == {
        "evidence:problem",
        "expectations",
        "suite:breast_cancer_raw",
        "suite:breast_cancer_features",
    }
    assert_blocked(version)


def test_recorded_suite_with_no_expectations(baseline: Baseline, assert_blocked: Any) -> None:
    """Defence in depth: a featurize record (from any producer) whose suite result is empty."""

    def empty_features_suite(record: dict[str, Any]) -> None:
        for report in record["results"]["expectations"]:
            if report["role"] == "features":
                report["results"] = []

    run_id = _copy_record(baseline, baseline.featurize_run, "featurize", empty_features_suite)
    version = baseline.candidate()
    baseline.client.set_model_version_tag(MODEL, version, "airflow_ml.evidence.featurize", run_id)

    outcome = run_gate(baseline.client, MODEL, version)

    assert not outcome.passed
    [name] = [n for n in outcome.failures if n.startswith("expectations:")]
    assert set(outcome.failures) == {name, "suite:breast_cancer_features"}
    assert outcome.failures["suite:breast_cancer_features"][0].startswith(
        "required suite 'breast_cancer_features' was run but did not pass"
    )
    [reason] = outcome.failures[name]
    assert reason.startswith("suite 'breast_cancer_features' on ")
    assert reason.endswith("has no expectations: an empty suite proves nothing")
    assert_blocked(version)


def _copy_record(baseline: Baseline, run_id: str, step: str, edit: Any) -> str:
    """A finished run of ``step`` holding ``run_id``'s record JSON after ``edit(record)``; returns its id."""
    record = read_record(baseline.client, run_id).to_dict()
    edit(record)
    experiment = baseline.client.get_experiment_by_name(EXPERIMENT).experiment_id
    run = baseline.client.create_run(experiment, tags={"airflow_ml.step": step})
    record["mlflow_run_id"] = run.info.run_id
    write_record(baseline.client, record)
    baseline.client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


@pytest.mark.parametrize(
    ("edit", "names"),
    [
        (lambda r: r["results"].update(metrix={}), "results has unknown keys 'metrix'"),
        (lambda r: r["results"]["metrics"].update(accuracy="0.97"), "results.metrics['accuracy'] must be a number"),
        (lambda r: r["results"].pop("holdout_fingerprint"), "results is missing 'holdout_fingerprint'"),
        (lambda r: r.update(recorded_at="2026-01-01T00:00:00"), "recorded_at must be timezone-aware"),
    ],
    ids=["unknown-key", "wrong-type", "missing-field", "naive-time"],
)
def test_malformed_step_record(baseline: Baseline, assert_blocked: Any, edit: Any, names: str) -> None:
    """A record that does not parse strictly is a named problem (which run, which field, what to do): fail closed."""
    version = baseline.candidate()
    tags = baseline.client.get_model_version(MODEL, version).tags
    bad = _copy_record(baseline, tags["airflow_ml.evidence.evaluate"], "evaluate", edit)
    baseline.client.set_model_version_tag(MODEL, version, "airflow_ml.evidence.evaluate", bad)

    outcome = run_gate(baseline.client, MODEL, version)

    assert not outcome.passed
    [problem] = outcome.failures["evidence:problem"]
    assert problem.startswith(f"evaluate evidence unreadable: step record of MLflow run {bad} does not parse: ")
    assert names in problem and problem.endswith("run the step that wrote it again to record it anew.")
    assert set(outcome.failures) == {"evidence:problem", "evidence:evaluation"}  # no evaluation evidence at all
    assert_blocked(version)


def test_suite_file_with_unknown_expectation_type(baseline: Baseline, assert_blocked: Any, tmp_path: Path) -> None:
    suite = json.loads(RAW_SUITE.read_text())
    suite["expectations"].append({"type": "expect_column_values_to_be_awesome", "kwargs": {"column": "target"}})
    bad = tmp_path / "raw_suite.json"
    bad.write_text(json.dumps(suite))
    version, outcome, problem = _gate_bound_to_failed_featurize(baseline, raw_suite=str(bad))
    assert "that Great Expectations cannot build and would silently drop" in problem
    assert "'expect_column_values_to_be_awesome'" in problem
    assert set(outcome.failures) == {
        "evidence:problem",
        "expectations",
        "suite:breast_cancer_raw",
        "suite:breast_cancer_features",
    }
    assert_blocked(version)


def test_malformed_scenario_file(baseline: Baseline, assert_blocked: Any, tmp_path: Path) -> None:
    from airflow_ml_provider.scenarios.spec import ScenarioFileError

    malformed = tmp_path / "scenarios.yaml"
    malformed.write_text("scenarios:\n- name: typical_benign\n  rows: not-a-list\n  expect: {equals: 1}\n")
    version = baseline.candidate(scenarios=None)
    with pytest.raises(ScenarioFileError):
        simulate(MODEL, version, malformed)

    outcome = run_gate(baseline.client, MODEL, version, scenarios=str(malformed))

    assert not outcome.passed
    assert set(outcome.failures) == {"evidence:problem", "scenarios"}
    [problem] = outcome.failures["evidence:problem"]
    assert problem.startswith(f"scenario file {malformed} cannot be loaded: ")
    assert outcome.failures["scenarios"] == ["no scenario evidence: the policy requires a must-pass scenario run"]
    assert_blocked(version)


def test_scenario_that_raises(baseline: Baseline, assert_blocked: Any, tmp_path: Path) -> None:
    doc = yaml.safe_load(SCENARIOS.read_text())
    row = dict(doc["scenarios"][0]["rows"][0], mean_radius="twelve")
    doc["scenarios"].append(
        {"name": "raises", "description": "predict cannot take this row", "rows": [row], "expect": {"equals": 1}}
    )
    raising = tmp_path / "scenarios.yaml"
    raising.write_text(yaml.safe_dump(doc))
    version = baseline.candidate(scenarios=raising)

    outcome = run_gate(baseline.client, MODEL, version, scenarios=str(raising))

    assert not outcome.passed
    assert set(outcome.failures) == {"scenario:raises"}
    [reason] = outcome.failures["scenario:raises"]
    assert reason.startswith("scenario raised ValueError: ")
    assert "twelve" in reason
    assert_blocked(version)


def nan_and_infinite(y_true: Any, y_pred: Any) -> dict[str, float]:
    return {"calibration": math.nan, "lift": math.inf}


def test_nan_or_infinite_metric(baseline: Baseline, assert_blocked: Any) -> None:
    version = baseline.candidate(evaluate_kwargs={"metric_fn": nan_and_infinite})
    policy = json.loads(json.dumps(POLICY))
    policy["metrics"].update(  # custom metrics (from metric_fn) state their direction
        {
            "calibration": {"threshold": 0.5, "greater_is_better": True},
            "lift": {"threshold": 1.0, "greater_is_better": True},
        }
    )

    outcome = run_gate(baseline.client, MODEL, version, policy=policy)

    assert not outcome.passed
    assert outcome.failures == {
        "metric:calibration": ["calibration is nan: not a finite number"],
        "metric:lift": ["lift is inf: not a finite number"],
    }
    assert_blocked(version)


def test_champion_alias_to_a_deleted_version(baseline: Baseline, assert_blocked: Any) -> None:
    """
    MLflow deletes an alias together with the version it points to, so "an alias pointing to a
    deleted version" cannot exist in the registry: the champion vanishes. Both orders are blocked:
    deleted after the candidate's evaluation (which names it), and deleted before (the evaluation
    found no champion, but the promotion records say there was one; not a first version).
    """
    model = f"{MODEL}_deleted_champion"
    first = baseline.candidate(model)  # evaluated with no champion: first-version rule 'allow'
    assert run_gate(baseline.client, model, first).passed
    promote(model, first)
    after = baseline.candidate(model)  # evaluated against champion `first`
    baseline.client.delete_model_version(model, first)

    assert champion(baseline.client, model) is None, "MLflow removed the alias"
    outcome = run_gate(baseline.client, model, after)
    assert not outcome.passed
    assert outcome.failures == {
        "evidence:problem": [
            f"champion deleted: the evaluation compared against champion v{first}, which has been deleted "
            f"from the registry; alias 'champion' of {model} is now unset, so the comparison is void"
        ]
    }
    assert_blocked(after, model, expected_champion=None)

    before = baseline.candidate(model)  # evaluated after the deletion: no champion recorded
    outcome = run_gate(baseline.client, model, before)
    assert not outcome.passed
    [(name, [reason])] = outcome.failures.items()
    assert name == "evidence:problem"
    assert reason.startswith(f"champion deleted: alias 'champion' of {model} is unset, but it was held by v{first} ")
    assert "which has since been deleted from the registry" in reason
    assert reason.endswith("is not a first version: restore a champion and evaluate again")
    assert_blocked(before, model, expected_champion=None)


def test_model_artifact_changed_after_training(baseline: Baseline, assert_blocked: Any) -> None:
    version = baseline.candidate()
    source = baseline.client.get_model_version(MODEL, version).source
    location = baseline.client.get_logged_model(source.removeprefix("models:/")).artifact_location
    weights = Path(location.removeprefix("file://")) / "model.skops"
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
        outcome = run_gate(baseline.client, MODEL, version)
    finally:
        weights.write_bytes(original)

    assert not outcome.passed
    assert set(outcome.failures) == {"evidence:problem"}
    [problem] = outcome.failures["evidence:problem"]
    recorded = baseline.client.get_model_version(MODEL, version).tags["airflow_ml.model_fingerprint"]
    assert problem.startswith("model artifact changed after training: fingerprint now blake3:")
    assert problem.endswith(f"recorded {recorded}")
    assert_blocked(version)


def test_abandoned_version(baseline: Baseline, assert_blocked: Any) -> None:
    """A version whose train attempt did not complete, as its retry marks it: all other evidence is green."""
    version = baseline.candidate()
    by = "gate_tests/manual__x/train try 2: superseded by a retry (registered by try 1); never gated"
    baseline.client.set_model_version_tag(MODEL, version, "airflow_ml.gate.status", "abandoned")
    baseline.client.set_model_version_tag(MODEL, version, "airflow_ml.abandoned_by", by)

    outcome = run_gate(baseline.client, MODEL, version)

    assert not outcome.passed
    assert set(outcome.failures) == {"evidence:problem"}
    assert outcome.failures["evidence:problem"] == [
        f"models:/{MODEL}/{version} was abandoned ({by}): the train attempt that registered it did not complete, "
        "so it is never gated; gate the version a completed attempt registered"
    ]
    assert_blocked(version)
