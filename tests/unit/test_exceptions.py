"""Every exception class of the provider derives from AirflowMLError and keeps its other base.

Read from the source (nothing imported, so the check is instant): a class is an exception when one
of its bases is a built-in exception or, transitively, another exception class of the package.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_ml_provider"
BASE = "AirflowMLError"
BUILTIN_EXCEPTIONS = {
    name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)
}


def _classes() -> dict[str, tuple[str, list[str]]]:
    """class name -> (where, base names) for every class of the package."""
    out: dict[str, tuple[str, list[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [
                    b.id if isinstance(b, ast.Name) else b.attr
                    for b in node.bases
                    if isinstance(b, (ast.Name, ast.Attribute))
                ]
                out[node.name] = (f"{path.relative_to(PACKAGE.parent)}:{node.lineno}", bases)
    return out


def _ancestors(name: str, classes: dict[str, tuple[str, list[str]]]) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        for base in classes.get(todo.pop(), ("", []))[1]:
            if base not in seen:
                seen.add(base)
                todo.append(base)
    return seen


def test_every_exception_derives_from_the_base() -> None:
    classes = _classes()
    exceptions = {
        name: where
        for name, (where, _) in classes.items()
        if name != BASE and _ancestors(name, classes) & (BUILTIN_EXCEPTIONS | {BASE})
    }
    assert len(exceptions) >= 20, exceptions  # the check found the package's exceptions at all
    strays = [f"{where} {name}" for name, where in exceptions.items() if BASE not in _ancestors(name, classes)]
    assert not strays, "derive these from airflow_ml_provider.exceptions.AirflowMLError:\n" + "\n".join(strays)


def test_second_bases_are_kept() -> None:
    from airflow_ml_provider.data.datasets import DatasetError
    from airflow_ml_provider.data.fingerprint import FingerprintError
    from airflow_ml_provider.exceptions import AirflowMLError
    from airflow_ml_provider.model.reference import ModelReferenceError
    from airflow_ml_provider.promotion.lock import LockTimeout

    assert issubclass(DatasetError, ValueError) and issubclass(ModelReferenceError, ValueError)
    assert issubclass(FingerprintError, OSError) and issubclass(FingerprintError, AirflowMLError)
    assert issubclass(LockTimeout, TimeoutError) and issubclass(LockTimeout, RuntimeError)
