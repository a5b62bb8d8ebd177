"""The provider's Airflow UI plugin: the Models page and its JSON API (registered through ``airflow.plugins``)."""
