"""PromoteModelOperator refuses any version without a passing gate verdict for its exact bytes.

The module trains its own model version (promotion writes aliases and tags) and runs evaluate and
simulate on it, so the refusals below happen although that evidence exists. The gate tags are set
by hand in the refusal cases: that is the state a stale, failed or tampered verdict leaves behind.
Each case sets the tags it needs and restores them afterwards, so the cases do not depend on order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from airflow.exceptions import AirflowFailException

from airflow_ml_provider.model import reference as models
from airflow_ml_provider.operators.evaluate import EvaluateOperator
from airflow_ml_provider.operators.promote import PromoteModelOperator
from airflow_ml_provider.operators.simulate import SimulateOperator
from airflow_ml_provider.operators.train import TrainOperator
from airflow_ml_provider.records.tags import (
    TAG_GATE_FINGERPRINT,
    TAG_GATE_RUN,
    TAG_GATE_STATUS,
    TAG_PROMOTED_BY,
    evidence_tag,
)
from tests.operators._support import assert_step_failed, assert_step_succeeded, unique
from tests.operators.conftest import SCENARIOS
from tests.support import make_context

DAG = "ops_promote"
ALIAS = "champion"
GATE_TAGS = (TAG_GATE_STATUS, TAG_GATE_RUN, TAG_GATE_FINGERPRINT)
POLICY = {
    "metrics": {"accuracy": {"threshold": 0.9}, "roc_auc": {"threshold": 0.95}},
    "required_suites": ["breast_cancer_raw", "breast_cancer_features"],
    "first_version": "allow",
}


@pytest.fixture(scope="module")
def candidate(featurized: dict[str, Any], client: Any) -> dict[str, Any]:
    """A version trained, evaluated and simulated (all green), but never gated."""
    from tests.example import TARGET, train

    run_id = make_context(DAG, "x")["ti"].run_id
    trained = TrainOperator(
        task_id="train",
        features=featurized["result"],
        train=train,
        target_column=TARGET,
        registered_model_name=unique("ops_promote_model"),
    ).execute(make_context(DAG, "train", run_id))
    evaluated = EvaluateOperator(task_id="evaluate", model=trained, holdout=trained["holdout"]).execute(
        make_context(DAG, "evaluate", run_id)
    )
    simulated = SimulateOperator(task_id="simulate", model=trained, scenarios=str(SCENARIOS)).execute(
        make_context(DAG, "simulate", run_id)
    )
    assert evaluated["metrics"]["accuracy"] > 0.9 and simulated["passed"] is True
    tags = client.get_model_version(trained["model_name"], trained["version"]).tags
    assert evidence_tag("evaluate") in tags and evidence_tag("simulate") in tags
    return {"result": trained, "run_id": run_id}


@pytest.fixture
def gate_tags(candidate: dict[str, Any], client: Any) -> Iterator[Any]:
    """Set (or remove, with None) the version's gate tags for one test; restore them afterwards."""
    name, version = candidate["result"]["model_name"], candidate["result"]["version"]
    saved = {k: v for k, v in client.get_model_version(name, version).tags.items() if k in GATE_TAGS}

    def apply(values: dict[str, str | None]) -> None:
        for key, value in values.items():
            if value is None:
                if key in client.get_model_version(name, version).tags:
                    client.delete_model_version_tag(name, version, key)
            else:
                client.set_model_version_tag(name, version, key, value)

    yield apply
    apply({key: saved.get(key) for key in GATE_TAGS})


def refused(candidate: dict[str, Any], client: Any, *reason: str) -> None:
    """Promote; expect a refusal naming the version and ``reason``, with nothing changed in the registry."""
    result = candidate["result"]
    name, version = result["model_name"], result["version"]
    alias_before = alias_version(client, name, ALIAS)
    op = PromoteModelOperator(task_id="promote", model=result, alias=ALIAS)
    context = make_context(DAG, "promote")

    with pytest.raises(AirflowFailException) as excinfo:
        op.execute(context)

    message = str(excinfo.value)
    assert f"models:/{name}/{version}" in message and "Refusing to promote" in message
    for text in reason:
        assert text in message
    assert alias_version(client, name, ALIAS) == alias_before
    assert client.get_model_version(name, version).tags.get(TAG_PROMOTED_BY) is None or alias_before == version
    assert_step_failed(client, context, excinfo.value, *reason)


