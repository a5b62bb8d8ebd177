"""What a step used (records/resources.py), measured for real on this machine: wall and CPU time, the
step's own peak memory (and the honest fallback when the peak cannot be reset), the no-GPU path, the
strict JSON form, the MLflow metric names and the cost of measuring.

This machine has no GPU: the GPU path is tested as it runs here (``gpus`` empty, torch never imported),
and the ``nvidia-smi`` reading through its pure parser on fixed text."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from airflow_ml_provider.records.resources import (
    GPU_SMI_USED_AT_END,
    PEAK_PROCESS,
    PEAK_STEP_RESET,
    PEAK_STEP_ROSE,
    GpuUsage,
    ResourceMeter,
    StepResources,
    parse_nvidia_smi,
    resource_metrics,
)
from airflow_ml_provider.records.step_record import AirflowIds, RecordError, StepRecord
from airflow_ml_provider.records.tags import resources_metric

MIB = 1024 * 1024
LINUX = sys.platform.startswith("linux")


def busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@pytest.mark.skipif(not LINUX, reason="the step's own peak is measured through /proc (Linux)")
def test_the_peak_is_the_steps_own_not_the_processs() -> None:
    """A big step then a small one: the small one's peak is its own, far below the first's."""
    meter = ResourceMeter()
    block = bytearray(200 * MIB)  # touched (zeroed), so resident
    del block
    big = meter.stop()
    small = ResourceMeter().stop()
    assert big.peak_memory_method == small.peak_memory_method == PEAK_STEP_RESET and big.peak_is_the_steps
    assert big.memory_start_bytes is not None and big.peak_memory_bytes is not None
    assert big.peak_memory_bytes >= big.memory_start_bytes + 190 * MIB
    assert small.peak_memory_bytes is not None and small.peak_memory_bytes < big.peak_memory_bytes - 150 * MIB
    assert small.memory_end_bytes is not None and small.memory_end_bytes <= small.peak_memory_bytes


def test_wall_and_cpu_time_of_the_process_and_of_its_children() -> None:
    meter = ResourceMeter()
    busy(0.2)
    child = "import time\nend = time.process_time() + 0.2\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", child], check=True)
    used = meter.stop()
    assert used.wall_seconds >= 0.4
    assert 0.18 <= used.cpu_seconds < used.wall_seconds  # this process only: the child's time is not in it
    assert used.children_cpu_seconds is not None and used.children_cpu_seconds >= 0.18


def test_no_gpu_here_and_torch_never_imported() -> None:
    """The real no-GPU path of this machine (no torch imported, no nvidia-smi on the PATH)."""
    assert "torch" not in sys.modules and shutil.which("nvidia-smi") is None, "this test is for a machine without GPU"
    used = ResourceMeter().stop()
    assert used.gpus == () and used.to_dict()["gpus"] == []
    assert "torch" not in sys.modules


@pytest.mark.skipif(not LINUX or os.geteuid() != 0, reason="needs root to run a child as another user")
def test_when_the_reset_is_refused_a_process_peak_is_never_presented_as_the_steps() -> None:
    """The real refusal: an Airflow task process is made non-dumpable by its supervisor, so a non-root
    worker may not write /proc/self/clear_refs. Reproduced in a child that drops to ``nobody`` and
    clears its dumpable flag, as the supervisor does."""
    script = textwrap.dedent(
        """
        import ctypes, json, os
        from airflow_ml_provider.records.resources import ResourceMeter, resource_metrics
        os.setgid(65534); os.setuid(65534)
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
        block = bytearray(100 * 1024 * 1024); del block     # the process's peak, before any step
        rose = ResourceMeter(); block = bytearray(200 * 1024 * 1024); del block; rose = rose.stop()
        flat = ResourceMeter().stop()                       # a step below the process's peak
        print(json.dumps([rose.to_dict(), flat.to_dict(), sorted(resource_metrics(flat))]))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    rose, flat, metrics = json.loads(out.stdout)
    assert rose["peak_memory_method"] == PEAK_STEP_ROSE and rose["peak_memory_bytes"] >= 200 * MIB
    assert flat["peak_memory_method"] == PEAK_PROCESS
    assert resources_metric("process_peak_memory_bytes") in metrics
    assert resources_metric("peak_memory_bytes") not in metrics


