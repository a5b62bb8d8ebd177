"""datasets.py on fsspec filesystems: content-addressed writes, verified reads, lookup by fingerprint.

Real filesystems only: fsspec's in-process ``memory://``, its ``LocalFileSystem`` on real files, and
``s3://`` against moto's S3 server (a real HTTP server on 127.0.0.1, reached through s3fs and botocore
exactly as AWS would be) when moto and s3fs are installed (the ``dev`` extra).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from blake3 import blake3

from airflow_ml_provider.data import fingerprint
from airflow_ml_provider.data.datasets import (
    DatasetError,
    _write_frame_fs,
    find_by_fingerprint,
    fingerprint_uri,
    open_dataset,
    read_frame,
    read_verified,
    verify_references,
    write_frame,
)
from airflow_ml_provider.data.fingerprint import (
    CHUNK_SIZE,
    StreamingFingerprint,
    fingerprint_file,
    fingerprint_fsspec,
)
from airflow_ml_provider.lineage.datasets import dataset_identity, file_dataset, to_output, uri_dataset
from tests.support import moto_s3

BUCKET = "ml-artifacts"


def b3(data: bytes) -> str:
    """Reference fingerprint computed here, independently of the package."""
    return "blake3:" + blake3(data).hexdigest()


def frame(rows: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.random(rows), "n": rng.integers(0, 100, rows), "s": [f"r{i}" for i in range(rows)]})


@pytest.fixture(scope="module")
def s3_bucket() -> Iterator[str]:
    pytest.importorskip("moto.server", reason="moto[server] is not installed (dev extra)")
    pytest.importorskip("s3fs", reason="s3fs is not installed (dev extra)")
    with moto_s3(BUCKET):
        yield BUCKET


def fresh_root(request: pytest.FixtureRequest, kind: str) -> Iterator[str]:
    """A new, empty artifact root: local (``tmp_path``), ``memory://`` or ``s3://`` (moto)."""
    unique = uuid.uuid4().hex[:12]
    if kind == "local":
        yield str(request.getfixturevalue("tmp_path") / "artifacts")
    elif kind == "s3":
        yield f"s3://{request.getfixturevalue('s3_bucket')}/runs-{unique}"
    else:
        root = f"memory://ml-tests-{unique}"
        yield root
        fs, path = open_dataset(root)
        if fs.exists(path):
            fs.rm(path, recursive=True)


