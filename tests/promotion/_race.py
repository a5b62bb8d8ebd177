"""Eight real worker processes (spawned, not forked) that act on the same MLflow store at the same moment.

Importing MLflow and Airflow is what costs time in a fresh process (seconds each, far more on a busy
machine), so the workers are started once and reused: each command is sent to every worker, each
worker gets ready (client created, store opened, model looked up), then all of them wait on one
barrier and act together. What each worker saw comes back as plain data: its result, or the type and
message of the exception that reached it (which is what a user would have seen).

This module is imported by the spawned children: it must not import the test conftest.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
import traceback
from collections.abc import Sequence
from typing import Any

WORKERS = 8
#: Generous: on a loaded 2-core machine eight processes importing MLflow and Airflow take minutes.
START_TIMEOUT = 900.0
STEP_TIMEOUT = 300.0


def _worker(index: int, commands: Any, results: Any, barrier: Any) -> None:
    hooks: dict[str, Any] = {}
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        from airflow_ml_provider.hooks.mlflow import MlflowHook
        from airflow_ml_provider.promotion import attempt as promotion
    except BaseException as e:  # report, then stop: the parent sees it instead of hanging
        results.put({"worker": index, "kind": "startup", "error": f"{type(e).__name__}: {e}"})
        return
    results.put({"worker": index, "kind": "ready"})
    while True:
        command = commands.get()
        if command is None:
            # Everything sent has been read by the parent; skip the slow interpreter shutdown of a
            # process holding MLflow and Airflow (seconds each on a busy machine).
            results.close()
            results.join_thread()
            os._exit(0)
        action, uri, name, version, options = command
        out: dict[str, Any] = {"worker": index, "kind": "done", "action": action, "version": version}
        try:
            hook = hooks.get(uri)
            if hook is None:
                hook = hooks[uri] = MlflowHook(tracking_uri=uri)
            hook.registered_model_exists(name)  # open the store before the race, not during it
        except BaseException as e:
            out.update(error_type=type(e).__name__, error=str(e), traceback=traceback.format_exc())
            barrier.abort()  # nobody waits for a worker that cannot take part
            results.put(out)
            continue
        try:
            barrier.wait(timeout=STEP_TIMEOUT)
            started = time.monotonic()
            if action == "promote":
                result = promotion.promote(hook, name, version, actor=f"race-worker-{index}", **options)
                out["result"] = result.to_dict()
            elif action == "set_alias_without_lock":
                hook.set_alias(name, options["alias"], version)
            else:
                raise ValueError(f"unknown action {action!r}")
            out["seconds"] = time.monotonic() - started
        except BaseException as e:
            out.update(error_type=type(e).__name__, error=str(e), traceback=traceback.format_exc())
        results.put(out)


class RacePool:
    """``WORKERS`` spawned processes; :meth:`race` makes all of them act at the same instant."""

    def __init__(self, workers: int = WORKERS) -> None:
        context = multiprocessing.get_context("spawn")
        self.barrier = context.Barrier(workers)
        self.results = context.Queue()
        self.commands = [context.Queue() for _ in range(workers)]
        self.processes = [
            context.Process(
                target=_worker, args=(i, self.commands[i], self.results, self.barrier), name=f"race-worker-{i}"
            )
            for i in range(workers)
        ]
        started = time.monotonic()
        for process in self.processes:
            process.start()
        ready = [self._get(START_TIMEOUT) for _ in self.processes]
        failed = [r for r in ready if r["kind"] != "ready"]
        if failed:
            self.close()
            raise RuntimeError(f"race workers failed to start: {failed}")
        self.startup_seconds = time.monotonic() - started

    def _get(self, timeout: float) -> dict[str, Any]:
        try:
            return self.results.get(timeout=timeout)
        except queue.Empty:
            alive = [p.name for p in self.processes if p.is_alive()]
            raise RuntimeError(f"no answer from the race workers within {timeout:.0f}s (alive: {alive})") from None

    def race(self, action: str, uri: str, name: str, versions: Sequence[str], **options: Any) -> list[dict[str, Any]]:
        """Worker ``i`` acts on ``versions[i]``; returns what each worker saw, in version order."""
        assert len(versions) == len(self.processes)
        if self.barrier.broken:
            self.barrier.reset()
        for commands, version in zip(self.commands, versions, strict=True):
            commands.put((action, uri, name, version, options))
        out = [self._get(STEP_TIMEOUT) for _ in versions]
        return sorted(out, key=lambda r: int(r["version"]))

    def close(self) -> None:
        for commands in self.commands:
            commands.put(None)
        for process in self.processes:
            process.join(timeout=60)
            if process.is_alive():
                process.terminate()
                process.join(timeout=10)
