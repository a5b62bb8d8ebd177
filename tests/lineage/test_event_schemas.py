"""Every OpenLineage event the example DAG emits validates against the OpenLineage JSON Schemas in
../shared/openlineage-spec (the core RunEvent and each standard facet by its ``_schemaURL``) and each
custom facet against the schema shipped in our package; each event stays under 64 KiB.

The DAG runs twice: once on good data (START/COMPLETE for every task and the DAG), once on raw data with
NaNs so featurize fails (FAIL events). Then EVERY event in the file transport output is checked, which
also covers events of other tests in the same session. The validator itself is tested below on
hand-made events, so a validator that accepts everything cannot pass."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.lineage import spec
from tests.support import EVENTS, RAW_URI, read_events, run_dag

pytestmark = pytest.mark.spec  # all but two tests here validate against ../shared/openlineage-spec

DAG_ID = "breast_cancer_retrain"
MAX_EVENT_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def dag_events(airflow_db: Path, raw_data: Path, mlflow_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The two runs. Their outcome is asserted by the coverage test below, not here, so that the schema
    check still reports on whatever was emitted when an unrelated step breaks a run."""
    import pandas as pd

    spec.require_spec()  # before two DAG runs whose events could not be checked

    good = run_dag(DAG_ID, {"raw_uri": str(raw_data)})
    bad = pd.read_parquet(RAW_URI)
    bad.loc[[3, 10, 42], "mean radius"] = float("nan")
    bad_uri = tmp_path_factory.mktemp("lineage") / "raw_with_nans.parquet"
    bad.to_parquet(bad_uri)
    failed = run_dag(DAG_ID, {"raw_uri": str(bad_uri)})
    # The DAG-level COMPLETE/FAIL event is emitted in the background after dag.test() returns: wait for it.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not {good.run_id, failed.run_id} <= _dag_level_runs():
        time.sleep(0.5)
    return good, failed


def _dag_run_id(event: dict[str, Any]) -> str | None:
    facets = event.get("run", {}).get("facets", {})
    return (facets.get("airflow") or facets.get("airflowDagRun") or {}).get("dagRun", {}).get("run_id")


def _dag_level_runs() -> set[str | None]:
    return {_dag_run_id(e) for e in read_events() if e["job"]["name"] == DAG_ID and e["eventType"] != "START"}


def _label(event: dict[str, Any]) -> str:
    run = event.get("run", {})
    return f"{event.get('eventType')} {event.get('job', {}).get('name')} run {run.get('runId')}"


@pytest.mark.dag
def test_the_runs_emit_start_complete_and_fail_events(dag_events: Any) -> None:
    """Guard against validating nothing: both runs' events are in the file, including FAIL events."""
    good, failed = dag_events
    assert str(good.state) == "success", f"the good run must succeed to emit COMPLETE events: {good.state}"
    assert str(failed.state) == "failed", f"the run on data with NaNs must fail: {failed.state}"
    events = read_events()
    by_run: dict[str, set[tuple[str, str]]] = {}
    for event in events:
        by_run.setdefault(_dag_run_id(event), set()).add((event["eventType"], event["job"]["name"]))
    tasks = ["featurize", "train", "evaluate", "simulate", "gate", "promote"]
    assert by_run[good.run_id] >= {(t, f"{DAG_ID}.{n}") for n in tasks for t in ("START", "COMPLETE")}
    assert ("COMPLETE", DAG_ID) in by_run[good.run_id]
    assert ("FAIL", f"{DAG_ID}.featurize") in by_run[failed.run_id]
    assert ("FAIL", DAG_ID) in by_run[failed.run_id]


@pytest.mark.dag
def test_every_event_validates_against_the_schemas(dag_events: Any) -> None:
    events = read_events()
    assert events, f"no events in {EVENTS}"
    validator = spec.Validator()
    problems = []
    for event in events:
        problems += [f"{_label(event)}: {error}" for error in validator.validate_event(event)]
    notes = "\n".join(sorted(validator.notes))
    print(f"validated {len(events)} events; loosely matched or allowed:\n{notes}")
    unique = sorted(set(p.split(": ", 1)[1] for p in problems))
    assert not problems, (
        f"{len(problems)} schema errors in {len(events)} events ({len(unique)} distinct):\n"
        + "\n".join(unique)
        + "\n\nper event:\n"
        + "\n".join(problems)
        + f"\n\nnotes:\n{notes}"
    )


