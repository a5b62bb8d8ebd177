"""
Promotion and rollback of a registry alias: the rule, and the core that the operators and the CLI share.

MLflow aliases are plain upserts with no compare-and-set, so every move of an alias here happens
under :func:`airflow_ml_provider.promotion.lock.promotion_lock` (a PostgreSQL advisory lock when the registry
is PostgreSQL, a file lock otherwise), follows :func:`decide_promotion`, is read back after writing,
and is recorded on the model version whatever its outcome.

The rule (pure, no I/O):

- promote: the newest gated version wins. A version older than the current holder of the alias never
  replaces it (outcome ``superseded``: a correct result, not an error); promoting the version that
  already holds the alias changes nothing (``unchanged``); a version that was rolled back from this
  alias is not promoted again (``refused``) until someone removes its ``airflow_ml.rolled_back.<alias>``
  tag.
- rollback: the alias goes back to the previous holder recorded when the current one was promoted.
  That version is older by design, so the "older never replaces newer" rule does not apply; the
  version rolled back from is marked so that no stale retry promotes it again.

Both directions require the version that ends up holding the alias to carry a passing gate verdict
for its exact artifact fingerprint (:func:`~airflow_ml_provider.operators.promote.require_passing_verdict`).

This module imports only the standard library at import time (DAG parse cost is zero).
"""

from __future__ import annotations

import getpass
import json
import logging
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from airflow_ml_provider.promotion.lock import HeldLock
    from airflow_ml_provider.records.step_run import StepRun

log = logging.getLogger(__name__)

#: On the promoted version: the version that held the alias before it ("none" for the first).
TAG_PREVIOUS_CHAMPION = "airflow_ml.previous_champion"
#: On the promoted version: the attempt (the promote step's MLflow run id) that promoted it.
TAG_PROMOTED_BY = "airflow_ml.promoted_by"
#: One tag per attempt on the version it was about (on the registered model when there is no such
#: version): ``<prefix><UTC time>.<attempt id>`` = the JSON of :class:`PromotionResult`.
TAG_ATTEMPT_PREFIX = "airflow_ml.promotion."
#: On a version the alias was rolled back from: ``<prefix><alias>`` = JSON (to, at, by).
TAG_ROLLED_BACK_PREFIX = "airflow_ml.rolled_back."
#: Value of the previous-holder tag on the first version to hold an alias.
NO_PREVIOUS = "none"


def previous_tag(alias: str) -> str:
    """Tag holding the previous holder of ``alias`` (``airflow_ml.previous_champion`` for ``champion``)."""
    return TAG_PREVIOUS_CHAMPION if alias == "champion" else f"airflow_ml.previous.{alias}"


def rolled_back_tag(alias: str) -> str:
    return TAG_ROLLED_BACK_PREFIX + alias


# =================================================================================================
# The rule
# =================================================================================================


class Mode(str, Enum):
    """Which way the alias moves; the rule differs."""

    #: Forward: the newest gated version wins; an older version never replaces a newer holder.
    PROMOTE = "promote"
    #: Backward, on purpose: restore the recorded previous holder, which is normally older.
    ROLLBACK = "rollback"


class Outcome(str, Enum):
    PROMOTED = "promoted"  # the alias now points to the candidate
    RESTORED = "restored"  # rollback: the alias points to the previous holder again
    UNCHANGED = "unchanged"  # the candidate already held the alias; nothing written but the record
    SUPERSEDED = "superseded"  # an older version lost to the newer holder: correct, not an error
    REFUSED = "refused"  # the candidate may not hold the alias; the reason says why
    ERROR = "error"  # the attempt did not complete (lock, registry); see the error

    @property
    def moves_alias(self) -> bool:
        return self in (Outcome.PROMOTED, Outcome.RESTORED)


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str


