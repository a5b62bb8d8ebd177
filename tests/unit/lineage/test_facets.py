"""Our OpenLineage run facets: serialised with the client's Serde, validated against the schemas we ship
(which build on the OpenLineage spec in ../shared/openlineage-spec), and assembled from step data
without I/O and without raising. Also the environment, hardware and code-identity collectors."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import inspect
import json
import os
import stat
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openlineage.client.serde import Serde

from airflow_ml_provider.lineage import facets as F
from airflow_ml_provider.lineage.datasets import (
    LineageDataset,
    expectation_assertions,
    to_input,
)
from airflow_ml_provider.records import environment as env
from airflow_ml_provider.records.redaction import redact_secrets, strip_credentials
from airflow_ml_provider.records.resources import ResourceMeter, parse_nvidia_smi
from airflow_ml_provider.records.step_record import AirflowIds, RecordedModel, StepRecord, parse_results
from tests.lineage.spec import facet_errors

REPO = Path(__file__).resolve().parents[3]
SCHEMAS = REPO / "airflow_ml_provider" / "lineage" / "schemas"


def as_dict(facet: Any) -> dict[str, Any]:
    return json.loads(json.dumps(Serde.to_dict(facet)))


# --- sample step runs -----------------------------------------------------------------------------------


def step(name: str, results: dict[str, Any] | None = None, model: dict[str, Any] | None = None) -> Any:
    record = StepRecord(step=name, mlflow_run_id="r1", airflow=AirflowIds("d", "x", name, 1, -1))
    record.results = parse_results(name, results or {})
    record.model = None if model is None else RecordedModel.from_dict(model)
    record.environment = {**env.environment_info(), "hardware": env.hardware_info()}
    record.code_identity = env.code_info(sample_transform)
    record.resources = ResourceMeter().stop()  # measured here, for real (no GPU on this machine: gpus is [])
    return types.SimpleNamespace(
        run_id="r1",
        parent_run_id="p1",
        experiment_id="7",
        tracking_uri="https://user:pa55word@mlflow.example.com/?token=abcdef",
        record=record,
    )


def sample_transform(df: Any, scale: float = 2.0) -> Any:
    return df * scale


MODEL = {"name": "clf", "version": "3", "uri": "models:/clf/3", "fingerprint": "blake3:ab", "estimator": "x.Y"}
REPORT = {
    "suite_name": "raw",
    "suite_path": "/s.json",
    "dataset": "d",
    "success": False,
    "results": [
        {
            "expectation_type": "expect_table_row_count_to_be_between",
            "column": None,
            "success": True,
            "kwargs": {"min_value": 1, "max_value": 10, "batch_id": "b"},
            "observed": {"observed_value": 5},
            "exception": None,
        },
        {
            "expectation_type": "expect_column_values_to_not_be_null",
            "column": "age",
            "success": False,
            "kwargs": {"column": "age"},
            "observed": {"unexpected_count": 3, "element_count": 10, "partial_unexpected_list": [None]},
            "exception": None,
        },
        {
            "expectation_type": "expect_column_max_to_be_between",
            "column": "age",
            "success": False,
            "kwargs": {"column": "age", "max_value": 130},
            "observed": {},
            "exception": "boom " * 100,
        },
    ],
}
STEPS: dict[str, tuple[dict[str, Any], set[str]]] = {
    "featurize": ({"expectations": [{"role": "raw", **REPORT}, {"role": "features", **REPORT}]}, {"test"}),
    "train": ({"registered_model_name": "clf", "hyperparameters": {"C": 1.0, "seed": 42}, "seed": 42}, {"mlTraining"}),
    "evaluate": (
        {
            "task": "classification",
            "metrics": {"accuracy": 0.9, "roc_auc": float("nan")},
            "champion": {"version": "2", "metrics": {"accuracy": 0.8}},
            "holdout_fingerprint": "blake3:cd",
        },
        {"mlEvaluation"},
    ),
    "simulate": (
        {
            "scenarios": {
                "suite_path": "s.yaml",
                "suite_fingerprint": "sha256:1",
                "passed": False,
                "results": [
                    {"name": "a", "passed": True, "reason": "ok", "predictions": [1], "error": None},
                    {"name": "b", "passed": False, "reason": "expected 0", "predictions": [1], "error": None},
                ],
            }
        },
        {"mlScenarios", "test"},
    ),
    "gate": (
        {
            "verdict": {
                "subject": {"model_name": "clf", "model_version": "3", "model_fingerprint": "blake3:ab"},
                "passed": False,
                "checks": [
                    {"name": "metric:accuracy:threshold", "passed": True, "reason": "0.9 >= 0.8"},
                    {"name": "scenario:b", "passed": False, "reason": "expected 0"},
                ],
                "decided_at": "2026-01-01T00:00:00+00:00",
                "policy": {},
            }
        },
        {"mlGateVerdict"},
    ),
    "promote": (
        {
            "mode": "promote",
            "outcome": "promoted",
            "model_name": "clf",
            "alias": "champion",
            "version": "3",
            "holder_before": "2",
            "holder_after": "3",
            "reason": "newest gated version",
            "attempt_id": "r1",
            "at": "2026-01-01T00:00:00+00:00",
            "by": "airflow:d/x/promote#1",
        },
        {"mlPromotion"},
    ),
}
COMMON = {"mlflowRun", "mlEnvironment", "mlHardware", "mlCode", "mlResources"}


# --- schemas -------------------------------------------------------------------------------------------


def test_every_facet_class_has_a_shipped_schema_with_its_key() -> None:
    for key, cls in [*F.FACETS.items(), *F.DATASET_FACETS.items()]:
        name = cls.__name__
        url = cls._get_schema()
        assert url == f"{F.SCHEMA_BASE_URL}{name}.json#/$defs/{name}"
        # Versioned: the tag of the installed release (one version source: the package metadata), never main.
        assert f"/v{importlib.metadata.version('airflow-ml-provider')}/" in url and "/main/" not in url
        doc = json.loads((SCHEMAS / f"{name}.json").read_text())
        assert doc["$id"] == url.split("#")[0]
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert doc["properties"] == {key: {"$ref": f"#/$defs/{name}"}}
        base = doc["$defs"][name]["allOf"][0]["$ref"]
        kind = "InputDatasetFacet" if key in F.DATASET_FACETS else "RunFacet"
        assert base == f"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/{kind}"
        Draft202012Validator.check_schema(doc)
    facets = {c.__name__ for c in [*F.FACETS.values(), *F.DATASET_FACETS.values()]}
    assert {p.stem for p in SCHEMAS.glob("*.json")} == facets


@pytest.mark.spec
@pytest.mark.parametrize("name", sorted(STEPS))
def test_step_facets_serialise_and_validate(name: str) -> None:
    results, expected = STEPS[name]
    facets = F.step_run_facets(step(name, results, dict(MODEL)))
    assert set(facets) == COMMON | expected
    for key, facet in facets.items():
        data = as_dict(facet)
        assert data["_producer"] and data["_schemaURL"]
        assert facet_errors(data) == [], (key, data)


def test_facet_values() -> None:
    train = F.step_run_facets(step("train", STEPS["train"][0], dict(MODEL, flavor="sklearn")))
    training = as_dict(train["mlTraining"])
    assert training["registeredModelName"] == "clf" and training["modelVersion"] == "3"
    assert training["mlflowRunId"] == "r1" and training["randomSeed"] == 42
    assert training["hyperparameters"] == {"C": 1.0, "seed": 42}
    assert training["modelUri"] == "models:/clf/3" and training["estimator"] == "x.Y"
    link = as_dict(train["mlflowRun"])
    assert link == {**link, "runId": "r1", "experimentId": "7", "parentRunId": "p1"}
    assert "pa55word" not in link["trackingUri"] and "abcdef" not in link["trackingUri"]
    code = as_dict(train["mlCode"])
    assert code["callable"] == f"{__name__}:sample_transform"
    assert code["sourceSha256"] == hashlib.sha256(inspect.getsource(sample_transform).encode()).hexdigest()

    evaluation = as_dict(F.step_run_facets(step("evaluate", STEPS["evaluate"][0], MODEL))["mlEvaluation"])
    assert evaluation["metrics"] == {"accuracy": 0.9}  # NaN is not JSON: dropped
    assert evaluation["championVersion"] == "2" and evaluation["championMetrics"] == {"accuracy": 0.8}

    gate = as_dict(F.step_run_facets(step("gate", STEPS["gate"][0]))["mlGateVerdict"])
    assert gate["status"] == "failed" and gate["modelVersion"] == "3"
    assert [(c["name"], c["passed"]) for c in gate["checks"]] == [
        ("metric:accuracy:threshold", True),
        ("scenario:b", False),
    ]

    sim = F.step_run_facets(step("simulate", STEPS["simulate"][0]))
    assert [(s["name"], s["passed"]) for s in as_dict(sim["mlScenarios"])["scenarios"]] == [("a", True), ("b", False)]
    assert [(t["name"], t["status"]) for t in as_dict(sim["test"])["tests"]] == [("a", "pass"), ("b", "fail")]

    promotion = as_dict(F.step_run_facets(step("promote", STEPS["promote"][0], MODEL))["mlPromotion"])
    assert (promotion["outcome"], promotion["previousVersion"], promotion["aliasVersion"]) == ("promoted", "2", "3")

    # The features suite goes to the run's TestRunFacet; the raw one is the raw input's (see datasets).
    tests = as_dict(F.step_run_facets(step("featurize", STEPS["featurize"][0]))["test"])["tests"]
    assert len(tests) == len(REPORT["results"])


@pytest.mark.spec
def test_a_facet_breaking_its_schema_is_caught() -> None:
    data = as_dict(F.MLGateVerdictRunFacet(status="passed", checks=[F.MLGateCheck(name="c", passed=True)]))
    assert facet_errors(data) == []
    assert facet_errors({**data, "status": "maybe"})
    assert facet_errors({k: v for k, v in data.items() if k != "checks"})
    assert facet_errors({**data, "_producer": None})
    assert facet_errors({**as_dict(F.MLHardwareRunFacet(logicalCores=2)), "logicalCores": "two"})
    used = as_dict(F.MLResourcesRunFacet(wallSeconds=1.0, cpuSeconds=0.5, peakMemoryMethod="process"))
    assert facet_errors(used) == []
    assert facet_errors({**used, "wallSeconds": -1.0})
    assert facet_errors({**used, "peakMemoryMethod": "guess"})
    assert facet_errors({k: v for k, v in used.items() if k != "cpuSeconds"})


@pytest.mark.spec
def test_resources_facet_with_gpus_validates() -> None:
    """GPU entries as nvidia-smi reports them (fixed text: no GPU on the test machine), one figure unknown."""
    record = StepRecord(step="train", mlflow_run_id="r1", airflow=AirflowIds("d", "x", "train", 1, -1))
    gpus = parse_nvidia_smi("0, NVIDIA A100-SXM4-40GB, 1024, 40960\n1, Tesla T4, [N/A], 15360\n")
    record.resources = dataclasses.replace(ResourceMeter().stop(), gpus=gpus)
    facet = as_dict(F.step_run_facets(types.SimpleNamespace(run_id="r1", record=record))["mlResources"])
    assert facet_errors(facet) == []
    assert [(g["name"], g.get("memoryBytes"), g["memoryMethod"]) for g in facet["gpus"]] == [
        ("NVIDIA A100-SXM4-40GB", 1024 * 1024 * 1024, "nvidia_smi_used_at_end"),
        ("Tesla T4", None, "nvidia_smi_used_at_end"),
    ]


def test_missing_or_malformed_data_leaves_facets_out_and_never_raises() -> None:
    assert F.step_run_facets(None) == {}
    with pytest.raises(ValueError, match=r"results\.metrics must be a mapping"):  # never reaches a facet
        parse_results("evaluate", {"task": "t", "metrics": "no", "champion": 5, "holdout_fingerprint": "h"})
    run = step("evaluate")
    run.record.environment = {"hardware": "nope"}
    run.record.code_identity = {"no": "callable"}
    facets = F.step_run_facets(run)
    assert "mlEnvironment" not in facets and "mlCode" not in facets and "mlflowRun" in facets
    broken = types.SimpleNamespace(record=types.SimpleNamespace(step="train", results=None, model=None))
    assert F.step_run_facets(broken) == {}  # no run id, nothing else: everything skipped, no exception


def test_operator_lineage_methods_never_raise_and_carry_run_facets() -> None:
    from airflow_ml_provider.operators.simulate import SimulateOperator

    op = SimulateOperator(task_id="simulate", model="models:/clf/3", scenarios="s.yaml")
    assert op.get_openlineage_facets_on_complete(None).run_facets == {}
    op._ml_step_run = step("simulate", STEPS["simulate"][0], MODEL)
    op._lineage_inputs = [LineageDataset(namespace="file", name="/x", assertions=({"bad": "shape"},))]
    lineage = op.get_openlineage_facets_on_failure(None)
    assert set(lineage.run_facets) == COMMON | {"mlScenarios", "test"}
    assert lineage.inputs == []  # the dataset that could not be built is left out, the rest survives


# --- data quality ----------------------------------------------------------------------------------------


@pytest.mark.spec
def test_expectations_become_spec_data_quality_assertions() -> None:
    assertions = expectation_assertions(REPORT)
    assert [(a["assertion"], a.get("column"), a["success"]) for a in assertions] == [
        ("expect_table_row_count_to_be_between", None, True),
        ("expect_column_values_to_not_be_null", "age", False),
        ("expect_column_max_to_be_between", "age", False),
    ]
    assert json.loads(assertions[0]["expected"]) == {"min_value": 1, "max_value": 10}
    assert assertions[0]["actual"] == "5"
    assert json.loads(assertions[1]["actual"]) == {"unexpected_count": 3, "element_count": 10}
    assert len(assertions[2]["actual"]) <= 200
    dataset = Serde.to_dict(to_input(LineageDataset(namespace="file", name="/raw", assertions=assertions)))
    facet = json.loads(json.dumps(dataset["inputFacets"]["dataQualityAssertions"]))
    assert len(facet["assertions"]) == 3
    assert facet_errors(facet) == []
    assert (
        "inputFacets" not in Serde.to_dict(to_input(LineageDataset(namespace="file", name="/raw")))
        or not (Serde.to_dict(to_input(LineageDataset(namespace="file", name="/raw")))["inputFacets"])
    )


# --- secrets ---------------------------------------------------------------------------------------------


def test_strip_credentials() -> None:
    assert strip_credentials("https://u:p4ss@host:5000/x") == "https://host:5000/x"
    assert strip_credentials("https://host/x?token=abc&x=1") == "https://host/x?token=***&x=1"
    assert strip_credentials("sqlite:////tmp/m.db") == "sqlite:////tmp/m.db"
    assert strip_credentials("git@github.com:org/repo.git") == "git@github.com:org/repo.git"


def test_redact_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-123456789")
    params = {
        "C": 1.0,
        "api_key": "k-1",
        "nested": {"password": "x", "url": "https://svc?auth=tok-123456789"},
        "list": ["tok-123456789", 2],
    }
    assert redact_secrets(params) == {
        "C": 1.0,
        "api_key": "***",
        "nested": {"password": "***", "url": "https://svc?auth=***"},
        "list": ["***", 2],
    }


# --- environment, hardware, code -------------------------------------------------------------------------


def test_environment_is_cached_and_digests_the_whole_installed_set() -> None:
    import importlib.metadata

    import mlflow

    info = env.environment_info()
    assert info["pythonVersion"] == ".".join(map(str, sys.version_info[:3]))
    assert info["packages"]["mlflow"] == mlflow.__version__
    assert set(info["packages"]) <= {env._normalize(n) for n in env.STEP_DISTRIBUTIONS}
    names = {env._normalize(d.metadata["Name"]) for d in importlib.metadata.distributions()}
    assert info["packagesCount"] == len(names)
    lines = sorted(f"{n}=={v}" for n, v in env._installed().items())
    assert info["packagesDigest"] == "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()
    assert env.installed_packages_digest() is env.installed_packages_digest()  # cached per process
    assert env.environment_info(["pytest"])["packages"]["pytest"] == importlib.metadata.version("pytest")
    assert len(json.dumps(info)) < 2048


@pytest.mark.spec
def test_hardware_without_and_with_gpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.hardware_info.cache_clear()
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    try:
        info = env.hardware_info()
        assert info["logicalCores"] == os.cpu_count()
        assert "gpuCount" not in info and "gpuModel" not in info
        if sys.platform.startswith("linux"):
            assert info["memoryBytes"] > 0 and info["cpuModel"]
        fake = tmp_path / "nvidia-smi"
        fake.write_text("#!/bin/sh\necho 'NVIDIA A100-SXM4-40GB'\necho 'NVIDIA A100-SXM4-40GB'\n")
        fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
        env.hardware_info.cache_clear()
        info = env.hardware_info()
        assert info["gpuCount"] == 2 and info["gpuModel"] == "NVIDIA A100-SXM4-40GB"
        assert facet_errors(as_dict(F.hardware_facet(info))) == []
    finally:
        env.hardware_info.cache_clear()


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _load_function(path: Path, module: str) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(module, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    spec.loader.exec_module(mod)
    return mod.fit


@pytest.mark.spec
@pytest.mark.skipif(not env.shutil.which("git"), reason="git is not installed")
def test_code_identity_in_and_out_of_a_git_checkout(tmp_path: Path) -> None:
    source = textwrap.dedent(
        """
        def fit(df, alpha=0.5):
            return df
        """
    )
    repo = tmp_path / "repo"
    (repo / "ml").mkdir(parents=True)
    _git(repo, "init", "-q")
    _git(repo, "remote", "add", "origin", "https://someone:gh-secret-token@github.com/org/ml.git")
    (repo / "ml" / "code.py").write_text(source)
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "init")
    fit = _load_function(repo / "ml" / "code.py", "lineage_test_code_mod")

    info = env.code_info(fit)
    # Loaded under a module name that is not its file's (as Airflow loads DAG files): named by its file.
    assert info["callable"] == f"{(repo / 'ml' / 'code.py').resolve().as_posix()}:fit"
    assert info["sourceSha256"] == hashlib.sha256(inspect.getsource(fit).encode()).hexdigest()
    assert info["gitCommit"] == _git(repo, "rev-parse", "HEAD")
    assert info["gitDirty"] is False and info["gitPath"] == "ml/code.py"
    assert info["gitRemote"] == "https://github.com/org/ml.git"
    assert facet_errors(as_dict(F.code_facet(info))) == []

    (repo / "ml" / "code.py").write_text(source + "\n# changed\n")
    assert env.code_info(fit)["gitDirty"] is True

    outside = tmp_path / "loose.py"
    outside.write_text(source)
    loose = env.code_info(_load_function(outside, "lineage_test_loose_mod"))
    assert "gitCommit" not in loose and loose["sourceSha256"]

    assert env.code_info(len)["callable"] == "builtins:len"  # no source: just the name


def test_a_hanging_git_is_given_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "git"
    fake.write_text("#!/bin/sh\nsleep 30\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(env, "PROBE_TIMEOUT", 0.2)
    info = env.code_info(sample_transform)
    assert "gitCommit" not in info and info["callable"].endswith(":sample_transform")
