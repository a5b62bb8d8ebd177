"""Promotion lock: MLflow aliases are plain upserts, so concurrent promoters must be serialised.

This lock holds across processes on one machine (an exclusive ``flock`` on a lock file). It does
not hold across machines; a deployment with several workers needs a shared lock (a PostgreSQL
advisory lock on the registry's database), which is not built yet.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class LockTimeout(TimeoutError):
    pass


@contextmanager
def promotion_lock(registry_uri: str, model_name: str, timeout: float = 60.0) -> Iterator[None]:
    key = hashlib.sha256(f"{registry_uri}\0{model_name}".encode()).hexdigest()[:24]
    directory = Path(os.environ.get("AIRFLOW_ML_LOCK_DIR", tempfile.gettempdir()))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"airflow-ml-promote-{key}.lock"
    deadline = time.monotonic() + timeout
    with open(path, "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(
                        f"Could not lock promotion of {model_name!r} within {timeout:.0f}s: another "
                        f"promotion holds {path}"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
