"""What a step ran on and with: Python and package versions, hardware, and the identity of the user's code.

Collected once per process during ``execute()`` (never in the OpenLineage listener's fork) and kept
as plain dicts: they go into the step record and, from there, into the run facets. Standard library
only, so importing this module costs nothing at DAG parse time.

Nothing here may fail a task: every probe degrades to "unknown" (a missing key) on any error.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

#: Distributions whose versions every step reports (the ones the provider's steps use), when installed.
STEP_DISTRIBUTIONS: tuple[str, ...] = (
    "apache-airflow",
    "apache-airflow-task-sdk",
    "apache-airflow-providers-openlineage",
    "airflow-ml-provider",
    "mlflow",
    "pandas",
    "numpy",
    "pyarrow",
    "scikit-learn",
    "great-expectations",
    "openlineage-python",
)
#: Seconds any external probe (git, nvidia-smi) may take before it is given up.
PROBE_TIMEOUT = 3.0


def _normalize(name: str) -> str:
    """PEP 503 name normalisation, so ``Scikit_Learn`` and ``scikit-learn`` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.lru_cache(maxsize=1)
def _installed() -> dict[str, str]:
    """``{normalised name: version}`` of every installed distribution (first on sys.path wins)."""
    import importlib.metadata

    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        try:
            name = dist.metadata["Name"]
        except Exception:
            continue
        if name:
            found.setdefault(_normalize(name), str(dist.version))
    return found


@functools.lru_cache(maxsize=1)
def installed_packages_digest() -> tuple[str, int]:
    """``("sha256:<hex>", count)`` over the sorted ``name==version`` lines of every installed distribution."""
    lines = sorted(f"{name}=={version}" for name, version in _installed().items())
    return "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest(), len(lines)


def distribution_of(module: str | None) -> str | None:
    """The installed distribution that provides top-level module ``module``, if any."""
    if not module:
        return None
    top = module.split(".", 1)[0]
    try:
        names = packages_distributions().get(top) or []
    except Exception:
        return None
    return _normalize(names[0]) if names else None


@functools.lru_cache(maxsize=1)
def packages_distributions() -> Mapping[str, list[str]]:
    """Top-level module -> distributions, computed once per process: it reads every distribution's file
    list (0.3-1 s in a full environment). MLflow computes the same map for its requirement checks when a
    model is logged or loaded (``mlflow.utils.requirements_utils``, through the ``importlib_metadata``
    backport), so its map is the one used when it can be had: one computation, not two."""
    try:
        from mlflow.utils import requirements_utils

        requirements_utils._init_modules_to_packages_map()
        shared = requirements_utils._MODULES_TO_PACKAGES
        if isinstance(shared, Mapping):
            return shared
    except Exception:  # a different MLflow: compute it here
        pass
    import importlib.metadata

    return importlib.metadata.packages_distributions()


def package_versions(extra: Iterable[str] = ()) -> dict[str, str]:
    """Versions of the curated step distributions plus ``extra`` ones, for those installed."""
    installed = _installed()
    wanted = dict.fromkeys(_normalize(n) for n in (*STEP_DISTRIBUTIONS, *extra) if n)
    return {name: installed[name] for name in wanted if name in installed}


def environment_info(extra_distributions: Iterable[str] = ()) -> dict[str, Any]:
    """Python, platform, the step's package versions and the digest of the whole installed set."""
    info: dict[str, Any] = {
        "pythonVersion": platform.python_version(),
        "pythonImplementation": platform.python_implementation(),
        "platform": platform.platform(),
    }
    try:
        info["packages"] = package_versions(extra_distributions)
        info["packagesDigest"], info["packagesCount"] = installed_packages_digest()
    except Exception:  # a broken dist-info must not fail a task
        pass
    return info


@functools.lru_cache(maxsize=1)
def hardware_info() -> dict[str, Any]:
    """CPU model, logical cores, memory, architecture, and GPU model and count when nvidia-smi reports any."""
    info: dict[str, Any] = {"machine": platform.machine() or None, "logicalCores": os.cpu_count()}
    cpu = _cpu_model()
    if cpu:
        info["cpuModel"] = cpu
    memory = _memory_bytes()
    if memory:
        info["memoryBytes"] = memory
    gpus = _gpus()
    if gpus:
        info["gpuModel"] = gpus[0] if len(set(gpus)) == 1 else ", ".join(sorted(set(gpus)))
        info["gpuCount"] = len(gpus)
    return {k: v for k, v in info.items() if v is not None}


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        out = _run(["sysctl", "-n", "machdep.cpu.brand_string"])
        if out:
            return out.strip()
    return platform.processor() or None


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    if sys.platform == "darwin":
        out = _run(["sysctl", "-n", "hw.memsize"])
        if out and out.strip().isdigit():
            return int(out.strip())
    return None


def _gpus() -> list[str]:
    """GPU names from ``nvidia-smi``; empty when it is not installed or reports nothing."""
    if not shutil.which("nvidia-smi"):
        return []
    out = _run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
    return [line.strip() for line in (out or "").splitlines() if line.strip()]


