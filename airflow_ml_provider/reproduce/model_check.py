"""Compare a rebuilt model with the original: both loaded, both scored on the original's recorded holdout.

The I/O half of the model comparison (download, load, predict, hash); the decisions are the pure
:func:`~airflow_ml_provider.reproduce.compare.compare_predictions` and
:func:`~airflow_ml_provider.reproduce.compare.compare_model_files`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.exceptions import AirflowMLError
from airflow_ml_provider.records.tags import TAG_TARGET
from airflow_ml_provider.reproduce.compare import NOT_COMPARED, compare_model_files, compare_predictions

if TYPE_CHECKING:
    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.records.step_record import StepRecord


class _NotComparable(AirflowMLError):
    """The two models cannot be compared; the message says why and what to do."""


def compare_models(
    hook: MlflowHook, original: StepRecord, reproduced: StepRecord, tolerance: float
) -> dict[str, Any]:
    """Predictions of both training steps' models on the original's recorded holdout, and their model files.

    Never raises: a model or holdout that cannot be read makes the result ``not compared`` with the reason,
    which the report never counts as identical.
    """
    base = {
        "original": original.model.uri if original.model else None,
        "reproduced": reproduced.model.uri if reproduced.model else None,
    }
    try:
        if not base["original"] or not base["reproduced"]:
            raise _NotComparable("a training record names no registered model version")
        holdout_ref, x = _recorded_holdout(hook, original)
        with (
            hook.download_model(str(base["original"])) as first,
            hook.download_model(str(base["reproduced"])) as second,
        ):
            predictions = compare_predictions(_outputs(hook, first, x), _outputs(hook, second, x), tolerance)
            files = compare_model_files(_model_file(first), _model_file(second))
    except _NotComparable as e:
        return {**base, "outcome": NOT_COMPARED, "error": str(e)}
    except Exception as e:  # a broken model or store: say so in the report rather than fail it
        return {**base, "outcome": NOT_COMPARED, "error": f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"}
    return {**base, "holdout": holdout_ref, **predictions, "fingerprint": files}


def _recorded_holdout(hook: MlflowHook, record: StepRecord) -> tuple[str, Any]:
    """The holdout the original training wrote (verified by fingerprint) as the model's feature frame."""
    from airflow_ml_provider.data.datasets import DatasetError, read_verified
    from airflow_ml_provider.model import reference as models

    entry = next((o for o in record.outputs if o.get("role") == "holdout"), None)
    if entry is None and isinstance(record.returned, Mapping):
        entry = record.returned.get("holdout")
    if not isinstance(entry, Mapping):
        raise _NotComparable(f"the training record of {record.mlflow_run_id} names no holdout dataset")
    try:
        ref, frame = read_verified(entry, "recorded holdout")
    except DatasetError as e:
        raise _NotComparable(f"{e} (the models are scored on the original holdout; restore it to compare)") from None
    if record.model is None:
        raise _NotComparable(f"the training record of {record.mlflow_run_id} names no registered model version")
    version = hook.model_version(record.model.name, record.model.version)
    if version is None:
        raise _NotComparable(f"the original model {record.model.uri} is no longer in the registry")
    target = version.tags.get(TAG_TARGET) or record.params.get("target_column")
    columns = models.feature_columns(version) or [c for c in frame.columns if c != target]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise _NotComparable(f"recorded holdout {ref.uri} lacks the model's feature columns {missing}")
    return ref.uri, frame[columns]


def _outputs(hook: MlflowHook, local: Path, x: Any) -> dict[str, Any]:
    """``predict`` and, for a classifier, ``predict_proba`` on the holdout rows."""
    model = hook.load_model(str(local))
    out = {"predict": model.predict(x)}
    if callable(getattr(model, "predict_proba", None)):
        out["predict_proba"] = model.predict_proba(x)
    return out


def _model_file(local: Path) -> dict[str, Any]:
    """Flavor, serialisation format and sha256 of the serialised model file (``MLmodel`` says which)."""
    import yaml

    flavors = (yaml.safe_load((local / "MLmodel").read_text()) or {}).get("flavors") or {}
    sklearn = flavors.get("sklearn")
    if isinstance(sklearn, Mapping):
        path = local / str(sklearn.get("pickled_model", ""))
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        return {"flavor": "sklearn", "serialization": sklearn.get("serialization_format"), "sha256": digest}
    return {"flavor": "pyfunc" if "python_function" in flavors else ",".join(sorted(flavors)) or None,
            "serialization": None, "sha256": None}