@pytest.fixture(params=["memory", "s3"])
def remote_root(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from fresh_root(request, request.param)


@pytest.fixture(params=["local", "memory", "s3"])
def any_root(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from fresh_root(request, request.param)


def listing(root: str, kind: str) -> list[str]:
    fs, path = open_dataset(root)
    directory = f"{path.rstrip('/')}/{kind}"
    fs.invalidate_cache(directory)
    return sorted(p.rsplit("/", 1)[1] for p in fs.ls(directory, detail=False)) if fs.exists(directory) else []


def remote_bytes(uri: str) -> bytes:
    fs, path = open_dataset(uri)
    return fs.cat_file(path)


def put(uri: str, data: bytes) -> None:
    fs, path = open_dataset(uri)
    fs.pipe_file(path, data)
    fs.invalidate_cache(path)


# --- write_frame ------------------------------------------------------------------------------------


def test_write_frame_is_content_addressed_on_a_remote_root(remote_root: str, tmp_path: Path) -> None:
    df = frame()
    ref = write_frame(df, remote_root, "features")
    fs, root_path = open_dataset(remote_root)
    hex_digest = ref.fingerprint.split(":", 1)[1]
    assert ref.uri == fs.unstrip_protocol(f"{root_path}/features/{hex_digest}.parquet")
    assert ref.uri.startswith(remote_root.split("://")[0] + "://")
    data = remote_bytes(ref.uri)
    assert ref.fingerprint == b3(data) and ref.size_bytes == len(data)
    assert ref.rows == 50 and ref.columns == ("x", "n", "s")
    assert ref.schema == {"x": "float64", "n": "int64", "s": str(df["s"].dtype)}
    assert listing(remote_root, "features") == [f"{hex_digest}.parquet"]  # no .incomplete- left over
    pd.testing.assert_frame_equal(read_frame(ref.uri), df)
    # The same bytes as a local write: one content address wherever the root is.
    local = write_frame(df, tmp_path, "features")
    assert local.fingerprint == ref.fingerprint
    assert (tmp_path / "features" / f"{hex_digest}.parquet").read_bytes() == data


def test_same_frame_twice_gives_one_object(remote_root: str) -> None:
    first = write_frame(frame(), remote_root, "features")
    second = write_frame(frame(), remote_root, "features")
    other = write_frame(frame(seed=1), remote_root, "features")
    assert first == second and other.fingerprint != first.fingerprint
    assert len(listing(remote_root, "features")) == 2


def test_write_frame_failure_leaves_nothing_on_the_remote_root(remote_root: str) -> None:
    import pyarrow as pa

    df = frame()
    df["mixed"] = [1 if i % 2 else "one" for i in range(len(df))]
    with pytest.raises(pa.ArrowException, match="mixed"):
        write_frame(df, remote_root, "features")
    assert listing(remote_root, "features") == []


def test_write_frame_replaces_a_damaged_object_of_the_same_name(remote_root: str) -> None:
    ref = write_frame(frame(), remote_root, "features")
    put(ref.uri, remote_bytes(ref.uri)[:100])
    again = write_frame(frame(), remote_root, "features")
    assert again.fingerprint == ref.fingerprint == b3(remote_bytes(ref.uri))


def test_the_generic_write_on_fsspecs_local_filesystem_matches_the_local_fast_path(tmp_path: Path) -> None:
    """The fsspec code path (hash while writing, fs.mv) on real files gives the fast path's file exactly."""
    from fsspec.implementations.local import LocalFileSystem

    df = frame(rows=200)
    fast = write_frame(df, tmp_path / "fast", "features")
    root = (tmp_path / "generic").as_posix()
    generic = _write_frame_fs(df, LocalFileSystem(), root, "features", root)
    assert generic.fingerprint == fast.fingerprint and generic.size_bytes == fast.size_bytes
    name = Path(fast.uri).name
    generic_file, fast_file = tmp_path / "generic" / "features" / name, tmp_path / "fast" / "features" / name
    assert generic.uri == generic_file.as_uri()
    assert generic_file.read_bytes() == fast_file.read_bytes()
    assert sorted(p.name for p in generic_file.parent.iterdir()) == [name]
    # A file:// root is local: the fast path, the same file.
    assert write_frame(df, (tmp_path / "fast").as_uri(), "features") == fast


def test_missing_bucket_is_reported_and_not_created(s3_bucket: str) -> None:
    import s3fs

    with pytest.raises(DatasetError) as excinfo:
        write_frame(frame(), "s3://no-such-bucket-here/root", "features")
    assert "artifact root s3://no-such-bucket-here/root" in str(excinfo.value)
    assert not s3fs.S3FileSystem().exists("no-such-bucket-here")


# --- read_frame / read_verified / describe ------------------------------------------------------------


def test_read_verified_detects_a_replaced_object(remote_root: str) -> None:
    ref = write_frame(frame(), remote_root, "features")
    assert read_verified(ref.to_dict(), "features")[0] == ref
    replacement = frame(rows=60, seed=5)
    fs, path = open_dataset(ref.uri)
    with fs.open(path, "wb") as f:
        replacement.to_parquet(f, index=False)
    fs.invalidate_cache(path)
    with pytest.raises(DatasetError) as excinfo:
        read_verified(ref.to_dict(), "features")
    message = str(excinfo.value)
    assert ref.uri in message and ref.fingerprint in message and b3(remote_bytes(ref.uri)) in message


def test_read_verified_plain_remote_csv_is_fingerprinted_as_it_is(remote_root: str) -> None:
    data = frame(rows=7).to_csv(index=False).encode()
    uri = f"{remote_root}/raw/data.csv"
    put(uri, data)
    ref, df = read_verified(uri, "raw dataset")
    assert ref.fingerprint == b3(data) and ref.size_bytes == len(data)
    assert ref.rows == len(df) == 7 and ref.columns == ("x", "n", "s")
    assert fingerprint_uri(uri) == b3(data)
    assert fingerprint_uri(f"{remote_root}/raw/absent.csv") is None


@pytest.mark.parametrize(
    ("name", "content", "detail"),
    [
        ("d.json", b"{}", "unknown format '.json'"),
        ("missing.parquet", None, "does not exist"),
        ("bad.parquet", b"PAR1 garbage", "could not be read as parquet"),
    ],
)
def test_read_frame_errors_name_the_remote_dataset(
    remote_root: str, name: str, content: bytes | None, detail: str
) -> None:
    uri = f"{remote_root}/raw/{name}"
    if content is not None:
        put(uri, content)
    with pytest.raises(DatasetError) as excinfo:
        read_frame(uri, "raw dataset")
    assert str(excinfo.value).startswith(f"raw dataset {uri}") and detail in str(excinfo.value)


def test_describe_of_a_missing_remote_file_names_it(remote_root: str) -> None:
    from airflow_ml_provider.data.datasets import describe

    with pytest.raises(DatasetError, match="does not exist") as excinfo:
        describe(f"{remote_root}/gone.parquet", frame())
    assert "gone.parquet" in str(excinfo.value)


def test_dataset_ref_gives_its_filesystem(remote_root: str) -> None:
    ref = write_frame(frame(), remote_root, "splits")
    assert not ref.is_local
    fs, path = ref.filesystem()
    assert b3(fs.cat_file(path)) == ref.fingerprint
    with pytest.raises(DatasetError, match="not supported"):
        _ = ref.path  # local-only callers get a clear error


def test_verify_references_checks_remote_datasets(remote_root: str) -> None:
    train = write_frame(frame(seed=1), remote_root, "splits")
    holdout = write_frame(frame(seed=2), remote_root, "splits")
    recorded = {"model_uri": "models:/m/1", "train": train.to_dict(), "holdout": holdout.to_dict()}
    assert verify_references(recorded, "recorded output of train") == 2
    put(holdout.uri, remote_bytes(train.uri))
    with pytest.raises(DatasetError, match="changed") as excinfo:
        verify_references(recorded, "recorded output of train")
    assert holdout.uri in str(excinfo.value)
    fs, path = open_dataset(holdout.uri)
    fs.rm_file(path)
    fs.invalidate_cache(path)
    with pytest.raises(DatasetError, match="no longer exists"):
        verify_references(recorded, "recorded output of train")


# --- find_by_fingerprint -----------------------------------------------------------------------------


def test_a_past_runs_dataset_is_found_by_fingerprint(any_root: str) -> None:
    written = write_frame(frame(rows=33, seed=3), any_root, "features")
    found = find_by_fingerprint(any_root, "features", written.fingerprint)
    assert found is not None
    read_back, df = read_verified(found.to_dict(), "features")
    assert found == read_back  # uri, fingerprint, size, rows, columns and schema as a full read gives them
    assert found.uri == written.uri and found.rows == 33 and found.size_bytes == written.size_bytes
    pd.testing.assert_frame_equal(df, frame(rows=33, seed=3))
    assert find_by_fingerprint(any_root, "splits", written.fingerprint) is None  # another kind
    assert find_by_fingerprint(any_root, "features", b3(b"never written")) is None


def test_a_damaged_dataset_is_not_returned_by_its_name(remote_root: str) -> None:
    written = write_frame(frame(), remote_root, "features")
    put(written.uri, remote_bytes(written.uri)[:-1])
    with pytest.raises(DatasetError) as excinfo:
        find_by_fingerprint(remote_root, "features", written.fingerprint)
    message = str(excinfo.value)
    assert written.uri in message and written.fingerprint in message
    assert b3(remote_bytes(written.uri)) in message


@pytest.mark.parametrize(
    ("kind", "fp", "detail"),
    [
        ("features", "blake3:../../etc/passwd", "not a dataset fingerprint"),
        ("features", "md5:" + "0" * 32, "not a dataset fingerprint"),
        ("../features", "blake3:" + "0" * 64, "plain name"),
        ("", "blake3:" + "0" * 64, "plain name"),
    ],
)
def test_find_by_fingerprint_rejects_what_is_not_a_fingerprint_or_kind(
    tmp_path: Path, kind: str, fp: str, detail: str
) -> None:
    with pytest.raises(DatasetError, match=detail):
        find_by_fingerprint(tmp_path, kind, fp)


# --- schemes that cannot be used ----------------------------------------------------------------------


def test_an_unknown_scheme_names_the_dataset() -> None:
    with pytest.raises(DatasetError) as excinfo:
        read_frame("nosuch://bucket/raw.parquet", "raw dataset")
    message = str(excinfo.value)
    assert message.startswith("raw dataset nosuch://bucket/raw.parquet") and "'nosuch'" in message
    with pytest.raises(DatasetError, match="^artifact root nosuch://bucket/root"):
        write_frame(frame(), "nosuch://bucket/root", "features")
    with pytest.raises(DatasetError, match="^artifact root nosuch://bucket/root"):
        find_by_fingerprint("nosuch://bucket/root", "features", b3(b""))


def test_a_filesystem_whose_package_is_missing_says_what_to_install() -> None:
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("gcsfs is installed here")
    with pytest.raises(DatasetError) as excinfo:
        read_frame("gs://bucket/raw.parquet", "raw dataset")
    message = str(excinfo.value)
    assert message.startswith("raw dataset gs://bucket/raw.parquet") and "install gcsfs to use gs:// URIs" in message
    with pytest.raises(DatasetError, match="install gcsfs to use gs:// URIs"):
        write_frame(frame(), "gs://bucket/root", "features")
    with pytest.raises(DatasetError, match="install gcsfs to use gs:// URIs"):
        read_verified({"uri": "gs://b/x.parquet", "fingerprint": b3(b""), "rows": 0, "columns": []}, "features")


# --- fingerprints of fsspec files ---------------------------------------------------------------------


def test_fingerprint_fsspec_streams_local_files_like_the_fast_path(tmp_path: Path) -> None:
    """fsspec's LocalFileSystem (``file://``) streamed through the same hash: equal to ``fingerprint_file``."""
    data = os.urandom(2 * CHUNK_SIZE + 12345)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    fs, fs_path = open_dataset(path.as_uri())
    assert type(fs).__name__ == "LocalFileSystem" and fs_path == path.as_posix()
    before = fingerprint.stats.bytes_hashed
    assert fingerprint_fsspec(fs, fs_path) == b3(data)
    assert fingerprint.stats.bytes_hashed - before == len(data)
    assert fingerprint_fsspec(fs, fs_path) == fingerprint_file(path, cached=False)
    with pytest.raises(FileNotFoundError):
        fingerprint_fsspec(fs, (tmp_path / "absent").as_posix())


def test_fingerprint_fsspec_on_a_remote_store(remote_root: str) -> None:
    data = os.urandom(CHUNK_SIZE + 7)
    uri = f"{remote_root}/blob.bin"
    put(uri, data)
    fs, path = open_dataset(uri)
    assert fingerprint_fsspec(fs, path) == b3(data)


def test_streaming_fingerprint_of_pieces_equals_the_whole() -> None:
    data = os.urandom(3 * 1000 + 17)
    streaming = StreamingFingerprint()
    for i in range(0, len(data), 1000):
        streaming.update(memoryview(data)[i : i + 1000])
    assert streaming.digest == b3(data) and streaming.size == len(data)
    assert StreamingFingerprint().digest == b3(b"")


# --- lineage identity (OpenLineage naming) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "namespace", "name"),
    [
        ("/data/raw.parquet", "file", "/data/raw.parquet"),
        ("file:///data/raw.parquet", "file", "/data/raw.parquet"),
        ("s3://bucket/runs/features/ab.parquet", "s3://bucket", "runs/features/ab.parquet"),
        ("s3a://bucket/k.parquet", "s3://bucket", "k.parquet"),
        ("s3://AKIA:secret@bucket/k.parquet?token=t0k3n", "s3://bucket", "k.parquet"),
        ("gs://bucket/k.parquet", "gs://bucket", "k.parquet"),
        ("abfss://box@acct.dfs.core.windows.net/p/k.parquet", "abfss://box@acct.dfs.core.windows.net", "p/k.parquet"),
        ("hdfs://namenode:8020/warehouse/k.parquet", "hdfs://namenode:8020", "/warehouse/k.parquet"),
        ("memory://root/features/ab.parquet", "memory", "/root/features/ab.parquet"),
        ("memory:///root/features/ab.parquet", "memory", "/root/features/ab.parquet"),
        ("simplecache::s3://bucket/k.parquet", "s3://bucket", "k.parquet"),
    ],
)
def test_dataset_identity_follows_the_openlineage_naming_spec(uri: str, namespace: str, name: str) -> None:
    assert dataset_identity(uri) == (namespace, name)
    assert (uri_dataset(uri).namespace, uri_dataset(uri).name) == (namespace, name)


def test_lineage_of_a_remote_dataset_reads_nothing(remote_root: str) -> None:
    """Lineage is built in the listener's forked child: from the reference alone, even once the file is gone."""
    from openlineage.client.serde import Serde

    ref = write_frame(frame(), remote_root, "predictions")
    fs, path = ref.filesystem()
    fs.rm_file(path)
    fs.invalidate_cache(path)
    dataset = file_dataset(ref.to_dict())
    expected_namespace = "memory" if remote_root.startswith("memory://") else f"s3://{BUCKET}"
    assert dataset.namespace == expected_namespace
    assert dataset.name == (path if expected_namespace == "memory" else path.split("/", 1)[1])
    assert dataset.name.endswith(f"/predictions/{ref.fingerprint.split(':', 1)[1]}.parquet")
    event: dict[str, Any] = Serde.to_dict(to_output(dataset))
    assert event["namespace"] == expected_namespace and event["name"] == dataset.name
    assert event["facets"]["version"]["datasetVersion"] == ref.fingerprint
    # A store whose package is not even installed still gets an identity.
    assert uri_dataset("gs://bucket/raw.parquet").namespace == "gs://bucket"
