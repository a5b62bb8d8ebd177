"""
The promotion rule, and the record of one attempt: pure data and a pure decision, no I/O.

:func:`decide_promotion` says whether an alias may move; :class:`PromotionResult` is what an attempt
did, as the attempt tag and the promote/rollback step record hold it. The I/O around them (lock,
write, read back) is :mod:`airflow_ml_provider.promotion.attempt`.

The rule (pure, no I/O):

- promote: the newest gated version wins. A version older than the current holder of the alias never
  replaces it (outcome ``superseded``: a correct result, not an error); promoting the version that
  already holds the alias changes nothing (``unchanged``); a version that was rolled back from this
  alias is not promoted again (``refused``) until someone removes its ``airflow_ml.rolled_back.<alias>``
  tag.
- rollback: the alias goes back to the previous holder recorded when the current one was promoted.
  That version is older by design, so the "older never replaces newer" rule does not apply; the
  version rolled back from is marked so that no stale retry promotes it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from airflow_ml_provider.parsing import optional_text, optional_version, parse_time, require_keys, require_text

#: The keys of :meth:`PromotionResult.to_dict`, in order (``recorded_on`` last: it may be absent).
_RESULT_KEYS = (
    "mode",
    "outcome",
    "model_name",
    "alias",
    "version",
    "holder_before",
    "holder_after",
    "reason",
    "attempt_id",
    "at",
    "by",
    "recorded_on",
)


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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PromotionResult:
        """Read :meth:`to_dict` back strictly (a step record, an attempt tag); malformed data raises ``ValueError``."""
        data = require_keys(data, "promotion result", _RESULT_KEYS[:-1], ("recorded_on",))
        try:
            mode, outcome = Mode(data["mode"]), Outcome(data["outcome"])
        except ValueError as e:
            raise ValueError(f"promotion result: {e}") from None
        return cls(
            mode=mode,
            outcome=outcome,
            model_name=require_text(data["model_name"], "promotion result model_name"),
            alias=require_text(data["alias"], "promotion result alias"),
            version=optional_version(data["version"], "promotion result version"),
            holder_before=optional_version(data["holder_before"], "promotion result holder_before"),
            holder_after=optional_version(data["holder_after"], "promotion result holder_after"),
            reason=require_text(data["reason"], "promotion result reason"),
            attempt_id=require_text(data["attempt_id"], "promotion result attempt_id"),
            at=_time_text(data["at"], "promotion result at"),
            by=require_text(data["by"], "promotion result by"),
            recorded_on=optional_text(data.get("recorded_on"), "promotion result recorded_on"),
        )

    def summary(self) -> str:
        before = f"v{self.holder_before}" if self.holder_before else "(unset)"
        after = f"v{self.holder_after}" if self.holder_after else "(unset)"
        subject = f"models:/{self.model_name}/{self.version}" if self.version else f"models:/{self.model_name}"
        head = f"{self.mode.value} {subject} alias {self.alias!r}: {self.outcome.value}"
        return f"{head} ({before} -> {after}): {self.reason}"


def _time_text(value: object, name: str) -> str:
    """A recorded time kept as written, once it is known to parse (aware ISO-8601)."""
    parse_time(value, name)
    return str(value)
