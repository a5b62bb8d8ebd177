"""The Airflow plugin that puts the Models page in the UI, registered through the ``airflow.plugins``
entry point (not the provider info's ``plugins`` key, which registers it a second time when lazy
provider discovery is off).

Every Airflow process loads plugins (the scheduler, the dag-processor, each task), but only the
api-server serves ``fastapi_apps``: the app, and FastAPI with it, is built when it is first asked for,
so loading the plugin elsewhere costs an import of this small module and nothing more.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.plugins_manager import AirflowPlugin

#: The URL prefix of the app inside the api-server.
URL_PREFIX = "/ml"


class MLProviderPlugin(AirflowPlugin):
    """Models in the navigation, a "Model" tab on DAG runs and task instances, and the app behind them."""

    name = "airflow_ml_provider"
    external_views = [
        {
            "name": "Models",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "models",
            "category": "browse",
        },
        {
            # A DAG run's model version: what this run trained, its verdict and lineage.
            "name": "Model",
            "href": f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "ml-run",
        },
        {
            "name": "Model",
            "href": f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}?task_id={{TASK_ID}}",
            "destination": "task_instance",
            "url_route": "ml-task",
        },
    ]

    @cached_property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from airflow_ml_provider.plugins.app import create_app

        return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "airflow-ml-provider Models"}]