def version_number(value: object, what: str = "version") -> int:
    """A registry version as an int; MLflow hands out both ``3`` and ``"3"``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{what} must be a model version number, got {value!r}")
    text = str(value).strip()
    if not text.isdigit():
        raise ValueError(f"{what} must be a model version number, got {value!r}")
    return int(text)


def decide_promotion(
    candidate: int | str | None,
    holder: int | str | None,
    *,
    mode: Mode,
    candidate_rolled_back: bool = False,
) -> Decision:
    """Decide whether the alias may move from ``holder`` to ``candidate``. Pure: no I/O.

    :param candidate: the version that would hold the alias; in ``Mode.ROLLBACK`` the previous holder
        recorded on ``holder`` (None when nothing was recorded).
    :param holder: the version holding the alias now, or None.
    :param mode: ``Mode.PROMOTE`` applies "an older version never replaces a newer holder";
        ``Mode.ROLLBACK`` deliberately moves back to the recorded previous holder, whatever its number.
    :param candidate_rolled_back: the alias was rolled back from ``candidate`` before; it may not
        hold the alias again in either mode until the marker tag is removed.

    The gate verdict is not part of this rule: it is checked separately, and any refusal there wins.
    """
    mode = Mode(mode)
    current = None if holder is None else version_number(holder, "holder")
    if mode is Mode.PROMOTE:
        if candidate is None:
            raise ValueError("promotion needs a candidate version")
        wanted = version_number(candidate, "candidate")
        if wanted == current:
            return Decision(Outcome.UNCHANGED, f"version {wanted} already holds the alias; nothing to do")
        if candidate_rolled_back:
            return Decision(
                Outcome.REFUSED,
                f"the alias was rolled back from version {wanted}; it is not promoted again until its "
                "rolled-back tag is removed",
            )
        if current is not None and wanted < current:
            return Decision(
                Outcome.SUPERSEDED,
                f"the alias points to newer version {current}; an older version never replaces a newer one",
            )
        if current is None:
            return Decision(Outcome.PROMOTED, f"version {wanted} is the first to hold the alias")
        return Decision(Outcome.PROMOTED, f"version {wanted} is newer than version {current}")

    if current is None:
        return Decision(Outcome.REFUSED, "no version holds the alias, so there is nothing to roll back")
    if candidate is None:
        return Decision(
            Outcome.REFUSED,
            f"version {current} holds the alias but no previous holder was recorded when it was promoted "
            "(it was the first, or it was set outside airflow-ml)",
        )
    wanted = version_number(candidate, "candidate")
    if wanted == current:
        return Decision(Outcome.REFUSED, f"version {current} is recorded as its own previous holder")
    if candidate_rolled_back:
        return Decision(
            Outcome.REFUSED,
            f"the previous holder, version {wanted}, was itself rolled back from before; restore a version "
            "by promoting it explicitly",
        )
    return Decision(Outcome.RESTORED, f"version {wanted} held the alias before version {current}")


# =================================================================================================
# The core: lock, decide, write, read back, record
# =================================================================================================


class PromotionError(RuntimeError):
    """The attempt did not complete (lock, registry failure, alias read back wrong); the message says
    what happened, whether the alias moved, and what to do. Retrying is safe."""

    def __init__(self, message: str, result: PromotionResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class PromotionResult:
    """What one attempt did; recorded as JSON on the version it was about."""

    mode: Mode
    outcome: Outcome
    model_name: str
    alias: str
    #: The version the alias was to move to (None in a rollback with nothing to restore).
    version: str | None
    holder_before: str | None
    holder_after: str | None
    reason: str
    attempt_id: str
    at: str
    by: str
    #: Where the attempt is recorded: ``models:/<name>/<version>``, ``models:/<name>`` or None if it could not be.
    recorded_on: str | None = None

    @property
    def changed(self) -> bool:
        return self.outcome.moves_alias

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "outcome": self.outcome.value,
            "model_name": self.model_name,
            "alias": self.alias,
            "version": self.version,
            "holder_before": self.holder_before,
            "holder_after": self.holder_after,
            "reason": self.reason,
            "attempt_id": self.attempt_id,
            "at": self.at,
            "by": self.by,
            "recorded_on": self.recorded_on,
        }

    def summary(self) -> str:
        before = f"v{self.holder_before}" if self.holder_before else "(unset)"
        after = f"v{self.holder_after}" if self.holder_after else "(unset)"
        subject = f"models:/{self.model_name}/{self.version}" if self.version else f"models:/{self.model_name}"
        head = f"{self.mode.value} {subject} alias {self.alias!r}: {self.outcome.value}"
        return f"{head} ({before} -> {after}): {self.reason}"


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
    run: StepRun, attempt: Callable[..., PromotionResult], *args: Any, **kwargs: Any
) -> PromotionResult:
    """Run a promotion or rollback for an operator and put its result in the step record, also when
    it fails part-way (``PromotionError.result``), then log the one-line summary."""
    try:
        result = attempt(*args, **kwargs)
    except PromotionError as e:
        if e.result is not None:
            run.record.results = e.result.to_dict()
        raise
    run.record.results = result.to_dict()
    log.info("%s", result.summary())
    return result


def promote(
    client: MlflowClient,
    model_name: str,
    version: int | str,
    *,
    registry_uri: str,
    alias: str = "champion",
    actor: str | None = None,
    attempt_id: str | None = None,
    lock_timeout: float = 60.0,
    lock_uri: str | None = None,
) -> PromotionResult:
    """Move ``alias`` to ``version`` if it has a passing verdict and the rule allows it.

    Returns the recorded result for every decided outcome (promoted, unchanged, superseded, refused);
    raises :class:`PromotionError` when the attempt cannot complete.
    """
    candidate = str(version_number(version))
    return _Attempt(
        client, registry_uri, model_name, alias, Mode.PROMOTE, candidate, actor, attempt_id, lock_timeout, lock_uri
    ).run()


def rollback(
    client: MlflowClient,
    model_name: str,
    *,
    registry_uri: str,
    alias: str = "champion",
    actor: str | None = None,
    attempt_id: str | None = None,
    lock_timeout: float = 60.0,
    lock_uri: str | None = None,
) -> PromotionResult:
    """Move ``alias`` back to the previous holder recorded on its current holder, with the same checks."""
    return _Attempt(
        client, registry_uri, model_name, alias, Mode.ROLLBACK, None, actor, attempt_id, lock_timeout, lock_uri
    ).run()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _error_detail(error: BaseException) -> str:
    """Name the kind of failure without quoting the database driver's text."""
    code = getattr(error, "error_code", None)
    return f"MLflow error {code}" if code else type(error).__name__


