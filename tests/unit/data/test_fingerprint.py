"""Content fingerprints: full content, streamed, cached by file identity and state.

No mocks: whether a call read the file is measured by ``fingerprint.stats.bytes_hashed``, which counts
the bytes the hashing loop read. Files are backdated (``os.utime``) and the tests wait out the racy
window after the last change (its ctime), since a file changed within a clock tick of being hashed is
deliberately not cached.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from blake3 import blake3

from airflow_ml_provider.conf import OPTIONS
from airflow_ml_provider.data import fingerprint
from airflow_ml_provider.data.fingerprint import (
    CHUNK_SIZE,
    fingerprint_directory,
    fingerprint_file,
    fingerprint_path,
)

OLD = 1_600_000_000  # 2020-09-13: an mtime well in the past
CACHE_DIR_ENV = OPTIONS["fingerprint_cache_dir"].env_var  # AIRFLOW__ML_PROVIDER__FINGERPRINT_CACHE_DIR


def settled(path: Path, mtime: int = OLD) -> Path:
    """Backdate the mtime and wait until the ctime (now) is outside the racy window."""
    os.utime(path, (mtime, mtime))
    time.sleep(fingerprint._racy_window_ns(path.stat()) / 1e9 + 0.02)
    return path


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    fingerprint.clear_memory_cache()


def test_fingerprint_is_blake3_of_the_content(tmp_path: Path) -> None:
    data = os.urandom(1000)
    assert fingerprint_file(write(tmp_path / "f", data)) == "blake3:" + blake3(data).hexdigest()


def test_streaming_a_file_larger_than_a_chunk_equals_hashing_it_whole(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 12345)  # two full chunks and a partial one
    before = fingerprint.stats.bytes_hashed
    assert fingerprint_file(write(tmp_path / "big", data)) == "blake3:" + blake3(data).hexdigest()
    assert fingerprint.stats.bytes_hashed - before == len(data)


def test_empty_file(tmp_path: Path) -> None:
    assert fingerprint_file(write(tmp_path / "empty", b"")) == "blake3:" + blake3(b"").hexdigest()


def test_one_byte_changed_changes_the_fingerprint(tmp_path: Path) -> None:
    data = bytearray(os.urandom(CHUNK_SIZE + 7))
    path = settled(write(tmp_path / "f", bytes(data)))
    original = fingerprint_file(path)
    data[CHUNK_SIZE + 3] ^= 0x01  # one bit, in the second chunk
    path.write_bytes(bytes(data))
    settled(path)  # same size and the same mtime as before: only the ctime differs
    assert fingerprint_file(path) != original
    assert fingerprint_file(path) == "blake3:" + blake3(bytes(data)).hexdigest()


def test_a_cache_hit_reads_nothing(tmp_path: Path) -> None:
    path = settled(write(tmp_path / "f", os.urandom(100_000)))
    first = fingerprint_file(path)
    hashed, hits = fingerprint.stats.bytes_hashed, fingerprint.stats.memory_hits
    assert fingerprint_file(path) == first
    assert fingerprint.stats.bytes_hashed == hashed, "the second call read the file"
    assert fingerprint.stats.memory_hits == hits + 1


def test_cached_false_reads_again(tmp_path: Path) -> None:
    path = settled(write(tmp_path / "f", os.urandom(1000)))
    first = fingerprint_file(path)
    hashed = fingerprint.stats.bytes_hashed
    assert fingerprint_file(path, cached=False) == first
    assert fingerprint.stats.bytes_hashed == hashed + 1000


def test_touching_the_mtime_invalidates_the_cache(tmp_path: Path) -> None:
    path = settled(write(tmp_path / "f", os.urandom(1000)))
    fingerprint_file(path)
    hashed = fingerprint.stats.bytes_hashed
    settled(path, OLD + 60)  # content unchanged, mtime moved
    fingerprint_file(path)
    assert fingerprint.stats.bytes_hashed == hashed + 1000


def test_an_in_place_edit_that_restores_the_mtime_is_still_seen(tmp_path: Path) -> None:
    """Same path, inode, size and mtime: only the ctime (which no user can set) tells them apart."""
    path = settled(write(tmp_path / "f", b"a" * 1000))
    inode = path.stat().st_ino
    original = fingerprint_file(path)
    with open(path, "r+b") as f:  # in place: same inode
        f.write(b"b")
    settled(path)  # mtime restored
    assert path.stat().st_ino == inode and path.stat().st_size == 1000 and path.stat().st_mtime == OLD
    assert fingerprint_file(path) == "blake3:" + blake3(b"b" + b"a" * 999).hexdigest() != original


def test_a_file_changed_within_the_racy_window_is_not_cached(tmp_path: Path) -> None:
    for attempt in range(10):  # a busy machine may pause us past the window: then try again
        path = write(tmp_path / f"f{attempt}", os.urandom(1000))  # just written: its ctime is now
        fingerprint_file(path)
        hashed = fingerprint.stats.bytes_hashed
        fingerprint_file(path)
        st = path.stat()
        if time.time_ns() - st.st_ctime_ns < fingerprint._racy_window_ns(st):
            break
    assert fingerprint.stats.bytes_hashed == hashed + 1000, "a racily clean file must be hashed again"


def test_directory_fingerprint_changes_when_a_file_is_renamed(tmp_path: Path) -> None:
    root = tmp_path / "model"
    write(root / "MLmodel", b"flavors: {}\n")
    write(root / "data" / "model.pkl", b"\x80\x04weights")
    original = fingerprint_directory(root)
    assert fingerprint_path(root) == original
    (root / "data" / "model.pkl").rename(root / "data" / "model2.pkl")
    assert fingerprint_directory(root) != original


def test_directory_fingerprint_changes_with_one_byte_of_one_file(tmp_path: Path) -> None:
    root = tmp_path / "model"
    write(root / "a", b"same")
    write(root / "b", b"0123456789")
    original = fingerprint_directory(root)
    write(root / "b", b"0123456780")  # same size, written within the racy window: not served stale
    assert fingerprint_directory(root) != original


def test_directory_fingerprint_ignores_where_the_tree_is(tmp_path: Path) -> None:
    for root in (tmp_path / "one", tmp_path / "two" / "deeper"):
        write(root / "x" / "y.bin", b"payload")
        write(root / "z.txt", b"text")
    assert fingerprint_directory(tmp_path / "one") == fingerprint_directory(tmp_path / "two" / "deeper")


def test_fingerprinting_a_missing_file_or_a_file_as_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fingerprint_file(tmp_path / "missing")
    with pytest.raises(NotADirectoryError):
        fingerprint_directory(write(tmp_path / "f", b"x"))


# --- on-disk cache ---------------------------------------------------------------------------------


@pytest.fixture
def disk_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(directory))
    return directory


def test_the_disk_cache_serves_another_process(tmp_path: Path, disk_cache: Path) -> None:
    """A fresh process (an empty memory cache) finds the result another one stored, without reading."""
    path = settled(write(tmp_path / "data.bin", os.urandom(50_000)))
    first = fingerprint_file(path)
    assert len(list(disk_cache.glob("*.json"))) == 1
    assert disk_cache.stat().st_mode & 0o777 == 0o700
    fingerprint.clear_memory_cache()  # as a new task process starts
    hashed, hits = fingerprint.stats.bytes_hashed, fingerprint.stats.disk_hits
    assert fingerprint_file(path) == first
    assert fingerprint.stats.bytes_hashed == hashed
    assert fingerprint.stats.disk_hits == hits + 1


def test_a_corrupt_disk_entry_is_ignored(tmp_path: Path, disk_cache: Path) -> None:
    path = settled(write(tmp_path / "data.bin", os.urandom(1000)))
    first = fingerprint_file(path)
    (entry,) = disk_cache.glob("*.json")
    for garbage in (b"", b"{not json", b"[]", json.dumps({"key": [], "fingerprint": first}).encode()):
        entry.write_bytes(garbage)
        fingerprint.clear_memory_cache()
        hashed = fingerprint.stats.bytes_hashed
        assert fingerprint_file(path) == first
        assert fingerprint.stats.bytes_hashed == hashed + 1000, garbage


def test_a_forged_disk_entry_is_ignored(tmp_path: Path, disk_cache: Path) -> None:
    path = settled(write(tmp_path / "data.bin", os.urandom(1000)))
    first = fingerprint_file(path)
    (entry,) = disk_cache.glob("*.json")
    doc = json.loads(entry.read_text())
    doc["fingerprint"] = "not-a-blake3-digest"
    entry.write_text(json.dumps(doc))
    fingerprint.clear_memory_cache()
    assert fingerprint_file(path) == first


def test_a_group_writable_cache_directory_is_not_used(tmp_path: Path, disk_cache: Path) -> None:
    disk_cache.mkdir(mode=0o700)
    disk_cache.chmod(0o777)
    path = settled(write(tmp_path / "data.bin", os.urandom(1000)))
    fingerprint_file(path)
    assert list(disk_cache.iterdir()) == []
