"""How a DAG run is told it reproduces a past model version.

``airflow-ml reproduce`` triggers the original DAG with the original conf plus one extra key,
``airflow_ml``; the operators read it from the DAG run conf:

    {"airflow_ml": {
        "reproduction_of": "models:/name/3",
        "overrides": {"train": {"C": 0.5}},          # --set train.C=0.5
        "reuse": {"featurize": {...recorded result...}}  # --from-step train
    }}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_ml_provider.exceptions import AirflowMLError

CONF_KEY = "airflow_ml"


class ReproductionConfError(AirflowMLError, ValueError):
    pass


@dataclass(frozen=True)
class ReproductionSettings:
    reproduction_of: str | None = None
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    reuse: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any] | None) -> ReproductionSettings:
        raw = (conf or {}).get(CONF_KEY)
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ReproductionConfError(f"DAG run conf {CONF_KEY!r} must be a mapping, got {type(raw).__name__}")
        unknown = set(raw) - {"reproduction_of", "overrides", "reuse"}
        if unknown:
            raise ReproductionConfError(f"DAG run conf {CONF_KEY!r} has unknown keys {sorted(unknown)}")
        overrides = raw.get("overrides") or {}
        if not isinstance(overrides, Mapping) or not all(isinstance(v, Mapping) for v in overrides.values()):
            raise ReproductionConfError(f"{CONF_KEY}.overrides must map task_id -> {{param: value}}")
        reuse = raw.get("reuse") or {}
        if not isinstance(reuse, Mapping):
            raise ReproductionConfError(f"{CONF_KEY}.reuse must map task_id -> recorded result")
        return cls(raw.get("reproduction_of"), dict(overrides), dict(reuse))


def settings_for(context: Mapping[str, Any]) -> ReproductionSettings:
    dag_run = context.get("dag_run")
    return ReproductionSettings.from_conf(getattr(dag_run, "conf", None) if dag_run is not None else None)
