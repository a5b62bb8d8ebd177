"""Keeping credentials out of what the provider records and reports: MLflow params, lineage, messages.

One place, so that a URI or a parameter is cleaned by the same rules wherever it ends up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"
#: Query parameters whose values are credentials (e.g. ``?token=...``); their values are dropped.
_SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "access_key", "sig")
#: Parts of a parameter or environment variable name that mark its value as a credential.
_SECRET_NAME_PARTS = (
    "password", "passwd", "secret", "token", "api_key", "apikey", "private_key", "access_key", "credential",
)
_MIN_SECRET_LEN = 6  # shorter environment values are not treated as secrets (too many false hits)


def strip_credentials(uri: str, *, keep_user: bool = False) -> str:
    """``uri`` without its credentials: ``user:password@`` and the values of credential query parameters.

    With ``keep_user`` the user name stays and only the password is masked (``bob:***@db``), for
    messages where knowing *which* account was used helps the reader fix it.
    """
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = (f"{user}:{REDACTED}@{host}" if colon else f"{user}@{host}") if keep_user else host
    query = parts.query
    if query:
        pairs = [p.partition("=") for p in query.split("&")]
        query = "&".join(
            f"{k}={REDACTED}" if eq and any(s in k.lower() for s in _SECRET_QUERY_KEYS) else f"{k}{eq}{v}"
            for k, eq, v in pairs
        )
    if netloc == parts.netloc and query == parts.query:
        return uri
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def is_secret_name(name: str) -> bool:
    """Whether a parameter or variable named ``name`` holds a credential (its value is masked)."""
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_NAME_PARTS)


def _environment_secrets() -> list[str]:
    """Values of environment variables whose names say they hold credentials (longest first)."""
    import os

    values = {v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= _MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def redact_secrets(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` safe to record in MLflow and lineage.

    Values under credential-like names become ``***``; connection passwords and other secrets Airflow
    masks, and values of credential environment variables, are replaced wherever they appear in strings.
    """
    airflow_redact: Callable[..., Any] | None
    try:
        from airflow.sdk._shared.secrets_masker import redact as airflow_redact
    except Exception:  # outside a task (tests, CLI): only our own rules apply
        airflow_redact = None
    env_secrets = _environment_secrets()

    def clean(value: Any, name: str) -> Any:
        if is_secret_name(name):
            return REDACTED
        if airflow_redact is not None:
            try:
                value = airflow_redact(value, name)
            except Exception:
                pass
        if isinstance(value, str):
            for secret in env_secrets:
                value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, Mapping):
            return {k: clean(v, str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v, name) for v in value]
        return value

    return {k: clean(v, str(k)) for k, v in params.items()}
