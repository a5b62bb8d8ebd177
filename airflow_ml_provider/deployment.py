"""Settings that are right on one machine and wrong on several, found from the settings and warned about.

The provider cannot see the deployment, only its settings. Two defaults hold on one machine and break
as soon as tasks run on several workers:

- the artifact root defaults to ``$AIRFLOW_HOME/ml_artifacts``, a directory of the worker running the
  task: the next task of the DAG run (or a retry) may run on a worker where those datasets are not;
- without a PostgreSQL database to lock on, promotions are serialised by a file lock, which holds on
  one machine only: two workers promoting the same model at once can both move the alias.

Tasks run on one machine when ``[core] executor`` lists only LocalExecutor (Airflow's default) or
SequentialExecutor, or when the task runs in-process under ``dag.test()``. Any other executor (Celery,
Kubernetes, Edge, ECS...) may run the tasks of one DAG run on different machines.

An artifact root that is *set* is taken at its word: a local directory there is one the user says every
worker mounts at the same path (nothing can check that), so only the unset default is warned about. A
file lock is warned about whenever it may not be enough, because its failure is silent (the alias ends
where the last writer left it), while a missing dataset fails the next task loudly.

:func:`deployment_warnings` decides (pure). :func:`warn_about_artifact_root` (operators, where an artifact
root is used) and :func:`warn_about_promotion_lock` (where a promotion takes its lock) read the settings
and log each warning once per process, at WARNING, which puts it in the task log once. Each warning
says which option makes it go away. A check never fails a task.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from airflow_ml_provider import conf
from airflow_ml_provider.records.redaction import strip_credentials

log = logging.getLogger(__name__)

#: Executors that run every task on the machine of the scheduler.
LOCAL_EXECUTORS = frozenset({"LocalExecutor", "SequentialExecutor"})
#: Registry URI schemes of an MLflow server: other machines may promote against the same registry.
_SERVER_SCHEMES = frozenset({"http", "https", "databricks"})

Check = Literal["artifact_root", "promotion_lock"]


@dataclass(frozen=True)
class DeploymentWarning:
    """One setting that does not fit the deployment: which check found it, and what to do about it."""

    check: Check
    message: str


def executor_classes(executor: str | None) -> tuple[str, ...]:
    """The class names of the executors ``[core] executor`` configures, in order.

    Airflow accepts ``Name``, ``module.path.Name``, ``alias:module.path.Name``, comma-separated lists of
    those, and per-team lists (``global;team1=CeleryExecutor``). Empty or unset: Airflow's default,
    LocalExecutor.
    """
    classes = []
    for team in (executor or "").split(";"):
        for entry in team.rpartition("=")[2].split(","):
            name = entry.strip().rpartition(":")[2].rpartition(".")[2]
            if name:
                classes.append(name)
    return tuple(classes) or ("LocalExecutor",)


def deployment_warnings(
    executor: str | None,
    *,
    in_process: bool = False,
    default_artifact_root: str | None = None,
    file_lock: bool = False,
    registry_uri: str | None = None,
) -> list[DeploymentWarning]:
    """What is wrong with these settings for the deployment they describe; pure.

    :param executor: ``[core] executor`` as configured.
    :param in_process: the task runs in-process under ``dag.test()`` (one machine, whatever the executor).
    :param default_artifact_root: the artifact root in use when it is the worker-local default
        (``[ml_provider] artifact_root`` unset); None when one is set.
    :param file_lock: promotions are serialised by a file lock rather than PostgreSQL's advisory lock.
    :param registry_uri: the MLflow registry promotions write to (a server may be shared by machines).
    """
    remote = () if in_process else tuple(e for e in executor_classes(executor) if e not in LOCAL_EXECUTORS)
    runs_on = f"[core] executor = {', '.join(remote)} can run the tasks of one DAG run on different workers"
    found: list[DeploymentWarning] = []
    if remote and default_artifact_root is not None:
        found.append(
            DeploymentWarning(
                "artifact_root",
                f"[{conf.SECTION}] artifact_root is not set, so this task writes its datasets to "
                f"{default_artifact_root}, a directory of this worker; but {runs_on}, and the next task (or a "
                "retry) will not find them on another worker. Set "
                f"[{conf.SECTION}] artifact_root ({conf.OPTIONS['artifact_root'].env_var}) in every worker's "
                "environment to a directory every worker mounts at the same path, or to an object store URL "
                "such as s3://bucket/prefix (pip install 'airflow-ml-provider[s3]').",
            )
        )
    scheme = (registry_uri or "").split("://", 1)[0].lower()
    server = strip_credentials(registry_uri) if registry_uri and scheme in _SERVER_SCHEMES else None
    if file_lock and (remote or server):
        reasons = [runs_on] if remote else []
        if server:
            reasons.append(f"the MLflow registry is a server ({server}) that other machines may promote against")
        found.append(
            DeploymentWarning(
                "promotion_lock",
                "Promotions are serialised by a file lock, which holds on this machine only; but "
                f"{' and '.join(reasons)}. Two promotions of one model at once on different machines can both "
                "move the alias (MLflow aliases have no compare-and-set). Set "
                f"[{conf.SECTION}] lock_uri ({conf.OPTIONS['lock_uri'].env_var}) in every worker's environment "
                "to a PostgreSQL database they all reach (postgresql://user@host:5432/db): its advisory lock "
                "holds across machines.",
            )
        )
    return found


# --- reading the settings and logging (impure) ----------------------------------------------------

#: Warnings already logged by this process: each is written once, however many tasks or calls see it.
_logged: set[DeploymentWarning] = set()


def warn_about_artifact_root(root: str, *, is_default: bool) -> None:
    """Warn (once per process) when ``root`` is the worker-local default and tasks may run elsewhere."""
    if is_default:
        _warn(default_artifact_root=root)


def warn_about_promotion_lock(registry_uri: str) -> None:
    """Warn (once per process) that the file lock a promotion is about to take may not be enough."""
    _warn(file_lock=True, registry_uri=registry_uri)


def _warn(
    *, default_artifact_root: str | None = None, file_lock: bool = False, registry_uri: str | None = None
) -> None:
    try:
        found = deployment_warnings(
            _configured_executor(),
            in_process=_in_dag_test(),
            default_artifact_root=default_artifact_root,
            file_lock=file_lock,
            registry_uri=registry_uri,
        )
    except Exception:  # a check never fails a task
        log.debug("Could not check the deployment settings", exc_info=True)
        return
    _log_once(found)


def _log_once(found: Iterable[DeploymentWarning]) -> None:
    for warning in found:
        if warning not in _logged:
            _logged.add(warning)
            log.warning("%s", warning.message)


def _configured_executor() -> str | None:
    from airflow.sdk import conf as airflow_conf

    value = airflow_conf.get("core", "executor", fallback=None)
    return str(value) if value else None


def _in_dag_test() -> bool:
    """Whether this task runs in-process under ``dag.test()`` (Airflow's in-process supervisor serves it).

    Read from Airflow's task runner without importing it; if Airflow renames that class this answers
    False, and a ``dag.test()`` under a remote executor gets a needless warning, nothing worse.
    """
    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    return type(comms).__name__ == "InProcessSupervisorComms"
