"""skops, imported without walking every loaded module eight hundred times.

MLflow's sklearn flavor saves and loads models with skops (it does not execute code on load). Importing
``skops.io`` computes the names of its trusted types, and for each of the ~840 numpy and scipy ufuncs
(objects without ``__module__``) skops's ``whichmodule`` walks ``sys.modules`` in order, calling
``getattr(module, name, None)`` on each until one holds the object. In an Airflow task process that is
~4,000 modules, many with a deprecation ``__getattr__``: 680,000 lookups, about 2 s of every task that
saves or loads a model (measured with cProfile; it grows with what Airflow has loaded).

:func:`import_skops` replaces that function, before ``skops.io`` is first imported, with one that answers
from an index of every loaded module's ``__dict__``, built once (about 0.1 s), in the same order: the
first module whose namespace holds the object under that name, as skops's own loop finds it. Each answer
is checked against the module; an object the index does not hold (a module imported since, or one that
provides the name only through ``__getattr__``) goes to skops's own function, so the answer is skops's.
The names skops writes into a saved model, and trusts when loading one, are therefore the same as
without the index (tested against skops's own function on every ufunc).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["import_skops"]

_lock = threading.Lock()
_SKIPPED = ("__main__", "__mp_main__")  # skops's own loop skips them too


def _module_index() -> dict[tuple[str, int], str]:
    """``(attribute name, id(value)) -> module name`` of the first loaded module holding it, in import order."""
    index: dict[tuple[str, int], str] = {}
    for module_name, module in sys.modules.copy().items():
        if module is None or module_name in _SKIPPED:
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attribute, value in list(namespace.items()):
            index.setdefault((attribute, id(value)), module_name)
    return index


def indexed_whichmodule(original: Callable[[Any, str], str]) -> Callable[[Any, str], str]:
    """skops's ``whichmodule(obj, name)``, answered from :func:`_module_index` where the index holds the object."""
    index: dict[tuple[str, int], str] | None = None

    def whichmodule(obj: Any, name: str) -> str:
        nonlocal index
        if getattr(obj, "__module__", None) is not None or "." in name:
            return original(obj, name)
        if index is None:
            index = _module_index()
        found = index.get((name, id(obj)))
        module = sys.modules.get(found) if found is not None else None
        if module is not None and getattr(module, "__dict__", {}).get(name) is obj:
            return found  # type: ignore[return-value]
        return original(obj, name)

    whichmodule.__wrapped__ = original  # type: ignore[attr-defined]
    return whichmodule


def import_skops() -> None:
    """
    Import ``skops.io`` (once per process) with :func:`indexed_whichmodule`; nothing when skops is absent.

    The package's ``__init__`` computes the trusted types, so it runs only after ``skops.io._utils`` is
    patched: the package module is created from its spec, ``_utils`` imported into it, then the ``__init__``
    executed, as the import system does it in one step. A failure leaves no half-imported package behind.
    """
    if "skops.io" in sys.modules:
        return
    import importlib
    import importlib.util

    with _lock:
        if "skops.io" in sys.modules:
            return
        try:
            spec = importlib.util.find_spec("skops.io")
        except ImportError:
            spec = None
        if spec is None or spec.loader is None:
            return  # no skops: MLflow says what is missing, if a model needs it
        package = importlib.util.module_from_spec(spec)
        sys.modules["skops.io"] = package
        try:
            utils = importlib.import_module("skops.io._utils")
            if callable(getattr(utils, "whichmodule", None)):
                setattr(utils, "whichmodule", indexed_whichmodule(utils.whichmodule))  # noqa: B010
            spec.loader.exec_module(package)
        except BaseException:
            for name in [n for n in sys.modules if n == "skops.io" or n.startswith("skops.io.")]:
                del sys.modules[name]
            raise
        setattr(sys.modules["skops"], "io", package)  # noqa: B010  (what the import system sets)
