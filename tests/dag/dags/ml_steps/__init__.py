"""Helper package of the records test DAGs (a module in the DAGs folder, as users write them)."""
