"""skops imported through the module index gives the names skops's own lookup gives (hooks/_skops.py).

The names matter: skops writes them into a saved model and trusts them when loading one, so a model saved
by a task (index) must load in a plain Python process (no index) and the other way round.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import pytest

from airflow_ml_provider.hooks._skops import indexed_whichmodule


def _ufuncs() -> list[tuple[str, object]]:
    import numpy as np
    import scipy.special

    found = []
    for module in (np, scipy.special):
        for name in dir(module):
            value = getattr(module, name)
            if isinstance(value, np.ufunc) or type(value).__name__ == "ufunc":
                found.append((name, value))
    return found


def test_the_index_answers_as_skops_own_lookup_for_every_ufunc() -> None:
    from skops.io import _utils

    original = getattr(_utils.whichmodule, "__wrapped__", _utils.whichmodule)
    indexed = indexed_whichmodule(original)
    ufuncs = _ufuncs()
    assert len(ufuncs) > 300  # numpy's and scipy.special's: what skops's trusted types are computed from
    with warnings.catch_warnings():  # skops's own walk touches every deprecated Airflow attribute
        warnings.simplefilter("ignore")
        differ = [(name, indexed(obj, name), original(obj, name)) for name, obj in ufuncs]
    assert [d for d in differ if d[1] != d[2]] == []


def test_an_object_the_index_does_not_hold_goes_to_skops_own_lookup() -> None:
    calls: list[str] = []

    def original(obj: object, name: str) -> str:
        calls.append(name)
        return "answered.by.skops"

    indexed = indexed_whichmodule(original)
    late = type("Late", (), {})()  # created after nothing imported it: in no module's namespace
    assert indexed(late, "not_in_any_module") == "answered.by.skops"
    assert calls == ["not_in_any_module"]


_TRUSTED = """
import json, sys, warnings
import airflow.sdk  # a task process: Airflow's modules loaded first
{how}
from skops.io import _trusted_types as t
print(json.dumps({{"scipy": t.SCIPY_UFUNC_TYPE_NAMES, "numpy": t.NUMPY_UFUNC_TYPE_NAMES,
                  "indexed": hasattr(sys.modules["skops.io._utils"].whichmodule, "__wrapped__")}}))
"""


def _trusted(how: str) -> dict[str, object]:
    code = textwrap.dedent(_TRUSTED.format(how=how))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_trusted_type_names_are_those_of_a_plain_import() -> None:
    """In two fresh processes with Airflow loaded: the index's trusted names equal skops's own."""
    plain = _trusted("warnings.simplefilter('ignore')\nimport skops.io")
    fast = _trusted("from airflow_ml_provider.hooks._skops import import_skops\nimport_skops()")
    assert plain.pop("indexed") is False and fast.pop("indexed") is True
    assert fast == plain and len(plain["scipy"]) > 100  # type: ignore[arg-type]


def test_a_failed_import_leaves_no_half_imported_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault that cannot be caused otherwise (skops's own __init__ raising) is simulated with a fake spec."""
    import importlib.util
    import types

    from airflow_ml_provider.hooks import _skops

    class Broken:
        def create_module(self, spec: object) -> None:
            return None

        def exec_module(self, module: types.ModuleType) -> None:
            raise RuntimeError("skops is broken")

    spec = importlib.util.spec_from_loader("skops.io", Broken(), is_package=True)
    assert spec is not None
    real = importlib.util.find_spec("skops.io")
    assert real is not None and real.submodule_search_locations is not None
    spec.submodule_search_locations = list(real.submodule_search_locations)
    saved = {n: m for n, m in sys.modules.items() if n == "skops.io" or n.startswith("skops.io.")}
    for name in saved:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec)
    with pytest.raises(RuntimeError, match="skops is broken"):
        _skops.import_skops()
    assert not [n for n in sys.modules if n == "skops.io" or n.startswith("skops.io.")]