def test_version_without_a_verdict_is_refused(candidate: dict[str, Any], gate_tags: Any, client: Any) -> None:
    gate_tags({key: None for key in GATE_TAGS})
    refused(candidate, client, "no passing gate verdict")


def test_version_pending_the_gate_is_refused(candidate: dict[str, Any], gate_tags: Any, client: Any) -> None:
    """As TrainOperator leaves every version it registers until the gate has run."""
    gate_tags({TAG_GATE_STATUS: "pending", TAG_GATE_RUN: None, TAG_GATE_FINGERPRINT: None})
    refused(candidate, client, "it has not been through the gate yet (gate status 'pending')", "ModelGateSensor")


def test_version_with_a_failed_verdict_is_refused(candidate: dict[str, Any], gate_tags: Any, client: Any) -> None:
    gate_tags({TAG_GATE_STATUS: "failed"})
    refused(candidate, client, "'failed'")


def test_passed_verdict_for_other_bytes_is_refused(candidate: dict[str, Any], gate_tags: Any, client: Any) -> None:
    fingerprint = candidate["result"]["model_fingerprint"]
    other = "blake3:" + "0" * 64
    assert other != fingerprint
    gate_tags({TAG_GATE_STATUS: "passed", TAG_GATE_FINGERPRINT: other, TAG_GATE_RUN: candidate["run_id"]})
    refused(candidate, client, "different model artifact fingerprint")


def test_passed_tag_without_a_readable_verdict_is_refused(
    candidate: dict[str, Any], gate_tags: Any, client: Any
) -> None:
    """The tags say passed for these bytes, but the run they name holds no verdict: fail closed."""
    result = candidate["result"]
    gate_tags(
        {
            TAG_GATE_STATUS: "passed",
            TAG_GATE_FINGERPRINT: result["model_fingerprint"],
            TAG_GATE_RUN: result["run_id"],  # the training run: it has no airflow_ml/verdict.json
        }
    )
    refused(candidate, client, "gate verdict", result["run_id"])


def test_model_reference_that_does_not_exist(candidate: dict[str, Any], client: Any) -> None:
    uri = f"models:/{candidate['result']['model_name']}/99"
    op = PromoteModelOperator(task_id="promote", model=uri)
    context = make_context(DAG, "promote")
    with pytest.raises(models.ModelReferenceError) as excinfo:
        op.execute(context)
    assert uri in str(excinfo.value)
    assert_step_failed(client, context, excinfo.value, uri)


def test_gated_version_is_promoted(candidate: dict[str, Any], client: Any) -> None:
    """The same version, after the real gate passed it, is promoted: the refusals above were about the
    verdict, not about the version."""
    from airflow_ml_provider.sensors.model_gate import ModelGateSensor

    result = candidate["result"]
    gate = ModelGateSensor(task_id="gate", model=result, policy=POLICY, scenarios=str(SCENARIOS))
    verdict = gate.poke(make_context(DAG, "gate", candidate["run_id"]))
    assert getattr(verdict, "is_done", False), verdict

    context = make_context(DAG, "promote", candidate["run_id"])
    out = PromoteModelOperator(task_id="promote", model=result, alias=ALIAS).execute(context)

    assert out["version"] == result["version"]
    assert alias_version(client, result["model_name"], ALIAS) == result["version"]
    assert_step_succeeded(client, context)


def alias_version(client: Any, name: str, alias: str) -> str | None:
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    return MlflowHook(tracking_uri=client.tracking_uri).alias_version(name, alias)
