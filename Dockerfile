# The image every service of docker-compose.yaml runs: Airflow's official image with this provider and
# its deployment extras (PostgreSQL drivers, the Celery executor with its working celery pin, the example's
# scikit-learn). `pip install apache-airflow==<version>` beside it keeps pip from moving Airflow.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
ARG AIRFLOW_VERSION
COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow-ml-provider/
COPY --chown=airflow:0 airflow_ml_provider /opt/airflow-ml-provider/airflow_ml_provider
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "/opt/airflow-ml-provider[postgres,celery,examples]"
# The mount point of the shared volume, owned by the airflow user so a new volume is writable by it.
RUN mkdir -p /opt/airflow/shared
