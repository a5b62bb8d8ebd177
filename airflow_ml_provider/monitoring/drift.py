"""
Drift: does the data a model scores still look like the data it was trained on?

Per feature, one effect size and one significance test:

- **numeric** columns: the population stability index (PSI) over the reference's quantile bins
  (missing values in a bin of their own; a bin per value when the reference has at most ``bins``
  distinct values), with a two-sample Kolmogorov-Smirnov test on the values (chi-square on the value
  counts instead when the reference has at most ``bins`` distinct values: KS is conservative on ties).
  When either side has missing values, a chi-square test of the missing rate joins it (the feature's
  p-value is the smaller of the two, doubled);
- **categorical** columns (object, string, category, bool): the Jensen-Shannon distance (base 2, in
  [0, 1]) between the category frequencies (missing values as a category of their own), with a
  chi-square test of homogeneity on the 2 x k table of counts.

A category the reference never had is a category with zero reference count (it raises both the JS
distance and the chi-square statistic). Every PSI bin share gets :data:`PSI_EPSILON` (1e-4) added
before the logarithm, so an empty bin is a large but finite shift.

A feature has drifted when its test is significant **after correcting for testing every feature at
once** (Holm-Bonferroni, which keeps the chance of flagging any feature of an undrifted batch at or
below ``alpha``) **and** its effect size reaches its threshold. Both are needed: on a large batch a
test finds a trivial shift significant, and on a small batch an effect size is noisy.

Schema changes (a column of the reference missing from the batch, a column the reference does not
have, a changed dtype) are always drift, whatever the row counts. Fewer rows than ``min_rows`` on
either side is ``not_enough_data``, never "no drift".

Pure: frames (or a column reader) in, a :class:`DriftReport` out; reading files a column at a time is
:mod:`airflow_ml_provider.monitoring.columns`. pandas, numpy and scipy are imported when called, so
importing this module (at DAG-parse time, through the operator) costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.parsing import (
    metric_from_json,
    metric_to_json,
    optional_metric_from_json,
    optional_metric_to_json,
    require_bool,
    require_finite,
    require_int,
    require_keys,
    require_mapping,
    require_strings,
    require_text,
    set_field,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DriftPolicy", "DriftReport", "FeatureDrift", "detect_drift", "report_from_columns"]

#: Statuses of a report.
DRIFT, NO_DRIFT, NOT_ENOUGH_DATA = "drift", "no_drift", "not_enough_data"
STATUSES = (DRIFT, NO_DRIFT, NOT_ENOUGH_DATA)
NUMERIC, CATEGORICAL, SCHEMA = "numeric", "categorical", "schema"
#: Added to every bin's share before PSI's logarithm, so an empty bin counts as a large shift, not an infinite one.
PSI_EPSILON = 1e-4

_COUNTS = ("reference_rows", "current_rows", "reference_missing", "current_missing")
_POLICY_KEYS = ("psi_threshold", "js_threshold", "alpha", "min_rows", "features", "ignore", "bins")


@dataclass(frozen=True)
class DriftPolicy:
    """
    When a batch has drifted from its reference.

    :param psi_threshold: numeric effect size: PSI at or above this (0.2: the usual "significant shift").
    :param js_threshold: categorical effect size: Jensen-Shannon distance (base 2) at or above this.
    :param alpha: the family-wise error rate over all features tested (Holm-Bonferroni).
    :param min_rows: fewer rows in the batch or the reference is "not enough data".
    :param features: the features that matter; None means every column of the reference.
    :param ignore: columns never compared (ids, timestamps, the label).
    :param bins: reference-quantile bins for PSI.
    """

    psi_threshold: float = 0.2
    js_threshold: float = 0.1
    alpha: float = 0.05
    min_rows: int = 100
    features: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    bins: int = 10

    def __post_init__(self) -> None:
        for name in ("psi_threshold", "js_threshold", "alpha"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ValueError(
                    f"DriftPolicy.{name} must be a number, got the string {value!r}: write it without quotes"
                )
            set_field(self, name, require_finite(value, f"DriftPolicy.{name}"))
        if self.psi_threshold <= 0 or self.js_threshold <= 0:
            raise ValueError("DriftPolicy.psi_threshold and js_threshold must be > 0 (0 would flag every batch)")
        if self.js_threshold > 1:
            raise ValueError(
                f"DriftPolicy.js_threshold must be at most 1 (the largest JS distance), got {self.js_threshold}"
            )
        if not 0 < self.alpha < 1:
            raise ValueError(f"DriftPolicy.alpha must be between 0 and 1 (e.g. 0.05), got {self.alpha}")
        if require_int(self.min_rows, "DriftPolicy.min_rows") < 1:
            raise ValueError(f"DriftPolicy.min_rows must be >= 1, got {self.min_rows}")
        if require_int(self.bins, "DriftPolicy.bins") < 2:
            raise ValueError(f"DriftPolicy.bins must be >= 2, got {self.bins}")
        if self.features is not None:
            features = require_strings(self.features, "DriftPolicy.features")
            if not features:
                raise ValueError(
                    "DriftPolicy.features is empty: list the features that matter, or leave it out for all"
                )
            set_field(self, "features", features)
        set_field(self, "ignore", require_strings(self.ignore, "DriftPolicy.ignore"))
        overlap = sorted(set(self.features or ()) & set(self.ignore))
        if overlap:
            raise ValueError(f"DriftPolicy lists {overlap} in both features and ignore: keep them in one")

    def to_dict(self) -> dict[str, Any]:
        return {
            "psi_threshold": self.psi_threshold,
            "js_threshold": self.js_threshold,
            "alpha": self.alpha,
            "min_rows": self.min_rows,
            "features": None if self.features is None else list(self.features),
            "ignore": list(self.ignore),
            "bins": self.bins,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftPolicy:
        """From :meth:`to_dict`'s form; missing keys take the defaults, unknown keys are refused."""
        data = dict(require_keys(data, "DriftPolicy", optional=_POLICY_KEYS))
        for key in ("features", "ignore"):
            if data.get(key) is not None:
                data[key] = require_strings(data[key], f"DriftPolicy.{key}")
        return cls(**data)

    @classmethod
    def of(cls, policy: DriftPolicy | Mapping[str, Any] | None) -> DriftPolicy:
        if policy is None:
            return cls()
        return policy if isinstance(policy, DriftPolicy) else cls.from_dict(policy)




