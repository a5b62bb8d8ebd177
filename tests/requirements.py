"""What some tests need from outside the project, and what happens when it is absent.

A fresh clone (no ``../shared/``, no PostgreSQL server) must still pass ``make test``: a test whose
requirement is absent is skipped with a reason that says how to run it. ``.ci/run`` sets
``AIRFLOW_ML_TESTS_STRICT=1``, which turns every such absence into a failure, so CI always validates
lineage against the OpenLineage spec and always takes the PostgreSQL lock for real.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

STRICT_ENV = "AIRFLOW_ML_TESTS_STRICT"


def strict() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes")


def requirement_missing(what: str, how_to_run: str) -> NoReturn:
    """Skip (locally) or fail (with ``AIRFLOW_ML_TESTS_STRICT=1``, as in CI) because ``what`` is absent."""
    what = what.rstrip(". ")
    if strict():
        pytest.fail(f"{what}; {STRICT_ENV}=1 makes this required. {how_to_run}", pytrace=False)
    pytest.skip(f"{what}. {how_to_run}")
