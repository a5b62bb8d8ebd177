"""The example's helper package (``dags_examples/breast_cancer``), loaded by file path for the tests that call it.

Airflow makes ``breast_cancer`` importable for the DAG file by putting the DAGs folder on ``sys.path``
when it parses DAGs (its ``BundleDagBag``). The test process does not put it there up front: a command
that forgets to would then pass here and fail for users (tests/cli runs every ``airflow-ml`` command with
only the README's environment). The modules keep their real names (``breast_cancer.pipeline``) and are
registered under them, so the DAG parsed in this process uses these same functions and the code
identities recorded from them are the ones a real run records.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PACKAGE = "breast_cancer"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / "dags_examples" / PACKAGE


def _load(name: str, path: Path, package_dir: Path | None = None) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    locations = [str(package_dir)] if package_dir else None
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=locations)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def example_module(name: str) -> ModuleType:
    """``breast_cancer.<name>`` (e.g. ``pipeline``, ``data``) of the example."""
    package = _load(PACKAGE, PACKAGE_DIR / "__init__.py", PACKAGE_DIR)
    module = _load(f"{PACKAGE}.{name}", PACKAGE_DIR / f"{name}.py")
    setattr(package, name, module)
    return module


pipeline = example_module("pipeline")
data = example_module("data")
TARGET, train, transform = pipeline.TARGET, pipeline.train, pipeline.transform
write_raw_dataset = data.write_raw_dataset