@dataclass(frozen=True)
class FeatureDrift:
    """One feature's comparison. ``statistic`` is PSI or the JS distance; a schema change has +inf."""

    name: str
    kind: str
    method: str
    statistic: float
    threshold: float
    p_value: float | None
    adjusted_p_value: float | None
    drifted: bool
    reason: str
    reference_rows: int = 0
    current_rows: int = 0
    reference_missing: int = 0
    current_missing: int = 0

    def __post_init__(self) -> None:
        require_text(self.name, "FeatureDrift.name")
        if self.kind not in (NUMERIC, CATEGORICAL, SCHEMA):
            raise ValueError(f"FeatureDrift.kind must be numeric, categorical or schema, got {self.kind!r}")
        require_bool(self.drifted, "FeatureDrift.drifted")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "method": self.method,
            "statistic": metric_to_json(self.statistic),
            "threshold": self.threshold,
            "p_value": optional_metric_to_json(self.p_value),
            "adjusted_p_value": optional_metric_to_json(self.adjusted_p_value),
            "drifted": self.drifted,
            "reason": self.reason,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "reference_missing": self.reference_missing,
            "current_missing": self.current_missing,
        }

    @classmethod
    def from_dict(cls, data: object, name: str = "feature") -> FeatureDrift:
        keys = ("name", "kind", "method", "statistic", "threshold", "p_value", "adjusted_p_value", "drifted", "reason")
        data = require_keys(data, name, keys, _COUNTS)
        return cls(
            name=require_text(data["name"], f"{name}.name"),
            kind=require_text(data["kind"], f"{name}.kind"),
            method=require_text(data["method"], f"{name}.method"),
            statistic=metric_from_json(data["statistic"], f"{name}.statistic"),
            threshold=metric_from_json(data["threshold"], f"{name}.threshold"),
            p_value=optional_metric_from_json(data["p_value"], f"{name}.p_value"),
            adjusted_p_value=optional_metric_from_json(data["adjusted_p_value"], f"{name}.adjusted_p_value"),
            drifted=require_bool(data["drifted"], f"{name}.drifted"),
            reason=require_text(data["reason"], f"{name}.reason"),
            **{key: require_int(data.get(key, 0), f"{name}.{key}") for key in _COUNTS},
        )


