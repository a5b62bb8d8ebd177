"""
Promotion and rollback of a registry alias: the I/O core that the operators and the CLI share.

MLflow aliases are plain upserts with no compare-and-set, so every move of an alias here happens
under :func:`airflow_ml_provider.promotion.lock.promotion_lock` (a PostgreSQL advisory lock when the registry
is PostgreSQL, a file lock otherwise), follows :func:`decide_promotion`, is read back after writing,
and is recorded on the model version whatever its outcome.

Both directions require the version that ends up holding the alias to carry a passing gate verdict
for its exact artifact fingerprint (:func:`~airflow_ml_provider.promotion.eligibility.require_passing_verdict`).

Every registry call goes through :class:`~airflow_ml_provider.hooks.mlflow.MlflowHook`; the registry's
URI (the connection's registry, else its tracking store) is also the promotion lock's key.

The rule and the attempt's result are pure, in :mod:`airflow_ml_provider.promotion.rule`. This module
imports only the standard library and that rule at import time (DAG parse cost is zero).
"""

from __future__ import annotations

import getpass
import json
import logging
import socket
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from airflow_ml_provider.exceptions import AirflowMLError
from airflow_ml_provider.parsing import utc_now
from airflow_ml_provider.promotion.rule import (
    Decision,
    Mode,
    Outcome,
    PromotionResult,
    decide_promotion,
    version_number,
)
from airflow_ml_provider.records.tags import TAG_ATTEMPT_PREFIX, TAG_PROMOTED_BY, previous_tag, rolled_back_tag

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.promotion.lock import HeldLock
    from airflow_ml_provider.records.step_run import StepRun

log = logging.getLogger(__name__)

#: Value of the previous-holder tag (:func:`~airflow_ml_provider.records.tags.previous_tag`) on the
#: first version to hold an alias.
NO_PREVIOUS = "none"


# =================================================================================================
# The core: lock, decide, write, read back, record
# =================================================================================================


class PromotionError(AirflowMLError, RuntimeError):
    """The attempt did not complete (lock, registry failure, alias read back wrong); the message says
    what happened, whether the alias moved, and what to do. Retrying is safe."""

    def __init__(self, message: str, result: PromotionResult | None = None) -> None:
        super().__init__(message)
        self.result = result


def cli_actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a container: still say which machine
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def airflow_actor(context: Mapping[str, Any]) -> str:
    ti = context["ti"]
    return f"airflow:{ti.dag_id}/{ti.run_id}/{ti.task_id}#{ti.try_number}"


def record_attempt(
    run: StepRun, context: Mapping[str, Any], attempt: Callable[..., PromotionResult], *args: Any, **kwargs: Any
) -> PromotionResult:
    """Run a promotion or rollback for an operator, as the task (:func:`airflow_actor`) and with the step
    run's id as the attempt id; put its result in the step record, also when it fails part-way
    (``PromotionError.result``), then log the one-line summary."""
    try:
        result = attempt(*args, actor=airflow_actor(context), attempt_id=run.run_id, **kwargs)
    except PromotionError as e:
        if e.result is not None:
            run.record.results = e.result
        raise
    run.record.results = result
    log.info("%s", result.summary())
    return result


class AttemptOptions(TypedDict, total=False):
    """What :func:`promote` and :func:`rollback` take besides the model.

    ``alias`` (default ``champion``); ``actor``, who is recorded (default :func:`cli_actor`);
    ``attempt_id`` (default a new UUID; the operators pass their step run's id); ``lock_timeout``,
    seconds to wait for a concurrent promotion of the same model (default 60); ``lock_uri``, a
    PostgreSQL URI to lock on instead of the registry (see :func:`~airflow_ml_provider.promotion.lock.promotion_lock`).
    """

    alias: str
    actor: str | None
    attempt_id: str | None
    lock_timeout: float
    lock_uri: str | None


def promote(
    hook: MlflowHook, model_name: str, version: int | str, **options: Unpack[AttemptOptions]
) -> PromotionResult:
    """Move the alias to ``version`` if it has a passing verdict and the rule allows it.

    Returns the recorded result for every decided outcome (promoted, unchanged, superseded, refused);
    raises :class:`PromotionError` when the attempt cannot complete.
    """
    return _Attempt(hook, model_name, Mode.PROMOTE, str(version_number(version)), **options).run()


def rollback(hook: MlflowHook, model_name: str, **options: Unpack[AttemptOptions]) -> PromotionResult:
    """Move the alias back to the previous holder recorded on its current holder, with the same checks."""
    return _Attempt(hook, model_name, Mode.ROLLBACK, None, **options).run()


def _error_detail(error: BaseException) -> str:
    """Name the kind of failure without quoting the database driver's text."""
    code = getattr(error, "error_code", None)
    return f"MLflow error {code}" if code else type(error).__name__


