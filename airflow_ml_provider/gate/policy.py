"""
Gate policy: what a candidate model must show before it may be promoted.

Plain, validated, JSON-safe data, so a policy can travel through XCom or a templated field and be
recorded next to the verdict it produced. Validation happens at construction: a policy that is
wrong should break the DAG author's test, not quietly let models through.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Any

from airflow_ml_provider.model.metrics import BUILTIN_METRICS, direction_words, greater_is_better
from airflow_ml_provider.parsing import (
    require_bool,
    require_finite,
    require_int,
    require_keys,
    require_strings,
    set_field,
)

__all__ = ["FirstVersionRule", "GatePolicy", "MetricThreshold", "ShadowRule", "is_number_field"]

#: The numbers of a metric rule (what a template may render as text, see :func:`is_number_field`).
_RULE_NUMBERS = ("threshold", "min_absolute_change", "min_relative_change")


@dataclass(frozen=True)
class MetricThreshold:
    """
    Bounds on one metric, mirroring MLflow's ``MetricThreshold``.

    - ``threshold``: absolute bound; ``value >= threshold`` (or ``<=`` when lower is better).
    - ``min_absolute_change``: ``(candidate - champion) * sign >= min_absolute_change``; a negative
      value is a tolerated regression (e.g. ``-0.01``).
    - ``min_relative_change``: ``(candidate - champion) * sign / abs(champion) >= min_relative_change``.
      With a champion of exactly 0 the ratio is undefined; ``decide`` treats an improvement as
      ``+inf``, no change as ``0`` and a regression as ``-inf``, and says so in the reason.

    ``sign`` is +1 when greater is better, -1 otherwise, so a positive change always means "better".
    Changes are computed exactly on the numbers as written (their shortest decimal form), so a
    champion of 0.2 and a candidate of 0.3 differ by exactly 0.1, not by 0.09999999999999998.

    ``greater_is_better`` None means "the built-in metric's direction": :class:`GatePolicy` resolves
    it from :data:`airflow_ml_provider.model.metrics.BUILTIN` and refuses a metric it cannot resolve, so a
    rule inside a policy always has a direction.
    """

    threshold: float | None = None
    min_absolute_change: float | None = None
    min_relative_change: float | None = None
    greater_is_better: bool | None = None

    def __post_init__(self) -> None:
        for name in _RULE_NUMBERS:
            value = getattr(self, name)
            if isinstance(value, str):
                raise ValueError(
                    f"MetricThreshold.{name} must be a number, got the string {value!r}: write it without quotes"
                )
            if value is not None:
                set_field(self, name, require_finite(value, f"MetricThreshold.{name}"))
        if self.greater_is_better is not None:
            require_bool(self.greater_is_better, "MetricThreshold.greater_is_better")
        if self.threshold is None and self.min_absolute_change is None and self.min_relative_change is None:
            raise ValueError(
                "MetricThreshold needs at least one of threshold, min_absolute_change, min_relative_change"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "min_absolute_change": self.min_absolute_change,
            "min_relative_change": self.min_relative_change,
            "greater_is_better": self.greater_is_better,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricThreshold:
        data = require_keys(
            data,
            "MetricThreshold",
            optional=(*_RULE_NUMBERS, "greater_is_better"),
        )
        return cls(**data)


def _with_direction(metric: str, rule: MetricThreshold) -> MetricThreshold:
    """The rule with its metric's direction, stated or from the built-in table: never guessed."""
    builtin = greater_is_better(metric)
    where = f"GatePolicy.metrics[{metric!r}]"
    if rule.greater_is_better is None:
        if builtin is None:
            close = difflib.get_close_matches(metric, BUILTIN_METRICS, n=1)
            hint = f" (did you mean the built-in {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{where}: {metric!r} is not a built-in metric{hint}, so which way is better is unknown: "
                'set "greater_is_better": true (higher is better) or false (lower is better) in its rule. '
                f"Built-in metrics: {', '.join(BUILTIN_METRICS)}"
            )
        return dataclasses.replace(rule, greater_is_better=builtin)
    if builtin is not None and rule.greater_is_better is not builtin:
        raise ValueError(
            f"{where}: greater_is_better={rule.greater_is_better} contradicts the built-in metric {metric!r}, "
            f"for which {direction_words(builtin)}: remove greater_is_better from its rule"
        )
    return rule


#: The keys of a shadow rule, all numbers.
_SHADOW_KEYS = ("min_rows", "min_agreement", "max_mean_abs_delta", "max_latency_ratio")


