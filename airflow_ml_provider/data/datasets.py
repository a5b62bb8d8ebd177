"""Reading and writing the datasets the operators exchange.

Tasks pass :class:`DatasetRef` dictionaries through XCom, never frames. Datasets the operators
write are content-addressed: ``<artifact_root>/<kind>/<fingerprint>.parquet``, so a past run's
intermediates can be found again by fingerprint (:func:`find_by_fingerprint`). They are written to
a temporary file in the same directory and renamed into place only when complete, so a failed
task never leaves a half-written dataset that looks finished.

Where datasets live. A local path or ``file://`` URI is read and written directly (``os.replace``,
atomic; fingerprints cached, see :mod:`~airflow_ml_provider.data.fingerprint`). Any other fsspec
URL (``s3://bucket/prefix``, ``gs://...``, ``memory://...``) goes through fsspec: the filesystem's
package must be installed (``s3fs`` for ``s3://``) and is configured as fsspec and its package are
(for S3: the usual ``AWS_*`` variables or AWS config, e.g. ``AWS_ENDPOINT_URL_S3`` for an S3-compatible
store; or ``FSSPEC_S3_*`` variables). Writing there: the Parquet bytes are fingerprinted as they are
written to ``<kind>/.incomplete-<random>.parquet``, then ``fs.mv`` moves them to the content-addressed
name. On an object store the move is a server-side copy and a delete; a copy creates the final object
whole or not at all, so a reader never sees a partial dataset under its final name. A failed write
removes its temporary object (best effort: a crash can leave an ``.incomplete-`` object behind, never a
final one). On stores without directories (``s3``, ``gs``, ``az`` ...) no directory (and no bucket) is
created: the bucket must exist.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import unquote, urlparse

from airflow_ml_provider.data.fingerprint import fingerprint_file
from airflow_ml_provider.exceptions import AirflowMLError

if TYPE_CHECKING:
    import pandas as pd
    from fsspec import AbstractFileSystem

_READERS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


class DatasetError(AirflowMLError, ValueError):
    """A dataset cannot be read or is not what the step needs; the message names the dataset."""


@dataclass(frozen=True)
class DatasetRef:
    """A dataset by location and content, small enough for XCom."""

    uri: str
    fingerprint: str
    rows: int
    columns: tuple[str, ...]
    schema: Mapping[str, str] = field(default_factory=dict)
    size_bytes: int = 0

    @property
    def path(self) -> Path:
        """The local file (local datasets only: raises :class:`DatasetError` for other URIs)."""
        return local_path(self.uri)

    @property
    def is_local(self) -> bool:
        return is_local(self.uri)

    def filesystem(self) -> tuple[AbstractFileSystem, str]:
        """The fsspec filesystem holding this dataset and its path there (see :func:`open_dataset`)."""
        return open_dataset(self.uri)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["columns"] = list(self.columns)
        d["schema"] = dict(self.schema)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | DatasetRef, what: str = "dataset reference") -> DatasetRef:
        if isinstance(data, DatasetRef):
            return data
        if not isinstance(data, Mapping):
            raise DatasetError(
                f"{what} must be a dataset reference (a dict with uri and fingerprint, as returned "
                f"by an upstream operator), got {type(data).__name__}: {data!r:.200}"
            )
        missing = [k for k in ("uri", "fingerprint", "rows", "columns") if k not in data]
        if missing:
            raise DatasetError(f"{what} is missing {', '.join(missing)}: {dict(data)!r:.300}")
        return cls(
            uri=str(data["uri"]),
            fingerprint=str(data["fingerprint"]),
            rows=int(data["rows"]),
            columns=tuple(data["columns"]),
            schema=dict(data.get("schema") or {}),
            size_bytes=int(data.get("size_bytes") or 0),
        )


def local_path(uri: str | os.PathLike[str]) -> Path:
    """Turn a local path or ``file://`` URI into an absolute path; reject other schemes clearly."""
    text = os.fspath(uri)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise DatasetError(f"Dataset {text}: file URIs must name a local path (file:///abs/path)")
        return Path(unquote(parsed.path)).absolute()
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter would be a Windows drive
        raise DatasetError(
            f"Dataset {text}: scheme {parsed.scheme!r} is not supported; use a local path or file:// URI"
        )
    return Path(text).expanduser().absolute()


