"""Every option of the provider: the ``[ml_provider]`` section of Airflow's configuration.

Options are read like any Airflow option: ``airflow.cfg`` or ``AIRFLOW__ML_PROVIDER__<KEY>`` (and,
for sensitive ones, ``..._CMD`` / ``..._SECRET``), and are listed by ``airflow config list``
because :data:`OPTIONS` is also the provider info's ``config`` section
(:mod:`airflow_ml_provider.get_provider_info`). Values are read when they are used, never at import:
importing this module costs nothing, so DAG files and the pure core may import it.

The ``AIRFLOW_ML_*`` environment variables of earlier releases still work for this release, with a
:class:`DeprecationWarning` naming the option that replaces them.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any, Literal

SECTION = "ml_provider"
#: The option names (checked by mypy where :func:`get` is called).
Key = Literal[
    "artifact_root",
    "mlflow_conn_id",
    "mlflow_artifact_location",
    "lock_uri",
    "lock_dir",
    "fingerprint_cache_dir",
    "airflow_user",
    "airflow_password",
    "mlflow_ui_url",
]
#: The release that turned the ``AIRFLOW_ML_*`` environment variables into options.
_OPTIONS_RELEASE = "0.2.0"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Option:
    """One ``[ml_provider]`` option, documented as Airflow's provider.yaml ``config`` format wants."""

    key: Key
    description: str
    example: str | None
    default: str | None = None
    version_added: str = _OPTIONS_RELEASE
    sensitive: bool = False
    #: The environment variable this option replaces (read, with a warning, when the option is unset).
    deprecated_env: str | None = None

    @property
    def env_var(self) -> str:
        """The Airflow environment variable that sets this option."""
        return f"AIRFLOW__{SECTION.upper()}__{self.key.upper()}"

    def provider_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "description": self.description,
            "version_added": self.version_added,
            "type": "string",
            "example": self.example,
            "default": self.default,
        }
        if self.sensitive:
            info["sensitive"] = True
        return info


_OPTION_LIST = (
    Option(
        "artifact_root",
        "Where operators write datasets (features, splits, predictions), content-addressed: "
        "a local directory or any fsspec URL such as s3://bucket/prefix. With workers on several machines it "
        "must be a directory every worker mounts at the same path, or an object store. "
        "Default: $AIRFLOW_HOME/ml_artifacts, a directory of each worker (warned about in the task log under "
        "an executor other than LocalExecutor).",
        example="/data/airflow-ml",
        version_added="0.1.0",
    ),
    Option(
        "mlflow_conn_id",
        "Default MLflow connection id used by the operators, the sensor and the airflow-ml CLI.",
        example="mlflow_default",
        default="mlflow_default",
        version_added="0.1.0",
    ),
    Option(
        "mlflow_artifact_location",
        "Artifact location of the MLflow experiments the provider creates, when the connection sets "
        "none; without either, MLflow's default applies.",
        example="s3://bucket/mlflow-artifacts",
        deprecated_env="AIRFLOW_ML_MLFLOW_ARTIFACT_LOCATION",
    ),
    Option(
        "lock_uri",
        "A PostgreSQL database (postgresql:// or postgresql+<driver>://) whose advisory locks serialise "
        "promotions across machines, when the MLflow registry itself is not PostgreSQL "
        "(e.g. MLflow runs as an HTTP server). Unset: the registry's database, or a file lock.",
        example="postgresql://airflow@db:5432/airflow",
        sensitive=True,
        deprecated_env="AIRFLOW_ML_LOCK_URI",
    ),
    Option(
        "lock_dir",
        "Directory of the promotion file locks (used when there is no PostgreSQL to lock on); "
        "every worker that promotes must see the same directory. Default: the system temporary directory.",
        example="/var/lock/airflow-ml",
        deprecated_env="AIRFLOW_ML_LOCK_DIR",
    ),
    Option(
        "fingerprint_cache_dir",
        "A directory where dataset fingerprints are cached on disk, shared by every task process on the "
        "machine (it must belong to the worker's user and not be group/other-writable). "
        "Unset: fingerprints are cached in memory only.",
        example="/var/cache/airflow-ml/fingerprints",
        deprecated_env="AIRFLOW_ML_FINGERPRINT_CACHE_DIR",
    ),
    Option(
        "airflow_user",
        "User that `airflow-ml reproduce --airflow-url` logs in as, when --airflow-user is not given.",
        example="admin",
        deprecated_env="AIRFLOW_ML_AIRFLOW_USER",
    ),
    Option(
        "airflow_password",
        "Password of airflow_user for `airflow-ml reproduce --airflow-url`, when --airflow-password is "
        "not given (prefer this to the argument: arguments show in ps).",
        example=None,
        sensitive=True,
        deprecated_env="AIRFLOW_ML_AIRFLOW_PASSWORD",
    ),
    Option(
        "mlflow_ui_url",
        "Base URL of the MLflow UI that the task pages' \"MLflow run\" and \"Model version\" links open "
        "(<url>/#/experiments/<id>/runs/<run>, <url>/#/models/<name>/versions/<v>), when people reach MLflow "
        "at another address than the workers do. Unset: the connection's tracking URI (registry URI for model "
        "versions) when it is http(s); with a sqlite or file store there is no MLflow UI, so \"MLflow run\" "
        "is disabled and \"Model version\" opens the provider's own page (/ml/models/<name>/versions/<v>). "
        "User info in the URL is never put into a link.",
        example="https://mlflow.example.com",
    ),
)
#: Every option, by key.
OPTIONS: dict[str, Option] = {o.key: o for o in _OPTION_LIST}

_warned: set[str] = set()


def get(key: Key) -> str | None:
    """The value of ``[ml_provider] <key>`` (an empty value counts as unset), else that of the
    deprecated environment variable it replaces (with a :class:`DeprecationWarning`), else None."""
    from airflow.sdk import conf

    option = OPTIONS[key]
    value = conf.get(SECTION, key, fallback=None)
    if value:
        return str(value)
    legacy = os.environ.get(option.deprecated_env) if option.deprecated_env else None
    if not legacy:
        return None
    message = (
        f"The environment variable {option.deprecated_env} is deprecated and will stop working in the next "
        f"release: set the option [{SECTION}] {key} instead (environment variable {option.env_var})."
    )
    warnings.warn(message, DeprecationWarning, stacklevel=2)
    if key not in _warned:  # DeprecationWarning is hidden by default: say it once where users look
        _warned.add(key)
        log.warning("%s", message)
    return legacy


def provider_config() -> dict[str, Any]:
    """The provider info's ``config`` section (what ``airflow config list`` shows)."""
    return {
        SECTION: {
            "description": "Settings of airflow-ml-provider.",
            "options": {o.key: o.provider_info() for o in _OPTION_LIST},
        }
    }
