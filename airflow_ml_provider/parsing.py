"""
Strict parsing of recorded data: the checks every reader of records, evidence and policies shares.

A misspelt key silently ignored, ``"false"`` read as truthy or a naive time compared with an aware
one is how a gate opens by accident, so each helper here refuses what it cannot read exactly and
raises ``ValueError`` naming the field (``name``); callers turn that into their own named problem
(a failed check, a :class:`~airflow_ml_provider.records.step_record.RecordError`).

Also the one clock and the one time parser: every time is timezone-aware UTC (:func:`utc_now`), and
a recorded time without a timezone is refused (:class:`NaiveTimeError`), never assumed to be UTC.

Standard library only, and nothing from operators, sensors or hooks: the pure core imports it.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from airflow_ml_provider.exceptions import AirflowMLError

_NON_FINITE_TO_JSON = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_NON_FINITE_FROM_JSON = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class NaiveTimeError(AirflowMLError, ValueError):
    """A time without a timezone: it cannot be compared safely with another, so it is refused."""


# --- keys and scalars ----------------------------------------------------------------------------


def require_keys(
    data: object, what: str, required: Iterable[str] = (), optional: Iterable[str] = ()
) -> Mapping[str, Any]:
    """Refuse unknown keys: a misspelt key silently ignored could make the gate laxer than meant."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} must be a mapping, got {type(data).__name__}")
    required = tuple(required)
    allowed = set(required) | set(optional)
    missing = [key for key in required if key not in data]
    if missing:
        raise ValueError(f"{what} is missing {', '.join(repr(k) for k in missing)}")
    unknown = sorted((key for key in data if key not in allowed), key=repr)
    if unknown:
        guesses = {key: difflib.get_close_matches(key, allowed, n=1) for key in unknown if isinstance(key, str)}
        hints = "".join(f" Did you mean {close[0]!r} for {key!r}?" for key, close in guesses.items() if close)
        raise ValueError(
            f"{what} has unknown keys {', '.join(map(repr, unknown))} (allowed: {', '.join(sorted(allowed))}); "
            f"refusing to guess what they mean.{hints}"
        )
    return data


def require_text(value: object, name: str) -> str:
    """A required, non-blank string."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def optional_text(value: object, name: str) -> str | None:
    """None or a non-blank string: an empty string would be an ambiguous 'unknown'; use None."""
    return None if value is None else require_text(value, name)


def optional_str(value: object, name: str) -> str | None:
    """None or any string (free text such as a comment)."""
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or None, got {value!r}")
    return value


def require_version(value: object, name: str) -> str:
    """A model version; MLflow hands out both ``3`` and ``"3"``, so ints are normalised to strings."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return require_text(value, name)


def optional_version(value: object, name: str) -> str | None:
    return None if value is None else require_version(value, name)


def require_bool(value: object, name: str) -> bool:
    """A real bool: ``"false"`` or ``0`` read as truthy/falsy by accident is how gates open."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return value


def require_int(value: object, name: str) -> int:
    """A real int (not a bool, not a float that happens to be whole)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return value


def require_number(value: object, name: str) -> float:
    """Any real number except bool, as float; NaN and infinities are kept for ``decide`` to fail."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def require_finite(value: object, name: str) -> float:
    number = require_number(value, name)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number!r}")
    return number


def require_strings(value: object, name: str, *, allow_empty_items: bool = False) -> tuple[str, ...]:
    """A sequence of strings as a tuple; a bare string is refused (it would become its characters)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise ValueError(f"{name} must be a list of strings, got {value!r}")
    items = tuple(value)
    for item in items:
        if allow_empty_items:
            if not isinstance(item, str):
                raise ValueError(f"{name} must contain only strings, got {item!r}")
        else:
            require_text(item, f"{name} item")
    return items


def require_list(value: object, name: str) -> list[Any]:
    """A JSON array (list or tuple); a string or mapping is refused."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list, got {type(value).__name__}")
    return list(value)


def require_mapping(value: object, name: str) -> dict[str, Any]:
    """A JSON object with string keys, as a new dict."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise ValueError(f"{name} must have string keys, got {key!r}")
    return dict(value)


def optional_mapping(value: object, name: str) -> dict[str, Any] | None:
    return None if value is None else require_mapping(value, name)


def set_field(obj: object, name: str, value: object) -> None:
    """Normalise a field of a frozen dataclass inside ``__post_init__``."""
    object.__setattr__(obj, name, value)


# --- metrics -------------------------------------------------------------------------------------


def require_metrics(value: object, name: str) -> dict[str, float]:
    """Metric name -> number (NaN and infinities kept: ``decide`` fails them with a reason)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping of metric name to number, got {value!r}")
    return {require_text(key, f"{name} key"): require_number(val, f"{name}[{key!r}]") for key, val in value.items()}


def metric_to_json(value: float) -> float | str:
    """Strict JSON has no NaN: non-finite values become ``"NaN"``, ``"Infinity"``, ``"-Infinity"``."""
    if math.isfinite(value):
        return value
    return _NON_FINITE_TO_JSON[repr(value)]


def metric_from_json(value: object, name: str) -> float:
    if isinstance(value, str) and value in _NON_FINITE_FROM_JSON:
        return _NON_FINITE_FROM_JSON[value]
    return require_number(value, name)


def optional_metric_to_json(value: float | None) -> float | str | None:
    """:func:`metric_to_json`, with None kept."""
    return None if value is None else metric_to_json(value)


def optional_metric_from_json(value: object, name: str) -> float | None:
    """:func:`metric_from_json`, with None kept."""
    return None if value is None else metric_from_json(value, name)


def metrics_to_json(metrics: Mapping[str, float]) -> dict[str, float | str]:
    return {key: metric_to_json(val) for key, val in metrics.items()}


def metrics_from_json(value: object, name: str) -> dict[str, float]:
    """Like :func:`require_metrics`, also reading the strings :func:`metric_to_json` writes."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping of metric name to number, got {value!r}")
    return {require_text(key, f"{name} key"): metric_from_json(val, f"{name}[{key!r}]") for key, val in value.items()}


# --- time ----------------------------------------------------------------------------------------


def utc_now() -> datetime:
    """The clock: now, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


def to_utc(value: object, name: str) -> datetime:
    """Timezone-aware datetimes only, normalised to UTC: a naive time cannot be compared safely."""
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveTimeError(
            f"{name} must be timezone-aware, got naive {value.isoformat()}: "
            "write times with their offset (e.g. +00:00), a time without one is never assumed to be UTC"
        )
    return value.astimezone(timezone.utc)


def parse_time(value: object, name: str) -> datetime:
    """The one time parser: ISO-8601 with a timezone (``Z`` accepted), or an aware datetime, as UTC.

    A time without a timezone raises :class:`NaiveTimeError`; anything else unreadable ``ValueError``.
    """
    if isinstance(value, datetime):
        return to_utc(value, name)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an ISO-8601 string, got {value!r}")
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{name} is not an ISO-8601 time: {value!r}") from exc
    return to_utc(parsed, name)


def time_to_json(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat()