def is_local(uri: str | os.PathLike[str]) -> bool:
    """Whether ``uri`` is a local path or ``file://`` URI (rather than another fsspec URL)."""
    scheme = urlparse(os.fspath(uri)).scheme
    return scheme in ("", "file") or len(scheme) == 1  # one letter would be a Windows drive


#: Filesystems with no real directories: nothing to create before writing (and no bucket is created).
_NO_DIRECTORIES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "oss", "r2"})


def open_dataset(uri: str | os.PathLike[str], what: str = "dataset") -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem and the path on it of a local path, ``file://`` URI or any fsspec URL.

    Nothing is read. An unknown scheme, or one whose package is not installed, raises
    :class:`DatasetError` naming the dataset and what to install.
    """
    text = os.fspath(uri)
    if is_local(text):
        path = local_path(text)
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), path.as_posix()
    try:
        from fsspec.core import url_to_fs
    except ImportError as e:  # pragma: no cover - fsspec is a dependency
        raise DatasetError(f"{what} {text}: install fsspec to use URLs other than local paths") from e
    try:
        return url_to_fs(text)
    except ImportError as e:
        hint = _install_hint(text)
        raise DatasetError(f"{what} {text}: {hint}" + ("" if str(e) in hint else f" ({e})")) from e
    except ValueError as e:
        scheme = urlparse(text).scheme
        raise DatasetError(
            f"{what} {text}: scheme {scheme!r} is not supported: no fsspec filesystem implements it ({e}). "
            "Use a local path, a file:// URI or an fsspec URL such as s3://bucket/key"
        ) from e


def _install_hint(text: str) -> str:
    """``install s3fs to use s3:// URIs`` for the first protocol of ``text`` whose implementation is missing."""
    from fsspec.registry import get_filesystem_class, known_implementations

    for part in text.split("::"):
        protocol = part.split("://", 1)[0] if "://" in part else part
        try:
            get_filesystem_class(protocol)
        except ImportError:
            known = known_implementations.get(protocol, {})
            module = known.get("class", "").split(".", 1)[0]
            if module and module not in ("fsspec", "pyarrow"):
                return f"install {module} to use {protocol}:// URIs"
            return f"{protocol}:// URIs need a package that is not installed: {known.get('err', 'see fsspec')}"
        except ValueError:
            continue
    return "the filesystem for this URL cannot be loaded"


def _canonical_uri(fs: AbstractFileSystem, path: str, given: str) -> str:
    """The URI to record: ``fs``'s own spelling, unless ``given`` is a chained URL (kept as it is)."""
    return given if "::" in given else fs.unstrip_protocol(path)


def _is_file(fs: AbstractFileSystem, path: str, uri: str, what: str) -> bool:
    fs.invalidate_cache(path)  # written by another process since this one listed it? ask the store
    try:
        return bool(fs.isfile(path))
    except OSError as e:
        raise DatasetError(f"{what} {uri} cannot be reached: {e}") from e


def frame_schema(df: pd.DataFrame) -> dict[str, str]:
    return {str(c): str(t) for c, t in df.dtypes.items()}


def read_frame(uri: str, what: str = "dataset") -> pd.DataFrame:
    """Read a Parquet or CSV dataset (local or any fsspec URL); errors name the dataset and what to fix."""
    import pandas as pd

    if not is_local(uri):
        return _read_frame_fs(uri, what)
    path = local_path(uri)
    fmt = _READERS.get(path.suffix.lower())
    if fmt is None:
        raise DatasetError(
            f"{what} {uri}: unknown format {path.suffix or '(no suffix)'!r}; expected .parquet or .csv"
        )
    if not path.is_file():
        raise DatasetError(f"{what} {uri} does not exist (looked for {path})")
    try:
        return pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
    except Exception as e:
        raise DatasetError(f"{what} {uri} could not be read as {fmt}: {e}") from e