class _Attempt:
    def __init__(
        self,
        hook: MlflowHook,
        name: str,
        mode: Mode,
        candidate: str | None,
        *,
        alias: str = "champion",
        actor: str | None = None,
        attempt_id: str | None = None,
        lock_timeout: float = 60.0,
        lock_uri: str | None = None,
    ) -> None:
        if not name or not isinstance(name, str):
            raise ValueError(f"model name must be a non-empty string, got {name!r}")
        if not alias or not isinstance(alias, str):
            raise ValueError(f"alias must be a non-empty string, got {alias!r}")
        self.hook = hook
        self.registry_uri = hook.registry_uri
        self.name = name
        self.alias = alias
        self.mode = mode
        self.candidate = candidate
        self.actor = actor or cli_actor()
        self.attempt_id = attempt_id or uuid.uuid4().hex
        self.lock_timeout = lock_timeout
        self.lock_uri = lock_uri
        self.started = utc_now()
        self.holder: str | None = None
        self.record_version: str | None = candidate  # the version the attempt is recorded on
        self.step = "waiting for the promotion lock"
        self.alias_written = False

    # --- driver ------------------------------------------------------------------------------
    def run(self) -> PromotionResult:
        from mlflow.exceptions import MlflowException
        from sqlalchemy.exc import SQLAlchemyError

        from airflow_ml_provider.promotion.lock import LockError, promotion_lock
        from airflow_ml_provider.records.redaction import strip_credentials

        try:
            with promotion_lock(self.registry_uri, self.name, self.lock_timeout, lock_uri=self.lock_uri) as lock:
                return self._locked(lock)
        except PromotionError as e:
            raise self._failed(f"{self._what()} failed: {e}", e) from e
        except LockError as e:  # raised before the alias is written
            raise self._failed(f"{self._what()} did not complete: {e} The alias was not changed.", e) from e
        except (MlflowException, SQLAlchemyError, OSError) as e:  # the registry or its database failed
            if self.alias_written:
                state = (
                    f"The alias {self.alias!r} may already have moved: run `airflow-ml status {self.name} "
                    f"--alias {self.alias}` to see where it points."
                )
            else:
                state = f"The alias {self.alias!r} was not changed."
            registry = strip_credentials(self.registry_uri, keep_user=True)
            message = (
                f"{self._what()} did not complete: the MLflow registry at {registry} failed "
                f"while {self.step} ({_error_detail(e)}). {state} Check that the registry is reachable and "
                "retry; retrying is safe (a version that already holds the alias is left as it is)."
            )
            raise self._failed(message, e) from e

    def _what(self) -> str:
        if self.mode is Mode.PROMOTE:
            return f"Promotion of models:/{self.name}/{self.candidate} to alias {self.alias!r}"
        return f"Rollback of alias {self.alias!r} of {self.name!r}"

    # --- under the lock ----------------------------------------------------------------------
    def _locked(self, lock: HeldLock) -> PromotionResult:
        from airflow_ml_provider.records.redaction import strip_credentials

        self.step = f"reading registered model {self.name!r}"
        if not self.hook.registered_model_exists(self.name):
            self.record_version = None
            registry = strip_credentials(self.registry_uri, keep_user=True)
            raise PromotionError(
                f"there is no registered model {self.name!r} in the registry at {registry}; "
                "check the name and the MLflow connection"
            ) from None
        self.step = f"reading alias {self.alias!r}"
        self.holder = self.hook.alias_version(self.name, self.alias)
        if self.mode is Mode.PROMOTE:
            decision, target = self._decide_promote(), self.candidate
        else:
            decision, target = self._decide_rollback()
        if decision.outcome.moves_alias:
            assert target is not None
            self._move(lock, target)
        after = target if decision.outcome.moves_alias else self.holder
        result = self._result(decision.outcome, decision.reason, target, after)
        self.step = "recording the attempt"
        return self._record(result, strict=True)

    def _version(self, version: str) -> Any | None:
        """The model version, or None if it does not exist; other registry errors propagate."""
        self.step = f"reading version {version}"
        return self.hook.model_version(self.name, version)

    def _verdict_refusal(self, version: str, model_version: Any) -> Decision | None:
        from airflow_ml_provider.model.reference import ModelRef
        from airflow_ml_provider.promotion.eligibility import PromotionRefused, require_passing_verdict

        self.step = f"reading the gate verdict of version {version}"
        try:
            require_passing_verdict(self.hook, ModelRef(self.name, version), model_version)
        except PromotionRefused as e:
            return Decision(Outcome.REFUSED, f"version {version} may not hold the alias: {e}")
        return None

    def _decide_promote(self) -> Decision:
        assert self.candidate is not None
        version = self._version(self.candidate)
        if version is None:
            self.record_version = None
            return Decision(Outcome.REFUSED, f"version {self.candidate} does not exist in the registry")
        # Fail closed first: no attempt on a version without a passing verdict succeeds, not even a no-op.
        refusal = self._verdict_refusal(self.candidate, version)
        if refusal is not None:
            return refusal
        return decide_promotion(
            self.candidate,
            self.holder,
            mode=Mode.PROMOTE,
            candidate_rolled_back=rolled_back_tag(self.alias) in version.tags,
        )

    def _decide_rollback(self) -> tuple[Decision, str | None]:
        self.record_version = self.holder
        if self.holder is None:
            return decide_promotion(None, None, mode=Mode.ROLLBACK), None
        holder = self._version(self.holder)
        if holder is None:
            self.record_version = None
            return Decision(Outcome.REFUSED, f"the alias points to version {self.holder}, which no longer exists"), None
        recorded = holder.tags.get(previous_tag(self.alias))
        target = None if recorded in (None, "", NO_PREVIOUS) else recorded
        if target is not None and not str(target).isdigit():
            return Decision(Outcome.REFUSED, f"the recorded previous holder {target!r} is not a version number"), None
        previous = None if target is None else self._version(target)
        if target is not None and previous is None:
            return Decision(Outcome.REFUSED, f"the previous holder, version {target}, no longer exists"), target
        decision = decide_promotion(
            target,
            self.holder,
            mode=Mode.ROLLBACK,
            candidate_rolled_back=previous is not None and rolled_back_tag(self.alias) in previous.tags,
        )
        if decision.outcome.moves_alias:
            assert target is not None
            refusal = self._verdict_refusal(target, previous)
            if refusal is not None:
                return refusal, target
        return decision, target

    def _move(self, lock: HeldLock, target: str) -> None:
        hook, name, alias = self.hook, self.name, self.alias
        lock.verify()
        if self.mode is Mode.PROMOTE:
            # Written before the alias moves: a crash in between leaves a harmless tag, never a
            # promoted version without its previous holder (which rollback needs).
            self.step = f"tagging version {target} with the previous holder"
            hook.set_model_version_tags(
                name, target, {previous_tag(alias): self.holder or NO_PREVIOUS, TAG_PROMOTED_BY: self.attempt_id}
            )
        else:
            # Marked before the alias moves back, so that a stale retry cannot promote it again.
            assert self.holder is not None
            self.step = f"marking version {self.holder} as rolled back"
            marker = {"to": target, "at": self.started.isoformat(), "by": self.actor, "attempt_id": self.attempt_id}
            hook.set_model_version_tags(name, self.holder, {rolled_back_tag(alias): json.dumps(marker)})
        self.step = f"moving alias {alias!r} to version {target}"
        lock.verify()
        self.alias_written = True
        hook.set_alias(name, alias, target)
        self.step = f"reading alias {alias!r} back"
        now = hook.alias_version(name, alias)
        if now != target:
            raise PromotionError(
                f"alias {alias!r} of {name!r} reads back as version {now or '(unset)'} right after it was set "
                f"to version {target}: something wrote it without taking the promotion lock (a tool other than "
                "airflow-ml, or a worker on another machine using a file lock). Find that writer, then run "
                f"`airflow-ml status {name} --alias {alias}` and promote again."
            )

    # --- results and records -----------------------------------------------------------------
    def _result(self, outcome: Outcome, reason: str, target: str | None, after: str | None) -> PromotionResult:
        return PromotionResult(
            mode=self.mode,
            outcome=outcome,
            model_name=self.name,
            alias=self.alias,
            version=target if self.mode is Mode.ROLLBACK else self.candidate,
            holder_before=self.holder,
            holder_after=after,
            reason=reason,
            attempt_id=self.attempt_id,
            at=self.started.isoformat(),
            by=self.actor,
        )

    def _record(self, result: PromotionResult, *, strict: bool) -> PromotionResult:
        """Tag the attempt on its version (or on the registered model when there is none)."""
        import dataclasses

        key = f"{TAG_ATTEMPT_PREFIX}{self.started.strftime('%Y%m%dT%H%M%S.%fZ')}.{self.attempt_id}"
        version = self.record_version
        where = f"models:/{self.name}/{version}" if version else f"models:/{self.name}"
        result = dataclasses.replace(result, recorded_on=where)
        value = json.dumps(result.to_dict())
        try:
            if version:
                self.hook.set_model_version_tags(self.name, version, {key: value})
            else:
                self.hook.set_registered_model_tag(self.name, key, value)
        except Exception as e:
            if strict:
                raise
            log.warning("Could not record the failed attempt %s on %s (%s)", self.attempt_id, where, _error_detail(e))
            return dataclasses.replace(result, recorded_on=None)
        return result

    def _failed(self, message: str, cause: BaseException) -> PromotionError:
        """Record an attempt that did not complete (best effort) and build the error to raise."""
        result = self._result(Outcome.ERROR, message, self.candidate if self.mode is Mode.PROMOTE else None, None)
        return PromotionError(message, self._record(result, strict=False))
