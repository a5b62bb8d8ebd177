"""What one step used: wall and CPU time, peak memory, and GPU memory where a GPU is present.

Measured by :class:`ResourceMeter` around the step's body (``records.step_run.step_run``), so the
MLflow bookkeeping before and after the body is not counted, and recorded as :class:`StepResources`
in the step record, the ``mlResources`` run facet and the step run's metrics (:func:`resource_metrics`).
Standard library only, Linux first with portable fallbacks; every probe degrades to "unknown" (None)
and none may fail a step. The measurement costs well under a millisecond (no GPU) per step.

What each figure means:

- ``wall_seconds``: ``time.perf_counter`` around the body.
- ``cpu_seconds``: user + system CPU of this process, all its threads (``getrusage(RUSAGE_SELF)``;
  ``time.process_time`` without the ``resource`` module). ``children_cpu_seconds``: the same for
  child processes the step started and that ended (and were waited for) during it
  (``RUSAGE_CHILDREN``); None where it cannot be known.
- ``peak_memory_bytes``: the largest resident set size of the process, by ``peak_memory_method``:

  - ``step_reset`` -- Linux: the peak (``VmHWM``) is reset at the step's start by writing ``5`` to
    ``/proc/self/clear_refs``, so it is the step's own peak.
  - ``step_rose`` -- the reset was refused (an Airflow task process is made non-dumpable by the
    supervisor, which gives ``/proc/self`` to root, so a non-root worker may not write there), but
    the process's peak rose during the step: the new peak was reached during the step, so it is the
    step's peak exactly.
  - ``process`` -- the process's peak since it started (``VmHWM``, else ``ru_maxrss``; the rise
    above is read from either): an upper
    bound of the step's, never presented as the step's (its metric is ``process_peak_memory_bytes``).

  Resetting the peak is process-wide: two steps in one process at once (not how Airflow runs tasks)
  would see each other's peak.
- ``memory_start_bytes``/``memory_end_bytes``: the resident set size at the step's start and end
  (Linux ``VmRSS``; None elsewhere).
- ``gpus``: empty without a GPU. When ``torch`` is already imported (never imported here) and its
  CUDA context is initialised, each device's name and ``torch.cuda.max_memory_allocated`` (reset at
  the step's start when CUDA was initialised before it; a context first initialised during the step
  only holds the step's allocations either way): method ``torch_peak_allocated``. Otherwise (also
  when that reset failed, so torch's peak would be the process's), when
  ``nvidia-smi`` is on the PATH, one query at the step's end of each device's name and memory in use
  by all processes: method ``nvidia_smi_used_at_end``.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_ml_provider.parsing import (
    require_finite,
    require_int,
    require_keys,
    require_list,
    require_text,
)
from airflow_ml_provider.records.tags import resources_metric

#: ``peak_memory_method`` values (see the module docstring); the first two are the step's own peak.
PEAK_STEP_RESET = "step_reset"
PEAK_STEP_ROSE = "step_rose"
PEAK_PROCESS = "process"
PEAK_METHODS = (PEAK_STEP_RESET, PEAK_STEP_ROSE, PEAK_PROCESS)
#: ``GpuUsage.memory_method`` values.
GPU_TORCH_PEAK = "torch_peak_allocated"
GPU_SMI_USED_AT_END = "nvidia_smi_used_at_end"
GPU_METHODS = (GPU_TORCH_PEAK, GPU_SMI_USED_AT_END)
#: The one ``nvidia-smi`` query: memory in MiB, no header, no units.
NVIDIA_SMI_QUERY = (
    "nvidia-smi",
    "--query-gpu=index,name,memory.used,memory.total",
    "--format=csv,noheader,nounits",
)
_NVIDIA_SMI_TIMEOUT = 3.0
_MIB = 1024 * 1024
_PROC_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"
_RESET_PEAK_RSS = "5"  # clear_refs: reset the peak resident set size only (Linux 4.0+); clears no page bits


# --- the record ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuUsage:
    """One GPU device: its name and memory, by ``memory_method`` (:data:`GPU_METHODS`)."""

    index: int
    name: str
    memory_bytes: int | None
    memory_method: str
    memory_total_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "memory_bytes": self.memory_bytes,
            "memory_method": self.memory_method,
            "memory_total_bytes": self.memory_total_bytes,
        }

    @classmethod
    def from_dict(cls, data: object, name: str) -> GpuUsage:
        data = require_keys(data, name, ("index", "name", "memory_bytes", "memory_method", "memory_total_bytes"))
        return cls(
            index=_count(data["index"], f"{name}.index"),
            name=require_text(data["name"], f"{name}.name"),
            memory_bytes=_optional_count(data["memory_bytes"], f"{name}.memory_bytes"),
            memory_method=_one_of(data["memory_method"], GPU_METHODS, f"{name}.memory_method"),
            memory_total_bytes=_optional_count(data["memory_total_bytes"], f"{name}.memory_total_bytes"),
        )


@dataclass(frozen=True)
class StepResources:
    """What one step used (see the module docstring for what each figure is and how it was measured)."""

    wall_seconds: float
    cpu_seconds: float
    children_cpu_seconds: float | None
    peak_memory_bytes: int | None
    #: How ``peak_memory_bytes`` was measured (:data:`PEAK_METHODS`); None when it is unknown.
    peak_memory_method: str | None
    memory_start_bytes: int | None
    memory_end_bytes: int | None
    gpus: tuple[GpuUsage, ...] = ()

    @property
    def peak_is_the_steps(self) -> bool:
        """Whether ``peak_memory_bytes`` is the step's own peak (not the process's since it started)."""
        return self.peak_memory_method in (PEAK_STEP_RESET, PEAK_STEP_ROSE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "wall_seconds": self.wall_seconds,
            "cpu_seconds": self.cpu_seconds,
            "children_cpu_seconds": self.children_cpu_seconds,
            "peak_memory_bytes": self.peak_memory_bytes,
            "peak_memory_method": self.peak_memory_method,
            "memory_start_bytes": self.memory_start_bytes,
            "memory_end_bytes": self.memory_end_bytes,
            "gpus": [gpu.to_dict() for gpu in self.gpus],
        }

    @classmethod
    def from_dict(cls, data: object, name: str = "resources") -> StepResources:
        data = require_keys(data, name, _RESOURCE_KEYS)
        peak, method = data["peak_memory_bytes"], data["peak_memory_method"]
        if (peak is None) != (method is None):
            raise ValueError(f"{name}.peak_memory_bytes and .peak_memory_method are recorded together, got one")
        children = data["children_cpu_seconds"]
        return cls(
            wall_seconds=_seconds(data["wall_seconds"], f"{name}.wall_seconds"),
            cpu_seconds=_seconds(data["cpu_seconds"], f"{name}.cpu_seconds"),
            children_cpu_seconds=None if children is None else _seconds(children, f"{name}.children_cpu_seconds"),
            peak_memory_bytes=_optional_count(peak, f"{name}.peak_memory_bytes"),
            peak_memory_method=None if method is None else _one_of(method, PEAK_METHODS, f"{name}.peak_memory_method"),
            memory_start_bytes=_optional_count(data["memory_start_bytes"], f"{name}.memory_start_bytes"),
            memory_end_bytes=_optional_count(data["memory_end_bytes"], f"{name}.memory_end_bytes"),
            gpus=tuple(
                GpuUsage.from_dict(gpu, f"{name}.gpus[{i}]")
                for i, gpu in enumerate(require_list(data["gpus"], f"{name}.gpus"))
            ),
        )


_RESOURCE_KEYS = (
    "wall_seconds",
    "cpu_seconds",
    "children_cpu_seconds",
    "peak_memory_bytes",
    "peak_memory_method",
    "memory_start_bytes",
    "memory_end_bytes",
    "gpus",
)


def _seconds(value: object, name: str) -> float:
    seconds = require_finite(value, name)
    if seconds < 0:
        raise ValueError(f"{name} must be >= 0, got {seconds!r}")
    return seconds


def _count(value: object, name: str) -> int:
    number = require_int(value, name)
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {number!r}")
    return number


def _optional_count(value: object, name: str) -> int | None:
    return None if value is None else _count(value, name)


def _one_of(value: object, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def resource_metrics(resources: StepResources) -> dict[str, float]:
    """The step run's MLflow metrics. A process peak is logged as ``process_peak_memory_bytes``, never
    as the step's ``peak_memory_bytes``; a GPU's figure is named by what it is (the step's peak
    allocation, or the device's memory in use at the end)."""
    metrics: dict[str, float] = {
        resources_metric("wall_seconds"): resources.wall_seconds,
        resources_metric("cpu_seconds"): resources.cpu_seconds,
    }
    optional = {
        "children_cpu_seconds": resources.children_cpu_seconds,
        "peak_memory_bytes" if resources.peak_is_the_steps else "process_peak_memory_bytes": (
            resources.peak_memory_bytes
        ),
        "memory_start_bytes": resources.memory_start_bytes,
        "memory_end_bytes": resources.memory_end_bytes,
    }
    for gpu in resources.gpus:
        what = "peak_allocated_bytes" if gpu.memory_method == GPU_TORCH_PEAK else "used_at_end_bytes"
        optional[f"gpu.{gpu.index}.{what}"] = gpu.memory_bytes
    metrics.update({resources_metric(k): float(v) for k, v in optional.items() if v is not None})
    return metrics


# --- the measurement -------------------------------------------------------------------------------


class ResourceMeter:
    """Started at the step's start (construction), read once at its end (:meth:`stop`); each probe
    degrades to None rather than raise."""

    def __init__(self) -> None:
        self._reset = _reset_peak_rss()
        status = _proc_status()
        self._start_rss, self._start_peak = status.get("VmRSS"), _process_peak(status)
        # torch's peak is the step's when CUDA starts during the step or its peak was reset now.
        cuda = _torch_cuda()
        self._torch_is_the_steps = cuda is None or _reset_torch_peaks(cuda)
        self._cpu, self._children = _cpu_seconds()
        self._wall = time.perf_counter()

    def stop(self) -> StepResources:
        """The resources used since the meter started."""
        wall = time.perf_counter() - self._wall
        cpu, children = _cpu_seconds()  # before any probe below starts a child process
        status = _proc_status()
        peak, method = self._peak(_process_peak(status))
        return StepResources(
            wall_seconds=wall,
            cpu_seconds=max(0.0, cpu - self._cpu),
            children_cpu_seconds=None if children is None or self._children is None else max(
                0.0, children - self._children
            ),
            peak_memory_bytes=peak,
            peak_memory_method=method,
            memory_start_bytes=self._start_rss,
            memory_end_bytes=status.get("VmRSS"),
            gpus=_gpus(self._torch_is_the_steps),
        )

    def _peak(self, end_peak: int | None) -> tuple[int | None, str | None]:
        """The peak and its method (:data:`PEAK_METHODS`), from the process peak at the end."""
        if end_peak is None:
            return None, None
        if self._reset:
            return end_peak, PEAK_STEP_RESET
        if self._start_peak is not None and end_peak > self._start_peak:
            return end_peak, PEAK_STEP_ROSE
        return end_peak, PEAK_PROCESS


def _reset_peak_rss() -> bool:
    """Reset the process's peak RSS (Linux); False when not permitted or not supported."""
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write(_RESET_PEAK_RSS)
    except OSError:
        return False
    return True


def _proc_status() -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of ``/proc/self/status`` in bytes; empty where there is no /proc."""
    found: dict[str, int] = {}
    try:
        with open(_PROC_STATUS, "rb") as f:  # bytes: no codec lookup, and the file is ASCII
            for line in f:
                key, _, value = line.partition(b":")
                if key in (b"VmRSS", b"VmHWM"):
                    number, _, unit = value.strip().partition(b" ")
                    if number.isdigit() and unit == b"kB":
                        found[key.decode()] = int(number) * 1024
    except OSError:
        pass
    return found


def _process_peak(status: Mapping[str, int]) -> int | None:
    """The process's peak RSS: ``VmHWM`` on Linux, else ``ru_maxrss``."""
    return status["VmHWM"] if "VmHWM" in status else _maxrss_bytes()


def _cpu_seconds() -> tuple[float, float | None]:
    """User + system CPU seconds of this process and of its ended children (None when unknown)."""
    try:
        import resource
    except ImportError:  # Windows
        return time.process_time(), None
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _maxrss_bytes() -> int | None:
    """The process's peak RSS from ``getrusage``: kilobytes on Linux and the BSDs, bytes on macOS."""
    try:
        import resource
    except ImportError:
        return None
    maxrss = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return maxrss if sys.platform == "darwin" else maxrss * 1024


# --- GPUs ------------------------------------------------------------------------------------------


def _torch_cuda() -> Any:
    """``torch.cuda`` when torch is already imported and this process initialised CUDA, else None."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        return cuda if cuda is not None and cuda.is_initialized() else None
    except Exception:
        return None


def _reset_torch_peaks(cuda: Any) -> bool:
    try:
        for index in range(cuda.device_count()):
            cuda.reset_peak_memory_stats(index)
    except Exception:
        return False
    return True


def _gpus(torch_is_the_steps: bool) -> tuple[GpuUsage, ...]:
    """By torch when its figures are the step's, else by one ``nvidia-smi`` query, else none."""
    cuda = _torch_cuda() if torch_is_the_steps else None
    if cuda is not None:
        try:
            return tuple(
                GpuUsage(
                    index=index,
                    name=str(cuda.get_device_name(index)),
                    memory_bytes=int(cuda.max_memory_allocated(index)),
                    memory_method=GPU_TORCH_PEAK,
                    memory_total_bytes=int(cuda.get_device_properties(index).total_memory),
                )
                for index in range(cuda.device_count())
            )
        except Exception:
            pass
    if not shutil.which(NVIDIA_SMI_QUERY[0]):
        return ()
    try:
        result = subprocess.run(
            NVIDIA_SMI_QUERY, capture_output=True, text=True, timeout=_NVIDIA_SMI_TIMEOUT, check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    return parse_nvidia_smi(result.stdout) if result.returncode == 0 else ()


def parse_nvidia_smi(text: str) -> tuple[GpuUsage, ...]:
    """GPUs from the output of :data:`NVIDIA_SMI_QUERY`: ``index, name, memory.used, memory.total`` per
    line, in MiB. A name may hold commas (the fields around it do not); an unreadable line is skipped,
    a figure nvidia-smi does not report (``[N/A]``, ``[Not Supported]``) is None."""
    gpus = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) < 4 or not fields[0].isdigit():
            continue
        name = ", ".join(fields[1:-2])
        if not name:
            continue
        gpus.append(
            GpuUsage(
                index=int(fields[0]),
                name=name,
                memory_bytes=_mib(fields[-2]),
                memory_method=GPU_SMI_USED_AT_END,
                memory_total_bytes=_mib(fields[-1]),
            )
        )
    return tuple(gpus)


def _mib(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value * _MIB) if math.isfinite(value) and value >= 0 else None

