"""The Models JSON API and page routes against a real api-server (tests/ui/conftest.py): what each user
may see, what a version's record says, and that nothing answers without Airflow's authentication."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from tests.ui.conftest import MODEL, PLANTED_SECRET, SECRET_MODEL, XSS_MODEL

pytestmark = pytest.mark.deployment

ROUTES = [
    "/ml/api/models",
    f"/ml/api/models/{MODEL}/versions",
    f"/ml/api/models/{MODEL}/versions/1",
    "/ml/api/runs/breast_cancer_retrain/x",
    "/ml/",
    f"/ml/models/{MODEL}",
    f"/ml/models/{MODEL}/versions/1",
    "/ml/runs/breast_cancer_retrain/x",
    "/ml/static/app.js",
]


@pytest.fixture(scope="module")
def tokens(ui_server: dict[str, Any]) -> dict[str, str]:
    return {user: ui_server["client"].token(user) for user in ui_server["users"]}


def get(ui_server: dict[str, Any], path: str, token: str | None) -> tuple[int, Any]:
    status, body, _ = ui_server["client"].request(path, token=token)
    return status, body


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_needs_authentication(ui_server: dict[str, Any], path: str) -> None:
    status, body = get(ui_server, path, None)
    assert status == 401, (path, status, body)
    assert isinstance(body, dict) and body["detail"], body  # JSON naming the problem, not the SPA shell
    status, body = get(ui_server, path, "not-a-token")
    assert status in (401, 403), (path, status, body)


def test_the_plugin_is_registered_with_its_views(ui_server: dict[str, Any], tokens: dict[str, str]) -> None:
    status, body = get(ui_server, "/api/v2/plugins", tokens["admin"])
    assert status == 200, body
    ours = next(p for p in body["plugins"] if p["name"] == "airflow_ml_provider")
    assert [a["url_prefix"] for a in ours["fastapi_apps"]] == ["/ml"]
    views = {(v["destination"], v["name"]): v for v in ours["external_views"]}
    assert views[("nav", "Models")]["url_route"] == "models"
    assert views[("dag_run", "Model")]["href"] == "/ml/runs/{DAG_ID}/{RUN_ID}"
    assert "task_instance" in {d for d, _ in views}


def test_models_lists_champion_latest_and_last_promotion(ui_server: dict[str, Any], tokens: dict[str, str]) -> None:
    assert ui_server["second_run_ok"] is False  # the second example run is blocked by its gate
    status, body = get(ui_server, "/ml/api/models", tokens["admin"])
    assert status == 200, body
    models = {m["name"]: m for m in body["models"]}
    assert set(models) == {MODEL, XSS_MODEL, SECRET_MODEL}
    ours = models[MODEL]
    assert ours["champion"] == "1" and ours["aliases"] == {"champion": "1"}
    assert ours["versions"] == 2
    assert ours["latest"]["version"] == "2" and ours["latest"]["gate_status"] == "failed"
    promotion = ours["last_promotion"]
    assert (promotion["kind"], promotion["alias"], promotion["version"], promotion["previous"]) == (
        "promotion", "champion", "1", None,
    )
    assert promotion["by"].startswith("airflow:breast_cancer_retrain/")


def test_versions_carry_run_gate_metrics_and_champion(ui_server: dict[str, Any], tokens: dict[str, str]) -> None:
    status, body = get(ui_server, f"/ml/api/models/{MODEL}/versions", tokens["admin"])
    assert status == 200, body
    assert body["gate_metrics"] == ["accuracy", "roc_auc"]
    rows = {r["version"]: r for r in body["versions"]}
    assert [r["version"] for r in body["versions"]] == ["2", "1"]
    assert rows["1"]["champion"] is True and rows["2"]["champion"] is False
    assert (rows["1"]["gate_status"], rows["2"]["gate_status"]) == ("passed", "failed")
    for row in rows.values():
        assert row["dag_id"] == "breast_cancer_retrain" and row["dag_run_id"].startswith("manual__")
        assert row["task_id"] == "train"
        assert 0.9 < row["metrics"]["accuracy"] <= 1 and "roc_auc" in row["metrics"]
        assert not any(k.startswith("champion_") for k in row["metrics"])  # the champion's, logged beside
        assert row["fingerprint"].startswith("blake3:")
    assert rows["1"]["dag_run_id"] != rows["2"]["dag_run_id"]
    assert [(e["kind"], e["version"]) for e in body["events"]] == [("promotion", "1")]


def test_a_blocked_version_shows_why(ui_server: dict[str, Any], tokens: dict[str, str]) -> None:
    status, body = get(ui_server, f"/ml/api/models/{MODEL}/versions/2", tokens["admin"])
    assert status == 200, body
    assert body["is_champion"] is False and body["champion"] == "1"
    verdict = body["verdict"]
    assert verdict["passed"] is False
    failed = {c["name"]: c["reason"] for c in verdict["checks"] if not c["passed"]}
    assert "metric:accuracy:threshold" in failed
    assert "below the minimum 0.999" in failed["metric:accuracy:threshold"]
    assert all(isinstance(c["reason"], str) and c["reason"] for c in verdict["checks"])
    evidence = body["evidence"]
    assert evidence["metrics"]["candidate"]["accuracy"] > 0.9
    assert evidence["metrics"]["champion"]["version"] == "1"
    assert {s["role"]: s["suite"] for s in evidence["suites"]} == {
        "raw": "breast_cancer_raw", "features": "breast_cancer_features",
    }
    assert all(s["success"] and s["evaluated"] > 0 for s in evidence["suites"])
    assert evidence["scenarios"]["failed"] == 0 and evidence["scenarios"]["passed"] > 0
    run = body["dag_run_id"]
    assert body["links"]["task_instance"] == f"/dags/breast_cancer_retrain/runs/{quote(run, safe='')}/tasks/train"
    assert body["links"]["mlflow_run"] is None  # a sqlite store has no MLflow UI to link to


def test_the_champion_shows_lineage_from_raw_data_to_predictions(
    ui_server: dict[str, Any], tokens: dict[str, str]
) -> None:
    status, body = get(ui_server, f"/ml/api/models/{MODEL}/versions/1", tokens["admin"])
    assert status == 200, body
    assert body["verdict"]["passed"] is True
    assert [(e["kind"], e["version"]) for e in body["history"]] == [("promotion", "1")]
    graph = body["lineage"]
    assert graph["complete"] is True, graph["problems"]
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert graph["target"] == f"models:/{MODEL}/1"
    steps = sorted(n["step"] for n in nodes.values() if n["kind"] == "step")
    assert steps == ["featurize", "predict", "train"]
    roles = {n.get("role") for n in nodes.values() if n["kind"] == "dataset"}
    assert {"raw", "features", "predictions"} <= roles
    for node in nodes.values():
        if node["kind"] == "dataset":
            assert node["fingerprint"].startswith("blake3:")
    # raw -> featurize -> features -> train -> model -> predict -> predictions
    def downstream(node_id: str) -> set[str]:
        return {e["to"] for e in graph["edges"] if e["from"] == node_id}

    raw = next(i for i, n in nodes.items() if n.get("role") == "raw")
    reached, frontier = set(), {raw}
    while frontier:
        reached |= frontier
        frontier = {t for f in frontier for t in downstream(f)} - reached
    assert f"models:/{MODEL}/1" in reached
    assert any(nodes[i].get("role") == "predictions" for i in reached)


def test_the_run_view_finds_the_version_a_run_produced(ui_server: dict[str, Any], tokens: dict[str, str]) -> None:
    _, versions = get(ui_server, f"/ml/api/models/{MODEL}/versions", tokens["admin"])
    run_of_1 = next(r["dag_run_id"] for r in versions["versions"] if r["version"] == "1")
    status, body = get(ui_server, f"/ml/api/runs/breast_cancer_retrain/{quote(run_of_1, safe='')}", tokens["admin"])
    assert status == 200, body
    assert body["versions"] == [{"name": MODEL, "version": "1"}]
    status, body = get(ui_server, "/ml/api/runs/breast_cancer_retrain/no_such_run", tokens["admin"])
    assert status == 200 and body["versions"] == []


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/ml/api/models/no_such_model/versions", "no_such_model"),
        (f"/ml/api/models/{MODEL}/versions/99", "version 99"),
        (f"/ml/api/models/{MODEL}/versions/latest", "'latest' is not a version number"),
        ("/ml/static/../conftest.py", None),
        ("/ml/static/nothing.js", "nothing.js"),
    ],
)
def test_what_is_not_there_is_a_404_naming_it(
    ui_server: dict[str, Any], tokens: dict[str, str], path: str, named: str | None
) -> None:
    status, body = get(ui_server, path, tokens["admin"])
    assert status == 404, (status, body)
    assert isinstance(body, dict), body
    if named:
        assert named in body["detail"]


def test_a_user_sees_only_versions_of_dags_they_can_read(ui_server: dict[str, Any], tokens: dict[str, str]) -> None:
    status, body = get(ui_server, "/ml/api/models", tokens["ml_viewer"])
    assert status == 200, body
    assert {m["name"] for m in body["models"]} == {MODEL, XSS_MODEL}
    status, body = get(ui_server, f"/ml/api/models/{SECRET_MODEL}/versions", tokens["ml_viewer"])
    assert status == 404 and "no version you can read" in body["detail"]
    status, body = get(ui_server, f"/ml/api/models/{SECRET_MODEL}/versions/1", tokens["ml_viewer"])
    assert status == 403, body
    assert "secret_dag" in body["detail"]

    status, body = get(ui_server, "/ml/api/models", tokens["other_viewer"])
    assert status == 200, body
    assert {m["name"] for m in body["models"]} == {SECRET_MODEL}
    for path in (f"/ml/api/models/{MODEL}/versions/1", f"/ml/api/models/{MODEL}/versions/2"):
        status, body = get(ui_server, path, tokens["other_viewer"])
        assert status == 403, (path, body)
        assert "breast_cancer_retrain" in body["detail"] and "cannot read" in body["detail"]
    status, body = get(ui_server, "/ml/api/runs/breast_cancer_retrain/x", tokens["other_viewer"])
    assert status == 403, body
    status, body = get(ui_server, f"/ml/api/models/{SECRET_MODEL}/versions/1", tokens["other_viewer"])
    assert status == 200 and body["dag_id"] == "secret_dag"


def test_no_response_carries_a_credential(ui_server: dict[str, Any], tokens: dict[str, str]) -> None:
    name = quote(XSS_MODEL, safe="")
    seen = []
    for path in ("/ml/api/models", f"/ml/api/models/{name}/versions", f"/ml/api/models/{name}/versions/1",
                 f"/ml/api/models/{MODEL}/versions/1"):
        status, body = get(ui_server, path, tokens["admin"])
        assert status == 200, (path, body)
        text = json.dumps(body)
        assert PLANTED_SECRET not in text, path
        seen.append(body)
    version = seen[2]
    assert version["name"] == XSS_MODEL  # the name comes back as data; the page renders it as text
    assert version["dag_run_id"] == "https://runs.example.com/x"  # user info stripped
    assert version["reproduction_of"] == "https://mlflow.example.com/x?token=***"


def test_the_page_is_ours_and_loads_nothing_from_elsewhere(ui_server: dict[str, Any], tokens: dict[str, str]) -> None:
    for path in ("/ml/", f"/ml/models/{MODEL}", f"/ml/models/{MODEL}/versions/2", "/ml/runs/d/r"):
        status, body, headers = ui_server["client"].request(path, token=tokens["ml_viewer"])
        assert status == 200, (path, body)
        assert "/ml/static/app.js" in body and "<title>Models" in body, body[:300]
        assert "default-src 'self'" in headers["content-security-policy"]
        assert "http://" not in body and "https://" not in body  # no CDN
    status, js, headers = ui_server["client"].request("/ml/static/app.js", token=tokens["ml_viewer"])
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in js  # data is put in the DOM as text only


def test_the_ui_cookie_authenticates_like_a_token(ui_server: dict[str, Any], tokens: dict[str, str]) -> None:
    status, body, _ = ui_server["client"].request("/ml/api/models", cookie=tokens["admin"])
    assert status == 200 and body["models"], body


def test_a_browser_that_is_not_logged_in_is_sent_to_the_login(ui_server: dict[str, Any]) -> None:
    html = "text/html,application/xhtml+xml"
    status, body, _ = ui_server["client"].request(f"/ml/models/{MODEL}?x=1", accept=html)
    assert status == 401
    assert f'href="/auth/login/?next=/ml/models/{MODEL}%3Fx%3D1"' in body and "Not logged in" in body
    status, body, _ = ui_server["client"].request("/ml/api/models", accept=html)
    assert status == 401 and body["detail"]  # the API stays JSON
