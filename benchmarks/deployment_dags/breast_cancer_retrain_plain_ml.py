"""Baseline for benchmarks/deployment.py: the example's ML work done with plain Airflow PythonOperators.

Same tasks and edges as ``dags_examples/breast_cancer_retrain.py`` (featurize -> train -> (evaluate,
simulate) -> gate -> promote -> predict) and the same ML: the raw Parquet is read and put through
``breast_cancer.pipeline.transform``, split like TrainOperator does (20 % holdout, seed 42), fitted with
``breast_cancer.pipeline.train``, scored on the holdout (and the champion on the same rows), checked
against the example's scenarios, gated with the example's thresholds (without the comparison with the
champion, which the benchmark's variant of the example drops too: see breast_cancer_retrain_concurrent.py),
promoted, and the run's features scored with the champion. Unlike benchmarks/plain_dag.py (stubs, for
parse time) every task does the work.

What it leaves out is what the provider adds: no MLflow (models are pickled files, the champion a
file replaced atomically), no data expectations, fingerprints, step records or lineage datasets, and the
gate is a PythonSensor poking in the worker rather than deferring to the triggerer. So ours / plain
in the benchmark is the price of that bookkeeping on a real deployment.

Files go under ``params.work_root`` (one directory per run, plus the shared champion), which must be
on storage every Celery worker sees; the benchmark passes one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.providers.standard.sensors.python import PythonSensor
from airflow.sdk import DAG, Param
from breast_cancer import pipeline
from breast_cancer.pipeline import TARGET

HERE = Path(pipeline.__file__).parent
DEFAULT_RAW_URI = os.environ.get(
    "BREAST_CANCER_RAW_URI",
    str(Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "data" / "breast_cancer.parquet"),
)
DEFAULT_WORK_ROOT = str(Path(DEFAULT_RAW_URI).parent.parent / "plain_ml")
HOLDOUT_FRACTION, SEED = 0.2, 42  # TrainOperator's defaults
RUN_DIR = "{{ params.work_root }}/runs/{{ run_id | replace(':', '_') | replace('+', '_') }}"


def _write_parquet(frame: Any, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return str(path)


def _featurize(raw_uri: str, run_dir: str) -> str:
    import pandas as pd

    return _write_parquet(pipeline.transform(pd.read_parquet(raw_uri)), Path(run_dir) / "features.parquet")


def _train(features: str, run_dir: str, C: float) -> dict[str, str]:
    import joblib
    import pandas as pd

    frame = pd.read_parquet(features)
    holdout = frame.sample(frac=HOLDOUT_FRACTION, random_state=SEED)
    model = pipeline.train(frame.drop(index=holdout.index).reset_index(drop=True), C=float(C), seed=SEED)
    out = Path(run_dir)
    joblib.dump(model, out / "model.pkl")
    return {"model": str(out / "model.pkl"), "holdout": _write_parquet(holdout, out / "holdout.parquet")}


def _score(model_path: str, holdout: Any) -> dict[str, float]:
    import joblib
    from sklearn import metrics

    model = joblib.load(model_path)
    x, y = holdout.drop(columns=[TARGET]), holdout[TARGET]
    predicted, proba = model.predict(x), model.predict_proba(x)
    return {
        "accuracy": float(metrics.accuracy_score(y, predicted)),
        "precision": float(metrics.precision_score(y, predicted)),
        "recall": float(metrics.recall_score(y, predicted)),
        "f1": float(metrics.f1_score(y, predicted)),
        "roc_auc": float(metrics.roc_auc_score(y, proba[:, 1])),
        "log_loss": float(metrics.log_loss(y, proba, labels=model.classes_)),
    }


def _evaluate(trained: dict[str, str], work_root: str) -> dict[str, Any]:
    import pandas as pd

    holdout = pd.read_parquet(trained["holdout"])
    champion = Path(work_root) / "champion.pkl"
    return {
        "metrics": _score(trained["model"], holdout),
        "champion": _score(str(champion), holdout) if champion.exists() else None,
    }


def _simulate(trained: dict[str, str], scenarios: str) -> dict[str, Any]:
    import joblib
    import pandas as pd
    import yaml

    model = joblib.load(trained["model"])
    results = {}
    for scenario in yaml.safe_load(Path(scenarios).read_text())["scenarios"]:
        predicted = [int(v) for v in model.predict(pd.DataFrame(scenario["rows"]))]
        expect = scenario["expect"]
        if "equals" in expect:
            passed = all(p == expect["equals"] for p in predicted)
        elif "one_of" in expect:
            passed = all(p in expect["one_of"] for p in predicted)
        else:
            right = sum(p == label for p, label in zip(predicted, scenario["labels"], strict=True))
            passed = right / len(predicted) >= expect["min_accuracy"]
        results[scenario["name"]] = passed
    return results


def _gate(evaluation: dict[str, Any], scenarios: dict[str, bool], min_accuracy: float) -> bool:
    from airflow.sdk.exceptions import AirflowFailException

    metrics = evaluation["metrics"]
    failed = [name for name, passed in scenarios.items() if not passed]
    if metrics["accuracy"] < float(min_accuracy):
        failed.append(f"accuracy {metrics['accuracy']:.4f} < {min_accuracy}")
    if metrics["roc_auc"] < 0.95:
        failed.append(f"roc_auc {metrics['roc_auc']:.4f} < 0.95")
    if failed:
        raise AirflowFailException(f"gate failed: {'; '.join(failed)}")
    return True


def _promote(trained: dict[str, str], evaluation: dict[str, Any], work_root: str, run_dir: str) -> str:
    import shutil

    root = Path(work_root)
    staged = Path(run_dir) / "champion.staged"
    shutil.copyfile(trained["model"], staged)
    (Path(run_dir) / "champion.json").write_text(json.dumps({"metrics": evaluation["metrics"], "run_dir": run_dir}))
    os.replace(staged, root / "champion.pkl")  # atomic: a concurrent predict sees the old or the new champion
    os.replace(Path(run_dir) / "champion.json", root / "champion.json")
    return str(root / "champion.pkl")


def _predict(features: str, work_root: str, run_dir: str) -> str:
    import joblib
    import pandas as pd

    frame = pd.read_parquet(features)
    model = joblib.load(Path(work_root) / "champion.pkl")
    predictions = pd.DataFrame({"prediction": model.predict(frame.drop(columns=[TARGET]))})
    return _write_parquet(predictions, Path(run_dir) / "predictions.parquet")


with DAG(
    dag_id="breast_cancer_retrain_plain_ml",
    schedule=None,
    catchup=False,
    max_active_runs=int(os.environ.get("BENCH_MAX_ACTIVE_RUNS", "16")),
    render_template_as_native_obj=True,
    tags=["ml", "benchmark"],
    params={
        "raw_uri": Param(DEFAULT_RAW_URI, type="string", description="Raw data (Parquet)"),
        "work_root": Param(DEFAULT_WORK_ROOT, type="string", description="Shared directory for models and data"),
        "scenarios": Param(str(HERE / "scenarios.yaml"), type="string", description="Must-pass scenarios"),
        "min_accuracy": Param(0.9, type="number", minimum=0, maximum=1, description="Gate: holdout accuracy"),
        "C": Param(1.0, type="number", exclusiveMinimum=0, description="Inverse regularisation strength"),
    },
) as dag:
    featurize = PythonOperator(
        task_id="featurize",
        python_callable=_featurize,
        op_kwargs={"raw_uri": "{{ params.raw_uri }}", "run_dir": RUN_DIR},
    )
    train_model = PythonOperator(
        task_id="train",
        python_callable=_train,
        op_kwargs={"features": featurize.output, "run_dir": RUN_DIR, "C": "{{ params.C }}"},
    )
    evaluate = PythonOperator(
        task_id="evaluate",
        python_callable=_evaluate,
        op_kwargs={"trained": train_model.output, "work_root": "{{ params.work_root }}"},
    )
    simulate = PythonOperator(
        task_id="simulate",
        python_callable=_simulate,
        op_kwargs={"trained": train_model.output, "scenarios": "{{ params.scenarios }}"},
    )
    gate = PythonSensor(
        task_id="gate",
        python_callable=_gate,
        op_kwargs={
            "evaluation": evaluate.output,
            "scenarios": simulate.output,
            "min_accuracy": "{{ params.min_accuracy }}",
        },
    )
    promote = PythonOperator(
        task_id="promote",
        python_callable=_promote,
        op_kwargs={
            "trained": train_model.output,
            "evaluation": evaluate.output,
            "work_root": "{{ params.work_root }}",
            "run_dir": RUN_DIR,
        },
    )
    predict = PythonOperator(
        task_id="predict",
        python_callable=_predict,
        op_kwargs={"features": featurize.output, "work_root": "{{ params.work_root }}", "run_dir": RUN_DIR},
    )

    [evaluate, simulate] >> gate >> promote >> predict
