"""Content fingerprints of files and directories.

A fingerprint is ``blake3:<hex>`` over the full content, streamed in chunks so a file of any size never
sits in memory. MLflow's own dataset digest covers only the first 10,000 rows, so it cannot tell two
datasets apart; this one can.

Caching. An unchanged file is not hashed twice. The cache key is the file's identity and state as
``fstat`` sees it on the open file: (real path, device, inode, size, mtime_ns, ctime_ns). ``ctime`` cannot
be set by a user (``touch -d`` or ``os.utime`` move it to *now*), so restoring an old mtime after editing
a file in place still misses the cache. Two cache levels:

- in process, always;
- on disk, shared by every task process on the machine, when ``[ml_provider] fingerprint_cache_dir`` names
  a directory (one small JSON file per entry, written atomically; a corrupt, foreign or unreadable entry
  is ignored and the file is hashed). The directory must belong to the current user and not be writable by
  group or others, since whoever can write it could substitute fingerprints; otherwise it is not used.

"Racily clean" files (as git calls them) are never cached: file timestamps come from a coarse kernel clock
(one tick, up to 10 ms; whole seconds on some filesystems), so a file rewritten with the same size within
the same tick after it was hashed would keep its key. A result is cached only if the file's mtime and
ctime are older than the start of hashing by more than ``_racy_window_ns``. A file that changes while it
is being read (its ``fstat`` differs before and after) is hashed again, and after a few attempts the
fingerprint fails rather than describe bytes that never existed together.

``stats`` counts files and bytes hashed (streamed ones and files hashed while written too) and cache hits:
cheap, and it lets tests and benchmarks see that a cache hit read nothing and that a byte is hashed once.

Files on other filesystems (any fsspec URL: ``s3://``, ``memory://``, ...) are fingerprinted by
:func:`fingerprint_fsspec`, which streams them through the same hash. They are never cached: an object
store gives no identity that the cache key could rest on across processes. The same "changed while read"
check applies, on what the filesystem reports about the file (size and its ETag, mtime or generation).
:class:`StreamingFingerprint` hashes bytes as they are produced (e.g. while a dataset is written), so a
written file need not be read back.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_ml_provider import conf
from airflow_ml_provider.exceptions import AirflowMLError

ALGORITHM = "blake3"

# Chosen with benchmarks/fingerprint.py on a 2-core machine: with reading and hashing overlapped
# (see _hash_fd), 4-16 MiB buffers let blake3's AUTO threads work on large pieces (1 MiB: ~3.9 GiB/s,
# 8 MiB: ~5 GiB/s against a ~7.5 GiB/s plain read).
CHUNK_SIZE = 8 * 1024 * 1024
MAX_THREADS = 0  # 0 = blake3.AUTO (one hashing thread per core)
_ATTEMPTS = 3

_FINGERPRINT = re.compile(r"^blake3:[0-9a-f]{64}$")
_Key = tuple[str, int, int, int, int, int]


@dataclass
class Stats:
    files_hashed: int = 0
    bytes_hashed: int = 0
    memory_hits: int = 0
    disk_hits: int = 0


stats = Stats()


_memory: dict[_Key, str] = {}


class FingerprintError(AirflowMLError, OSError):
    """The file kept changing while it was being read."""


def clear_memory_cache() -> None:
    """Forget the in-process cache (the on-disk cache, if any, is left alone)."""
    _memory.clear()


def _racy_window_ns(st: os.stat_result) -> int:
    # Nanosecond timestamps (ext4, xfs, btrfs, tmpfs, overlayfs) come from the kernel's coarse clock:
    # one tick at most. Timestamps in whole milliseconds or seconds mean a coarse filesystem (FAT: 2 s).
    return 2_000_000_000 if st.st_ctime_ns % 1_000_000 == 0 else 100_000_000


def _key(real_path: str, st: os.stat_result) -> _Key:
    return (real_path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _hash_fd(fd: int, chunk_size: int = CHUNK_SIZE, max_threads: int = MAX_THREADS) -> tuple[str, int]:
    """blake3 of everything readable from ``fd``.

    Reading and hashing overlap: a reader thread fills one of three reused buffers while blake3 hashes
    the previous one (both release the GIL). Done one after the other they reach ~0.37x of a plain
    read on two cores; overlapped, ~0.7x (benchmarks/fingerprint.py).
    """
    import queue
    import threading

    from blake3 import blake3

    hasher = blake3(max_threads=max_threads or blake3.AUTO)
    size = os.fstat(fd).st_size
    if size < chunk_size:  # small file (most model files): one read, no thread, no large buffers
        with open(fd, "rb", buffering=0, closefd=False) as f:
            data = f.read()
        hasher.update(data)
        return hasher.hexdigest(), len(data)
    free: queue.Queue[bytearray] = queue.Queue()
    filled: queue.Queue[tuple[bytearray, int] | BaseException] = queue.Queue()
    for _ in range(3):
        free.put(bytearray(chunk_size))
    stop = threading.Event()

    def read() -> None:
        try:
            with open(fd, "rb", buffering=0, closefd=False) as f:
                while not stop.is_set():
                    buf = free.get()
                    n = f.readinto(buf) or 0
                    filled.put((buf, n))
                    if n == 0:
                        return
        except BaseException as e:  # handed to the hashing side, which re-raises it
            filled.put(e)

    reader = threading.Thread(target=read, name="fingerprint-reader", daemon=True)
    reader.start()
    total = 0
    try:
        while True:
            item = filled.get()
            if isinstance(item, BaseException):
                raise item
            buf, n = item
            if n == 0:
                break
            hasher.update(memoryview(buf)[:n])
            total += n
            free.put(buf)
    finally:
        stop.set()
        free.put(bytearray(0))  # unblock a reader waiting for a buffer
        reader.join()
    return hasher.hexdigest(), total


def fingerprint_file(path: str | os.PathLike[str], cached: bool = True) -> str:
    """``blake3:<hex>`` of the file's bytes; cached while the file is unchanged (see the module doc).

    ``cached=False`` ignores cached results and reads the file (the fresh result is still cached).
    """
    real = os.path.realpath(path)
    fd = os.open(real, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        for _ in range(_ATTEMPTS):
            before = os.fstat(fd)
            key = _key(real, before)
            if cached:
                hit = _memory.get(key)
                if hit is not None:
                    stats.memory_hits += 1
                    return hit
                hit = _disk_get(key)
                if hit is not None:
                    stats.disk_hits += 1
                    _memory[key] = hit
                    return hit
            started = time.time_ns()
            os.lseek(fd, 0, os.SEEK_SET)
            hexdigest, n = _hash_fd(fd)
            stats.files_hashed += 1
            stats.bytes_hashed += n
            after = os.fstat(fd)
            if _key(real, after) != key or n != before.st_size:
                continue  # written to while we read it: hash again
            digest = f"{ALGORITHM}:{hexdigest}"
            if started - max(before.st_mtime_ns, before.st_ctime_ns) > _racy_window_ns(before):
                _memory[key] = digest
                _disk_put(key, digest)
            return digest
        raise FingerprintError(f"{real} kept changing while it was fingerprinted ({_ATTEMPTS} attempts)")
    finally:
        os.close(fd)


def fingerprint_directory(path: str | os.PathLike[str], cached: bool = True) -> str:
    """Fingerprint a directory tree (e.g. an MLflow model): relative paths and file fingerprints, sorted.

    Symlinks to files count as the file they point to; empty directories do not count.
    ``cached=False`` re-reads every file.
    """
    from blake3 import blake3

    root = Path(path)
    if not root.is_dir():
        raise NotADirectoryError(f"Cannot fingerprint {root}: not a directory")
    hasher = blake3()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        # NUL cannot occur in a path and fingerprints have a fixed form: the encoding is unambiguous.
        hasher.update(os.fsencode(file.relative_to(root).as_posix()) + b"\0")
        hasher.update(fingerprint_file(file, cached).encode() + b"\n")
    return f"{ALGORITHM}:{hasher.hexdigest()}"


def fingerprint_path(path: str | os.PathLike[str], cached: bool = True) -> str:
    """Fingerprint a file or a directory."""
    p = Path(path)
    return fingerprint_directory(p, cached) if p.is_dir() else fingerprint_file(p, cached)


def is_fingerprint(text: object) -> bool:
    """Whether ``text`` has the form of a fingerprint (``blake3:`` and 64 lowercase hex digits)."""
    return isinstance(text, str) and _FINGERPRINT.match(text) is not None


# --- streams and fsspec files ----------------------------------------------------------------------


class StreamingFingerprint:
    """The fingerprint of bytes fed in pieces (e.g. as a writer produces them); equal to hashing them whole."""

    def __init__(self) -> None:
        from blake3 import blake3

        self._hasher = blake3()
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self._hasher.update(view)
        self.size += len(view)
        stats.bytes_hashed += len(view)

    @property
    def digest(self) -> str:
        return f"{ALGORITHM}:{self._hasher.hexdigest()}"


def fingerprint_stream(f: Any, chunk_size: int = CHUNK_SIZE) -> tuple[str, int]:
    """``(fingerprint, bytes read)`` of everything readable from the binary file object ``f``, in chunks."""
    from blake3 import blake3

    hasher = blake3(max_threads=MAX_THREADS or blake3.AUTO)
    total = 0
    readinto = getattr(f, "readinto", None)
    if readinto is not None:
        buf = bytearray(chunk_size)
        view = memoryview(buf)
        while n := readinto(buf):
            hasher.update(view[:n])
            total += n
    else:
        while chunk := f.read(chunk_size):
            hasher.update(chunk)
            total += len(chunk)
    return f"{ALGORITHM}:{hasher.hexdigest()}", total


#: What fsspec filesystems report that changes when a file is rewritten (S3: ETag, GCS: generation, ...).
_VERSION_KEYS = (
    *("ETag", "etag", "VersionId", "version_id", "generation", "md5Hash"),
    *("LastModified", "last_modified", "mtime", "created", "ino"),
)


def _fs_state(info: Any) -> tuple[Any, ...]:
    return (info.get("size"), *(str(info.get(k)) for k in _VERSION_KEYS if k in info))


def fingerprint_fsspec(fs: Any, path: str) -> str:
    """``blake3:<hex>`` of a file on an fsspec filesystem (``fs``, a path as ``fs`` names it), streamed.

    Not cached (see the module doc). Raises ``FileNotFoundError`` if there is no such file.
    """
    return fingerprint_fsspec_sized(fs, path)[0]


def fingerprint_fsspec_sized(fs: Any, path: str) -> tuple[str, int]:
    """:func:`fingerprint_fsspec` and the file's size in bytes."""
    for _ in range(_ATTEMPTS):
        fs.invalidate_cache(path)  # another process may have rewritten it: ask the store, not a listing cache
        before = fs.info(path)
        if before.get("type", "file") != "file":
            raise IsADirectoryError(f"Cannot fingerprint {fs.unstrip_protocol(path)}: not a file")
        with fs.open(path, "rb") as f:
            digest, n = fingerprint_stream(f)
        stats.files_hashed += 1
        stats.bytes_hashed += n
        fs.invalidate_cache(path)
        if _fs_state(fs.info(path)) != _fs_state(before) or n != before.get("size", n):
            continue  # rewritten while we read it: hash again
        return digest, n
    raise FingerprintError(
        f"{fs.unstrip_protocol(path)} kept changing while it was fingerprinted ({_ATTEMPTS} attempts)"
    )


