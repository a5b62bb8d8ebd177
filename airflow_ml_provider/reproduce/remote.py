"""Run a reproduction on a running Airflow 3 deployment through its REST API (``/api/v2``).

``airflow-ml reproduce <target> --airflow-url http://host:8080`` does everything the local path does
(resolve the target, read the run manifest, verify every raw input's fingerprint, build the conf,
compare), but instead of ``dag.test()`` in this process it triggers a DAG run on the deployment and
waits for it. The sequence, with the endpoints of Airflow 3.x:

1. ``POST {url}/auth/token`` with ``{"username": ..., "password": ...}`` -> ``{"access_token": <JWT>}``
   (the SimpleAuthManager's login; other auth managers of Airflow 3, such as FAB's, serve the same
   endpoint). Without a user name no token is requested: that works for deployments that need none
   (``[core] simple_auth_manager_all_admins``).
2. ``GET /api/v2/dags/{dag_id}`` and ``GET /api/v2/dags/{dag_id}/tasks``: the DAG exists, parses
   without import errors, is not paused, and its task graph (for ``--from-step`` and ``--set``).
3. ``POST /api/v2/dags/{dag_id}/dagRuns`` with ``{"logical_date": null, "conf": ..., "note": ...}``
   (``logical_date`` is a required field, null for a manual run that is not tied to a date).
4. ``GET /api/v2/dags/{dag_id}/dagRuns/{run_id}`` every few seconds until ``success`` or ``failed``.

A paused DAG is not unpaused silently: a run triggered on a paused DAG stays queued forever, so the
command stops before triggering and tells the user. With ``--unpause`` it unpauses the DAG
(``PATCH /api/v2/dags/{dag_id}`` ``{"is_paused": false}``), which also lets its schedule run.

What the deployment and this command must share:

- The MLflow tracking store: the reproduced run's step records are read from the MLflow store this
  command is pointed at, so the workers must write to the same one (same ``MLFLOW_TRACKING_URI`` /
  ``mlflow`` connection), and the artifact store must be readable from here.
- The raw data: it is verified here BEFORE anything is triggered, so every raw input's URI must be
  readable from where the command runs, and must name the same bytes on the workers (a shared path
  or an object-store URL), since the conf passes the same URIs to the DAG.

Every failure to talk to the deployment (unreachable URL, rejected credentials, missing DAG, paused
DAG, run not finished in time) is a :class:`ReproductionError` whose message says what to do;
the CLI turns it into exit code 2. Only the standard library (urllib) is used.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from airflow_ml_provider.reproduce.original import ReproductionError

TERMINAL_STATES = frozenset({"success", "failed"})


class AirflowApiError(ReproductionError):
    """The Airflow deployment could not be used; the message names the URL and what went wrong."""


class AirflowAuthenticationError(AirflowApiError):
    """The deployment rejected the credentials or the token."""


class RunTimeout(AirflowApiError):
    """The triggered DAG run did not finish within the timeout (it keeps running in Airflow)."""


@dataclass(frozen=True)
class _Task:
    task_id: str
    upstream: frozenset[str]

    def get_flat_relative_ids(self, *, upstream: bool = False) -> set[str]:
        if not upstream:
            raise NotImplementedError("only upstream relatives are known for a remote DAG")
        return set(self.upstream)


@dataclass(frozen=True)
class RemoteDag:
    """The shape of a deployed DAG as the REST API describes it: what ``reproduction_conf`` needs of a DAG."""

    dag_id: str
    is_paused: bool
    downstream: Mapping[str, frozenset[str]]  # task_id -> direct downstream task_ids

    @property
    def task_ids(self) -> list[str]:
        return sorted(self.downstream)

    def get_task(self, task_id: str) -> _Task:
        if task_id not in self.downstream:
            raise KeyError(task_id)
        parents: dict[str, set[str]] = {t: set() for t in self.downstream}
        for parent, children in self.downstream.items():
            for child in children:
                parents.setdefault(child, set()).add(parent)
        seen: set[str] = set()
        todo = list(parents[task_id])
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(parents.get(current, ()))
        return _Task(task_id, frozenset(seen))


def _stderr(message: str) -> None:
    print(f"airflow-ml reproduce: {message}", file=sys.stderr, flush=True)


@dataclass
class AirflowApiRunner:
    """A :class:`~airflow_ml_provider.reproduce.runner.DagRunner` that triggers and waits through ``/api/v2``.

    ``timeout`` bounds the wait for the triggered run to finish (seconds); ``request_timeout`` bounds
    each HTTP request. ``progress`` receives one line per state change (default: stderr).
    """

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 3600.0
    unpause: bool = False
    poll_interval: float = 2.0
    request_timeout: float = 30.0
    progress: Callable[[str], None] = _stderr
    _token: str | None = field(default=None, init=False, repr=False)
    _dags: dict[str, RemoteDag] = field(default_factory=dict, init=False, repr=False)
    _final_state: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AirflowApiError(f"--airflow-url {self.url!r}: expected http(s)://host[:port][/path]")
        if self.username and self.password is None:
            raise AirflowAuthenticationError(
                f"a user name ({self.username!r}) but no password for {self.url}: pass --airflow-password "
                "or set [ml_provider] airflow_password (AIRFLOW__ML_PROVIDER__AIRFLOW_PASSWORD)"
            )

    # -- HTTP ---------------------------------------------------------------------------------------

    def _send(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        """One request; returns (status, decoded JSON body). Network failures raise AirflowApiError."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(f"{self.url}{path}", data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.request_timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, TimeoutError):
                raise AirflowApiError(
                    f"Airflow at {self.url} did not answer {method} {path} within {self.request_timeout:g} s"
                ) from None
            raise AirflowApiError(
                f"cannot reach Airflow at {self.url} ({reason}); is the API server running and is "
                "--airflow-url right?"
            ) from None
        except TimeoutError:
            raise AirflowApiError(
                f"Airflow at {self.url} did not answer {method} {path} within {self.request_timeout:g} s"
            ) from None
        except (ConnectionError, OSError) as e:
            raise AirflowApiError(f"cannot reach Airflow at {self.url}: {e}") from None
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode(errors="replace")[:500]
        return status, decoded

    def _login(self) -> str | None:
        if not self.username:
            return None
        status, body = self._send("POST", "/auth/token", {"username": self.username, "password": self.password})
        if status in (200, 201) and isinstance(body, Mapping) and body.get("access_token"):
            return str(body["access_token"])
        if status == 401:
            raise AirflowAuthenticationError(
                f"authentication failed at {self.url}: the deployment rejected user {self.username!r} and its "
                "password (check --airflow-user/--airflow-password or [ml_provider] airflow_user/airflow_password)"
            )
        if status == 404:
            raise AirflowAuthenticationError(
                f"authentication failed at {self.url}: no token endpoint at {self.url}/auth/token; is this an "
                "Airflow 3 API server (and --airflow-url its base URL)?"
            )
        raise AirflowAuthenticationError(
            f"authentication failed at {self.url}: POST /auth/token answered {status}: {_detail(body)}"
        )

    def _call(self, method: str, path: str, body: Any = None, ok: Iterable[int] = (200,)) -> tuple[int, Any]:
        """An authenticated API call. A rejected token is renewed once (it may have expired while waiting)."""
        if self._token is None:
            self._token = self._login()
        status, decoded = self._send(method, path, body, self._token)
        if status == 401 and self.username:
            self._token = self._login()
            status, decoded = self._send(method, path, body, self._token)
        if status == 401:
            how = (
                f"user {self.username!r}'s token was rejected"
                if self.username
                else "it requires credentials: pass --airflow-user and --airflow-password (or set "
                "[ml_provider] airflow_user and airflow_password)"
            )
            raise AirflowAuthenticationError(f"authentication failed at {self.url}: {how}")
        if status == 403:
            raise AirflowAuthenticationError(
                f"Airflow at {self.url} does not allow user {self.username or '(anonymous)'!r} to {method} {path}: "
                f"{_detail(decoded)}"
            )
        if status not in set(ok) and status != 404:
            raise AirflowApiError(f"Airflow at {self.url} answered {status} to {method} {path}: {_detail(decoded)}")
        return status, decoded

    # -- DagRunner ----------------------------------------------------------------------------------

    def load_dag(self, dag_id: str) -> RemoteDag:
        """Check the DAG can be triggered (exists, parses, not paused unless --unpause) and read its task graph."""
        if dag_id in self._dags:
            return self._dags[dag_id]
        path = f"/api/v2/dags/{quote(dag_id, safe='')}"
        status, dag = self._call("GET", path)
        if status == 404 or not isinstance(dag, Mapping):
            raise AirflowApiError(
                f"DAG {dag_id!r} not found in the Airflow deployment at {self.url}: its file must be in the "
                "deployment's DAGs folder and parsed by its dag-processor"
            )
        if dag.get("has_import_errors"):
            raise AirflowApiError(f"DAG {dag_id!r} has import errors at {self.url}; see Browse > Import errors")
        if dag.get("is_stale"):
            raise AirflowApiError(f"DAG {dag_id!r} is stale at {self.url}: its file is no longer in the DAGs folder")
        is_paused = bool(dag.get("is_paused"))
        if is_paused and not self.unpause:
            raise AirflowApiError(
                f"DAG {dag_id!r} is paused at {self.url}: a run triggered now would stay queued. Unpause it in "
                "the Airflow UI (or `airflow dags unpause`), or pass --unpause to let this command do it"
            )
        status, tasks = self._call("GET", f"{path}/tasks")
        if status == 404 or not isinstance(tasks, Mapping):
            raise AirflowApiError(f"the tasks of DAG {dag_id!r} cannot be read from {self.url}")
        downstream = {
            str(t["task_id"]): frozenset(str(d) for d in t.get("downstream_task_ids") or ())
            for t in tasks.get("tasks") or ()
        }
        self._dags[dag_id] = RemoteDag(dag_id, is_paused, downstream)
        return self._dags[dag_id]

    def run(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Trigger one run with ``conf`` and wait until it succeeds or fails; returns its run id."""
        dag = self.load_dag(dag_id)
        path = f"/api/v2/dags/{quote(dag_id, safe='')}"
        if dag.is_paused:
            self._call("PATCH", f"{path}?update_mask=is_paused", {"is_paused": False})
            self.progress(f"unpaused DAG {dag_id} at {self.url} (--unpause)")
        reproduction_of = (conf.get("airflow_ml") or {}).get("reproduction_of")
        body = {
            "logical_date": None,
            "conf": conf,
            "note": f"airflow-ml reproduce {reproduction_of}" if reproduction_of else "airflow-ml reproduce",
        }
        status, created = self._call("POST", f"{path}/dagRuns", body)
        if status == 404:
            raise AirflowApiError(f"DAG {dag_id!r} not found in the Airflow deployment at {self.url}")
        if not isinstance(created, Mapping) or not created.get("dag_run_id"):
            raise AirflowApiError(f"Airflow at {self.url} returned no run id for {dag_id!r}: {created!r:.300}")
        run_id = str(created["dag_run_id"])
        self.progress(f"triggered {dag_id} run {run_id} at {self.url}; waiting up to {self.timeout:g} s")
        state = self._wait(dag_id, run_id)
        self._final_state[run_id] = state
        if state != "success":
            failed = self._failed_tasks(dag_id, run_id)
            self.progress(
                f"run {run_id} finished {state}" + (f" (failed tasks: {', '.join(failed)})" if failed else "")
            )
        else:
            self.progress(f"run {run_id} finished {state}")
        return run_id

    def no_records_hint(self, run_id: str) -> str:
        state = self._final_state.get(run_id)
        if state and state != "success":
            return f": the run {state} at {self.url}; see its task logs there"
        return (
            f": the deployment at {self.url} must write to the same MLflow tracking store as this command "
            "(MLFLOW_TRACKING_URI / --tracking-uri)"
        )

    # -- helpers ------------------------------------------------------------------------------------

    def _run_path(self, dag_id: str, run_id: str) -> str:
        return f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"

    def _wait(self, dag_id: str, run_id: str) -> str:
        deadline = time.monotonic() + self.timeout
        last = None
        while True:
            status, run = self._call("GET", self._run_path(dag_id, run_id))
            if status == 404 or not isinstance(run, Mapping):
                raise AirflowApiError(f"run {run_id} of DAG {dag_id!r} disappeared from {self.url}")
            state = str(run.get("state"))
            if state != last:
                if last is not None:
                    self.progress(f"run {run_id}: {state}")
                last = state
            if state in TERMINAL_STATES:
                return state
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RunTimeout(
                    f"run {run_id} of DAG {dag_id!r} at {self.url} did not finish within {self.timeout:g} s "
                    f"(state: {state}); it keeps running in Airflow. Raise --timeout, or check the deployment's "
                    "scheduler and workers"
                )
            time.sleep(min(self.poll_interval, remaining))

    def _failed_tasks(self, dag_id: str, run_id: str) -> list[str]:
        try:
            status, body = self._call("GET", f"{self._run_path(dag_id, run_id)}/taskInstances")
        except AirflowApiError:
            return []
        if status != 200 or not isinstance(body, Mapping):
            return []
        return sorted(
            str(ti.get("task_id"))
            for ti in body.get("task_instances") or ()
            if ti.get("state") in ("failed", "upstream_failed")
        )


def _detail(body: Any) -> str:
    if isinstance(body, Mapping) and "detail" in body:
        detail = body["detail"]
        if isinstance(detail, list):
            return "; ".join(str(d.get("msg", d)) if isinstance(d, Mapping) else str(d) for d in detail)
        return str(detail)
    return str(body)[:500]
