"""Airflow Assets for what the ML steps produce: features, model versions and a model's champion alias.

A DAG can run whenever a new champion is promoted::

    from airflow.sdk import DAG
    from airflow_ml_provider.assets import champion_asset

    with DAG("score", schedule=[champion_asset("breast_cancer_classifier")]):
        ...

Which step emits what (each only when the task succeeds; a skipped or failed task emits nothing):

========================  ===========================================  =======================================
step                      asset                                        event extra
========================  ===========================================  =======================================
``FeaturizeOperator``     :func:`features_asset` (dag_id, task_id)     ``uri``, ``fingerprint``, ``rows``
``TrainOperator``         :func:`model_asset` (registered model)       ``model_name``, ``version``,
                                                                       ``fingerprint``, ``model_uri``
``PromoteModelOperator``  :func:`champion_asset` (model, alias)        ``model_name``, ``alias``, ``version``,
                                                                       ``previous`` (None for the first)
``DriftOperator``         :func:`drift_asset` (registered model)       ``model_name``, ``version``, ``features``
                          (only when drift is detected)                (name -> statistic, threshold, method),
                                                                       ``current``, ``reference`` (uri, fingerprint)
========================  ===========================================  =======================================

Promotion emits only when the alias actually moved: a refused promotion fails, a superseded one is
skipped and one whose version already held the alias succeeds without an event, so a scoring DAG
never reruns for nothing.

The model name (and a templated alias) are only known when the task runs, so each operator declares an
:class:`~airflow.sdk.AssetAlias` outlet (:data:`FEATURES_ALIAS`, :data:`MODEL_VERSIONS_ALIAS`,
:data:`PROMOTIONS_ALIAS`, :data:`DRIFT_ALIAS`, shared by every DAG) and adds the concrete asset to it at
run time; Airflow creates the asset on its first event if no DAG declared it yet.

**The URIs** are ``x-airflow-ml://model/<name>``, ``x-airflow-ml://model/<name>/alias/<alias>`` and
``x-airflow-ml://model/<name>/drift``, ``x-airflow-ml://features/<dag_id>/<task_id>``, each part percent-encoded. Why:

- An ``x-`` scheme is the one Airflow leaves exactly as written: no provider's URI normaliser applies
  to it, now or when one is installed later, so the URI a DAG file builds and the one a task emits stay
  byte-equal. ``airflow`` is reserved by Airflow; ``models:/`` is MLflow's own URI for loading a model
  (and ``models:/name@alias`` names *whatever* holds the alias, not the event of it moving).
- They name the registered model, not the MLflow store, because a DAG file is parsed without reading
  connections (parse time costs nothing here): one Airflow deployment is expected to use one registry
  per model name. Two registries holding the same model name in one deployment would share assets.
- Features are named by the task that produces them, not by their content-addressed file: one asset per
  producing task, one event per new dataset (the file and its fingerprint in the extra), instead of one
  asset per file on the Assets page.

Asset names (what the Assets page shows) are ``ml-model:<name>``, ``ml-model:<name>@<alias>``, ``ml-drift:<name>`` and
``ml-features:<dag_id>.<task_id>``; build assets with these functions rather than by hand, as Airflow
matches on name and URI together.

Importing this module costs nothing beyond ``airflow.sdk``: DAG files import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import Asset, AssetAlias

if TYPE_CHECKING:
    from airflow.sdk import Context

SCHEME = "x-airflow-ml"
#: Outlets of the steps (the concrete asset is added to them at run time).
FEATURES_ALIAS = AssetAlias(name="airflow-ml:features")
MODEL_VERSIONS_ALIAS = AssetAlias(name="airflow-ml:model-versions")
PROMOTIONS_ALIAS = AssetAlias(name="airflow-ml:promotions")
DRIFT_ALIAS = AssetAlias(name="airflow-ml:drift")


def _part(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return quote(value, safe="")


def model_asset(model_name: str) -> Asset:
    """The registered model ``model_name``: an event per version TrainOperator registers."""
    uri = f"{SCHEME}://model/{_part(model_name, 'model_name')}"
    return Asset(name=f"ml-model:{model_name}", uri=uri)


def champion_asset(model_name: str, alias: str = "champion") -> Asset:
    """The registry alias ``alias`` of ``model_name``: an event each time a promotion moves it."""
    uri = f"{SCHEME}://model/{_part(model_name, 'model_name')}/alias/{_part(alias, 'alias')}"
    return Asset(name=f"ml-model:{model_name}@{alias}", uri=uri)


def drift_asset(model_name: str) -> Asset:
    """Drift in the data ``model_name`` scores: an event each time a DriftOperator detects it (retrain on it)."""
    uri = f"{SCHEME}://model/{_part(model_name, 'model_name')}/drift"
    return Asset(name=f"ml-drift:{model_name}", uri=uri)


def features_asset(dag_id: str, task_id: str) -> Asset:
    """The features FeaturizeOperator ``task_id`` of ``dag_id`` writes: an event per dataset written."""
    uri = f"{SCHEME}://features/{_part(dag_id, 'dag_id')}/{_part(task_id, 'task_id')}"
    return Asset(name=f"ml-features:{dag_id}.{task_id}", uri=uri)


def emit(context: Context | Mapping[str, Any], alias: AssetAlias, asset: Asset, extra: Mapping[str, Any]) -> bool:
    """Add an event on ``asset`` through the task's ``alias`` outlet; Airflow records it if the task succeeds.

    Returns False (and emits nothing) outside a real task run, where the context has no outlet events
    (an operator's ``execute()`` called directly).
    """
    events = context.get("outlet_events")
    if events is None:
        return False
    events[alias].add(asset, extra=dict(extra))
    return True
