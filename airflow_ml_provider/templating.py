"""Literal or templated: what an operator argument is known to be when its DAG file is parsed.

A literal argument can be checked in the operator's ``__init__``, so a mistake is a DAG import error
naming it; a templated one is known only after Airflow renders it, at run time. Airflow renders the
values of a templated dict, never its keys, so a dict's keys are literal even when its values are not.

Without ``render_template_as_native_obj`` a template renders as text ("0.9"); :func:`coerce_numbers`
and :func:`coerce_to_annotations` turn such text back into numbers, and only where a template was.
Stdlib only: this runs when a DAG file is parsed.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

__all__ = ["coerce_numbers", "coerce_to_annotations", "map_at", "parse_number", "template_paths", "templated_keys"]

_JINJA = ("{{", "{%", "{#")
_PLAIN = (str, int, float, bool, type(None))
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")

Path = tuple[Any, ...]


def template_paths(value: Any, path: Path = ()) -> list[Path] | None:
    """Paths (keys and indexes) to the Jinja strings inside ``value``, ``[]`` for a literal.

    None when ``value`` holds something resolved at run time that no path names, such as an
    ``XComArg`` (another task's output): nothing in it can be checked at parse time.
    """
    if isinstance(value, str):
        return [path] if any(marker in value for marker in _JINJA) else []
    if isinstance(value, _PLAIN):
        return []
    items = _children(value)
    if items is None:
        return None
    found: list[Path] = []
    for key, item in items:
        inner = template_paths(item, (*path, key))
        if inner is None:
            return None
        found.extend(inner)
    return found


def _children(value: Any) -> Sequence[tuple[Any, Any]] | None:
    """``(key or index, item)`` of a mapping or list; None for anything else."""
    if isinstance(value, Mapping):
        return list(value.items())
    if isinstance(value, (list, tuple)):
        return list(enumerate(value))
    return None


def templated_keys(params: Mapping[str, Any]) -> frozenset[str]:
    """The keys of ``params`` whose whole value is a template (what may render as text)."""
    return frozenset(
        key for key, value in params.items() if isinstance(value, str) and template_paths(value) == [()]
    )


def parse_number(text: str) -> float | None:
    """The finite number a rendered template spells ("0.9", " 5 "), else None."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def map_at(value: Any, paths: Collection[Path], fn: Callable[[Any], Any]) -> Any:
    """``value`` with ``fn`` applied to the item at each of ``paths`` (a copy; a path that is gone is skipped)."""
    if not paths:
        return value
    if () in paths:
        return fn(value)
    items = _children(value)
    if items is None:
        return value
    mapped = [(key, map_at(item, [path[1:] for path in paths if path[0] == key], fn)) for key, item in items]
    return dict(mapped) if isinstance(value, Mapping) else [item for _, item in mapped]


def _number_or_text(value: Any) -> Any:
    number = parse_number(value) if isinstance(value, str) else None
    return value if number is None else number


def coerce_numbers(value: Any, paths: Collection[Path]) -> Any:
    """``value`` with the text at each of ``paths`` turned into a number where it spells one.

    For templated numbers rendered as text; anything else (text that is not a number, a path that
    is gone) is left for validation to refuse with its own message.
    """
    return map_at(value, paths, _number_or_text)


_CONVERTIBLE: dict[Any, type] = {int: int, float: float, bool: bool, "int": int, "float": float, "bool": bool}


def _convert(text: str, kind: type) -> Any:
    """``text`` as ``kind``; ValueError when it does not spell one."""
    if kind is bool:
        word = text.strip().lower()
        if word in ("true", "false"):
            return word == "true"
    elif kind is int:
        if _INTEGER.fullmatch(text):
            return int(text)
    else:
        number = parse_number(text)
        if number is not None:
            return number
    raise ValueError(text)


def coerce_to_annotations(
    fn: Callable[..., Any], params: Mapping[str, Any], templated: Collection[str], argument: str
) -> dict[str, Any]:
    """``params`` with each templated one rendered as text converted to the type ``fn`` annotates it
    with (``int``, ``float`` or ``bool``); others are passed as they are.

    Raises TypeError naming the parameter when the rendered text does not spell that type: the
    function would otherwise get a string where it declared a number.
    """
    out = dict(params)
    if not templated:
        return out
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return out
    for name in templated:
        value, parameter = out.get(name), parameters.get(name)
        if not isinstance(value, str) or parameter is None:
            continue
        kind = _CONVERTIBLE.get(parameter.annotation)
        if kind is None:
            continue
        try:
            out[name] = _convert(value, kind)
        except ValueError:
            raise TypeError(
                f"{argument} parameter {name!r} is annotated {kind.__name__}, but its template rendered "
                f"{value!r}, which is not {'an' if kind is int else 'a'} {kind.__name__}. "
                "Fix the template or the value it reads (e.g. the DAG param)."
            ) from None
    return out
