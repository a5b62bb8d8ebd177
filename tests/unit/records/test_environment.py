"""The module -> distribution map is computed once per process, shared with MLflow's (issue 13)."""

from __future__ import annotations

from airflow_ml_provider.records import environment


def test_the_map_is_mlflows_own_and_names_installed_distributions() -> None:
    from mlflow.utils import requirements_utils

    environment.packages_distributions.cache_clear()
    found = environment.packages_distributions()
    assert found is requirements_utils._MODULES_TO_PACKAGES  # one computation for both
    assert "scikit-learn" in found["sklearn"] and "pandas" in found["pandas"]
    assert environment.distribution_of("sklearn.linear_model") == "scikit-learn"
    assert environment.distribution_of("no_such_module_here") is None
