"""When the MLflow store cannot be read, the API answers 502 naming the store, without its credentials.

The fault is real: the tracking URI points at a loopback port where nothing listens."""

from __future__ import annotations

import socket

import pytest
from fastapi import HTTPException


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_store_is_a_502_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_ml_provider.plugins.app import _answer, catalog
    from airflow_ml_provider.plugins.catalog import Everyone

    uri = f"http://bob:s3cr3t-pw@127.0.0.1:{closed_port()}"
    monkeypatch.setenv("AIRFLOW__ML_PROVIDER__MLFLOW_CONN_ID", "ml_ui_no_such_connection")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    models = catalog()
    with pytest.raises(HTTPException) as raised:
        _answer(lambda: models.models(Everyone()))
    assert raised.value.status_code == 502
    detail = str(raised.value.detail)
    assert "s3cr3t-pw" not in detail and "bob" not in detail
    assert f"http://127.0.0.1:{uri.rsplit(':', 1)[1]}" in detail
    assert "reachable from the api-server" in detail
