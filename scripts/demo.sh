#!/usr/bin/env bash
# `make demo`: run the example retraining DAG end to end on embedded defaults.
# State lives in .demo/: Airflow home (SQLite), MLflow store, artifact store, OpenLineage events.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEMO="$ROOT/.demo"
mkdir -p "$DEMO/airflow" "$DEMO/mlflow" "$DEMO/artifacts" "$DEMO/lineage" "$DEMO/data"

cat > "$DEMO/env.sh" <<ENV
# source .demo/env.sh to use airflow, mlflow and airflow-ml against the demo's state
export PATH="$ROOT/.venv/bin:\$PATH"
export AIRFLOW_HOME="$DEMO/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags_examples"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__OPENLINEAGE__NAMESPACE=airflow-ml-demo
export AIRFLOW__OPENLINEAGE__TRANSPORT='{"type": "file", "log_file_path": "$DEMO/lineage/events.jsonl", "append": true}'
export AIRFLOW__ML_PROVIDER__ARTIFACT_ROOT="$DEMO/artifacts"
export MLFLOW_TRACKING_URI="sqlite:///$DEMO/mlflow/mlflow.db"
export AIRFLOW__ML_PROVIDER__MLFLOW_ARTIFACT_LOCATION="$DEMO/mlflow/artifacts"
export BREAST_CANCER_RAW_URI="$DEMO/data/breast_cancer.parquet"
export GIT_PYTHON_REFRESH=quiet
ENV
# shellcheck disable=SC1091
source "$DEMO/env.sh"

if [ ! -f "$BREAST_CANCER_RAW_URI" ]; then
  (cd "$ROOT" && python -m dags_examples.breast_cancer.data "$BREAST_CANCER_RAW_URI" >/dev/null)
  echo "Raw data written to $BREAST_CANCER_RAW_URI"
fi
echo "Preparing the Airflow metadata DB ($AIRFLOW_HOME/airflow.db)..."
airflow db migrate >"$DEMO/airflow/db-migrate.log" 2>&1 || { cat "$DEMO/airflow/db-migrate.log"; exit 1; }

echo "Running breast_cancer_retrain with 'airflow dags test' (log: $DEMO/last-run.log)..."
status=0
airflow dags test breast_cancer_retrain >"$DEMO/last-run.log" 2>&1 || status=$?

airflow-ml status breast_cancer_classifier --alias champion
if [ "$status" -ne 0 ]; then
  echo "The DAG run did not succeed (exit $status); the verdict above and $DEMO/last-run.log say why."
  exit "$status"
fi

# Production: a batch in which one feature moved by half a standard deviation. The monitor scores it with
# the champion and detects the drift; its asset event queues a run of breast_cancer_retrain.
BATCH="$DEMO/data/batch-shifted.parquet"
(cd "$ROOT" && python -m dags_examples.breast_cancer.data "$BATCH" --batch-of "$BREAST_CANCER_RAW_URI" \
  --shift "mean radius=0.5" >/dev/null)
airflow dags unpause breast_cancer_retrain >/dev/null  # an asset event queues only unpaused DAGs
echo
echo "Running breast_cancer_monitor on $BATCH (log: $DEMO/monitor-run.log)..."
monitor=0
airflow dags test breast_cancer_monitor -c "{\"batch_uri\": \"$BATCH\"}" >"$DEMO/monitor-run.log" 2>&1 || monitor=$?
if [ "$monitor" -ne 0 ]; then
  echo "The monitor run did not succeed (exit $monitor): see $DEMO/monitor-run.log"
  exit "$monitor"
fi
sed -n 's/.*\(models:\/breast_cancer_classifier\/[0-9]*: .*\)/\1/p' "$DEMO/monitor-run.log" | sed 's/ *\[airflow.*//' | head -1
python "$ROOT/scripts/create_asset_triggered_runs.py" breast_cancer_retrain \
  || { echo "No retraining run was queued by the drift event: see $DEMO/monitor-run.log"; exit 1; }

cat <<MSG

Where to look:
  task logs        $DEMO/last-run.log
  lineage events   $DEMO/lineage/events.jsonl
  lineage graph    source .demo/env.sh && airflow-ml lineage models:/breast_cancer_classifier@champion
  predictions      $DEMO/artifacts/predictions/
  MLflow UI        source .demo/env.sh && mlflow ui --backend-store-uri "\$MLFLOW_TRACKING_URI"
  drift report     $DEMO/monitor-run.log (the drift step's table)
  Airflow          source .demo/env.sh && airflow dags list-runs breast_cancer_retrain
MSG
