"""The FastAPI app behind the Models page, mounted by the api-server at ``/ml``.

A plugin's app is not authenticated by Airflow on its own: every route here depends on Airflow's
``get_user`` (a Bearer token, or the UI's ``_token`` cookie, so the page's same-origin fetches work) and
asks the auth manager, per DAG, whether the caller may read what that DAG produced. A version of a DAG
the caller may not read is absent from listings and 403 on its own; nothing answers without a user (401).

Routes: the page (``/``, ``/models/...``, ``/runs/...``: one HTML file, routed in the browser), its static
files, and the JSON API under ``/api`` that the page and scripts call. Responses pass through
:func:`~airflow_ml_provider.plugins.catalog.scrub`, so no credential in a recorded URI reaches a browser.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

    from airflow_ml_provider.plugins.catalog import ModelCatalog

STATIC = Path(__file__).parent / "static"
#: The static files the page is made of (nothing else under ``static/`` is served).
_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
#: Sent with every response: the page loads nothing from elsewhere, and it may be framed only by Airflow's UI.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


UserDep = GetUserDep


class DagVisibility:
    """:class:`~airflow_ml_provider.plugins.catalog.Visibility` for one user, asked of Airflow's auth manager
    once per DAG per request (the team of each DAG looked up in one query)."""

    def __init__(self, user: BaseUser, auth_manager: BaseAuthManager) -> None:
        self.user = user
        self.auth_manager = auth_manager
        self._known: dict[str | None, bool] = {}

    def can_read(self, dag_id: str | None) -> bool:
        if dag_id not in self._known:
            self._known[dag_id] = self._ask(dag_id)
        return self._known[dag_id]

    def _ask(self, dag_id: str | None) -> bool:
        from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
        from airflow.models.dag import DagModel

        if dag_id is None:  # registered outside Airflow: only for those who may read every DAG
            return self.auth_manager.is_authorized_dag(method="GET", user=self.user)
        team = DagModel.get_team_name(dag_id)
        return self.auth_manager.is_authorized_dag(
            method="GET", user=self.user, details=DagDetails(id=dag_id, team_name=team)
        )


def _visibility(request: Request, user: UserDep) -> DagVisibility:
    from airflow.api_fastapi.app import get_auth_manager

    return DagVisibility(user, get_auth_manager())


VisibilityDep = Annotated[DagVisibility, Depends(_visibility)]


def catalog() -> ModelCatalog:
    """The catalog over the provider's default MLflow connection (``[ml_provider] mlflow_conn_id``), made per
    request so that an edited connection applies at once."""
    from airflow_ml_provider import conf
    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.plugins.catalog import ModelCatalog

    return ModelCatalog(MlflowHook(conf.get("mlflow_conn_id") or "mlflow_default"))


CatalogDep = Annotated["ModelCatalog", Depends(catalog)]


def _answer(read: Callable[[], Any]) -> JSONResponse:
    """Run one catalog read; its errors become the HTTP status a caller can act on."""
    from airflow_ml_provider.plugins.catalog import CatalogError, NotVisible, scrub

    try:
        payload = read()
    except CatalogError as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(e)) from None
    except NotVisible as e:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(e)) from None
    except HTTPException:
        raise
    except Exception as e:  # MLflow unreachable or failing: say so, without its URI's credentials
        from airflow_ml_provider.records.redaction import strip_credentials

        uri = strip_credentials(catalog().hook.tracking_uri)
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY,
            f"the MLflow store at {uri} could not be read ({type(e).__name__}: {scrub(str(e))}); "
            "check that it is reachable from the api-server and that the connection "
            "[ml_provider] mlflow_conn_id names is right",
        ) from None
    return JSONResponse(scrub(payload), headers=_SECURITY_HEADERS)


def _wants_page(request: Request) -> bool:
    """A browser asking for one of the page's routes (not the API, not a static file)."""
    path = request.url.path[len(request.scope.get("root_path", "")):]
    return "text/html" in request.headers.get("accept", "") and not path.startswith(("/api/", "/static/"))


def _login_page(request: Request) -> str:
    """What a browser that is not logged in gets instead of the page: a link to Airflow's login, back here."""
    from html import escape
    from urllib.parse import quote

    here = quote(str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""), safe="/")
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Models: log in</title></head><body>"
        f"<p>Not logged in to Airflow. <a href=\"/auth/login/?next={escape(here)}\" target=_top>Log in</a> "
        "to see the models.</p></body></html>"
    )


def create_app() -> FastAPI:
    app = FastAPI(title="airflow-ml-provider: Models", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        headers = {**_SECURITY_HEADERS, **(exc.headers or {})}
        if exc.status_code == status.HTTP_401_UNAUTHORIZED and _wants_page(request):
            return HTMLResponse(_login_page(request), status_code=exc.status_code, headers=headers)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.get("/api/models")
    def list_models(visible: VisibilityDep, models: CatalogDep) -> JSONResponse:
        """Every registered model: champion, latest version and its gate status, last promotion."""
        return _answer(lambda: {"models": models.models(visible)})

    @app.get("/api/models/{name}/versions")
    def list_versions(name: str, visible: VisibilityDep, models: CatalogDep) -> JSONResponse:
        """Every version of a model: created, DAG run, gate status, metrics, champion, reproduction-of."""
        return _answer(lambda: models.versions(name, visible))

    @app.get("/api/models/{name}/versions/{version}")
    def show_version(name: str, version: str, visible: VisibilityDep, models: CatalogDep) -> JSONResponse:
        """One version: the verdict with every check, the evidence, history, reproductions and lineage."""
        if not version.isdigit():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{version!r} is not a version number")
        return _answer(lambda: models.version(name, version, visible))

    @app.get("/api/runs/{dag_id}/{run_id}")
    def run_versions(dag_id: str, run_id: str, visible: VisibilityDep, models: CatalogDep) -> JSONResponse:
        """The model versions a DAG run produced (the run and task-instance views open the first)."""
        return _answer(
            lambda: {"dag_id": dag_id, "run_id": run_id, "versions": models.run_versions(dag_id, run_id, visible)}
        )

    @app.get("/static/{file_name}")
    def static_file(file_name: str, user: UserDep) -> FileResponse:
        path = STATIC / file_name
        if "/" in file_name or path.suffix not in _STATIC_TYPES or not path.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no static file {file_name!r}")
        return FileResponse(path, media_type=_STATIC_TYPES[path.suffix], headers=_SECURITY_HEADERS)

    def page(user: UserDep) -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=_SECURITY_HEADERS)

    for route in ("/", "/models/{name}", "/models/{name}/versions/{version}", "/runs/{dag_id}/{run_id}"):
        app.add_api_route(route, page, methods=["GET"], include_in_schema=False)
    return app
