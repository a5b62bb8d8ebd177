"""Content fingerprints of files and directories.

A fingerprint is ``blake3:<hex>`` over the full content, streamed in chunks so a file of any size
never sits in memory. MLflow's own dataset digest covers only the first 10,000 rows, so it cannot
tell two datasets apart; this one can. Results are cached per process by (path, size, mtime, inode):
an unchanged file is not hashed twice.
"""

from __future__ import annotations

import os
from pathlib import Path

_CHUNK = 4 * 1024 * 1024
_ALGORITHM = "blake3"

_cache: dict[tuple[str, int, int, int], str] = {}


def _stat_key(path: Path) -> tuple[str, int, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def fingerprint_file(path: str | os.PathLike[str]) -> str:
    """Return ``blake3:<hex>`` of the file's bytes; cached while size, mtime and inode are unchanged."""
    from blake3 import blake3

    p = Path(path)
    key = _stat_key(p)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    hasher = blake3(max_threads=blake3.AUTO)
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(p, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            hasher.update(view[:n])
    digest = f"{_ALGORITHM}:{hasher.hexdigest()}"
    _cache[key] = digest
    return digest


def fingerprint_directory(path: str | os.PathLike[str]) -> str:
    """Fingerprint a directory tree (e.g. an MLflow model): relative paths and file fingerprints, sorted."""
    from blake3 import blake3

    root = Path(path)
    if not root.is_dir():
        raise NotADirectoryError(f"Cannot fingerprint {root}: not a directory")
    hasher = blake3()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        hasher.update(file.relative_to(root).as_posix().encode() + b"\0")
        hasher.update(fingerprint_file(file).encode() + b"\n")
    return f"{_ALGORITHM}:{hasher.hexdigest()}"


def fingerprint_path(path: str | os.PathLike[str]) -> str:
    """Fingerprint a file or a directory."""
    p = Path(path)
    return fingerprint_directory(p) if p.is_dir() else fingerprint_file(p)