@pytest.mark.dag
def test_every_event_is_under_64_kib(dag_events: Any) -> None:
    sizes = [(len(line.encode()), line) for line in EVENTS.read_text().splitlines() if line.strip()]
    assert sizes
    largest, line = max(sizes)
    print(f"largest event: {largest} bytes ({_label(json.loads(line))}) of {MAX_EVENT_BYTES}")
    too_big = [f"{size} bytes: {_label(json.loads(line))}" for size, line in sizes if size >= MAX_EVENT_BYTES]
    assert not too_big, "events of 64 KiB or more:\n" + "\n".join(too_big)


def test_our_facet_schemas_are_valid_json_schemas() -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    bad = []
    for path in spec.our_schema_files():
        try:
            Draft202012Validator.check_schema(json.loads(path.read_text()))
        except (ValueError, SchemaError) as e:
            bad.append(f"{path.name}: {e}")
    assert not bad, "\n".join(bad)


# --- the validator itself --------------------------------------------------------------------------

PRODUCER = "https://github.com/apache/airflow/tree/providers-openlineage/2.20.3"
CORE = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
FACETS = "https://openlineage.io/spec/facets"


def _event() -> dict[str, Any]:
    """A small valid RunEvent using standard facets at run, job, dataset and output-facet level."""
    return {
        "eventTime": "2026-11-27T17:42:41.616726+00:00",
        "eventType": "COMPLETE",
        "producer": PRODUCER,
        "schemaURL": f"{CORE}#/$defs/RunEvent",
        "run": {
            "runId": "01a21e19-86c1-7fc2-99ff-c4fd5d0dfa05",
            "facets": {
                "nominalTime": {
                    "_producer": PRODUCER,
                    "_schemaURL": f"{FACETS}/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet",
                    "nominalStartTime": "2026-11-27T17:41:59.105918+00:00",
                },
            },
        },
        "job": {
            "namespace": "airflow-ml-tests",
            "name": "breast_cancer_retrain.featurize",
            "facets": {
                "jobType": {
                    "_producer": PRODUCER,
                    "_schemaURL": f"{FACETS}/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
                    "integration": "AIRFLOW",
                    "jobType": "TASK",
                    "processingType": "BATCH",
                },
            },
        },
        "inputs": [],
        "outputs": [
            {
                "namespace": "file",
                "name": "/data/features.parquet",
                "facets": {
                    "version": {
                        "_producer": PRODUCER,
                        "_schemaURL": f"{FACETS}/1-0-1/DatasetVersionDatasetFacet.json"
                        "#/$defs/DatasetVersionDatasetFacet",
                        "datasetVersion": "blake3:00",
                    },
                },
                "outputFacets": {
                    "outputStatistics": {
                        "_producer": PRODUCER,
                        "_schemaURL": f"{FACETS}/1-0-2/OutputStatisticsOutputDatasetFacet.json"
                        "#/$defs/OutputStatisticsOutputDatasetFacet",
                        "rowCount": 569,
                        "size": 1234,
                    },
                },
            }
        ],
    }


def _errors(event: dict[str, Any]) -> list[str]:
    return spec.Validator().validate_event(event)


def test_a_valid_event_passes() -> None:
    assert _errors(_event()) == []


def test_an_event_missing_event_time_fails() -> None:
    event = _event()
    del event["eventTime"]
    assert _errors(event) == ["event: 'eventTime' is a required property"]


def test_a_badly_formatted_event_time_and_run_id_fail() -> None:
    """jsonschema skips date-time and uri without optional packages; the validator checks them itself."""
    event = _event()
    event["eventTime"] = "27/11/2026 17:42"
    event["run"]["runId"] = "not-a-uuid"
    event["producer"] = "not a uri"
    errors = _errors(event)
    assert any(e.startswith("event.eventTime: '27/11/2026 17:42' is not a 'date-time'") for e in errors), errors
    assert any(e.startswith("event.run.runId: 'not-a-uuid' is not a 'uuid'") for e in errors), errors
    assert any(e.startswith("event.producer: 'not a uri' is not a 'uri'") for e in errors), errors