# --- on-disk cache ---------------------------------------------------------------------------------

_unsafe_dirs_seen: set[str] = set()


def _cache_dir() -> Path | None:
    configured = conf.get("fingerprint_cache_dir")
    if not configured:
        return None
    directory = Path(configured)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = directory.stat()
    except OSError:
        return None
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        if configured not in _unsafe_dirs_seen:
            _unsafe_dirs_seen.add(configured)
            import logging

            logging.getLogger(__name__).warning(
                "Not using fingerprint cache %s: it must belong to this user and not be group/other-writable",
                configured,
            )
        return None
    return directory


def _entry_path(directory: Path, key: _Key) -> Path:
    from blake3 import blake3

    return directory / f"{blake3(json.dumps(key).encode()).hexdigest()[:40]}.json"


def _disk_get(key: _Key) -> str | None:
    directory = _cache_dir()
    if directory is None:
        return None
    try:
        entry: Any = json.loads(_entry_path(directory, key).read_bytes())
    except (OSError, ValueError):
        return None  # absent, unreadable or corrupt: hash the file
    if not isinstance(entry, dict) or entry.get("key") != list(key):
        return None
    digest = entry.get("fingerprint")
    return digest if isinstance(digest, str) and _FINGERPRINT.match(digest) else None


def _disk_put(key: _Key, digest: str) -> None:
    directory = _cache_dir()
    if directory is None:
        return
    target = _entry_path(directory, key)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)  # mode 0600
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"key": list(key), "fingerprint": digest}, f)
            os.replace(tmp, target)  # atomic: readers see the old entry or the whole new one
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass  # a cache that cannot be written only costs a re-hash later
