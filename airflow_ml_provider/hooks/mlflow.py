"""MlflowHook: an Airflow connection of type ``mlflow`` turned into a configured MLflow client."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: Connection fields may be stored bare (Airflow 3 form) or with the legacy prefix.
_EXTRA_PREFIX = "extra__mlflow__"
#: Where experiments created by the provider keep artifacts when the connection names no location.
ARTIFACT_LOCATION_ENV = "AIRFLOW_ML_MLFLOW_ARTIFACT_LOCATION"


@dataclass(frozen=True)
class MlflowSettings:
    """Where MLflow lives, resolved from a connection or the environment. Holds no secrets."""

    tracking_uri: str
    registry_uri: str | None
    default_experiment: str | None
    #: Artifact location for experiments this provider creates (else MLflow's default, ./mlruns).
    artifact_location: str | None = None


#: mlflow.set_registry_uri() also exports MLFLOW_REGISTRY_URI; remember what we set so that the
#: environment fallback never mistakes it for the user's own setting.
_registry_uri_set_by_hook: str | None = None


def _user_registry_uri() -> str | None:
    value = os.environ.get("MLFLOW_REGISTRY_URI")
    return None if value is None or value == _registry_uri_set_by_hook else value


_CREDENTIAL_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def _set_credentials(login: str | None, password: str | None) -> None:
    """MLflow reads credentials from the environment: set this connection's, and clear any other's,
    so a connection without credentials never silently uses those of one read before it."""
    for name in _CREDENTIAL_VARS:
        os.environ.pop(name, None)
    if login:
        os.environ["MLFLOW_TRACKING_USERNAME"] = login
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password or ""
    elif password:
        os.environ["MLFLOW_TRACKING_TOKEN"] = password


class MlflowHook(BaseHook):
    """
    Talks to an MLflow tracking server and model registry.

    The connection (type ``mlflow``) carries the tracking URI, an optional registry URI and a
    default experiment in its extra fields; ``host``/``port``/``schema`` may be used instead of a
    tracking URI, and ``login``/``password`` become MLflow basic-auth credentials. The extra field
    ``artifact_location`` (or ``AIRFLOW_ML_MLFLOW_ARTIFACT_LOCATION``) sets where experiments the
    provider creates keep their artifacts. When the
    connection does not exist, the hook falls back to ``MLFLOW_TRACKING_URI`` (and
    ``MLFLOW_REGISTRY_URI``), so a local setup works without any connection.

    :param mlflow_conn_id: Airflow connection id of type ``mlflow``.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id
        self._settings: MlflowSettings | None = None
        self._client: MlflowClient | None = None

    @property
    def settings(self) -> MlflowSettings:
        if self._settings is None:
            self._settings = self._resolve_settings()
        return self._settings

    def _resolve_settings(self) -> MlflowSettings:
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            conn = None
        if conn is None:
            tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
            if not tracking_uri:
                raise ValueError(
                    f"No MLflow connection {self.mlflow_conn_id!r} and MLFLOW_TRACKING_URI is not set. "
                    f"Create a connection of type 'mlflow' named {self.mlflow_conn_id!r} "
                    "or export MLFLOW_TRACKING_URI."
                )
            return MlflowSettings(tracking_uri, _user_registry_uri(), None, os.environ.get(ARTIFACT_LOCATION_ENV))

        extra = conn.extra_dejson

        def field(name: str) -> Any:
            return extra.get(name) or extra.get(_EXTRA_PREFIX + name) or None

        tracking_uri = field("tracking_uri")
        if not tracking_uri:
            if not conn.host:
                raise ValueError(
                    f"MLflow connection {self.mlflow_conn_id!r} has neither a tracking URI nor a host. "
                    "Set the 'Tracking URI' field (e.g. http://mlflow:5000)."
                )
            host = conn.host if "://" in conn.host else f"{conn.schema or 'http'}://{conn.host}"
            tracking_uri = f"{host}:{conn.port}" if conn.port else host
        _set_credentials(conn.login, conn.password)
        return MlflowSettings(
            tracking_uri,
            field("registry_uri"),
            field("default_experiment"),
            field("artifact_location") or os.environ.get(ARTIFACT_LOCATION_ENV),
        )

    def get_conn(self) -> MlflowClient:
        return self.get_client()

    def get_client(self) -> MlflowClient:
        """Return an MlflowClient and point the fluent API (used for ``log_model``) at the same store."""
        if self._client is None:
            import mlflow

            settings = self.settings
            mlflow.set_tracking_uri(settings.tracking_uri)
            # Always set: a registry URI left behind by another connection must not apply to this one.
            global _registry_uri_set_by_hook
            _registry_uri_set_by_hook = settings.registry_uri or settings.tracking_uri
            mlflow.set_registry_uri(_registry_uri_set_by_hook)
            self._client = mlflow.MlflowClient(
                tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri
            )
        return self._client

    def get_or_create_experiment(self, name: str) -> str:
        """Return the id of experiment ``name``, creating it when missing (tolerates a concurrent create)."""
        from mlflow.exceptions import MlflowException

        client = self.get_client()
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(name, artifact_location=self.settings.artifact_location)
        except MlflowException:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.get_client().search_experiments(max_results=1)
        except Exception as e:  # the UI shows the message to the user
            return False, f"Cannot reach MLflow at {self.settings.tracking_uri}: {e}"
        return True, f"Connected to MLflow at {self.settings.tracking_uri}"