@dataclass(frozen=True)
class DriftReport:
    """The verdict on one batch against its reference, feature by feature."""

    status: str
    features: Mapping[str, FeatureDrift]
    schema_changes: tuple[str, ...]
    reference_rows: int
    current_rows: int
    policy: DriftPolicy = field(default_factory=DriftPolicy)
    correction: str = "holm"

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"DriftReport.status must be one of {', '.join(STATUSES)}, got {self.status!r}")

    @property
    def drifted(self) -> bool:
        return self.status == DRIFT

    @property
    def enough_data(self) -> bool:
        return self.status != NOT_ENOUGH_DATA

    @property
    def drifted_features(self) -> list[str]:
        return [name for name, feature in self.features.items() if feature.drifted]

    def summary(self) -> str:
        """One line for a log or an alert."""
        if self.status == NOT_ENOUGH_DATA:
            return (
                f"not enough data: {self.current_rows} rows in the batch and {self.reference_rows} in the "
                f"reference; at least {self.policy.min_rows} each are needed"
            )
        if self.status == NO_DRIFT:
            return f"no drift in {len(self.features)} features ({self.current_rows} rows)"
        return (
            f"drift in {', '.join(self.drifted_features)} of {len(self.features)} features ({self.current_rows} rows)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "drifted_features": self.drifted_features,
            "features": {name: feature.to_dict() for name, feature in self.features.items()},
            "schema_changes": list(self.schema_changes),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "policy": self.policy.to_dict(),
            "correction": self.correction,
        }

    @classmethod
    def from_dict(cls, data: object, name: str = "drift report") -> DriftReport:
        keys = ("status", "features", "schema_changes", "reference_rows", "current_rows", "policy", "correction")
        data = require_keys(data, name, keys, ("drifted_features",))
        features = require_mapping(data["features"], f"{name}.features")
        try:
            policy = DriftPolicy.from_dict(require_mapping(data["policy"], f"{name}.policy"))
        except ValueError as e:
            raise ValueError(f"{name}.policy: {e}") from None
        return cls(
            status=require_text(data["status"], f"{name}.status"),
            features={
                key: FeatureDrift.from_dict(value, f"{name}.features[{key!r}]") for key, value in features.items()
            },
            schema_changes=require_strings(data["schema_changes"], f"{name}.schema_changes"),
            reference_rows=require_int(data["reference_rows"], f"{name}.reference_rows"),
            current_rows=require_int(data["current_rows"], f"{name}.current_rows"),
            policy=policy,
            correction=require_text(data["correction"], f"{name}.correction"),
        )


# --- the statistics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tested:
    """A feature's effect size and raw p-value, before the correction decides."""

    name: str
    kind: str
    method: str
    statistic: float
    threshold: float
    p_value: float
    reference_rows: int
    current_rows: int
    reference_missing: int
    current_missing: int