def _read_frame_fs(uri: str, what: str) -> pd.DataFrame:
    import pandas as pd

    fs, path = open_dataset(uri, what)
    suffix = PurePosixPath(path).suffix
    fmt = _READERS.get(suffix.lower())
    if fmt is None:
        raise DatasetError(f"{what} {uri}: unknown format {suffix or '(no suffix)'!r}; expected .parquet or .csv")
    if not _is_file(fs, path, uri, what):
        raise DatasetError(f"{what} {uri} does not exist (looked for {fs.unstrip_protocol(path)})")
    try:
        with fs.open(path, "rb") as f:
            return pd.read_parquet(f) if fmt == "parquet" else pd.read_csv(f)
    except Exception as e:
        raise DatasetError(f"{what} {uri} could not be read as {fmt}: {e}") from e


def describe(uri: str, df: pd.DataFrame) -> DatasetRef:
    """Reference to an existing file holding ``df`` (local, or any fsspec URL: fingerprinted by streaming)."""
    if not is_local(uri):
        from airflow_ml_provider.data.fingerprint import fingerprint_fsspec_sized

        fs, fs_path = open_dataset(uri)
        try:
            fingerprint, size = fingerprint_fsspec_sized(fs, fs_path)
        except FileNotFoundError as e:
            raise DatasetError(f"dataset {uri} does not exist (looked for {fs.unstrip_protocol(fs_path)})") from e
        return DatasetRef(
            uri=_canonical_uri(fs, fs_path, uri),
            fingerprint=fingerprint,
            rows=len(df),
            columns=tuple(str(c) for c in df.columns),
            schema=frame_schema(df),
            size_bytes=size,
        )
    path = local_path(uri)
    return DatasetRef(
        uri=path.as_uri(),
        fingerprint=fingerprint_file(path),
        rows=len(df),
        columns=tuple(str(c) for c in df.columns),
        schema=frame_schema(df),
        size_bytes=path.stat().st_size,
    )


def write_frame(df: pd.DataFrame, artifact_root: str | os.PathLike[str], kind: str) -> DatasetRef:
    """Write ``df`` as Parquet under ``<root>/<kind>/<fingerprint>.parquet``, atomically.

    ``artifact_root`` is a local directory or any fsspec URL (see the module doc for how each is written).
    """
    if not is_local(artifact_root):
        root_uri = os.fspath(artifact_root)
        fs, root = open_dataset(root_uri, "artifact root")
        return _write_frame_fs(df, fs, root, kind, root_uri)
    directory = local_path(artifact_root) / kind
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".incomplete-", suffix=".parquet", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # mkstemp creates the file 0600; a shared artifact store needs what the umask allows, as
        # for any other file the user's process writes.
        os.chmod(tmp, 0o666 & ~_current_umask())
        with open(tmp, "wb") as f:
            sink = _HashingWriter(f)  # hashed as written: the file's bytes are read by nobody afterwards
            df.to_parquet(sink, index=False)
        fingerprint, size = sink.fingerprint.digest, sink.fingerprint.size
        stored = tmp.stat().st_size
        if stored != size:
            raise DatasetError(f"{tmp} holds {stored} bytes, {size} were written: the disk may be full")
        final = directory / f"{fingerprint.split(':', 1)[1]}.parquet"
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return _written(final.as_uri(), df, fingerprint, size)


def _written(uri: str, df: pd.DataFrame, fingerprint: str, size: int) -> DatasetRef:
    """The reference to a frame just written to ``uri``, with the fingerprint and size taken while writing."""
    return DatasetRef(
        uri=uri,
        fingerprint=fingerprint,
        rows=len(df),
        columns=tuple(str(c) for c in df.columns),
        schema=frame_schema(df),
        size_bytes=size,
    )


