#!/usr/bin/env bash
# The airflow-init service of docker-compose.yaml (deploy/native.py runs it too): everything the
# deployment needs before the Airflow components start. Idempotent: it runs on every `up`.
set -euo pipefail
: "${AIRFLOW_ML_MLFLOW_TRACKING_URI:?set AIRFLOW_ML_MLFLOW_TRACKING_URI to the MLflow server URL}"
: "${_AIRFLOW_WWW_USER_USERNAME:=admin}"
: "${_AIRFLOW_WWW_USER_PASSWORD:=admin}"
conn_id="${AIRFLOW__ML_PROVIDER__MLFLOW_CONN_ID:-mlflow_default}"

mkdir -p "$AIRFLOW__ML_PROVIDER__ARTIFACT_ROOT" "$(dirname "$BREAST_CANCER_RAW_URI")" \
  "$(dirname "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")"

echo "airflow-init: migrating the metadata database"
airflow db migrate >/dev/null

echo "airflow-init: password of the Airflow user '$_AIRFLOW_WWW_USER_USERNAME'"
python - <<'PY'
import json, os
path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
tmp = path + ".tmp"
with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
    json.dump({os.environ["_AIRFLOW_WWW_USER_USERNAME"]: os.environ["_AIRFLOW_WWW_USER_PASSWORD"]}, out)
os.replace(tmp, path)
PY

echo "airflow-init: connection '$conn_id' -> $AIRFLOW_ML_MLFLOW_TRACKING_URI"
airflow connections delete "$conn_id" >/dev/null 2>&1 || true
airflow connections add "$conn_id" --conn-type mlflow \
  --conn-extra "{\"tracking_uri\": \"$AIRFLOW_ML_MLFLOW_TRACKING_URI\"}" >/dev/null

if [ ! -f "$BREAST_CANCER_RAW_URI" ]; then
  echo "airflow-init: writing the example's raw data to $BREAST_CANCER_RAW_URI"
  (cd "$AIRFLOW__CORE__DAGS_FOLDER" && python -m breast_cancer.data "$BREAST_CANCER_RAW_URI" >/dev/null)
fi
echo "airflow-init: done"
