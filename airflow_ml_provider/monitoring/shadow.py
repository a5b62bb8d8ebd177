"""
Shadow comparison: how a candidate's predictions differ from the champion's on the same rows.

One pure function, :func:`compare_predictions`, computes what both kinds of shadow evidence record:
the live shadow of :class:`~airflow_ml_provider.operators.predict.BatchPredictOperator` (a sample of
each production batch scored by the challenger too) and the replay of
:class:`~airflow_ml_provider.operators.shadow.ShadowReplayOperator` (the batches the champion scored,
scored again by both). What it measures:

- **classification**: ``agreement``, the share of rows where both predict the same label, and, when
  both give a probability, the distribution of the probability's absolute difference;
- **regression**: the distribution of the absolute difference of the predictions (mean, p50, p95, max);
- the rows that disagree most (their ``prediction_id``): by the absolute difference (of the
  probability, for classification when there is one), largest first;
- latency per 1,000 rows of each model, timed on the same rows.

The record types (:class:`ShadowComparison`, :class:`ShadowBatch`, :class:`ShadowSummary`) parse
strictly (unknown keys, wrong types refused) and write non-finite numbers as ``"NaN"``/``"Infinity"``
strings so a NaN prediction is kept for the gate to fail, never dropped. numpy is imported when
called: importing this module costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.parsing import (
    metric_from_json,
    metric_to_json,
    optional_metric_from_json,
    optional_metric_to_json,
    optional_str,
    optional_text,
    optional_version,
    require_int,
    require_keys,
    require_list,
    require_strings,
    require_text,
    require_version,
    set_field,
)

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = [
    "CLASSIFICATION",
    "REGRESSION",
    "DeltaStats",
    "Disagreement",
    "ShadowBatch",
    "ShadowComparison",
    "ShadowSummary",
    "compare_predictions",
    "sample_rows",
]

CLASSIFICATION, REGRESSION = "classification", "regression"
TASKS = (CLASSIFICATION, REGRESSION)
#: What a shadow step recorded: both scored rows, the shadow failed, the champion scored nothing yet, no champion.
COMPARED, FAILED, NO_TRAFFIC, NO_CHAMPION = "compared", "failed", "no_traffic", "no_champion"
STATUSES = (COMPARED, FAILED, NO_TRAFFIC, NO_CHAMPION)
#: Where the evidence comes from: a production predict step (live) or a replay step.
LIVE, REPLAY = "live", "replay"
KINDS = (LIVE, REPLAY)
#: How many of the most different rows a comparison names.
TOP_DISAGREEMENTS = 5




@dataclass(frozen=True)
class DeltaStats:
    """The distribution of an absolute difference over the compared rows."""

    mean: float
    p50: float
    p95: float
    max: float

    def to_dict(self) -> dict[str, Any]:
        return {key: metric_to_json(getattr(self, key)) for key in ("mean", "p50", "p95", "max")}

    @classmethod
    def from_dict(cls, data: object, name: str) -> DeltaStats:
        data = require_keys(data, name, ("mean", "p50", "p95", "max"))
        return cls(**{key: metric_from_json(data[key], f"{name}.{key}") for key in ("mean", "p50", "p95", "max")})


@dataclass(frozen=True)
class Disagreement:
    """One of the rows where the models differ most."""

    prediction_id: str
    row_index: int
    primary: Any
    shadow: Any
    #: The absolute difference it was ranked by (of the prediction, or of the probability); None: labels only.
    abs_delta: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prediction_id": self.prediction_id,
            "row_index": self.row_index,
            "primary": _label_to_json(self.primary),
            "shadow": _label_to_json(self.shadow),
            "abs_delta": optional_metric_to_json(self.abs_delta),
        }

    @classmethod
    def from_dict(cls, data: object, name: str) -> Disagreement:
        data = require_keys(data, name, ("prediction_id", "row_index", "primary", "shadow", "abs_delta"))
        for key in ("primary", "shadow"):
            if data[key] is not None and not isinstance(data[key], (str, int, float, bool)):
                raise ValueError(f"{name}.{key} must be a label or a number, got {data[key]!r}")
        return cls(
            prediction_id=require_text(data["prediction_id"], f"{name}.prediction_id"),
            row_index=require_int(data["row_index"], f"{name}.row_index"),
            primary=data["primary"],
            shadow=data["shadow"],
            abs_delta=optional_metric_from_json(data["abs_delta"], f"{name}.abs_delta"),
        )


def _label_to_json(value: Any) -> Any:
    """A prediction as JSON: numbers (NaN as "NaN"), strings and bools as they are."""
    if isinstance(value, float):
        return metric_to_json(value)
    return value


@dataclass(frozen=True)
class ShadowComparison:
    """What :func:`compare_predictions` measured on ``rows`` rows scored by both models."""

    task: str
    rows: int
    #: Classification: share of rows with the same label (None for regression or no rows).
    agreement: float | None
    #: Regression: |primary - shadow| of the predictions.
    abs_delta: DeltaStats | None
    #: Classification with probabilities on both sides: |primary - shadow| of the probability.
    probability_abs_delta: DeltaStats | None
    disagreements: tuple[Disagreement, ...]
    #: Milliseconds to score 1,000 rows, each model timed on the same rows (None: not timed / no rows).
    primary_ms_per_1k_rows: float | None
    shadow_ms_per_1k_rows: float | None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"ShadowComparison.task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if require_int(self.rows, "ShadowComparison.rows") < 0:
            raise ValueError(f"ShadowComparison.rows must be >= 0, got {self.rows}")
        set_field(self, "disagreements", tuple(self.disagreements))

    @property
    def latency_ratio(self) -> float | None:
        """Shadow's time per row over the primary's (None when either was not timed or the primary took 0)."""
        primary, shadow = self.primary_ms_per_1k_rows, self.shadow_ms_per_1k_rows
        if primary is None or shadow is None or primary <= 0:
            return None
        return shadow / primary

    def describe(self) -> str:
        """One line for a task log: the agreement or the differences, and the latencies."""
        if self.task == CLASSIFICATION and self.agreement is not None:
            differ = round((1 - self.agreement) * self.rows)
            parts = [f"agreement {self.agreement:.1%} ({differ} of {self.rows} rows differ)"]
        elif self.abs_delta is not None:
            d = self.abs_delta
            parts = [f"|delta| mean {d.mean:.4g}, p50 {d.p50:.4g}, p95 {d.p95:.4g}, max {d.max:.4g}"]
        else:
            parts = ["no rows compared"]
        if self.primary_ms_per_1k_rows is not None and self.shadow_ms_per_1k_rows is not None:
            parts.append(
                f"{self.shadow_ms_per_1k_rows:.3g} ms per 1,000 rows vs the primary's {self.primary_ms_per_1k_rows:.3g}"
            )
        return "; ".join(parts)

    def metrics(self) -> dict[str, float]:
        """The headline figures as MLflow metrics (``shadow.agreement``, ``shadow.abs_delta.p95``...); finite only."""
        figures: dict[str, float | None] = {
            "shadow.rows": float(self.rows),
            "shadow.agreement": self.agreement,
            "shadow.primary_ms_per_1k_rows": self.primary_ms_per_1k_rows,
            "shadow.shadow_ms_per_1k_rows": self.shadow_ms_per_1k_rows,
            "shadow.latency_ratio": self.latency_ratio,
        }
        for kind, stats in (("abs_delta", self.abs_delta), ("probability_abs_delta", self.probability_abs_delta)):
            if stats is not None:
                figures.update({f"shadow.{kind}.{key}": getattr(stats, key) for key in ("mean", "p50", "p95", "max")})
        return {key: value for key, value in figures.items() if value is not None and math.isfinite(value)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "rows": self.rows,
            "agreement": optional_metric_to_json(self.agreement),
            "abs_delta": None if self.abs_delta is None else self.abs_delta.to_dict(),
            "probability_abs_delta": (
                None if self.probability_abs_delta is None else self.probability_abs_delta.to_dict()
            ),
            "disagreements": [item.to_dict() for item in self.disagreements],
            "primary_ms_per_1k_rows": optional_metric_to_json(self.primary_ms_per_1k_rows),
            "shadow_ms_per_1k_rows": optional_metric_to_json(self.shadow_ms_per_1k_rows),
        }

    @classmethod
    def from_dict(cls, data: object, name: str = "comparison") -> ShadowComparison:
        keys = (
            "task",
            "rows",
            "agreement",
            "abs_delta",
            "probability_abs_delta",
            "disagreements",
            "primary_ms_per_1k_rows",
            "shadow_ms_per_1k_rows",
        )
        data = require_keys(data, name, keys)
        items = require_list(data["disagreements"], f"{name}.disagreements")
        delta, probability = data["abs_delta"], data["probability_abs_delta"]
        return cls(
            task=require_text(data["task"], f"{name}.task"),
            rows=require_int(data["rows"], f"{name}.rows"),
            agreement=optional_metric_from_json(data["agreement"], f"{name}.agreement"),
            abs_delta=None if delta is None else DeltaStats.from_dict(delta, f"{name}.abs_delta"),
            probability_abs_delta=(
                None if probability is None else DeltaStats.from_dict(probability, f"{name}.probability_abs_delta")
            ),
            disagreements=tuple(
                Disagreement.from_dict(item, f"{name}.disagreements[{i}]") for i, item in enumerate(items)
            ),
            **{
                key: optional_metric_from_json(data[key], f"{name}.{key}")
                for key in ("primary_ms_per_1k_rows", "shadow_ms_per_1k_rows")
            },
        )


def _stats(values: Any) -> DeltaStats:
    import numpy as np

    if np.isnan(values).any():  # a NaN prediction: every figure is NaN, for the gate to fail
        return DeltaStats(math.nan, math.nan, math.nan, math.nan)
    return DeltaStats(
        mean=float(np.mean(values)),
        p50=float(np.percentile(values, 50)),
        p95=float(np.percentile(values, 95)),
        max=float(np.max(values)),
    )


def _python(value: Any) -> Any:
    """A numpy scalar as the Python value it holds."""
    return value.item() if hasattr(value, "item") else value


def _per_1k(seconds: float | None, rows: int) -> float | None:
    if seconds is None or rows == 0:
        return None
    return seconds / rows * 1_000_000.0


def sample_rows(input_fingerprint: str, rows: int, count: int) -> Any:
    """
    ``count`` distinct row positions of ``rows``, sorted, drawn with a generator seeded by the input's
    fingerprint: the same input gives the same sample on every run (a rerun compares the same rows, and
    the gate counts an input once whichever run scored it). Returns a numpy ``int64`` array.
    """
    import hashlib

    import numpy as np

    count = min(max(count, 0), rows)
    seed = int.from_bytes(hashlib.sha256(input_fingerprint.encode()).digest()[:8], "big")
    return np.sort(np.random.default_rng(seed).choice(rows, size=count, replace=False)).astype("int64")


def compare_predictions(
    task: str,
    primary: ArrayLike,
    shadow: ArrayLike,
    *,
    prediction_ids: Sequence[str] | ArrayLike,
    row_indexes: Sequence[int] | ArrayLike,
    primary_probability: ArrayLike | None = None,
    shadow_probability: ArrayLike | None = None,
    primary_seconds: float | None = None,
    shadow_seconds: float | None = None,
    top: int = TOP_DISAGREEMENTS,
) -> ShadowComparison:
    """
    Compare two models' predictions on the same rows (pure: arrays in, a :class:`ShadowComparison` out).

    :param task: ``classification`` (labels compared for equality) or ``regression`` (numbers subtracted).
    :param primary: the champion's predictions, one per row; ``shadow`` the candidate's, on the same rows.
    :param prediction_ids: the rows' ids in the predictions file, to name the rows that disagree most.
    :param row_indexes: the rows' positions in the input.
    :param primary_probability: classification: each side's probability of the positive class, when it has one.
    :param primary_seconds: time each model took to score these rows (latency per 1,000 rows).
    :param top: how many of the most different rows to name.
    """
    import numpy as np

    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    p, s = np.asarray(primary), np.asarray(shadow)
    ids, indexes = np.asarray(prediction_ids), np.asarray(row_indexes)
    n = len(p)
    if len(s) != n or len(ids) != n or len(indexes) != n:
        raise ValueError(
            f"primary ({n}), shadow ({len(s)}), prediction_ids ({len(ids)}) and row_indexes "
            f"({len(indexes)}) must have one entry per compared row"
        )
    agreement = delta = probability_delta = None
    ranking: Any = None
    if n and task == REGRESSION:
        diff = np.abs(p.astype("float64") - s.astype("float64"))
        delta, ranking = _stats(diff), diff
        different = ~(diff == 0)  # NaN counts as different
    elif n:
        different = p != s
        agreement = float(1.0 - different.mean())
        if primary_probability is not None and shadow_probability is not None:
            pp, sp = np.asarray(primary_probability, "float64"), np.asarray(shadow_probability, "float64")
            if len(pp) != n or len(sp) != n:
                raise ValueError("the probabilities must have one entry per compared row")
            ranking = np.abs(pp - sp)
            probability_delta = _stats(ranking)
    else:
        different = np.zeros(0, dtype=bool)
    candidates = np.flatnonzero(different)
    if ranking is not None and len(candidates):
        key = np.nan_to_num(ranking[candidates], nan=np.inf)
        candidates = candidates[np.argsort(-key, kind="stable")]
    disagreements = tuple(
        Disagreement(
            prediction_id=str(ids[i]),
            row_index=int(indexes[i]),
            primary=_python(p[i]),
            shadow=_python(s[i]),
            abs_delta=None if ranking is None else float(ranking[i]),
        )
        for i in candidates[: max(top, 0)]
    )
    return ShadowComparison(
        task=task,
        rows=n,
        agreement=agreement,
        abs_delta=delta,
        probability_abs_delta=probability_delta,
        disagreements=disagreements,
        primary_ms_per_1k_rows=_per_1k(primary_seconds, n),
        shadow_ms_per_1k_rows=_per_1k(shadow_seconds, n),
    )


@dataclass(frozen=True)
class ShadowBatch:
    """One input dataset both models scored (or that the shadow failed on: ``error``)."""

    input_uri: str
    input_fingerprint: str
    #: Rows of the input; ``comparison.rows`` is how many were compared (a sample, or at most ``max_rows``).
    input_rows: int
    comparison: ShadowComparison | None
    error: str | None = None
    #: Replay: the champion's predict step run that scored this input in production.
    source_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_uri": self.input_uri,
            "input_fingerprint": self.input_fingerprint,
            "input_rows": self.input_rows,
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
            "error": self.error,
            "source_run_id": self.source_run_id,
        }

    @classmethod
    def from_dict(cls, data: object, name: str) -> ShadowBatch:
        keys = ("input_uri", "input_fingerprint", "input_rows", "comparison", "error", "source_run_id")
        data = require_keys(data, name, keys)
        comparison = data["comparison"]
        return cls(
            input_uri=require_text(data["input_uri"], f"{name}.input_uri"),
            input_fingerprint=require_text(data["input_fingerprint"], f"{name}.input_fingerprint"),
            input_rows=require_int(data["input_rows"], f"{name}.input_rows"),
            comparison=None if comparison is None else ShadowComparison.from_dict(comparison, f"{name}.comparison"),
            error=optional_str(data["error"], f"{name}.error"),
            source_run_id=optional_text(data["source_run_id"], f"{name}.source_run_id"),
        )


@dataclass(frozen=True)
class ShadowSummary:
    """
    The shadow evidence one step recorded, bound to both versions and to the inputs' fingerprints.

    ``primary`` is the champion (the model whose predictions are the output, or the alias's version in a
    replay); ``shadow`` the candidate. ``shadow_version`` is None when the shadow could not be resolved.
    """

    kind: str
    status: str
    model_name: str
    primary_version: str
    primary_fingerprint: str | None
    shadow_uri: str
    shadow_version: str | None
    shadow_fingerprint: str | None
    batches: tuple[ShadowBatch, ...]
    #: Over every batch together (None when nothing was compared).
    comparison: ShadowComparison | None
    #: Live shadow: the share of each batch sampled.
    fraction: float | None = None
    error: str | None = None
    #: Replay: production inputs not compared, and why (a file changed since the champion scored it, or is gone).
    skipped: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        set_field(self, "skipped", require_strings(self.skipped, "ShadowSummary.skipped"))
        if self.kind not in KINDS:
            raise ValueError(f"ShadowSummary.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.status not in STATUSES:
            raise ValueError(f"ShadowSummary.status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        set_field(self, "batches", tuple(self.batches))

    @property
    def input_fingerprints(self) -> tuple[str, ...]:
        return tuple(batch.input_fingerprint for batch in self.batches)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "status": self.status,
            "model_name": self.model_name,
            "primary_version": self.primary_version,
            "primary_fingerprint": self.primary_fingerprint,
            "shadow_uri": self.shadow_uri,
            "shadow_version": self.shadow_version,
            "shadow_fingerprint": self.shadow_fingerprint,
            "batches": [batch.to_dict() for batch in self.batches],
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
            "fraction": self.fraction,
            "error": self.error,
            "skipped": list(self.skipped),
        }

    @classmethod
    def from_dict(cls, data: object, name: str = "shadow") -> ShadowSummary:
        keys = (
            "kind",
            "status",
            "model_name",
            "primary_version",
            "primary_fingerprint",
            "shadow_uri",
            "shadow_version",
            "shadow_fingerprint",
            "batches",
            "comparison",
            "fraction",
            "error",
            "skipped",
        )
        data = require_keys(data, name, keys)
        comparison, fraction = data["comparison"], data["fraction"]
        batches = require_list(data["batches"], f"{name}.batches")
        return cls(
            kind=require_text(data["kind"], f"{name}.kind"),
            status=require_text(data["status"], f"{name}.status"),
            model_name=require_text(data["model_name"], f"{name}.model_name"),
            primary_version=require_version(data["primary_version"], f"{name}.primary_version"),
            primary_fingerprint=optional_text(data["primary_fingerprint"], f"{name}.primary_fingerprint"),
            shadow_uri=require_text(data["shadow_uri"], f"{name}.shadow_uri"),
            shadow_version=optional_version(data["shadow_version"], f"{name}.shadow_version"),
            shadow_fingerprint=optional_text(data["shadow_fingerprint"], f"{name}.shadow_fingerprint"),
            batches=tuple(ShadowBatch.from_dict(item, f"{name}.batches[{i}]") for i, item in enumerate(batches)),
            comparison=None if comparison is None else ShadowComparison.from_dict(comparison, f"{name}.comparison"),
            fraction=optional_metric_from_json(fraction, f"{name}.fraction"),
            error=optional_str(data["error"], f"{name}.error"),
            skipped=require_strings(data["skipped"], f"{name}.skipped"),
        )