@dataclass(frozen=True)
class ShadowRule:
    """
    What shadow evidence (the candidate and the champion on production inputs) must show.

    - ``min_rows``: rows compared on the champion's production inputs, over every run that recorded
      evidence for this candidate against the current champion (each input counted once).
    - ``min_agreement`` (classification): the share of rows where both predict the same label, at least.
    - ``max_mean_abs_delta`` (regression): the mean absolute difference of the predictions, at most.
      Exactly one of the two: it also says which kind of model the evidence must be about (a
      classification threshold on regression evidence fails, and the other way round).
    - ``max_latency_ratio``: the candidate's time per row over the champion's (timed on the same rows),
      at most; None: latency not checked.
    """

    min_rows: int
    min_agreement: float | None = None
    max_mean_abs_delta: float | None = None
    max_latency_ratio: float | None = None

    def __post_init__(self) -> None:
        if require_int(self.min_rows, "ShadowRule.min_rows") < 1:
            raise ValueError(f"ShadowRule.min_rows must be >= 1 (no rows prove nothing), got {self.min_rows}")
        for name in ("min_agreement", "max_mean_abs_delta", "max_latency_ratio"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ValueError(f"ShadowRule.{name} must be a number, got the string {value!r}: write it unquoted")
            if value is not None:
                set_field(self, name, require_finite(value, f"ShadowRule.{name}"))
        if (self.min_agreement is None) == (self.max_mean_abs_delta is None):
            raise ValueError(
                "ShadowRule needs exactly one of min_agreement (classification) and max_mean_abs_delta (regression), "
                f"got {'both' if self.min_agreement is not None else 'neither'}"
            )
        if self.min_agreement is not None and not 0 <= self.min_agreement <= 1:
            raise ValueError(f"ShadowRule.min_agreement is a share of rows, in [0, 1], got {self.min_agreement!r}")
        if self.max_mean_abs_delta is not None and self.max_mean_abs_delta < 0:
            raise ValueError(f"ShadowRule.max_mean_abs_delta must be >= 0, got {self.max_mean_abs_delta!r}")
        if self.max_latency_ratio is not None and self.max_latency_ratio <= 0:
            raise ValueError(f"ShadowRule.max_latency_ratio must be > 0, got {self.max_latency_ratio!r}")

    @property
    def task(self) -> str:
        """The kind of model the rule is about: ``classification`` or ``regression``."""
        return "classification" if self.min_agreement is not None else "regression"

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in _SHADOW_KEYS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShadowRule:
        data = require_keys(data, "ShadowRule", ("min_rows",), _SHADOW_KEYS[1:])
        return cls(**data)


def is_number_field(path: Sequence[Any]) -> bool:
    """Whether ``path`` (keys into the dict form of a policy) names one of its numbers."""
    path = tuple(path)
    return (
        path == ("max_evidence_age_seconds",)
        or (len(path) == 3 and path[0] == "metrics" and path[2] in _RULE_NUMBERS)
        or (len(path) == 2 and path[0] == "shadow" and path[1] in _SHADOW_KEYS)
    )


class FirstVersionRule(str, Enum):
    """What vs-champion checks do when there is no champion yet (the very first model version)."""

    ALLOW = "allow"
    BLOCK = "block"


_POLICY_KEYS = (
    "metrics",
    "require_data_expectations",
    "required_suites",
    "require_scenarios",
    "required_scenarios",
    "first_version",
    "max_evidence_age_seconds",
    "require_approval",
    "shadow",
)


@dataclass(frozen=True)
class GatePolicy:
    """
    What evidence a candidate needs.

    ``require_*`` flags decide whether *absent* evidence fails the gate; evidence that is present
    is always checked (a failed scenario fails the gate even when scenarios are not required).
    ``required_suites`` / ``required_scenarios`` imply their kind of evidence is required.
    ``shadow`` (a :class:`ShadowRule`) requires shadow evidence: without recorded traffic it fails, unless
    there is no champion at all and ``first_version`` is ``allow``.
    Each metric rule gets its direction here: a built-in metric's from the table (a contradicting
    ``greater_is_better`` is refused), any other metric's from its rule (refused when absent).
    """

    metrics: Mapping[str, MetricThreshold] = field(default_factory=dict)
    require_data_expectations: bool = True
    required_suites: tuple[str, ...] = ()
    require_scenarios: bool = True
    required_scenarios: tuple[str, ...] = ()
    first_version: FirstVersionRule = FirstVersionRule.BLOCK
    max_evidence_age: timedelta | None = None
    require_approval: bool = False
    shadow: ShadowRule | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.metrics, Mapping):
            raise ValueError(f"GatePolicy.metrics must be a mapping, got {self.metrics!r}")
        metrics: dict[str, MetricThreshold] = {}
        for name, rule in self.metrics.items():
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"GatePolicy.metrics: metric names must be non-empty strings, got {name!r}")
            if not isinstance(rule, MetricThreshold):
                raise ValueError(f"GatePolicy.metrics[{name!r}] must be a MetricThreshold, got {rule!r}")
            metrics[name] = _with_direction(name, rule)
        set_field(self, "metrics", metrics)
        require_bool(self.require_data_expectations, "GatePolicy.require_data_expectations")
        require_bool(self.require_scenarios, "GatePolicy.require_scenarios")
        require_bool(self.require_approval, "GatePolicy.require_approval")
        for name in ("required_suites", "required_scenarios"):
            items = require_strings(getattr(self, name), f"GatePolicy.{name}")
            duplicates = sorted({item for item in items if items.count(item) > 1})
            if duplicates:
                raise ValueError(f"GatePolicy.{name} lists {', '.join(map(repr, duplicates))} more than once")
            set_field(self, name, items)
        try:
            set_field(self, "first_version", FirstVersionRule(self.first_version))
        except ValueError:
            allowed = ", ".join(repr(rule.value) for rule in FirstVersionRule)
            raise ValueError(
                f"GatePolicy.first_version must be one of {allowed}, got {self.first_version!r}"
            ) from None
        age = self.max_evidence_age
        if age is not None and (not isinstance(age, timedelta) or age <= timedelta(0)):
            raise ValueError(f"GatePolicy.max_evidence_age must be a positive timedelta or None, got {age!r}")
        if self.shadow is not None and not isinstance(self.shadow, ShadowRule):
            raise ValueError(f"GatePolicy.shadow must be a ShadowRule or None, got {self.shadow!r}")
        if not (
            metrics
            or self.shadow is not None
            or self.require_data_expectations
            or self.require_scenarios
            or self.required_suites
            or self.required_scenarios
        ):
            raise ValueError(
                "GatePolicy checks nothing: set metrics, shadow, require_data_expectations or require_scenarios "
                "(a gate that checks nothing would pass anything)"
            )

    def to_dict(self) -> dict[str, Any]:
        """The dict form; ``shadow`` only when set, so a policy without one records as it always has."""
        age = self.max_evidence_age
        out = {
            "metrics": {name: rule.to_dict() for name, rule in self.metrics.items()},
            "require_data_expectations": self.require_data_expectations,
            "required_suites": list(self.required_suites),
            "require_scenarios": self.require_scenarios,
            "required_scenarios": list(self.required_scenarios),
            "first_version": self.first_version.value,
            "max_evidence_age_seconds": None if age is None else age.total_seconds(),
            "require_approval": self.require_approval,
        }
        if self.shadow is not None:
            out["shadow"] = self.shadow.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GatePolicy:
        """Build from ``to_dict`` output; missing keys take the (strict) defaults, unknown keys fail."""
        data = require_keys(data, "GatePolicy", optional=_POLICY_KEYS)
        kwargs: dict[str, Any] = {
            key: data[key]
            for key in ("require_data_expectations", "require_scenarios", "require_approval", "first_version")
            if key in data
        }
        metrics = data.get("metrics", {})
        if not isinstance(metrics, Mapping):
            raise ValueError(f"GatePolicy.metrics must be a mapping, got {metrics!r}")
        kwargs["metrics"] = {}
        for name, rule in metrics.items():
            try:
                kwargs["metrics"][name] = MetricThreshold.from_dict(rule)
            except ValueError as e:
                raise ValueError(f"GatePolicy.metrics[{name!r}]: {e}") from None
        for key in ("required_suites", "required_scenarios"):
            if key in data:
                kwargs[key] = require_strings(data[key], f"GatePolicy.{key}")
        if data.get("shadow") is not None:
            try:
                kwargs["shadow"] = ShadowRule.from_dict(data["shadow"])
            except ValueError as e:
                raise ValueError(f"GatePolicy.shadow: {e}") from None
        seconds = data.get("max_evidence_age_seconds")
        if seconds is not None:
            seconds = require_finite(seconds, "GatePolicy.max_evidence_age_seconds")
            if seconds <= 0:
                raise ValueError(f"GatePolicy.max_evidence_age_seconds must be > 0, got {seconds!r}")
            try:
                kwargs["max_evidence_age"] = timedelta(seconds=seconds)
            except OverflowError:
                raise ValueError(
                    f"GatePolicy.max_evidence_age_seconds is too large, got {seconds!r}"
                ) from None
        return cls(**kwargs)
