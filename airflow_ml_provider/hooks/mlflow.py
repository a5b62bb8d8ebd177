"""MlflowHook: an Airflow connection of type ``mlflow`` turned into a configured MLflow client."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: Connection fields may be stored bare (Airflow 3 form) or with the legacy prefix.
_EXTRA_PREFIX = "extra__mlflow__"
#: Where experiments created by the provider keep artifacts when the connection names no location.
ARTIFACT_LOCATION_ENV = "AIRFLOW_ML_MLFLOW_ARTIFACT_LOCATION"

#: Connection extras that bound MLflow's HTTP client: (extra, MLflow's variable, provider default).
#: MLflow's own defaults (7 retries, factor 2, 120 s) spend ~4 minutes on a server that is down; these
#: give up in a few seconds when the port is closed and in ~35 s when nothing answers at all.
#: MLflow reads the variables on every request, so the hook exports them; a variable the user set
#: wins over the default, an extra wins over both.
HTTP_SETTINGS: tuple[tuple[str, str, int], ...] = (
    ("http_request_timeout", "MLFLOW_HTTP_REQUEST_TIMEOUT", 10),
    ("http_request_max_retries", "MLFLOW_HTTP_REQUEST_MAX_RETRIES", 2),
    ("http_request_backoff_factor", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", 1),
)


@dataclass(frozen=True)
class MlflowSettings:
    """Where MLflow lives, resolved from a connection or the environment. Holds no secrets."""

    tracking_uri: str
    registry_uri: str | None
    default_experiment: str | None
    #: Artifact location for experiments this provider creates (else MLflow's default, ./mlruns).
    artifact_location: str | None = None
    #: Seconds MLflow waits to connect to (and for an answer from) an HTTP tracking server.
    http_request_timeout: int = HTTP_SETTINGS[0][2]
    #: Retries of a failed HTTP request, with exponential backoff of this factor (seconds).
    http_request_max_retries: int = HTTP_SETTINGS[1][2]
    http_request_backoff_factor: int = HTTP_SETTINGS[2][2]


class MlflowConnectionError(RuntimeError):
    """The tracking server could not be reached; the message names the connection, the URI and what to check."""


#: mlflow.set_registry_uri() also exports MLFLOW_REGISTRY_URI; remember what we set so that the
#: environment fallback never mistakes it for the user's own setting.
_registry_uri_set_by_hook: str | None = None


def _user_registry_uri() -> str | None:
    value = os.environ.get("MLFLOW_REGISTRY_URI")
    return None if value is None or value == _registry_uri_set_by_hook else value


#: Likewise for the HTTP variables the hook exports (see HTTP_SETTINGS).
_http_env_set_by_hook: dict[str, str] = {}


def _http_settings(source: str, extra: Any) -> dict[str, int]:
    """The HTTP bounds: the connection's extra, else the user's variable, else the provider default."""
    out: dict[str, int] = {}
    for key, env, default in HTTP_SETTINGS:
        value, origin = extra(key), f"extra {key!r} of {source}"
        if value in (None, ""):
            value, origin = os.environ.get(env), env
            if value == _http_env_set_by_hook.get(env):
                value = None
        if value in (None, ""):
            out[key] = default
            continue
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = -1
        if number < (1 if key == "http_request_timeout" else 0):
            raise ValueError(f"{origin} must be a whole number (timeout >= 1 s, others >= 0), got {value!r}")
        out[key] = number
    return out


def _tracking_uri_in_host(conn: Any, conn_id: str) -> str:
    """A connection without a ``tracking_uri`` extra may hold the whole URI in ``host``, and nothing else."""
    as_json = '{"conn_type": "mlflow", "extra": {"tracking_uri": "http://mlflow:5000"}}'
    example = (
        "Set the connection's Tracking URI (extra 'tracking_uri') to the whole URI, e.g. http://mlflow:5000 "
        f"(as an environment variable: AIRFLOW_CONN_{conn_id.upper()}='{as_json}')."
    )
    host = conn.host
    if not host:
        raise ValueError(f"MLflow connection {conn_id!r} has no tracking URI. {example}")
    if "://" not in host or conn.port or conn.schema:
        given = ", ".join(f"{k}={v!r}" for k, v in (("host", host), ("port", conn.port), ("schema", conn.schema)) if v)
        raise ValueError(
            f"MLflow connection {conn_id!r} has {given} but no tracking URI, and the hook does not build one from "
            f"host, port and schema (the scheme and port would be guesses). {example}"
        )
    return str(host)


def _connection_failure(error: BaseException) -> str | None:
    """Why a request never got an answer (refused, timed out, no route), or None if the server answered."""
    import requests

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            reason = getattr(seen.args[0], "reason", seen) if seen.args else seen
            # urllib3 prefixes the reason with the connection object's repr: keep the sentence.
            return str(reason).rsplit("): ", 1)[-1].strip() or type(seen).__name__
        seen = seen.__cause__ or seen.__context__
    return None


def export_http_settings(settings: MlflowSettings) -> None:
    """Bound MLflow's HTTP client in this process (it reads these variables on every request)."""
    for key, env, _ in HTTP_SETTINGS:
        _http_env_set_by_hook[env] = os.environ[env] = str(getattr(settings, key))


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

    The connection (type ``mlflow``) carries the whole tracking URI in its ``tracking_uri`` extra
    (the form's "Tracking URI"); a connection given as JSON or a secret may hold the whole URI in
    ``host`` instead. The hook never assembles a URI from host, port and schema: the scheme and port
    would be guesses. Extras: ``registry_uri``, ``default_experiment``, ``artifact_location`` (or
    ``AIRFLOW_ML_MLFLOW_ARTIFACT_LOCATION``: where experiments the provider creates keep artifacts),
    and the HTTP bounds of :data:`HTTP_SETTINGS`. ``login``/``password`` become MLflow basic-auth
    credentials. When the connection does not exist, the hook falls back to ``MLFLOW_TRACKING_URI``
    (and ``MLFLOW_REGISTRY_URI``), so a local setup works without any connection.

    :param mlflow_conn_id: Airflow connection id of type ``mlflow``.
    :param tracking_uri: use this tracking URI instead of the connection (the CLI's ``--tracking-uri``).
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(
        self, mlflow_conn_id: str = default_conn_name, *, tracking_uri: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id
        self.tracking_uri_override = tracking_uri
        #: Where the settings came from, as errors name it (set when they are resolved).
        self.source = f"connection {mlflow_conn_id!r}"
        self._settings: MlflowSettings | None = None
        self._client: MlflowClient | None = None

    @property
    def settings(self) -> MlflowSettings:
        if self._settings is None:
            self._settings = self._resolve_settings()
        return self._settings

    def _resolve_settings(self) -> MlflowSettings:
        from airflow.sdk.exceptions import AirflowNotFoundException

        if self.tracking_uri_override:
            self.source = "the tracking URI given"
            return self._environment_settings(self.tracking_uri_override)
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
            self.source = f"MLFLOW_TRACKING_URI (there is no connection {self.mlflow_conn_id!r})"
            return self._environment_settings(tracking_uri)

        self.source = f"connection {self.mlflow_conn_id!r}"
        extra = conn.extra_dejson

        def field(name: str) -> Any:  # 0 is a value (no retries); "" is what an emptied form field leaves
            return next((v for v in (extra.get(name), extra.get(_EXTRA_PREFIX + name)) if v not in (None, "")), None)

        tracking_uri = field("tracking_uri") or _tracking_uri_in_host(conn, self.mlflow_conn_id)
        settings = MlflowSettings(
            tracking_uri,
            field("registry_uri"),
            field("default_experiment"),
            field("artifact_location") or os.environ.get(ARTIFACT_LOCATION_ENV),
            **_http_settings(self.source, field),
        )
        _set_credentials(conn.login, conn.password)
        return settings

    def _environment_settings(self, tracking_uri: str) -> MlflowSettings:
        return MlflowSettings(
            tracking_uri,
            _user_registry_uri(),
            None,
            os.environ.get(ARTIFACT_LOCATION_ENV),
            **_http_settings(self.source, lambda _: None),
        )

    @classmethod
    def for_settings(cls, settings: MlflowSettings, source: str) -> MlflowHook:
        """A hook on settings resolved elsewhere (the trigger gets them from the sensor, not a connection)."""
        hook = cls()
        hook._settings, hook.source = settings, source
        return hook

    def get_conn(self) -> MlflowClient:
        return self.get_client()

    def get_client(self, *, point_fluent_api: bool = True) -> MlflowClient:
        """Return an MlflowClient and point the fluent API (used for ``log_model``) at the same store.

        ``point_fluent_api=False`` leaves MLflow's process-global URIs alone: for a process that serves
        many connections and needs only the client (the triggerer). An HTTP tracking server is asked for
        one experiment first, so that one that cannot be reached fails here, within the connection's HTTP
        bounds, with an error that says where and what to check.
        """
        if self._client is None:
            import mlflow

            settings = self.settings
            export_http_settings(settings)
            if point_fluent_api:
                mlflow.set_tracking_uri(settings.tracking_uri)
                # Always set: a registry URI left behind by another connection must not apply to this one.
                global _registry_uri_set_by_hook
                _registry_uri_set_by_hook = settings.registry_uri or settings.tracking_uri
                mlflow.set_registry_uri(_registry_uri_set_by_hook)
            # An explicit registry URI: without one the client would read the process-global one, which
            # another hook in this process (another gate in a triggerer) may have set since.
            client = mlflow.MlflowClient(
                tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri or settings.tracking_uri
            )
            if settings.tracking_uri.lower().startswith(("http://", "https://")):
                self._check_reachable(client)
            self._client = client
        return self._client

    def _check_reachable(self, client: MlflowClient) -> None:
        from mlflow.exceptions import MlflowException

        from airflow_ml_provider.lineage.datasets import strip_credentials

        settings = self.settings
        started = time.monotonic()
        try:
            client.search_experiments(max_results=1)
        except MlflowException as e:
            reason = _connection_failure(e)
            if reason is None:  # the server answered: its error is MLflow's to tell
                raise
            raise MlflowConnectionError(
                f"Cannot reach MLflow at {strip_credentials(settings.tracking_uri)} ({self.source}): {reason}; "
                f"gave up after {settings.http_request_max_retries + 1} attempt(s) in "
                f"{time.monotonic() - started:.0f} s. Check that the tracking server is running and reachable "
                "from this machine (host, port, proxy, firewall) and that this is its URI. For a slow or distant "
                f"server raise the timeout (now {settings.http_request_timeout} s) and retries: the connection's "
                "extras http_request_timeout and http_request_max_retries, or without a connection "
                "MLFLOW_HTTP_REQUEST_TIMEOUT and MLFLOW_HTTP_REQUEST_MAX_RETRIES."
            ) from e

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