def _run(args: list[str], cwd: str | None = None) -> str | None:
    """Run a probe; its stdout on success, None on any failure or timeout."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        result = subprocess.run(
            args, cwd=cwd, capture_output=True, text=True, timeout=PROBE_TIMEOUT, env=env, check=False
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return result.stdout if result.returncode == 0 else None


# --- code identity -------------------------------------------------------------------------------


def dags_folder() -> Path | None:
    """Airflow's ``[core] dags_folder``, resolved; None when Airflow is not configured here."""
    try:
        from airflow.sdk import conf

        folder = conf.get("core", "dags_folder", fallback=None)
    except Exception:  # no Airflow here (e.g. a plain script): nothing is in a DAGs folder
        return None
    return Path(os.path.expanduser(folder)).resolve() if folder else None


def _source_file(fn: Callable[..., Any]) -> Path | None:
    try:
        target = inspect.unwrap(fn)
        source = inspect.getsourcefile(target) or inspect.getfile(target)
    except (OSError, TypeError, ValueError):
        return None
    return Path(source).resolve() if source and os.path.isfile(source) else None


def callable_name(fn: Callable[..., Any]) -> str:
    """Where a callable lives, as a person finds it: ``<file>:<qualname>`` or ``<module>:<qualname>``.

    Airflow imports DAG files under an internal module name (``unusual_prefix_<hash>_<file>``) that
    names nothing a person can open, so a callable in the DAGs folder (``[core] dags_folder``) is
    named by its file relative to that folder: ``retrain.py:train``, or ``pipeline/steps.py:train`` for
    a helper module there. Elsewhere a module whose name matches its file (``mypkg.training``, an
    installed package) keeps ``module:qualname``; any other module name (a file imported under a made-up
    name, ``__main__``) gives way to the file's absolute path.
    """
    qualname = getattr(fn, "__qualname__", None) or repr(fn)
    module = getattr(fn, "__module__", None)
    source = _source_file(fn)
    if source is None:
        return f"{module or '?'}:{qualname}"
    folder = dags_folder()
    if folder is not None and source.is_relative_to(folder):
        return f"{source.relative_to(folder).as_posix()}:{qualname}"
    if module and _names_file(module, source):
        return f"{module}:{qualname}"
    return f"{source.as_posix()}:{qualname}"


def _names_file(module: str, source: Path) -> bool:
    """Whether importing ``module`` by name finds ``source`` (``a.b`` -> ``.../a/b.py`` or ``.../a/b/__init__.py``)."""
    parts = module.split(".")
    tail = parts if source.stem != "__init__" else [*parts, "__init__"]
    return source.suffix == ".py" and list(source.with_suffix("").parts[-len(tail) :]) == tail


def code_info(fn: Callable[..., Any]) -> dict[str, Any]:
    """Identity of the user's callable: its name (:func:`callable_name`), sha256 of its source, and where it lives.

    ``gitCommit``/``gitDirty`` are set when the callable's file is inside a git checkout (``gitDirty``
    is true when tracked files have uncommitted changes or the file itself is not committed);
    ``distribution``/``distributionVersion`` when it comes from an installed distribution.
    """
    from airflow_ml_provider.records.redaction import strip_credentials

    target = inspect.unwrap(fn) if callable(fn) else fn
    info: dict[str, Any] = {"callable": callable_name(fn)}
    try:
        info["sourceSha256"] = hashlib.sha256(inspect.getsource(target).encode()).hexdigest()
    except (OSError, TypeError):
        pass
    dist = distribution_of(getattr(fn, "__module__", None))
    if dist:
        info["distribution"] = dist
        version = _installed().get(dist)
        if version:
            info["distributionVersion"] = version
    source_file = _source_file(fn)
    if source_file is not None:
        info.update(_git_info(source_file))
        if "gitRemote" in info:
            info["gitRemote"] = strip_credentials(info["gitRemote"])
    return info


def _git_info(path: Path) -> dict[str, Any]:
    """Commit, dirty flag, path inside the repository and origin remote for a file in a git checkout."""
    if not shutil.which("git"):
        return {}
    cwd = str(path.parent)
    top = _run(["git", "rev-parse", "--show-toplevel"], cwd)
    commit = _run(["git", "rev-parse", "HEAD"], cwd) if top else None
    if not top or not commit:
        return {}
    if _run(["git", "check-ignore", "-q", "--", str(path)], cwd) is not None:
        return {}  # e.g. an installed package in a virtualenv inside the checkout: not the checkout's code
    root = Path(top.strip())
    info: dict[str, Any] = {"gitCommit": commit.strip()}
    try:
        relative = path.relative_to(root.resolve()).as_posix()
    except ValueError:
        relative = None
    if relative:
        info["gitPath"] = relative
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd)
    tracked = _run(["git", "ls-files", "--error-unmatch", "--", str(path)], cwd) if relative else None
    if status is not None:
        info["gitDirty"] = bool(status.strip()) or tracked is None
    remote = _run(["git", "config", "--get", "remote.origin.url"], cwd)
    if remote and remote.strip():
        info["gitRemote"] = remote.strip()
    return info
