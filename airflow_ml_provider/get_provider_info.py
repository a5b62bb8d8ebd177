"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    from airflow_ml_provider import __version__
    from airflow_ml_provider.conf import provider_config

    return {
        "package-name": "airflow-ml-provider",
        "name": "Airflow ML",
        "description": (
            "Production ML pipelines on Airflow 3: Great Expectations checks, must-pass scenarios, "
            "a fail-closed model gate, MLflow registry promotion and OpenLineage lineage."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "MLflow",
                "external-doc-url": "https://mlflow.org/docs/latest/",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "MLflow",
                "python-modules": [
                    "airflow_ml_provider.operators.featurize",
                    "airflow_ml_provider.operators.train",
                    "airflow_ml_provider.operators.evaluate",
                    "airflow_ml_provider.operators.simulate",
                    "airflow_ml_provider.operators.promote",
                    "airflow_ml_provider.operators.rollback",
                    "airflow_ml_provider.operators.predict",
                    "airflow_ml_provider.operators.drift",
                    "airflow_ml_provider.operators.shadow",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "MLflow",
                "python-modules": ["airflow_ml_provider.sensors.model_gate"],
            }
        ],
        "triggers": [
            {
                "integration-name": "MLflow",
                "python-modules": ["airflow_ml_provider.triggers.model_gate"],
            }
        ],
        # Named here so that Airflow lists them (``airflow providers links``); kept equal to
        # airflow_ml_provider.links.LINK_CLASSES (tested) without importing it.
        "extra-links": [
            "airflow_ml_provider.links.MLflowRunLink",
            "airflow_ml_provider.links.ModelVersionLink",
        ],
        # ``@task.ml_featurize`` / ``@task.ml_train`` / ``@task.ml_evaluate`` (airflow_ml_provider.decorators).
        "task-decorators": [
            {"name": "ml_featurize", "class-name": "airflow_ml_provider.decorators.steps.ml_featurize_task"},
            {"name": "ml_train", "class-name": "airflow_ml_provider.decorators.steps.ml_train_task"},
            {"name": "ml_evaluate", "class-name": "airflow_ml_provider.decorators.steps.ml_evaluate_task"},
        ],
        "hooks": [
            {
                "integration-name": "MLflow",
                "python-modules": ["airflow_ml_provider.hooks.mlflow"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_ml_provider.hooks.mlflow.MlflowHook",
                "hook-name": "MLflow",
                "connection-type": "mlflow",
                "conn-fields": {
                    "tracking_uri": {
                        "label": "Tracking URI",
                        "description": (
                            "The whole MLflow tracking URI, as MLFLOW_TRACKING_URI takes it: e.g. "
                            "http://mlflow:5000, https://mlflow.example.com or sqlite:////data/mlflow.db"
                        ),
                        "schema": {"type": "string"},
                    },
                    "registry_uri": {
                        "label": "Registry URI",
                        "description": "Model registry URI; defaults to the tracking URI",
                        "schema": {"type": ["string", "null"]},
                    },
                    "artifact_location": {
                        "label": "Artifact location",
                        "description": "Artifact root for experiments the provider creates (path or URI)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "default_experiment": {
                        "label": "Default experiment",
                        "description": "Experiment used when an operator names none; defaults to the DAG id",
                        "schema": {"type": ["string", "null"]},
                    },
                    "http_request_timeout": {
                        "label": "HTTP timeout (s)",
                        "description": "Seconds to wait to connect to, and for an answer from, the server (default 10)",
                        "schema": {"type": ["integer", "null"], "minimum": 1},
                    },
                    "http_request_max_retries": {
                        "label": "HTTP retries",
                        "description": "Retries of a failed request before giving up (default 2)",
                        "schema": {"type": ["integer", "null"], "minimum": 0},
                    },
                    "http_request_backoff_factor": {
                        "label": "HTTP backoff factor (s)",
                        "description": "Retries wait factor x 2^n seconds (default 1)",
                        "schema": {"type": ["integer", "null"], "minimum": 0},
                    },
                },
                # The hook reads the whole Tracking URI and never assembles one from host, port and schema,
                # so the form does not offer them.
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "extra"],
                    "placeholders": {
                        "login": "MLflow basic-auth user (optional)",
                        "password": "MLflow basic-auth password or token (optional)",
                    },
                },
            }
        ],
        "config": provider_config(),
    }
