"""``[ml_provider]``: every option in one module, read like any Airflow option, listed by ``airflow config
list``; the ``AIRFLOW_ML_*`` variables of earlier releases still work, with a warning naming the option."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import get_args

import jsonschema
import pytest

from airflow_ml_provider import conf
from airflow_ml_provider.get_provider_info import get_provider_info

DEPRECATED = {key: option.deprecated_env for key, option in conf.OPTIONS.items() if option.deprecated_env}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for option in conf.OPTIONS.values():
        monkeypatch.delenv(option.env_var, raising=False)
        if option.deprecated_env:
            monkeypatch.delenv(option.deprecated_env, raising=False)


def test_every_option_is_declared_once_and_documented() -> None:
    assert set(conf.OPTIONS) == set(get_args(conf.Key))
    assert set(DEPRECATED.values()) == {
        "AIRFLOW_ML_LOCK_URI",
        "AIRFLOW_ML_LOCK_DIR",
        "AIRFLOW_ML_FINGERPRINT_CACHE_DIR",
        "AIRFLOW_ML_MLFLOW_ARTIFACT_LOCATION",
        "AIRFLOW_ML_AIRFLOW_USER",
        "AIRFLOW_ML_AIRFLOW_PASSWORD",
    }
    info = get_provider_info()
    import airflow

    provider_schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(info, provider_schema)
    options = info["config"][conf.SECTION]["options"]
    assert set(options) == set(conf.OPTIONS)
    assert options["airflow_password"]["sensitive"] is True and options["lock_uri"]["sensitive"] is True


@pytest.mark.parametrize("key", sorted(DEPRECATED))
def test_option_from_airflow_environment_variable(monkeypatch: pytest.MonkeyPatch, key: conf.Key) -> None:
    monkeypatch.setenv(f"AIRFLOW__ML_PROVIDER__{key.upper()}", "/from/option")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation warning for the new name
        assert conf.get(key) == "/from/option"


@pytest.mark.parametrize("key", sorted(DEPRECATED))
def test_deprecated_variable_still_works_and_names_the_option(monkeypatch: pytest.MonkeyPatch, key: conf.Key) -> None:
    monkeypatch.setenv(DEPRECATED[key], "/from/old")
    with pytest.warns(DeprecationWarning, match=rf"{DEPRECATED[key]}.*\[ml_provider\] {key}.*AIRFLOW__ML_PROVIDER__"):
        assert conf.get(key) == "/from/old"


def test_the_option_wins_over_the_deprecated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_ML_LOCK_DIR", "/old")
    monkeypatch.setenv("AIRFLOW__ML_PROVIDER__LOCK_DIR", "/new")
    assert conf.get("lock_dir") == "/new"


def test_unset_and_empty_are_none(monkeypatch: pytest.MonkeyPatch) -> None:
    assert conf.get("lock_dir") is None
    monkeypatch.setenv("AIRFLOW__ML_PROVIDER__LOCK_DIR", "")
    assert conf.get("lock_dir") is None


def test_the_promotion_file_lock_reads_the_option(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from airflow_ml_provider.promotion.lock import promotion_lock

    monkeypatch.setenv("AIRFLOW__ML_PROVIDER__LOCK_DIR", str(tmp_path / "locks"))
    with promotion_lock(f"sqlite:///{tmp_path / 'm.db'}", "clf", timeout=5):
        assert [p.name for p in (tmp_path / "locks").iterdir()][0].startswith("airflow-ml-promote-")


def test_importing_conf_imports_no_airflow() -> None:
    code = "import sys, airflow_ml_provider.conf; print('airflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
