"""datasets.py: local paths from URIs, atomic content-addressed writes, verified reads. Real files only."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from blake3 import blake3

from airflow_ml_provider.data.datasets import (
    DatasetError,
    DatasetRef,
    describe,
    local_path,
    read_frame,
    read_verified,
    write_frame,
)


def blake3_of(path: Path) -> str:
    """Reference fingerprint computed here, independently of the package (and of its cache)."""
    return "blake3:" + blake3(path.read_bytes()).hexdigest()


def frame(rows: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"x": rng.random(rows), "n": rng.integers(0, 100, rows), "s": [f"r{i}" for i in range(rows)]}
    )


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".incomplete-"))


# --- local_path ----------------------------------------------------------------------------------


def test_local_path_of_file_uris() -> None:
    assert local_path("file:///data/raw.parquet") == Path("/data/raw.parquet")
    assert local_path("file://localhost/data/raw.parquet") == Path("/data/raw.parquet")
    assert local_path("file:///data/with%20space/r%C3%A9sum%C3%A9.csv") == Path("/data/with space/résumé.csv")


def test_local_path_of_plain_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert local_path("/abs/raw.parquet") == Path("/abs/raw.parquet")
    assert local_path("rel/raw.parquet") == tmp_path / "rel" / "raw.parquet"
    assert local_path(Path("rel") / "raw.parquet") == tmp_path / "rel" / "raw.parquet"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert local_path("~/raw.parquet") == tmp_path / "home" / "raw.parquet"
    assert local_path("file:///abs/x.parquet").is_absolute() and local_path("x.parquet").is_absolute()


@pytest.mark.parametrize("uri", ["s3://bucket/raw.parquet", "gs://b/raw.parquet", "https://host/raw.csv"])
def test_local_path_rejects_remote_schemes(uri: str) -> None:
    scheme = uri.split("://")[0]
    with pytest.raises(DatasetError) as excinfo:
        local_path(uri)
    assert uri in str(excinfo.value) and f"'{scheme}'" in str(excinfo.value)
    assert "file://" in str(excinfo.value)  # says what is supported


def test_local_path_rejects_file_uri_with_a_host() -> None:
    with pytest.raises(DatasetError, match="file:///abs/path"):
        local_path("file://fileserver/share/raw.parquet")


# --- write_frame -------------------------------------------------------------------------------------


def test_write_frame_is_content_addressed(tmp_path: Path) -> None:
    df = frame()
    ref = write_frame(df, tmp_path, "features")
    path = local_path(ref.uri)
    assert path.parent == tmp_path / "features"
    assert ref.fingerprint == blake3_of(path)
    assert path.name == ref.fingerprint.split(":", 1)[1] + ".parquet"
    assert ref.uri == path.as_uri() and ref.rows == 50 and ref.columns == ("x", "n", "s")
    assert ref.size_bytes == path.stat().st_size
    assert ref.schema == {"x": "float64", "n": "int64", "s": str(df["s"].dtype)}
    pd.testing.assert_frame_equal(pd.read_parquet(path), df)
    assert leftovers(path.parent) == []


def test_write_frame_hashes_each_byte_once(tmp_path: Path) -> None:
    """Hashed as written: the file is never read back to fingerprint it (issue 13: it was hashed twice)."""
    from airflow_ml_provider.data import fingerprint

    before = fingerprint.stats.bytes_hashed
    ref = write_frame(frame(rows=5000), tmp_path, "features")
    assert fingerprint.stats.bytes_hashed - before == ref.size_bytes
    assert ref.fingerprint == blake3_of(local_path(ref.uri))


def test_same_frame_twice_gives_the_same_file(tmp_path: Path) -> None:
    first = write_frame(frame(), tmp_path, "features")
    second = write_frame(frame(), tmp_path, "features")
    assert first == second
    assert sorted(p.name for p in (tmp_path / "features").iterdir()) == [local_path(first.uri).name]


def test_different_frames_give_different_files(tmp_path: Path) -> None:
    a, b = write_frame(frame(seed=0), tmp_path, "k"), write_frame(frame(seed=1), tmp_path, "k")
    assert a.fingerprint != b.fingerprint and a.uri != b.uri
    assert len(list((tmp_path / "k").iterdir())) == 2


def test_write_frame_failure_leaves_no_partial_file(tmp_path: Path) -> None:
    """pyarrow cannot store a column mixing numbers and text: the temporary file must be removed."""
    import pyarrow as pa

    df = frame()
    df["mixed"] = [1 if i % 2 else "one" for i in range(len(df))]
    with pytest.raises(pa.ArrowException, match="mixed"):
        write_frame(df, tmp_path, "features")
    assert list((tmp_path / "features").iterdir()) == []


def test_write_frame_replaces_a_truncated_file_of_the_same_name(tmp_path: Path) -> None:
    """A damaged file under the content-addressed name is overwritten, never trusted by its name."""
    ref = write_frame(frame(), tmp_path, "features")
    path = local_path(ref.uri)
    path.write_bytes(path.read_bytes()[:100])
    again = write_frame(frame(), tmp_path, "features")
    assert again.fingerprint == ref.fingerprint == blake3_of(path)


# --- read_frame / read_verified ----------------------------------------------------------------------


def test_read_frame_csv_and_parquet(tmp_path: Path) -> None:
    df = frame(rows=5)
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.PARQUET", index=False)
    pd.testing.assert_frame_equal(read_frame(str(tmp_path / "d.csv")), df, check_dtype=False)
    pd.testing.assert_frame_equal(read_frame((tmp_path / "d.PARQUET").as_uri()), df)


@pytest.mark.parametrize(
    ("name", "content", "detail"),
    [
        ("d.json", b"{}", "unknown format '.json'"),
        ("noext", b"", "unknown format '(no suffix)'"),
        ("missing.parquet", None, "does not exist"),
        ("bad.parquet", b"PAR1 garbage", "could not be read as parquet"),
    ],
)
def test_read_frame_errors_name_the_dataset(
    tmp_path: Path, name: str, content: bytes | None, detail: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DatasetError) as excinfo:
        read_frame(str(path), "raw dataset")
    assert str(excinfo.value).startswith(f"raw dataset {path}") and detail in str(excinfo.value)


def test_read_verified_plain_uri_is_fingerprinted_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    frame().to_parquet(path, index=False)
    ref, df = read_verified(str(path), "features")
    assert ref.fingerprint == blake3_of(path) and len(df) == ref.rows == 50


def test_read_verified_detects_a_replaced_file(tmp_path: Path) -> None:
    ref = write_frame(frame(), tmp_path, "features")
    path = local_path(ref.uri)
    frame(rows=60, seed=5).to_parquet(path, index=False)
    with pytest.raises(DatasetError) as excinfo:
        read_verified(ref.to_dict(), "features")
    message = str(excinfo.value)
    assert ref.uri in message and ref.fingerprint in message and blake3_of(path) in message


def test_read_verified_detects_an_in_place_edit_that_kept_size_and_mtime(tmp_path: Path) -> None:
    """Edited in place to other bytes of the same size, the old mtime put back (``cp -p``, ``rsync -t
    --inplace``, ``touch -r`` do this). The bytes changed, so verification must see it."""
    original, edited = frame(), frame()
    edited.loc[3, "x"] = 0.123456789  # one value: same Parquet size, different bytes
    ref = write_frame(original, tmp_path, "features")
    path = local_path(ref.uri)
    buffer = io.BytesIO()
    edited.to_parquet(buffer, index=False)
    new_bytes = buffer.getvalue()
    assert len(new_bytes) == path.stat().st_size and new_bytes != path.read_bytes()

    before = path.stat()
    with open(path, "r+b") as f:  # same inode
        f.write(new_bytes)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_ino, path.stat().st_size, path.stat().st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )

    with pytest.raises(DatasetError) as excinfo:
        read_verified(ref.to_dict(), "features")
    assert blake3_of(path) in str(excinfo.value) and ref.fingerprint in str(excinfo.value)


@pytest.mark.parametrize(
    ("reference", "detail"),
    [
        ({"uri": "/x.parquet", "fingerprint": "blake3:00"}, "missing rows, columns"),
        ("not-a-reference.txt", "unknown format"),
        (["/x.parquet"], "must be a dataset reference"),
    ],
)
def test_read_verified_rejects_non_references(reference: object, detail: str) -> None:
    with pytest.raises(DatasetError) as excinfo:
        read_verified(reference, "features")  # type: ignore[arg-type]
    assert detail in str(excinfo.value) and "features" in str(excinfo.value)


def test_dataset_ref_round_trips_through_a_dict(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    df = frame(rows=3)
    df.to_parquet(path, index=False)
    ref = describe(str(path), df)
    assert DatasetRef.from_dict(ref.to_dict()) == ref
    assert ref.to_dict()["columns"] == ["x", "n", "s"]
    assert ref.path == path
