"""Datasets the operators write (features, splits, predictions) follow the umask, like any file the
user's process writes: a shared artifact store (a group-writable NFS directory, a volume mounted into
several workers) must be able to read them. ``mkstemp`` alone would leave them 0600."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

WRITE = textwrap.dedent(
    """
    import os, sys
    import pandas as pd
    os.umask(int(sys.argv[2], 8))
    from airflow_ml_provider.data.datasets import local_path, write_frame
    ref = write_frame(pd.DataFrame({"a": [1, 2, 3]}), sys.argv[1], "predictions")
    print(local_path(ref.uri))
    """
)


@pytest.mark.parametrize(("umask", "mode"), [("022", 0o644), ("002", 0o664), ("077", 0o600)])
def test_written_datasets_get_the_mode_the_umask_allows(tmp_path: Path, umask: str, mode: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WRITE, str(tmp_path / "root"), umask], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    written = Path(done.stdout.strip().splitlines()[-1])
    assert stat.S_IMODE(written.stat().st_mode) == mode, oct(written.stat().st_mode)
    assert not [p for p in written.parent.iterdir() if p.name.startswith(".incomplete-")]


def test_reading_the_umask_leaves_it_unchanged() -> None:
    from airflow_ml_provider.data.datasets import _current_umask

    before = os.umask(0o027)
    try:
        assert _current_umask() == 0o027
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(before)
