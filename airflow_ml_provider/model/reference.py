"""Model references, logging and loading: the MLflow side of the model a step works on."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.exceptions import AirflowMLError
from airflow_ml_provider.records.tags import TAG_FEATURE_COLUMNS

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from airflow_ml_provider.hooks.mlflow import MlflowHook

MODELS_SCHEME = "models:/"


class ModelReferenceError(AirflowMLError, ValueError):
    """A model reference cannot be understood or does not exist in the registry."""


@dataclass(frozen=True)
class ModelRef:
    """A registered model version."""

    name: str
    version: str

    @property
    def uri(self) -> str:
        return f"{MODELS_SCHEME}{self.name}/{self.version}"

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
        if isinstance(parsed := parse_model_uri(value), ModelRef):
            return parsed
        raise ModelReferenceError(
            f"{argument} must be TrainOperator's result, a mapping with model_name and version, "
            f"or 'models:/<name>/<version>'; got {value!r:.200}"
        )


@dataclass(frozen=True)
class ModelAlias:
    """A registered model by alias, ``models:/<name>@<alias>``: resolved to a version when a task runs."""

    name: str
    alias: str

    @property
    def uri(self) -> str:
        return f"{MODELS_SCHEME}{self.name}@{self.alias}"


def parse_model_uri(value: Any) -> ModelRef | ModelAlias | None:
    """``models:/<name>/<version>`` -> ModelRef, ``models:/<name>@<alias>`` -> ModelAlias, else None.

    The one parser of ``models:/`` references, with MLflow's own rule
    (``mlflow.store.artifact.utils.models._parse_model_uri``): the path is one segment
    (``<name>@<alias>``, split at the *last* ``@``) or two (``<name>/<version>``), so a name never
    contains ``/`` (MLflow refuses such names when they are registered). Stages and ``latest``,
    which MLflow also accepts, are refused: a step works on a pinned version or a named alias.
    """
    if not isinstance(value, str) or not value.startswith(MODELS_SCHEME):
        return None
    path = value[len(MODELS_SCHEME) :]
    parts = path.split("/")
    if len(parts) == 2:
        name, version = parts
        if name.strip() and version.isascii() and version.isdigit():
            return ModelRef(name, version)
    elif len(parts) == 1:
        name, at, alias = path.rpartition("@")
        if at and name.strip() and alias.strip():
            return ModelAlias(name, alias)
    return None


def parse_model(value: Any, argument: str = "model") -> ModelRef | ModelAlias:
    """A model version (TrainOperator's result, ``{"model_name", "version"}``, ``models:/name/version``)
    or an alias (``models:/name@alias``)."""
    if isinstance(parsed := parse_model_uri(value), ModelAlias):
        return parsed
    try:
        return ModelRef.parse(value, argument)
    except ModelReferenceError:
        raise ModelReferenceError(
            f"{argument} must be TrainOperator's result, a mapping with model_name and version, "
            f"'models:/<name>/<version>' or 'models:/<name>@<alias>'; got {value!r:.200}"
        ) from None


def get_version(hook: MlflowHook, ref: ModelRef) -> ModelVersion:
    """The registered version; only a registry that answers "no such version" is reported as "not found"
    (an unreachable registry raises its own error, so the message does not mislead)."""
    version = hook.model_version(ref.name, ref.version)
    if version is None:
        raise ModelReferenceError(
            f"Model version {ref.uri} not found in the registry ({hook.source}): check the name and version"
        )
    return version


def resolve_alias(hook: MlflowHook, alias: ModelAlias) -> ModelRef:
    """The version ``alias`` points to now; an unset alias or an unreadable registry is an error naming it."""
    from mlflow.exceptions import MlflowException

    try:
        version = hook.alias_version(alias.name, alias.alias)
    except MlflowException as e:
        raise ModelReferenceError(f"Cannot resolve {alias.uri}: {e.message}") from e
    if version is None:
        raise ModelReferenceError(
            f"Alias {alias.alias!r} of registered model {alias.name!r} is not set ({alias.uri}): "
            f"no version to score. Promote a version to {alias.alias!r} first, "
            f"or pass models:/{alias.name}/<version>."
        )
    return ModelRef(alias.name, version)


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

    from airflow_ml_provider.records.environment import packages_distributions

    names = list(_FLAVOR_REQUIREMENTS[flavor])
    top_module = type(model).__module__.split(".")[0]
    names += packages_distributions().get(top_module, [])
    pinned = []
    for name in dict.fromkeys(names):
        try:
            pinned.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pinned


def fingerprint_model(model_uri: str, hook: MlflowHook) -> str:
    """Fingerprint of a model's artifact bytes, the same for every URI of it (the logged model and its
    registered version): its files, downloaded from ``hook``'s store, hashed as a tree."""
    from airflow_ml_provider.data.fingerprint import fingerprint_directory

    with hook.download_model(model_uri) as local:
        return fingerprint_directory(local, cached=False)
