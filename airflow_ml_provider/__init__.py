"""Apache Airflow 3 provider for production ML pipelines.

Importing this package (or any operator, sensor or hook module) must stay cheap: DAG files import
it on every parse, so mlflow, great_expectations, pandas, pyarrow, sklearn and the OpenLineage
client are only imported inside ``execute()`` and the lineage methods.
"""

__version__ = "0.1.0"