class _Attempt:
    def __init__(
        self,
        client: MlflowClient,
        registry_uri: str,
        name: str,
        alias: str,
        mode: Mode,
        candidate: str | None,
        actor: str | None,
        attempt_id: str | None,
        lock_timeout: float,
        lock_uri: str | None,
    ) -> None:
        if not name or not isinstance(name, str):
            raise ValueError(f"model name must be a non-empty string, got {name!r}")
        if not alias or not isinstance(alias, str):
            raise ValueError(f"alias must be a non-empty string, got {alias!r}")
        self.client = client
        self.registry_uri = registry_uri
        self.name = name
        self.alias = alias
        self.mode = mode
        self.candidate = candidate
        self.actor = actor or cli_actor()
        self.attempt_id = attempt_id or uuid.uuid4().hex
        self.lock_timeout = lock_timeout
        self.lock_uri = lock_uri
        self.started = _now()
        self.holder: str | None = None
        self.record_version: str | None = candidate  # the version the attempt is recorded on
        self.step = "waiting for the promotion lock"
        self.alias_written = False

    # --- driver ------------------------------------------------------------------------------
    def run(self) -> PromotionResult:
        from mlflow.exceptions import MlflowException
        from sqlalchemy.exc import SQLAlchemyError

        from airflow_ml_provider.promotion.lock import LockError, promotion_lock, redact

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
            message = (
                f"{self._what()} did not complete: the MLflow registry at {redact(self.registry_uri)} failed "
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
        from mlflow.exceptions import MlflowException

        from airflow_ml_provider.model.reference import current_alias_version
        from airflow_ml_provider.promotion.lock import redact

        self.step = f"reading registered model {self.name!r}"
        try:
            self.client.get_registered_model(self.name)
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            self.record_version = None
            raise PromotionError(
                f"there is no registered model {self.name!r} in the registry at {redact(self.registry_uri)}; "
                "check the name and the MLflow connection"
            ) from None
        self.step = f"reading alias {self.alias!r}"
        self.holder = current_alias_version(self.client, self.name, self.alias)
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
        from mlflow.exceptions import MlflowException

        self.step = f"reading version {version}"
        try:
            return self.client.get_model_version(self.name, version)
        except MlflowException as e:
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def _verdict_refusal(self, version: str, model_version: Any) -> Decision | None:
        from airflow_ml_provider.model.reference import ModelRef
        from airflow_ml_provider.operators.promote import PromotionRefused, require_passing_verdict

        self.step = f"reading the gate verdict of version {version}"
        try:
            require_passing_verdict(self.client, ModelRef(self.name, version), model_version)
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
        from airflow_ml_provider.model.reference import current_alias_version

        client, name, alias = self.client, self.name, self.alias
        lock.verify()
        if self.mode is Mode.PROMOTE:
            # Written before the alias moves: a crash in between leaves a harmless tag, never a
            # promoted version without its previous holder (which rollback needs).
            self.step = f"tagging version {target} with the previous holder"
            client.set_model_version_tag(name, target, previous_tag(alias), self.holder or NO_PREVIOUS)
            client.set_model_version_tag(name, target, TAG_PROMOTED_BY, self.attempt_id)
        else:
            # Marked before the alias moves back, so that a stale retry cannot promote it again.
            assert self.holder is not None
            self.step = f"marking version {self.holder} as rolled back"
            marker = {"to": target, "at": self.started.isoformat(), "by": self.actor, "attempt_id": self.attempt_id}
            client.set_model_version_tag(name, self.holder, rolled_back_tag(alias), json.dumps(marker))
        self.step = f"moving alias {alias!r} to version {target}"
        lock.verify()
        self.alias_written = True
        client.set_registered_model_alias(name, alias, target)
        self.step = f"reading alias {alias!r} back"
        now = current_alias_version(client, name, alias)
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
                self.client.set_model_version_tag(self.name, version, key, value)
            else:
                self.client.set_registered_model_tag(self.name, key, value)
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
