"""The one URI redaction and the one JSON-safety helper."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal

import numpy as np
import pandas as pd

from airflow_ml_provider.records.json_safe import json_safe, short_text
from airflow_ml_provider.records.redaction import strip_credentials


def test_strip_credentials_drops_user_and_password() -> None:
    assert strip_credentials("postgresql://bob:s3cret@db:5432/mlflow") == "postgresql://db:5432/mlflow"
    assert strip_credentials("https://host/x?token=abc&x=1") == "https://host/x?token=***&x=1"
    assert strip_credentials("git@github.com:org/repo.git") == "git@github.com:org/repo.git"


def test_keep_user_masks_only_the_password() -> None:
    assert strip_credentials("postgresql+psycopg2://bob:s3cret@db:5432/mlflow", keep_user=True) == (
        "postgresql+psycopg2://bob:***@db:5432/mlflow"
    )
    assert strip_credentials("postgresql://bob@db/mlflow", keep_user=True) == "postgresql://bob@db/mlflow"
    # a password with an "@" in it: nothing of it is left (the old lock regex kept "ss@")
    assert strip_credentials("postgresql://bob:p@ss@db/mlflow", keep_user=True) == "postgresql://bob:***@db/mlflow"
    assert strip_credentials("http://u:pw@host/x?api_key=k", keep_user=True) == "http://u:***@host/x?api_key=***"


def test_json_safe_gives_strict_json() -> None:
    value = {
        "nan": math.nan,
        "inf": math.inf,
        1: np.int64(3),
        "f": np.float32(0.5),
        "arr": np.array([1, 2]),
        "when": dt.datetime(2026, 1, 2, 3, 4, 5),
        "ts": pd.Timestamp("2026-01-02"),
        "na": pd.NA,
        "d": Decimal("1.5"),
        "set": {"b", "a"},
        "tuple": (1, "x"),
        "obj": object,
    }
    safe = json_safe(value)
    json.dumps(safe, allow_nan=False)  # strict
    assert safe["nan"] is None and safe["inf"] is None and safe["na"] is None
    assert safe["1"] == 3 and safe["f"] == 0.5 and safe["arr"] == [1, 2]
    assert safe["when"] == "2026-01-02T03:04:05" and safe["ts"].startswith("2026-01-02")
    assert safe["d"] == 1.5 and safe["set"] == ["a", "b"] and safe["tuple"] == [1, "x"]
    assert safe["obj"] == str(object)
    assert json_safe([math.inf, -math.inf], infinity_as_text=True) == ["inf", "-inf"]


def test_short_text_bounds_any_value() -> None:
    assert short_text("abc", 10) == "abc"
    assert short_text("x" * 20, 10) == "xxxxxxx..."
    assert len(short_text("x" * 20, 10)) == 10
    assert short_text({"b": 1, "a": math.nan}, 100) == '{"a": null, "b": 1}'
    assert short_text({1: "x", "a": "y"}, 100) == '{"1": "x", "a": "y"}'  # mixed keys: no TypeError
