"""Baseline for benchmarks/pipeline.py: the example's ML work as plain ``@task`` functions.

Same task ids and edges as ``dags_examples/breast_cancer_retrain.py`` (featurize -> train -> (evaluate,
simulate) -> gate -> promote -> predict; gate also reads train, promote also reads train, predict also
reads featurize: pipeline.py checks the shape), the same user functions from ``breast_cancer.pipeline``
and the same ML:

- featurize: read the raw Parquet, ``transform`` it, write the features as Parquet;
- train: the split TrainOperator makes (``sample(frac=0.2, random_state=42)`` is the holdout), ``train``
  with ``C`` and ``seed=42``, the model saved with joblib, the holdout written as Parquet;
- evaluate: accuracy, precision, recall, f1, roc_auc, log_loss (scikit-learn) on the holdout, for the
  candidate and, when there is one, the champion;
- simulate: the example's must-pass scenarios file, read with PyYAML and checked with plain code;
- gate: raise if accuracy < ``min_accuracy``, roc_auc < 0.95, accuracy < champion's - 0.01 (the example's
  ``min_absolute_change``) or a scenario failed;
- promote: the model file copied over ``champion.pkl`` atomically (``os.replace``);
- predict: the champion scores this run's features; the predictions (with the model's version) are
  written as Parquet.

No MLflow, data expectations, fingerprints, step records or lineage datasets: ours / plain is their price.
Files go under ``params.work_root`` (default ``$AIRFLOW_HOME/plain_ml``). Needs ``breast_cancer`` importable
(pipeline.py puts this file in a DAG folder beside a link to ``dags_examples/breast_cancer``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, CronTriggerTimetable, Param, task
from breast_cancer import pipeline
from breast_cancer.pipeline import TARGET

HERE = Path(pipeline.__file__).parent  # the example's scenarios, wherever this file is linked from
DEFAULT_RAW_URI = os.environ.get(
    "BREAST_CANCER_RAW_URI",
    str(Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "data" / "breast_cancer.parquet"),
)
DEFAULT_WORK_ROOT = str(Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "plain_ml")
HOLDOUT_FRACTION, SEED = 0.2, 42  # TrainOperator's defaults
ROC_AUC_MIN, ACCURACY_MAX_DROP = 0.95, 0.01  # the example's gate policy


def _run_dir(work_root: str, run_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    path = Path(work_root) / "runs" / safe
    path.mkdir(parents=True, exist_ok=True)
    return path


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


with DAG(
    dag_id="breast_cancer_retrain_plain_tasks",
    schedule=CronTriggerTimetable("0 3 * * 1", timezone="UTC"),  # Mondays 03:00, as the example
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["ml", "benchmark"],
    params={
        "raw_uri": Param(DEFAULT_RAW_URI, type="string", description="Raw data (Parquet)"),
        "work_root": Param(DEFAULT_WORK_ROOT, type="string", description="Models, features and predictions"),
        "scenarios": Param(str(HERE / "scenarios.yaml"), type="string", description="Must-pass scenarios"),
        "min_accuracy": Param(0.9, type="number", minimum=0, maximum=1, description="Gate: holdout accuracy"),
        "C": Param(1.0, type="number", exclusiveMinimum=0, description="Inverse regularisation strength"),
    },
) as dag:

    @task(task_id="featurize")
    def featurize(params: dict[str, Any], run_id: str) -> str:
        import pandas as pd

        features = pipeline.transform(pd.read_parquet(params["raw_uri"]))
        out = _run_dir(params["work_root"], run_id) / "features.parquet"
        features.to_parquet(out, index=False)
        return str(out)

    @task(task_id="train")
    def train(features: str, params: dict[str, Any], run_id: str) -> dict[str, Any]:
        import joblib
        import pandas as pd

        frame = pd.read_parquet(features)
        holdout = frame.sample(frac=HOLDOUT_FRACTION, random_state=SEED)
        model = pipeline.train(frame.drop(index=holdout.index), C=float(params["C"]), seed=SEED)
        out = _run_dir(params["work_root"], run_id)
        joblib.dump(model, out / "model.pkl")
        holdout.reset_index(drop=True).to_parquet(out / "holdout.parquet", index=False)
        return {"model": str(out / "model.pkl"), "holdout": str(out / "holdout.parquet"), "version": run_id}

    @task(task_id="evaluate")
    def evaluate(holdout: str, trained: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        import pandas as pd

        frame = pd.read_parquet(holdout)
        champion = Path(params["work_root"]) / "champion.pkl"
        return {
            "metrics": _score(trained["model"], frame),
            "champion": _score(str(champion), frame) if champion.exists() else None,
        }

    @task(task_id="simulate")
    def simulate(trained: dict[str, Any], params: dict[str, Any]) -> dict[str, bool]:
        import joblib
        import pandas as pd
        import yaml

        model = joblib.load(trained["model"])
        results = {}
        for scenario in yaml.safe_load(Path(params["scenarios"]).read_text())["scenarios"]:
            predicted = [int(v) for v in model.predict(pd.DataFrame(scenario["rows"]))]
            expect = scenario["expect"]
            if "equals" in expect:
                passed = all(p == expect["equals"] for p in predicted)
            elif "one_of" in expect:
                passed = all(p in expect["one_of"] for p in predicted)
            elif "within" in expect:
                low, high = expect["within"].get("min"), expect["within"].get("max")
                passed = all((low is None or p >= low) and (high is None or p <= high) for p in predicted)
            else:
                right = sum(p == label for p, label in zip(predicted, scenario["labels"], strict=True))
                passed = right / len(predicted) >= expect["min_accuracy"]
            results[scenario["name"]] = passed
        return results

    @task(task_id="gate")
    def gate(trained: dict[str, Any], evaluation: dict[str, Any], scenarios: dict[str, bool], params: dict) -> str:
        from airflow.sdk.exceptions import AirflowFailException

        metrics, champion = evaluation["metrics"], evaluation["champion"]
        failed = [f"scenario {name}" for name, passed in scenarios.items() if not passed]
        if metrics["accuracy"] < float(params["min_accuracy"]):
            failed.append(f"accuracy {metrics['accuracy']:.4f} < {params['min_accuracy']}")
        if metrics["roc_auc"] < ROC_AUC_MIN:
            failed.append(f"roc_auc {metrics['roc_auc']:.4f} < {ROC_AUC_MIN}")
        if champion is not None and metrics["accuracy"] < champion["accuracy"] - ACCURACY_MAX_DROP:
            failed.append(f"accuracy {metrics['accuracy']:.4f} < champion's {champion['accuracy']:.4f} - 0.01")
        if failed:
            raise AirflowFailException(f"gate failed for {trained['model']}: {'; '.join(failed)}")
        return "passed"

    @task(task_id="promote")
    def promote(trained: dict[str, Any], verdict: str, params: dict[str, Any], run_id: str) -> str:
        root = Path(params["work_root"])
        staged = _run_dir(params["work_root"], run_id) / "champion.staged"
        shutil.copyfile(trained["model"], staged)
        (staged.parent / "champion.version").write_text(trained["version"])
        os.replace(staged, root / "champion.pkl")  # atomic: a reader sees the old or the new champion
        os.replace(staged.parent / "champion.version", root / "champion.version")
        return str(root / "champion.pkl")

    @task(task_id="predict")
    def predict(features: str, champion: str, params: dict[str, Any], run_id: str) -> str:
        import joblib
        import pandas as pd

        frame = pd.read_parquet(features)
        model = joblib.load(champion)
        x = frame.drop(columns=[TARGET])
        predictions = pd.DataFrame(
            {
                "row_index": range(len(frame)),
                "prediction": model.predict(x),
                "probability": model.predict_proba(x)[:, 1],
                "model_version": (Path(champion).parent / "champion.version").read_text(),
            }
        )
        out = _run_dir(params["work_root"], run_id) / "predictions.parquet"
        predictions.to_parquet(out, index=False)
        return str(out)

    features_path = featurize()
    trained = train(features_path)
    evaluation = evaluate(trained["holdout"], trained)
    scenario_results = simulate(trained)
    verdict = gate(trained, evaluation, scenario_results)
    predict(features_path, promote(trained, verdict))
