-- Run once by the postgres image on an empty data directory (docker-entrypoint-initdb.d): the MLflow
-- server's role and database beside Airflow's (POSTGRES_DB). deploy/native.py creates the same roles and
-- databases on a local server from the URLs in docker-compose.yaml.
CREATE ROLE mlflow LOGIN PASSWORD 'mlflow';
CREATE DATABASE mlflow OWNER mlflow;