def column_kind(dtype: Any) -> str:
    """``numeric`` for numbers (bool excluded), else ``categorical``."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        return CATEGORICAL
    return NUMERIC


def population_stability_index(reference: Any, current: Any, bins: int) -> float:
    """PSI of ``current`` against ``reference`` over the reference's quantile bins.

    Missing values form a bin of their own, so a rise in missing values is a shift; every bin's share
    gets :data:`PSI_EPSILON` so an emptied bin is a large, finite shift. A reference with at most
    ``bins`` distinct values (a constant, a small integer code) gets a bin per value plus one below
    and one above them all, since quantile edges would merge its values (a constant into one bin).
    """
    ref, ref_missing = _sorted_present(reference)
    cur, cur_missing = _sorted_present(current)
    return _psi(ref, ref_missing, cur, cur_missing, bins, _few_values(ref, bins))


def _sorted_present(values: Any) -> tuple[Any, int]:
    """The non-missing values as sorted float64, and how many were missing (sorted once, reused by all)."""
    import numpy as np

    array = np.asarray(values, dtype="float64")
    present = np.sort(array[~np.isnan(array)])
    return present, int(array.size - present.size)


def _few_values(sorted_values: Any, bins: int) -> Any | None:
    """The distinct values of a sorted array when there are at most ``bins`` of them (and some), else None."""
    import numpy as np

    if not sorted_values.size:
        return None
    change = sorted_values[1:] != sorted_values[:-1]
    if int(np.count_nonzero(change)) + 1 > bins:
        return None
    return sorted_values[np.concatenate([[True], change])]


def _psi(ref: Any, ref_missing: int, cur: Any, cur_missing: int, bins: int, distinct: Any | None) -> float:
    """:func:`population_stability_index` on sorted present values (``distinct``: see :func:`_few_values`)."""
    import numpy as np

    if distinct is not None:
        edges = np.append(distinct, np.nextafter(distinct[-1], np.inf))
    elif ref.size:
        edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1))[1:-1])
    else:
        edges = np.array([], dtype="float64")

    def shares(values: Any, missing: int) -> Any:
        # values are sorted: the count of bin [edge_k-1, edge_k) is the difference of two positions
        positions = np.concatenate([[0], np.searchsorted(values, edges, side="left"), [values.size]])
        return np.append(np.diff(positions), missing) / max(values.size + missing, 1)

    p = shares(ref, ref_missing) + PSI_EPSILON
    q = shares(cur, cur_missing) + PSI_EPSILON
    return float(np.sum((q - p) * np.log(q / p)))


def _numeric(name: str, reference: Any, current: Any, policy: DriftPolicy) -> _Tested:
    """PSI, and KS on the values; a column with at most ``bins`` distinct reference values (a small
    integer code) is tested by chi-square on its value counts instead, since KS is conservative on
    ties. A change in the missing-value rate is tested too (chi-square on missing vs present), and the
    smaller of the two p-values, doubled (Bonferroni over the two), is the feature's p-value."""
    import numpy as np
    from scipy.stats import chi2_contingency, ks_2samp

    ref_values, ref_missing = _sorted_present(reference)
    cur_values, cur_missing = _sorted_present(current)
    distinct = _few_values(ref_values, policy.bins)
    psi = _psi(ref_values, ref_missing, cur_values, cur_missing, policy.bins, distinct)
    method = "psi+ks"
    if ref_values.size and cur_values.size:
        if distinct is not None:
            method = "psi+chi2"
            # the PSI bins: one per reference value, and one below and one above them all
            edges = np.append(distinct, np.nextafter(distinct[-1], np.inf))
            table = np.stack(
                [
                    np.diff(np.concatenate([[0], np.searchsorted(v, edges, side="left"), [v.size]]))
                    for v in (ref_values, cur_values)
                ]
            )
            table = table[:, table.sum(axis=0) > 0]
            p_value = float(chi2_contingency(table).pvalue) if table.shape[1] > 1 else 1.0
        else:
            p_value = float(ks_2samp(ref_values, cur_values).pvalue)
    else:  # all missing on one side: only the missing-value rate can tell
        p_value = 1.0
    if ref_missing or cur_missing:
        table = np.array([(ref_missing, cur_missing), (ref_values.size, cur_values.size)])
        missing_p = float(chi2_contingency(table).pvalue) if table[1].any() else 1.0
        p_value = min(1.0, 2 * min(p_value, missing_p))
        method += "+missing"
    rows = (ref_values.size + ref_missing, cur_values.size + cur_missing)
    return _Tested(name, NUMERIC, method, psi, policy.psi_threshold, p_value, *rows, ref_missing, cur_missing)


def _categorical(name: str, reference: Any, current: Any, policy: DriftPolicy) -> _Tested:
    import numpy as np
    import pandas as pd
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency

    missing = "\x00<missing>"
    ref_na, cur_na = pd.isna(reference), pd.isna(current)
    ref = pd.Series(reference).astype("object").where(~ref_na, missing).astype(str)
    cur = pd.Series(current).astype("object").where(~cur_na, missing).astype(str)
    counts = pd.concat([ref.value_counts(), cur.value_counts()], axis=1).fillna(0).to_numpy().T
    distance = float(jensenshannon(counts[0], counts[1], base=2)) if counts.shape[1] else 0.0
    # one category on both sides: nothing to test
    p_value = float(chi2_contingency(counts).pvalue) if counts.shape[1] > 1 else 1.0
    return _Tested(
        name,
        CATEGORICAL,
        "chi2+js",
        0.0 if math.isnan(distance) else distance,
        policy.js_threshold,
        float(np.nan_to_num(p_value, nan=1.0)),
        len(ref),
        len(cur),
        int(np.sum(ref_na)),
        int(np.sum(cur_na)),
    )


