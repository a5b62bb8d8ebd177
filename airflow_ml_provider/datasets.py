"""Reading and writing the datasets the operators exchange.

Tasks pass :class:`DatasetRef` dictionaries through XCom, never frames. Datasets the operators
write are content-addressed: ``<artifact_root>/<kind>/<fingerprint>.parquet``. They are written to
a temporary file in the same directory and renamed into place only when complete, so a failed
task never leaves a half-written dataset that looks finished.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from airflow_ml_provider.lineage.fingerprint import fingerprint_file

if TYPE_CHECKING:
    import pandas as pd

_READERS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


class DatasetError(ValueError):
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
        return local_path(self.uri)

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


def frame_schema(df: pd.DataFrame) -> dict[str, str]:
    return {str(c): str(t) for c, t in df.dtypes.items()}


def read_frame(uri: str, what: str = "dataset") -> pd.DataFrame:
    """Read a Parquet or CSV dataset; errors name the dataset and what to fix."""
    import pandas as pd

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


def describe(uri: str, df: pd.DataFrame) -> DatasetRef:
    """Reference to an existing file holding ``df``."""
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
    """Write ``df`` as Parquet under ``<root>/<kind>/<fingerprint>.parquet``, atomically."""
    directory = local_path(artifact_root) / kind
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".incomplete-", suffix=".parquet", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        df.to_parquet(tmp, index=False)
        fingerprint = fingerprint_file(tmp)
        final = directory / f"{fingerprint.split(':', 1)[1]}.parquet"
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return describe(str(final), df)


def read_verified(reference: Mapping[str, Any] | str, what: str) -> tuple[DatasetRef, pd.DataFrame]:
    """Read a dataset passed by reference and check its bytes are the ones the reference names.

    A plain URI string (no recorded fingerprint) is read and fingerprinted as it is now.
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
            f"!= recorded {expected.fingerprint}. Re-run the upstream task."
        )
    return actual, df


def verify_references(value: Any, what: str) -> int:
    """Check every dataset reference inside ``value`` (nested dicts/lists) still has its recorded bytes.

    Returns how many were checked; raises :class:`DatasetError` naming the first that changed.
    """
    if isinstance(value, Mapping):
        if {"uri", "fingerprint"} <= set(value):
            ref = DatasetRef.from_dict(value, what)
            if not ref.path.is_file():
                raise DatasetError(f"{what}: {ref.uri} no longer exists")
            actual = fingerprint_file(ref.path)
            if actual != ref.fingerprint:
                raise DatasetError(f"{what}: {ref.uri} changed: fingerprint {actual} != recorded {ref.fingerprint}")
            return 1 + sum(verify_references(v, what) for k, v in value.items() if isinstance(v, Mapping | list))
        return sum(verify_references(v, what) for v in value.values())
    if isinstance(value, list):
        return sum(verify_references(v, what) for v in value)
    return 0