def test_nvidia_smi_output_is_parsed() -> None:
    """Fixed text in the format of ``NVIDIA_SMI_QUERY`` (no GPU here to query)."""
    text = "0, NVIDIA A100-SXM4-40GB, 1024, 40960\n1, NVIDIA GeForce RTX 3090, Ti, [N/A], 24576\n\nNo devices\n"
    assert parse_nvidia_smi(text) == (
        GpuUsage(0, "NVIDIA A100-SXM4-40GB", 1024 * MIB, GPU_SMI_USED_AT_END, 40960 * MIB),
        GpuUsage(1, "NVIDIA GeForce RTX 3090, Ti", None, GPU_SMI_USED_AT_END, 24576 * MIB),
    )
    assert parse_nvidia_smi("") == ()


SAMPLE = StepResources(
    wall_seconds=1.5,
    cpu_seconds=1.25,
    children_cpu_seconds=0.0,
    peak_memory_bytes=300 * MIB,
    peak_memory_method=PEAK_STEP_RESET,
    memory_start_bytes=200 * MIB,
    memory_end_bytes=210 * MIB,
    gpus=(GpuUsage(0, "Tesla T4", 512 * MIB, GPU_SMI_USED_AT_END, 15360 * MIB),),
)


def test_json_round_trip_and_strict_parsing() -> None:
    data = json.loads(json.dumps(SAMPLE.to_dict()))
    assert StepResources.from_dict(data) == SAMPLE
    bad: list[tuple[dict[str, Any], str]] = [
        ({**data, "extra": 1}, "extra"),
        ({k: v for k, v in data.items() if k != "cpu_seconds"}, "cpu_seconds"),
        ({**data, "wall_seconds": -1.0}, "wall_seconds"),
        ({**data, "peak_memory_method": "guess"}, "peak_memory_method"),
        ({**data, "peak_memory_method": None}, "peak_memory_bytes"),
        ({**data, "gpus": [{**data["gpus"][0], "memory_bytes": "lots"}]}, r"gpus\[0\]\.memory_bytes"),
    ]
    for value, match in bad:
        with pytest.raises((TypeError, ValueError), match=match):
            StepResources.from_dict(value)


def test_the_step_record_holds_resources_and_reads_records_written_before() -> None:
    record = StepRecord(step="train", mlflow_run_id="r1", airflow=AirflowIds("d", "x", "train", 1, -1))
    record.resources = SAMPLE
    data = json.loads(json.dumps(record.to_dict()))
    assert StepRecord.from_dict(data).resources == SAMPLE
    del data["resources"]  # a record from before resources were recorded
    assert StepRecord.from_dict(data).resources is None
    with pytest.raises(RecordError, match="resources.wall_seconds"):
        StepRecord.from_dict({**data, "resources": {**SAMPLE.to_dict(), "wall_seconds": "soon"}})


def test_metric_names_say_what_each_figure_is() -> None:
    assert resource_metrics(SAMPLE) == {
        resources_metric("wall_seconds"): 1.5,
        resources_metric("cpu_seconds"): 1.25,
        resources_metric("children_cpu_seconds"): 0.0,
        resources_metric("peak_memory_bytes"): 300.0 * MIB,
        resources_metric("memory_start_bytes"): 200.0 * MIB,
        resources_metric("memory_end_bytes"): 210.0 * MIB,
        resources_metric("gpu.0.used_at_end_bytes"): 512.0 * MIB,
    }
    process_peak = StepResources(0.1, 0.1, None, 5 * MIB, PEAK_PROCESS, None, None)
    assert set(resource_metrics(process_peak)) == {
        resources_metric("wall_seconds"),
        resources_metric("cpu_seconds"),
        resources_metric("process_peak_memory_bytes"),
    }


def test_measuring_costs_well_under_a_millisecond() -> None:
    """Start + stop of the meter (no GPU): the brief's bound is 10 ms per step; measured ~0.1 ms here."""
    costs = []
    for _ in range(50):
        start = time.perf_counter()
        ResourceMeter().stop()
        costs.append(time.perf_counter() - start)
    median = statistics.median(costs)
    print(f"meter start+stop: median {median * 1e3:.3f} ms, max {max(costs) * 1e3:.3f} ms")
    assert median < 0.002