def holm(p_values: Iterable[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given."""
    values = list(p_values)
    order = sorted(range(len(values)), key=lambda i: values[i])
    adjusted = [1.0] * len(values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(values) - rank) * values[i]))
        adjusted[i] = running
    return adjusted


def _decide(tested: list[_Tested], policy: DriftPolicy) -> dict[str, FeatureDrift]:
    out: dict[str, FeatureDrift] = {}
    for t, adjusted in zip(tested, holm(t.p_value for t in tested), strict=True):
        big = t.statistic >= t.threshold
        significant = adjusted < policy.alpha
        label = "PSI" if t.kind == NUMERIC else "JS distance"
        test = "KS" if "ks" in t.method else "chi-square"
        comparison = f"{label} {t.statistic:.3g} {'>=' if big else '<'} {t.threshold:g}"
        significance = (
            f"{test} p={t.p_value:.2g} (Holm-adjusted {adjusted:.2g}) {'<' if significant else '>='} {policy.alpha:g}"
        )
        out[t.name] = FeatureDrift(
            name=t.name,
            kind=t.kind,
            method=t.method,
            statistic=t.statistic,
            threshold=t.threshold,
            p_value=t.p_value,
            adjusted_p_value=adjusted,
            drifted=big and significant,
            reason=f"{comparison} {'and' if big == significant else 'but'} {significance}",
            reference_rows=t.reference_rows,
            current_rows=t.current_rows,
            reference_missing=t.reference_missing,
            current_missing=t.current_missing,
        )
    return out


def _schema(
    reference: Mapping[str, str], current: Mapping[str, str], policy: DriftPolicy
) -> tuple[list[str], dict[str, FeatureDrift], list[str]]:
    """Columns to compare, schema-change features, and the readable schema changes."""
    wanted = [c for c in (policy.features or tuple(reference)) if c not in policy.ignore]
    changes: list[str] = []
    features: dict[str, FeatureDrift] = {}

    def flag(name: str, text: str) -> None:
        changes.append(text)
        features[name] = FeatureDrift(name, SCHEMA, "schema", math.inf, 0.0, None, None, True, text)

    compared = []
    for column in wanted:
        if column not in reference:
            raise ValueError(
                f"DriftPolicy.features names {column!r}, which the reference does not have "
                f"(its columns: {', '.join(reference)}): fix the policy or the reference"
            )
        if column not in current:
            flag(column, f"column {column!r} is missing")
        elif reference[column] != current[column]:
            flag(column, f"column {column!r} changed type {reference[column]} -> {current[column]}")
        else:
            compared.append(column)
    if policy.features is None:
        for column in current:
            if column not in reference and column not in policy.ignore:
                flag(column, f"new column {column!r}")
    return compared, features, changes


def report_from_columns(
    reference_schema: Mapping[str, str],
    current_schema: Mapping[str, str],
    reference_rows: int,
    current_rows: int,
    column: Callable[[str], tuple[Any, Any]],
    policy: DriftPolicy | Mapping[str, Any] | None,
) -> DriftReport:
    """The report from two schemas (column -> pandas dtype name), row counts and a column reader.

    ``column(name)`` returns the (reference, current) values of one compared column; it is called once
    per compared column, one at a time, so a reader can keep only that column in memory
    (:func:`~airflow_ml_provider.monitoring.columns.detect_drift_in_files`). No column is read when a
    side has fewer than ``min_rows`` rows.
    """
    policy = DriftPolicy.of(policy)
    compared, schema_features, changes = _schema(reference_schema, current_schema, policy)
    enough = reference_rows >= policy.min_rows and current_rows >= policy.min_rows
    tested = []
    if enough:
        for name in compared:
            ref, cur = column(name)
            test = _numeric if column_kind(reference_schema[name]) == NUMERIC else _categorical
            tested.append(test(name, ref, cur, policy))
    features = {**_decide(tested, policy), **schema_features}
    if changes or any(f.drifted for f in features.values()):
        status = DRIFT
    else:
        status = NO_DRIFT if enough else NOT_ENOUGH_DATA
    return DriftReport(status, features, tuple(changes), reference_rows, current_rows, policy)


def detect_drift(
    reference: pd.DataFrame, current: pd.DataFrame, policy: DriftPolicy | Mapping[str, Any] | None = None
) -> DriftReport:
    """
    Compare ``current`` with ``reference`` feature by feature (the module docstring has the rule).

    Multiple testing: the raw p-values of all tested features are adjusted with Holm-Bonferroni
    (step-down: the k-th smallest p-value is multiplied by ``m - k + 1``, kept monotone), and a feature
    is significant when its adjusted p-value is below ``policy.alpha``; this bounds the chance that an
    undrifted batch flags any feature at ``alpha``, for any dependence between the features.
    """
    return report_from_columns(
        {str(c): str(t) for c, t in reference.dtypes.items()},
        {str(c): str(t) for c, t in current.dtypes.items()},
        len(reference),
        len(current),
        lambda name: (reference[name].to_numpy(), current[name].to_numpy()),
        policy,
    )
