"""Fingerprint throughput against a plain read of the same file, in the same run.

    .venv/bin/python benchmarks/fingerprint.py [--size-gib 1] [--runs 3] [--dir DIR] [--explore]

Writes a file of ``--size-gib`` GiB (random 1 MiB blocks, each stamped with a counter) in a temporary
directory (default: the system temp dir; ``--dir`` to put it on another disk), reads it once to warm the
page cache (nothing is dropped: both measurements read from the same cache), then alternates a plain read
(``readinto`` one reused buffer of the same chunk size as the fingerprint) and an uncached fingerprint
``--runs`` times. Prints GiB/s per run, the median ratio fingerprint / plain read (target >= 0.4), and the
cached re-fingerprint time of the unchanged file (in-process cache, then the on-disk cache as a new
process would see it). ``--explore`` also times chunk sizes and blake3 thread counts. The file is removed.
Exits 1 when the ratio is below the target.

Recorded 2026-11-27 (2 cores, 23 GiB RAM, /tmp on the same virtio disk as the checkout).

Current implementation (reading and hashing overlapped: a reader thread fills one of three 8 MiB
buffers while blake3 with max_threads AUTO hashes the previous one), load average ~1:

    plain read 6.6-6.7 GiB/s, fingerprint 4.8-5.5 GiB/s, ratio 0.73x (median of 3 interleaved runs);
    first fingerprint of the 1 GiB file 194 ms; cached re-fingerprint 9 us in the same process,
    470 us from the on-disk cache (open + fstat + one small JSON read).

Before, reading then hashing one after the other in 1 MiB pieces, the ratio was 0.36x on the same
quiet machine (plain 7.6 GiB/s, fingerprint 2.7 GiB/s) and 0.39-0.46x under load: below the target.
A prototype on a cached 1 GiB file (GiB/s, middle of 3): serial 1 MiB 2.8, 4 MiB 2.8, 16 MiB 3.7;
overlapped 1 MiB 3.9, 4 MiB 5.0, 16 MiB 5.2; plain read 7.4. In memory blake3 AUTO reaches 11 GiB/s
with 16 MiB pieces, so hashing is not the limit once it no longer waits for the reads.

``update_mmap`` is not used: a file truncated by another process while it is mapped kills the task
with SIGBUS instead of raising, and the read loop lets the fingerprint notice a file changing under it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airflow_ml_provider import conf
from airflow_ml_provider.data import fingerprint

CACHE_DIR_ENV = conf.OPTIONS["fingerprint_cache_dir"].env_var

GIB = 1024**3
MIB = 1024**2
TARGET = 0.4


def write_file(path: Path, size: int) -> None:
    block = bytearray(os.urandom(MIB))
    with open(path, "wb") as f:
        for i in range(size // MIB):
            block[:8] = i.to_bytes(8, "little")  # no two blocks alike
            f.write(block)
        f.write(os.urandom(size % MIB))


def plain_read(path: Path, chunk: int = fingerprint.CHUNK_SIZE) -> int:
    buf = bytearray(chunk)
    total = 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            total += n
    return total


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def hash_with(path: Path, chunk: int, threads: int) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        return fingerprint._hash_fd(fd, chunk, threads)[0]
    finally:
        os.close(fd)


def hash_mmap(path: Path, threads: int) -> str:
    from blake3 import blake3

    hasher = blake3(max_threads=threads or blake3.AUTO)
    hasher.update_mmap(path)
    return hasher.hexdigest()


def explore(path: Path, size: int, rounds: int = 3) -> None:
    """Every configuration once per round, interleaved (fair under noise); best of ``rounds``."""
    configs: dict[str, Callable[[], object]] = {}
    for chunk in (256 * 1024, MIB, 4 * MIB, 16 * MIB):
        configs[f"plain read, chunk {chunk // 1024} KiB"] = lambda c=chunk: plain_read(path, c)
        for threads in (1, 2, 0):
            name = f"blake3 readinto, chunk {chunk // 1024} KiB, max_threads {threads or 'AUTO'}"
            configs[name] = lambda c=chunk, t=threads: hash_with(path, c, t)
    for threads in (1, 0):
        configs[f"blake3 update_mmap, max_threads {threads or 'AUTO'}"] = lambda t=threads: hash_mmap(path, t)
    best = dict.fromkeys(configs, float("inf"))
    for _ in range(rounds):
        for name, fn in configs.items():
            best[name] = min(best[name], timed(fn))
    print(f"\nexplore (GiB/s, best of {rounds} interleaved rounds):")
    for name, seconds in best.items():
        print(f"  {size / GIB / seconds:6.2f}  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gib", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to create the file (default: system temp dir)")
    parser.add_argument("--explore", action="store_true", help="also time chunk sizes and thread counts")
    args = parser.parse_args()
    size = int(args.size_gib * GIB)

    os.environ.pop(CACHE_DIR_ENV, None)
    conf.get("fingerprint_cache_dir")  # read Airflow's configuration once, outside the timings
    with tempfile.TemporaryDirectory(prefix="fingerprint-bench-", dir=args.dir) as tmp:
        path = Path(tmp) / "data.bin"
        print(f"writing {size / GIB:.2f} GiB to {path} ...", flush=True)
        print(f"  written in {timed(lambda: write_file(path, size)):.2f} s")
        plain_read(path)  # warm the page cache; both measurements below read from it
        print(
            f"chunk {fingerprint.CHUNK_SIZE // 1024} KiB, blake3 max_threads "
            f"{fingerprint.MAX_THREADS or 'AUTO'}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
        )

        plain, fp = [], []
        digest = ""
        for run in range(1, args.runs + 1):
            plain.append(size / GIB / timed(lambda: plain_read(path)))

            def uncached() -> None:
                nonlocal digest
                digest = fingerprint.fingerprint_file(path, cached=False)

            fp.append(size / GIB / timed(uncached))
            print(f"  run {run}: plain read {plain[-1]:6.2f} GiB/s   fingerprint {fp[-1]:6.2f} GiB/s")
        ratio = statistics.median(fp) / statistics.median(plain)
        print(f"median: plain read {statistics.median(plain):.2f} GiB/s, fingerprint {statistics.median(fp):.2f} GiB/s")
        verdict = "OK" if ratio >= TARGET else "BELOW TARGET"
        print(f"ratio fingerprint / plain read: {ratio:.2f}x (target >= {TARGET}x): {verdict}")

        # Cached re-fingerprint of the unchanged file. The file must be out of the racy window first.
        st = path.stat()
        wait = fingerprint._racy_window_ns(st) - (time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns))
        time.sleep(max(0, wait) / 1e9 + 0.01)
        with tempfile.TemporaryDirectory(prefix="fingerprint-cache-") as cache_dir:
            os.environ[CACHE_DIR_ENV] = cache_dir
            fingerprint.clear_memory_cache()
            first = timed(lambda: fingerprint.fingerprint_file(path))  # hashes and stores
            hashed = fingerprint.stats.bytes_hashed
            memory = min(timed(lambda: fingerprint.fingerprint_file(path)) for _ in range(5))
            fingerprint.clear_memory_cache()  # as a new task process would start
            disk = timed(lambda: fingerprint.fingerprint_file(path))
            assert fingerprint.stats.bytes_hashed == hashed, "a cached call read the file"
            assert fingerprint.fingerprint_file(path) == digest
            del os.environ[CACHE_DIR_ENV]
        print(f"first fingerprint (hash + store): {first * 1e3:.1f} ms")
        print(f"cached re-fingerprint, same process: {memory * 1e6:.0f} us")
        print(f"cached re-fingerprint, on-disk cache (new process): {disk * 1e6:.0f} us")

        if args.explore:
            explore(path, size)
    print(f"removed {path}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
