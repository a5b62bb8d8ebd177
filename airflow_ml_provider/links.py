"""Operator extra links: the "MLflow run" and "Model version" buttons on a task instance's page.

In Airflow 3 the worker computes a task's links when the task ends (``finalize``: ``get_link`` on the
operator that just ran, in the same process, pushed as the XCom ``_link_<class name>``) and the UI only
reads that XCom. So a link is built from what the step recorded while it ran: the open step run
(:data:`~airflow_ml_provider.records.step_run.STEP_RUN_ATTRIBUTE`, with its run id, experiment id, hook
and recorded model). Nothing here does I/O: the hook's settings were resolved during ``execute``.

Where the links point:

- **MLflow run**: ``<ui>/#/experiments/<experiment id>/runs/<run id>`` of the step's own MLflow run.
- **Model version**: ``<ui>/#/models/<name>/versions/<version>`` of the version the step trained, gated
  or promoted.

``<ui>`` is ``[ml_provider] mlflow_ui_url``, else the connection's tracking URI (the registry URI for
model versions) when it is http(s). A sqlite or file store has no MLflow UI: "MLflow run" is then
empty (the UI shows the button disabled) and "Model version" opens the provider's own page,
``/ml/models/<name>/versions/<version>``, under ``[api] base_url`` when that is set (else relative to
the Airflow UI's origin). A link that cannot be built (the step failed before its run opened, the
version is not registered yet) is empty too. User info (``user:password@``), query and fragment of a
configured or connection URL never go into a link: links are shown to every user who can see the task.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

    from airflow_ml_provider.records.step_run import StepRun

log = logging.getLogger(__name__)

#: The provider's own model version page (served by its UI plugin), relative to the Airflow base URL.
PROVIDER_MODEL_VERSION_PAGE = "/ml/models/{name}/versions/{version}"


def ui_base_url(url: str | None) -> str | None:
    """``url`` as the base of a browser link: http(s) only, without user info, query, fragment or trailing
    slash; None for anything else (a sqlite or file store, ``databricks``, an empty value)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018  (a malformed port raises here, not later in a browser)
    except ValueError:
        return None
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return urlunsplit((parts.scheme.lower(), host, parts.path.rstrip("/"), "", ""))


def mlflow_ui_url(store_uri: str | None) -> str | None:
    """The MLflow UI for a store: ``[ml_provider] mlflow_ui_url``, else ``store_uri`` when it is http(s)."""
    from airflow_ml_provider import conf

    configured = conf.get("mlflow_ui_url")
    if configured:
        base = ui_base_url(configured)
        if base is None:
            log.warning(
                "[ml_provider] mlflow_ui_url is not an http(s) URL; the MLflow links are disabled. "
                "Set it to the address people open MLflow at, e.g. https://mlflow.example.com"
            )
        return base
    return ui_base_url(store_uri)


def run_url(ui: str | None, experiment_id: str | None, run_id: str | None) -> str:
    """``<ui>/#/experiments/<experiment>/runs/<run>``, or "" without a UI or ids."""
    if not (ui and experiment_id and run_id):
        return ""
    return f"{ui}/#/experiments/{quote(str(experiment_id), safe='')}/runs/{quote(str(run_id), safe='')}"


def model_version_url(ui: str | None, name: str | None, version: str | None) -> str:
    """``<ui>/#/models/<name>/versions/<v>`` with an MLflow UI, else the provider's page; "" without a version."""
    if not (name and version):
        return ""
    quoted_name, quoted_version = quote(str(name), safe=""), quote(str(version), safe="")
    if ui:
        return f"{ui}/#/models/{quoted_name}/versions/{quoted_version}"
    return airflow_base_url() + PROVIDER_MODEL_VERSION_PAGE.format(name=quoted_name, version=quoted_version)


def airflow_base_url() -> str:
    """``[api] base_url`` as a link prefix (credentials stripped), or "" (links relative to the UI's origin)."""
    from airflow.sdk import conf

    try:
        configured = conf.get("api", "base_url", fallback=None)
    except Exception:
        configured = None
    return ui_base_url(configured) or ""


def step_run_of(operator: Any, ti_key: Any) -> StepRun | None:
    """The step run ``operator`` opened for the task instance ``ti_key``; None when it opened none.

    The ids are compared so that a run left on the operator object by another task instance (the same
    object run again in one process) never lends its link.
    """
    from airflow_ml_provider.records.step_run import STEP_RUN_ATTRIBUTE, StepRun

    run = getattr(operator, STEP_RUN_ATTRIBUTE, None)
    if not isinstance(run, StepRun):
        return None
    ids = run.record.airflow
    for field in ("dag_id", "run_id", "task_id", "map_index", "try_number"):
        expected = getattr(ti_key, field, None)
        if expected is not None and expected != getattr(ids, field):
            return None
    return run


def _store_uri(run: StepRun, registry: bool) -> str | None:
    try:
        return run.hook.registry_uri if registry else run.hook.tracking_uri
    except Exception:  # settings not resolvable: no link rather than a failed finalize
        return None


class MLflowRunLink(BaseOperatorLink):
    """"MLflow run": the step's own MLflow run in the MLflow UI; empty without an MLflow UI (sqlite/file
    store and no ``[ml_provider] mlflow_ui_url``) or when the step opened no run."""

    name = "MLflow run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        run = step_run_of(operator, ti_key)
        if run is None:
            return ""
        return run_url(mlflow_ui_url(_store_uri(run, registry=False)), run.experiment_id, run.run_id)


class ModelVersionLink(BaseOperatorLink):
    """"Model version": the version the step trained, gated or promoted, in the MLflow UI; without an MLflow
    UI (sqlite/file store), the provider's own page ``/ml/models/<name>/versions/<v>``. Empty when the step
    recorded no version (it failed before registering one)."""

    name = "Model version"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        run = step_run_of(operator, ti_key)
        model = run.record.model if run is not None else None
        if run is None or model is None:
            return ""
        return model_version_url(mlflow_ui_url(_store_uri(run, registry=True)), model.name, model.version)


#: The links of every ML step, and of the steps about one model version (train, gate, promote).
STEP_LINKS: tuple[BaseOperatorLink, ...] = (MLflowRunLink(),)
MODEL_STEP_LINKS: tuple[BaseOperatorLink, ...] = (MLflowRunLink(), ModelVersionLink())
#: Class paths for the provider info's ``extra-links``.
LINK_CLASSES = ("airflow_ml_provider.links.MLflowRunLink", "airflow_ml_provider.links.ModelVersionLink")
