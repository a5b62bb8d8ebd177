"""Apache Airflow 3 provider for production ML pipelines.

Importing this package (or any operator, sensor or hook module) must stay cheap: DAG files import
it on every parse, so mlflow, great_expectations, pandas, pyarrow, sklearn and the OpenLineage
client are only imported inside ``execute()`` and the lineage methods.
"""

from typing import Any

DISTRIBUTION = "airflow-ml-provider"


def __getattr__(name: str) -> Any:
    """``__version__`` comes from the installed distribution's metadata, the one version source (pyproject.toml);
    read on first use so that importing the package stays free."""
    if name == "__version__":
        from importlib.metadata import version

        return version(DISTRIBUTION)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