def _current_umask() -> int:
    """The process umask: from /proc where it is shown (Linux), since reading it with ``os.umask``
    means setting it, for a moment, for every thread of the process."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class _HashingWriter:
    """Binary sink passing every byte to ``target`` and to a fingerprint: the file is hashed as written."""

    def __init__(self, target: BinaryIO) -> None:
        from airflow_ml_provider.data.fingerprint import StreamingFingerprint

        self._target = target
        self.fingerprint = StreamingFingerprint()
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._target.write(view)
        self.fingerprint.update(view)
        return len(view)

    def tell(self) -> int:
        return self.fingerprint.size

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False  # a writer that seeks back would make the hash differ from the file

    def readable(self) -> bool:
        return False

    def flush(self) -> None:
        self._target.flush()

    def close(self) -> None:
        self.closed = True  # the target is closed (committed) by its owner


def _write_frame_fs(df: pd.DataFrame, fs: AbstractFileSystem, root: str, kind: str, root_uri: str) -> DatasetRef:
    """:func:`write_frame` on an fsspec filesystem: temporary name, hash while writing, ``fs.mv`` into place."""
    directory = f"{root.rstrip('/')}/{kind}"
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    tmp = f"{directory}/.incomplete-{uuid.uuid4().hex}.parquet"
    try:
        if not protocols & _NO_DIRECTORIES:
            fs.makedirs(directory, exist_ok=True)
        with fs.open(tmp, "wb") as f:
            sink = _HashingWriter(f)
            df.to_parquet(sink, index=False)
        fingerprint, size = sink.fingerprint.digest, sink.fingerprint.size
        stored = fs.size(tmp)
        if stored != size:
            raise DatasetError(
                f"artifact root {root_uri}: {fs.unstrip_protocol(tmp)} holds {stored} bytes, {size} were written"
            )
        final = f"{directory}/{fingerprint.split(':', 1)[1]}.parquet"
        fs.mv(tmp, final)
    except BaseException as e:
        try:
            fs.rm(tmp)
        except Exception:
            pass  # never created, already moved, or the store is unreachable: the write's error is the one to tell
        if isinstance(e, OSError):
            raise DatasetError(f"artifact root {root_uri}: cannot write a {kind} dataset there: {e!r}") from e
        raise
    return _written(fs.unstrip_protocol(final), df, fingerprint, size)


def fingerprint_uri(uri: str, what: str = "dataset") -> str | None:
    """The fingerprint of the dataset at ``uri`` as it is now (local or any fsspec URL); ``None`` if absent."""
    found = _fingerprint_existing(uri, what)
    return found[0] if found else None


def _fingerprint_existing(uri: str, what: str) -> tuple[str, int, str] | None:
    """``(fingerprint, size, canonical uri)`` of the file at ``uri``, or ``None`` when there is none."""
    if is_local(uri):
        path = local_path(uri)
        if not path.is_file():
            return None
        return fingerprint_file(path), path.stat().st_size, path.as_uri()
    from airflow_ml_provider.data.fingerprint import fingerprint_fsspec_sized

    fs, fs_path = open_dataset(uri, what)
    if not _is_file(fs, fs_path, uri, what):
        return None
    try:
        fingerprint, size = fingerprint_fsspec_sized(fs, fs_path)
    except FileNotFoundError:
        return None
    return fingerprint, size, _canonical_uri(fs, fs_path, uri)


def find_by_fingerprint(artifact_root: str | os.PathLike[str], kind: str, fingerprint: str) -> DatasetRef | None:
    """A dataset an operator wrote under ``artifact_root`` (e.g. a past run's features), by its fingerprint.

    ``None`` when no dataset of that kind and fingerprint is stored there. The file's name is not
    trusted: its bytes are fingerprinted, and a file whose bytes no longer match raises
    :class:`DatasetError`. Rows, columns and schema come from the Parquet footer (the data is not read).
    """
    from airflow_ml_provider.data.fingerprint import is_fingerprint

    if not is_fingerprint(fingerprint):
        raise DatasetError(f"{fingerprint!r} is not a dataset fingerprint (blake3: and 64 hex digits)")
    if not kind or kind.startswith(".") or any(c in kind for c in "/\\:"):
        raise DatasetError(f"dataset kind {kind!r} must be a plain name such as 'features'")
    root = os.fspath(artifact_root)
    name = f"{kind}/{fingerprint.split(':', 1)[1]}.parquet"
    if is_local(root):
        location = (local_path(root) / name).as_uri()
    else:
        open_dataset(root, "artifact root")  # an unknown scheme is reported as the root's
        location = f"{root.rstrip('/')}/{name}"
    found = _fingerprint_existing(location, f"{kind} dataset")
    if found is None:
        return None
    actual, size, uri = found
    if actual != fingerprint:
        raise DatasetError(
            f"{kind} dataset {uri} is stored under fingerprint {fingerprint} but its bytes now have fingerprint "
            f"{actual}: it was damaged or replaced. Re-run the step that wrote it."
        )
    rows, columns, schema = _parquet_summary(lambda: _open_binary(uri), uri, kind)
    return DatasetRef(uri=uri, fingerprint=fingerprint, rows=rows, columns=columns, schema=schema, size_bytes=size)


def _open_binary(uri: str) -> BinaryIO:
    fs, path = open_dataset(uri)
    return fs.open(path, "rb")


def _parquet_summary(
    opener: Callable[[], BinaryIO], uri: str, what: str
) -> tuple[int, tuple[str, ...], dict[str, str]]:
    """Rows, columns and pandas dtypes of a Parquet file, from its footer."""
    import pyarrow.parquet as pq

    try:
        with opener() as f:
            parquet = pq.ParquetFile(f)
            rows = parquet.metadata.num_rows
            empty = parquet.schema_arrow.empty_table().to_pandas()
    except Exception as e:
        raise DatasetError(f"{what} dataset {uri} could not be read as parquet: {e}") from e
    return rows, tuple(str(c) for c in empty.columns), frame_schema(empty)


def read_verified(
    reference: Mapping[str, Any] | str, what: str, remedy: str = "Re-run the upstream task."
) -> tuple[DatasetRef, pd.DataFrame]:
    """Read a dataset passed by reference and check its bytes are the ones the reference names.

    A plain URI string (no recorded fingerprint) is read and fingerprinted as it is now. ``remedy`` ends the
    error for changed bytes: what the reader can do about it.
    """
    if isinstance(reference, str):
        df = read_frame(reference, what)
        return describe(reference, df), df
    expected = DatasetRef.from_dict(reference, what)
    df = read_frame(expected.uri, what)
    actual = describe(expected.uri, df)
    if actual.fingerprint != expected.fingerprint:
        raise DatasetError(
            f"{what} {expected.uri} changed since it was recorded: fingerprint {actual.fingerprint} "
            f"!= recorded {expected.fingerprint}. {remedy}"
        )
    return actual, df


def verify_references(value: Any, what: str) -> int:
    """Check every dataset reference inside ``value`` (nested dicts/lists) still has its recorded bytes.

    Returns how many were checked; raises :class:`DatasetError` naming the first that changed.
    """
    if isinstance(value, Mapping):
        if {"uri", "fingerprint"} <= set(value):
            ref = DatasetRef.from_dict(value, what)
            found = _fingerprint_existing(ref.uri, what)
            if found is None:
                raise DatasetError(f"{what}: {ref.uri} no longer exists")
            actual = found[0]
            if actual != ref.fingerprint:
                raise DatasetError(f"{what}: {ref.uri} changed: fingerprint {actual} != recorded {ref.fingerprint}")
            return 1 + sum(verify_references(v, what) for k, v in value.items() if isinstance(v, Mapping | list))
        return sum(verify_references(v, what) for v in value.values())
    if isinstance(value, list):
        return sum(verify_references(v, what) for v in value)
    return 0