def test_a_facet_with_a_bad_field_type_fails() -> None:
    event = _event()
    event["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] = "many"
    errors = _errors(event)
    assert len(errors) == 1, errors
    assert errors[0].startswith("outputs[0].outputFacets.outputStatistics.rowCount: 'many' is not of type 'integer'")


def test_a_facet_missing_a_required_field_fails() -> None:
    event = _event()
    del event["run"]["facets"]["nominalTime"]["nominalStartTime"]
    errors = _errors(event)
    assert len(errors) == 1 and "run.facets.nominalTime: 'nominalStartTime' is a required property" in errors[0], errors


def test_a_facet_naming_an_unknown_schema_fails() -> None:
    event = _event()
    event["run"]["facets"]["mystery"] = {
        "_producer": PRODUCER,
        "_schemaURL": "https://example.com/schemas/MysteryRunFacet.json#/$defs/MysteryRunFacet",
    }
    errors = _errors(event)
    assert len(errors) == 1 and "names a schema we do not have" in errors[0], errors


def test_a_facet_naming_a_missing_spec_or_package_schema_fails() -> None:
    event = _event()
    event["run"]["facets"]["spec"] = {
        "_producer": PRODUCER,
        "_schemaURL": f"{FACETS}/1-0-0/NoSuchRunFacet.json#/$defs/NoSuchRunFacet",
    }
    event["run"]["facets"]["ours"] = {
        "_producer": PRODUCER,
        "_schemaURL": "https://example.com/airflow_ml_provider/lineage/schemas/NoSuchFacet.json#/$defs/NoSuchFacet",
    }
    event["run"]["facets"]["pointer"] = {
        "_producer": PRODUCER,
        "_schemaURL": f"{FACETS}/1-0-1/NominalTimeRunFacet.json#/$defs/NoSuchDefinition",
    }
    errors = _errors(event)
    assert len(errors) == 3, errors
    assert "no schema NoSuchRunFacet.json in the OpenLineage spec folder" in errors[0]
    assert "no schema NoSuchFacet.json in our package" in errors[1]
    assert "NominalTimeRunFacet.json has no definition at #/$defs/NoSuchDefinition" in errors[2]


def test_a_facet_with_only_the_generic_core_url_fails_unless_a_known_provider_facet() -> None:
    event = _event()
    event["run"]["facets"]["training"] = {"_producer": PRODUCER, "_schemaURL": f"{CORE}#/$defs/RunFacet"}
    errors = _errors(event)
    assert len(errors) == 1 and "is a generic core definition, not the facet's own schema" in errors[0], errors


def test_a_provider_facet_is_checked_against_the_provider_schema() -> None:
    event = _event()
    event["run"]["facets"]["airflowState"] = {
        "_producer": PRODUCER,
        "_schemaURL": f"{CORE}#/$defs/RunFacet",
        "dagRunState": "success",
        "tasksState": {"featurize": "success"},
    }
    assert _errors(event) == []
    broken = copy.deepcopy(event)
    broken["run"]["facets"]["airflowState"]["dagRunState"] = 1
    errors = _errors(broken)
    assert len(errors) == 1 and "run.facets.airflowState.dagRunState: 1 is not of type 'string'" in errors[0], errors


def test_a_spec_version_differing_from_the_stored_file_is_matched_by_name() -> None:
    event = _event()
    facet = event["run"]["facets"]["nominalTime"]
    facet["_schemaURL"] = facet["_schemaURL"].replace("/1-0-1/", "/1-0-0/")
    validator = spec.Validator()
    assert validator.validate_event(event) == []
    assert any("facets/1-0-0/NominalTimeRunFacet.json matched by file name" in n for n in validator.notes)


def test_a_missing_spec_folder_is_an_error_not_a_skip(tmp_path: Path) -> None:
    with pytest.raises(spec.SpecMissing, match="OpenLineage spec not found"):
        spec.load_schemas(spec_dir=tmp_path)
