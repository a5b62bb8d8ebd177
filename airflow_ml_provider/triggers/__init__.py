"""Triggers: the deferrable side of the provider's sensors (run in Airflow's triggerer)."""
