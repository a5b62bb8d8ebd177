"""The example DAG with its artifact root on a remote fsspec filesystem: ``memory://`` (in-process, as
``dag.test()`` runs tasks in this process) and ``s3://`` against moto's S3 server when moto and s3fs are
installed. The root comes from ``AIRFLOW__ML_PROVIDER__ARTIFACT_ROOT``, which the operators read through
Airflow's configuration when they run. Features, splits and predictions must land there,
content-addressed; the lineage events must name them with the store's namespace; and a past run's
intermediates must be found again by fingerprint."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

from airflow_ml_provider.data.datasets import find_by_fingerprint, open_dataset
from tests.dag.test_breast_cancer_retrain import DAG_ID, task_events, task_states
from tests.support import RAW_URI, run_dag

pytestmark = pytest.mark.dag
ENV = "AIRFLOW__ML_PROVIDER__ARTIFACT_ROOT"
BUCKET = "dag-artifacts"


@pytest.fixture(params=["memory", "s3"])
def remote_root(request: pytest.FixtureRequest) -> Iterator[str]:
    """The artifact root for the DAG run, set in the environment for the run and restored afterwards."""
    unique = uuid.uuid4().hex[:12]
    saved = os.environ.get(ENV)
    if request.param == "s3":
        pytest.importorskip("moto.server", reason="moto[server] is not installed (dev extra)")
        pytest.importorskip("s3fs", reason="s3fs is not installed (dev extra)")
        from tests.support import moto_s3

        with moto_s3(BUCKET):
            os.environ[ENV] = f"s3://{BUCKET}/ml-{unique}"
            try:
                yield os.environ[ENV]
            finally:
                _restore(saved)
        return
    root = f"memory://airflow-ml-dag-{unique}"
    os.environ[ENV] = root
    try:
        yield root
    finally:
        _restore(saved)
        fs, path = open_dataset(root)
        if fs.exists(path):
            fs.rm(path, recursive=True)


def _restore(saved: str | None) -> None:
    if saved is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = saved


def stored(root: str, kind: str) -> dict[str, bytes]:
    """``{file name: bytes}`` of the datasets of one kind under the root."""
    fs, path = open_dataset(root)
    directory = f"{path.rstrip('/')}/{kind}"
    fs.invalidate_cache(directory)
    return {p.rsplit("/", 1)[1]: fs.cat_file(p) for p in fs.ls(directory, detail=False)}


def identity(root: str, kind: str, name: str) -> tuple[str, str]:
    """The OpenLineage namespace and name the dataset ``<root>/<kind>/<name>`` must have."""
    fs, path = open_dataset(root)
    full = f"{path.rstrip('/')}/{kind}/{name}"
    if root.startswith("memory://"):
        return "memory", full
    bucket, key = full.split("/", 1)
    return f"s3://{bucket}", key


def test_the_dag_writes_its_intermediates_under_a_remote_artifact_root(
    airflow_db: Path, raw_data: Path, mlflow_client: Any, remote_root: str
) -> None:
    run = run_dag(DAG_ID, {"raw_uri": str(raw_data)})

    states = task_states(run.run_id)
    assert states == dict.fromkeys(
        ["featurize", "train", "evaluate", "simulate", "gate", "promote", "predict"], "success"
    ), states

    # Content-addressed: every file's name is the blake3 of its bytes; nothing half-written is left.
    files = {kind: stored(remote_root, kind) for kind in ("features", "splits", "predictions")}
    assert [len(files[k]) for k in ("features", "splits", "predictions")] == [1, 2, 1], files.keys()
    for kind, by_name in files.items():
        for name, data in by_name.items():
            assert name == blake3(data).hexdigest() + ".parquet", (kind, name)
    (features,) = files["features"]
    (predictions,) = files["predictions"]
    splits = set(files["splits"])

    # The lineage events name them in the store's namespace, with their fingerprints as versions.
    events = task_events(run.run_id, "COMPLETE")

    def datasets(task: str, side: str) -> list[tuple[str, str]]:
        return [(d["namespace"], d["name"]) for d in events[task][side]]

    def version(task: str, side: str, index: int) -> str:
        return events[task][side][index]["facets"]["version"]["datasetVersion"]

    features_id = identity(remote_root, "features", features)
    assert datasets("featurize", "inputs") == [("file", str(RAW_URI))]
    assert datasets("featurize", "outputs") == [features_id]
    assert version("featurize", "outputs", 0) == "blake3:" + features.removesuffix(".parquet")
    assert datasets("train", "inputs") == [features_id]
    train_outputs = datasets("train", "outputs")
    assert events["train"]["outputs"][0]["facets"]["datasetType"]["datasetType"] == "MODEL"
    assert set(train_outputs[1:]) == {identity(remote_root, "splits", name) for name in splits}
    holdout_id = train_outputs[2]
    assert datasets("evaluate", "inputs")[1] == holdout_id
    assert datasets("predict", "inputs")[0] == features_id
    assert datasets("predict", "outputs") == [identity(remote_root, "predictions", predictions)]
    assert version("predict", "outputs", 0) == "blake3:" + predictions.removesuffix(".parquet")
    stats = events["featurize"]["outputs"][0]["outputFacets"]["outputStatistics"]
    assert stats["rowCount"] == 569 and stats["size"] == len(files["features"][features])

    # A past run's intermediates can be read back by fingerprint.
    found = find_by_fingerprint(remote_root, "features", "blake3:" + features.removesuffix(".parquet"))
    assert found is not None and found.rows == 569 and "target" in found.columns
    assert found.uri.startswith(remote_root.split("://")[0] + "://")
