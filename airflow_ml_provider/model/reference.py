"""Model references, logging and loading: the MLflow side of the model a step works on."""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

# Model version tags written by TrainOperator and read by evaluate, simulate, the gate and promote.
TAG_TRAINING_RUN = "airflow_ml.training_run_id"
TAG_MODEL_FINGERPRINT = "airflow_ml.model_fingerprint"
TAG_FEATURES_FINGERPRINT = "airflow_ml.features_fingerprint"
TAG_TARGET = "airflow_ml.target_column"
TAG_FEATURE_COLUMNS = "airflow_ml.feature_columns"
TAG_TASK = "airflow_ml.task"
TAG_REPRODUCTION_OF = "airflow_ml.reproduction_of"  # set on versions built by `airflow-ml reproduce`
EVIDENCE_TAG_PREFIX = "airflow_ml.evidence."  # + step name -> MLflow run id holding the record


def evidence_tag(step: str) -> str:
    return EVIDENCE_TAG_PREFIX + step


class ModelReferenceError(ValueError):
    """A model reference cannot be understood or does not exist in the registry."""


@dataclass(frozen=True)
class ModelRef:
    """A registered model version."""

    name: str
    version: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @classmethod
    def parse(cls, value: Any, argument: str = "model") -> ModelRef:
        """Accept TrainOperator's XCom result, a ``{"name", "version"}`` mapping or ``models:/name/version``."""
        if isinstance(value, ModelRef):
            return value
        if isinstance(value, Mapping):
            name = value.get("model_name") or value.get("name")
            version = value.get("version")
            if name and version is not None and str(version).strip():
                return cls(str(name), str(version))
        if isinstance(value, str) and value.startswith("models:/"):
            name, _, version = value[len("models:/") :].rpartition("/")
            if name and version.isdigit():
                return cls(name, version)
        raise ModelReferenceError(
            f"{argument} must be TrainOperator's result, a mapping with model_name and version, "
            f"or 'models:/<name>/<version>'; got {value!r:.200}"
        )


def get_version(client: MlflowClient, ref: ModelRef) -> ModelVersion:
    """The registered version; only a registry that answers "no such version" is reported as "not found"
    (an unreachable registry raises its own error, so the message does not mislead)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(ref.name, ref.version)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ModelReferenceError(f"Model version {ref.uri} not found in the registry: {e.message}") from e
        raise


def current_alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as e:
        if alias_missing(e):
            return None
        raise


def alias_missing(error: Exception) -> bool:
    """MLflow reports an unset alias as INVALID_PARAMETER_VALUE (SQL store) or RESOURCE_DOES_NOT_EXIST."""
    return "alias" in str(error).lower() and "not found" in str(error).lower()



def feature_columns(version: ModelVersion) -> list[str] | None:
    raw = version.tags.get(TAG_FEATURE_COLUMNS)
    return json.loads(raw) if raw else None


def is_sklearn_estimator(model: Any) -> bool:
    return type(model).__module__.split(".")[0] == "sklearn" or any(
        c.__module__.split(".")[0] == "sklearn" for c in type(model).__mro__[1:]
    )


_FLAVOR_REQUIREMENTS = {
    "sklearn": ("mlflow", "scikit-learn", "scipy", "numpy", "pandas", "skops", "cloudpickle"),
    "pyfunc": ("mlflow", "cloudpickle", "numpy", "pandas", "airflow-ml-provider"),
}


def default_pip_requirements(flavor: str, model: Any) -> list[str]:
    """Pinned installed versions of what loading the model needs, plus the model's own library."""
    import importlib.metadata as metadata

    names = list(_FLAVOR_REQUIREMENTS[flavor])
    top_module = type(model).__module__.split(".")[0]
    names += metadata.packages_distributions().get(top_module, [])
    pinned = []
    for name in dict.fromkeys(names):
        try:
            pinned.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pinned


@contextmanager
def quiet_serialization() -> Iterator[None]:
    """Silence the warnings skops raises while (de)serialising scikit-learn models.

    skops looks functions up across every loaded module, which touches each deprecated Airflow
    attribute: over a thousand DeprecatedImportWarning lines per task log, none about the user's code.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"skops\.")
        yield


def load_model(model_uri: str) -> Any:
    """Load a model for scoring: the native scikit-learn object when it has that flavor (so
    ``predict_proba`` is available), otherwise the pyfunc model."""
    import mlflow
    from mlflow.models import get_model_info

    with quiet_serialization():
        if "sklearn" in get_model_info(model_uri).flavors:
            return mlflow.sklearn.load_model(model_uri)
        return mlflow.pyfunc.load_model(model_uri)


def fingerprint_model(model_uri: str, client: MlflowClient | None = None) -> str:
    """Fingerprint of a model's artifact bytes, the same for every URI of it.

    The model is downloaded into a fresh directory (against ``client``'s store when given) and its
    tree hashed. MLflow adds a ``registered_model_meta`` file to downloads of ``models:/<name>/<version>``
    (registry bookkeeping, not model bytes); it is left out, so the logged model and its registered
    version have one fingerprint.
    """
    import mlflow

    from airflow_ml_provider.data.fingerprint import fingerprint_directory

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=model_uri,
                dst_path=tmp,
                tracking_uri=client.tracking_uri if client else None,
                registry_uri=getattr(client, "_registry_uri", None) if client else None,
            )
        )
        (local / "registered_model_meta").unlink(missing_ok=True)
        return fingerprint_directory(local, cached=False)
