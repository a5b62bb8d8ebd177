"""Must-pass scenarios: named inputs a candidate model has to answer correctly before promotion.

:mod:`~airflow_ml_provider.scenarios.spec` parses and validates a YAML/JSON scenario file
(``load_scenarios``); :mod:`~airflow_ml_provider.scenarios.runner` runs it against a ``predict``
callable and returns a JSON-safe report the gate can check (``run_scenarios``). Both are cheap to
import (standard library only) because DAG files import our operators at parse time.
"""
