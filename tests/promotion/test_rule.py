"""The promotion rule, a pure function: the newest gated version wins, an older one never replaces a
newer holder, the holder itself is a no-op, and rollback deliberately goes back."""

from __future__ import annotations

import itertools
import random

import pytest

from airflow_ml_provider.promotion.rule import Mode, Outcome, decide_promotion, version_number

P, R = Mode.PROMOTE, Mode.ROLLBACK


@pytest.mark.parametrize(
    ("candidate", "holder", "outcome", "in_reason"),
    [
        ("1", None, Outcome.PROMOTED, "first"),
        ("3", "2", Outcome.PROMOTED, "newer than version 2"),
        ("10", "9", Outcome.PROMOTED, "newer"),  # numbers, not strings: "10" < "9" as text
        ("2", "3", Outcome.SUPERSEDED, "newer version 3"),
        ("9", "10", Outcome.SUPERSEDED, "newer version 10"),
        ("4", "4", Outcome.UNCHANGED, "already holds"),
        (4, "4", Outcome.UNCHANGED, "already holds"),  # MLflow hands out ints and strings
        ("4", 3, Outcome.PROMOTED, "newer"),
    ],
)
def test_promote(candidate: object, holder: object, outcome: Outcome, in_reason: str) -> None:
    decision = decide_promotion(candidate, holder, mode=P)  # type: ignore[arg-type]
    assert decision.outcome is outcome
    assert in_reason in decision.reason


def test_a_version_rolled_back_from_is_not_promoted_again() -> None:
    decision = decide_promotion("5", "3", mode=P, candidate_rolled_back=True)
    assert decision.outcome is Outcome.REFUSED
    assert "rolled back" in decision.reason and "tag is removed" in decision.reason


def test_the_rolled_back_marker_does_not_turn_a_no_op_into_a_failure() -> None:
    assert decide_promotion("5", "5", mode=P, candidate_rolled_back=True).outcome is Outcome.UNCHANGED


@pytest.mark.parametrize(
    ("candidate", "holder", "rolled_back", "outcome", "in_reason"),
    [
        ("3", "5", False, Outcome.RESTORED, "held the alias before version 5"),
        # Older by design: the rule that blocks older versions in PROMOTE mode does not apply.
        ("1", "8", False, Outcome.RESTORED, "before version 8"),
        # The record decides, not the number (e.g. an alias moved by hand before airflow-ml managed it).
        ("6", "5", False, Outcome.RESTORED, "before version 5"),
        (None, None, False, Outcome.REFUSED, "nothing to roll back"),
        (None, "5", False, Outcome.REFUSED, "no previous holder was recorded"),
        ("5", "5", False, Outcome.REFUSED, "its own previous holder"),
        ("3", "5", True, Outcome.REFUSED, "itself rolled back"),
    ],
)
def test_rollback(
    candidate: str | None, holder: str | None, rolled_back: bool, outcome: Outcome, in_reason: str
) -> None:
    decision = decide_promotion(candidate, holder, mode=R, candidate_rolled_back=rolled_back)
    assert decision.outcome is outcome
    assert in_reason in decision.reason


def test_the_same_move_is_superseded_forward_but_restored_backward() -> None:
    assert decide_promotion("3", "5", mode=P).outcome is Outcome.SUPERSEDED
    assert decide_promotion("3", "5", mode=R).outcome is Outcome.RESTORED


def test_mode_is_required_and_checked() -> None:
    with pytest.raises(TypeError):
        decide_promotion("3", "2")  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        decide_promotion("3", "2", mode="sideways")  # type: ignore[arg-type]
    assert decide_promotion("3", "2", mode="promote").outcome is Outcome.PROMOTED  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "v3", "3.0", "-1", True, 3.0, None, [3]])
def test_versions_must_be_version_numbers(bad: object) -> None:
    with pytest.raises(ValueError, match="model version number|needs a candidate"):
        decide_promotion(bad, "2", mode=P)  # type: ignore[arg-type]
    if bad is not None:
        with pytest.raises(ValueError, match="model version number"):
            decide_promotion("2", bad, mode=P)  # type: ignore[arg-type]


def test_version_number() -> None:
    assert version_number("12") == 12 and version_number(7) == 7 and version_number(" 4 ") == 4


def replay(order: list[int]) -> tuple[int | None, list[Outcome]]:
    """Apply the rule to attempts in the order they took the lock, as the core does."""
    holder: int | None = None
    outcomes = []
    for version in order:
        decision = decide_promotion(version, holder, mode=P)
        outcomes.append(decision.outcome)
        if decision.outcome.moves_alias:
            holder = version
    return holder, outcomes


def test_any_order_of_concurrent_promotions_ends_with_the_newest_version() -> None:
    """The property the race test relies on: whichever order the lock grants, the highest version
    holds the alias at the end, it is promoted exactly once, and each version is either promoted or
    superseded (never both, never refused)."""
    orders = list(itertools.permutations(range(1, 6)))
    rng = random.Random(4)
    orders += [tuple(rng.sample(range(1, 9), 8)) for _ in range(500)]
    for order in orders:
        holder, outcomes = replay(list(order))
        assert holder == max(order), order
        by_version = dict(zip(order, outcomes, strict=True))
        assert by_version[max(order)] is Outcome.PROMOTED
        assert set(outcomes) <= {Outcome.PROMOTED, Outcome.SUPERSEDED}
        promoted = [v for v in order if by_version[v] is Outcome.PROMOTED]
        assert promoted == sorted(promoted), "the alias only ever moves forward"


def test_repeating_a_promotion_is_a_no_op() -> None:
    holder, outcomes = replay([2, 5, 5, 3, 5])
    assert holder == 5
    assert outcomes == [Outcome.PROMOTED, Outcome.PROMOTED, Outcome.UNCHANGED, Outcome.SUPERSEDED, Outcome.UNCHANGED]
