"""Strict-JSON copies and short texts of arbitrary values, for records, params, facets and reports.

What users return (numpy scalars, pandas timestamps, Great Expectations objects, NaN) has to be
recorded in MLflow, XCom and OpenLineage events, all of which want strict JSON and bounded sizes.
One converter, so that a value reads the same in every place it is recorded.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


def json_safe(value: Any, *, infinity_as_text: bool = False) -> Any:
    """A strict-JSON copy of ``value`` (no I/O, never raises).

    NaN, NA and NaT become ``None``; infinities become ``None``, or the strings ``"inf"`` / ``"-inf"``
    with ``infinity_as_text`` (where the reader must tell them from a missing value); mapping keys
    become strings, sets sorted lists, dates ISO strings; numpy and pandas values their Python
    equivalents (without importing numpy); anything else its ``str()``.
    """

    def clean(v: Any) -> Any:
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, int):
            return int(v)
        if isinstance(v, float):
            if math.isnan(v):
                return None
            if math.isinf(v):
                return ("inf" if v > 0 else "-inf") if infinity_as_text else None
            return float(v)
        if isinstance(v, Mapping):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple, set, frozenset)):
            return [clean(x) for x in (sorted(v, key=repr) if isinstance(v, (set, frozenset)) else v)]
        if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
            return v.isoformat()
        if isinstance(v, _dt.timedelta):
            return v.total_seconds()
        if isinstance(v, Decimal):
            return clean(float(v))
        if isinstance(v, bytes):
            return v.decode("utf-8", errors="replace")
        if type(v).__name__ in ("NAType", "NaTType"):
            return None
        # numpy scalars and arrays (and pandas objects wrapping them) without importing numpy.
        if hasattr(v, "dtype") and hasattr(v, "tolist"):
            with contextlib.suppress(Exception):
                return clean(v.tolist())
        if hasattr(v, "isoformat"):  # pandas.Timestamp, numpy datetime wrappers
            with contextlib.suppress(Exception):
                return str(v.isoformat())
        if hasattr(v, "to_json_dict"):  # Great Expectations objects
            with contextlib.suppress(Exception):
                return clean(v.to_json_dict())
        try:
            return str(v)
        except Exception:
            return f"<unprintable {type(v).__name__}>"

    return clean(value)


def short_text(value: Any, limit: int) -> str:
    """``value`` as text (a string as is, anything else as sorted-key JSON), at most ``limit``
    characters: longer text is cut and ends in ``...``, so that one value cannot flood a record."""
    text = value if isinstance(value, str) else json.dumps(json_safe(value), sort_keys=True)
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."
