"""The gate package stays pure: stdlib only, no I/O modules, cheap to import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_ml_provider.gate

# ============================================================================================
# The package stays pure: stdlib only, no I/O modules, cheap to import
# ============================================================================================

GATE_DIR = Path(airflow_ml_provider.gate.__file__).parent
IO_MODULES = {"os", "io", "pathlib", "socket", "subprocess", "shutil", "tempfile", "time", "urllib", "http"}
# gather.py and store.py are the gate's I/O side (they read the evidence from and write the verdict to MLflow);
# the rest is the pure core.
PURE_MODULES = sorted(path.name for path in GATE_DIR.glob("*.py") if path.name not in {"gather.py", "store.py"})


class TestPurity:
    def test_the_pure_core_is_found(self) -> None:
        assert {"decide.py", "evidence.py", "policy.py", "verdict.py"} <= set(PURE_MODULES), PURE_MODULES

    @pytest.mark.parametrize("module", PURE_MODULES)
    def test_imports_only_stdlib_without_io(self, module: str) -> None:
        tree = ast.parse((GATE_DIR / module).read_text())
        imported: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        imported.discard("airflow_ml_provider")
        assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
        assert not imported & IO_MODULES, imported & IO_MODULES

    def test_importing_the_gate_loads_no_heavy_library(self) -> None:
        code = (
            "import sys, airflow_ml_provider.gate; "
            "heavy = {'airflow', 'mlflow', 'great_expectations', 'pandas', 'pyarrow', 'sklearn', "
            "'openlineage'}; "
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "[]"
