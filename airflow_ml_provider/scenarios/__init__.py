"""Must-pass scenarios: named inputs a candidate model has to answer correctly before promotion.

``load_scenarios`` parses and validates a YAML/JSON scenario file; ``run_scenarios`` runs it
against a ``predict`` callable and returns a JSON-safe report the gate can check. Importing this
package is cheap (standard library only) because DAG files import our operators at parse time.
"""

from airflow_ml_provider.scenarios.runner import (
    MAX_RECORDED_PREDICTIONS,
    ScenarioResult,
    ScenarioRunReport,
    run_scenarios,
)
from airflow_ml_provider.scenarios.spec import (
    EXPECTATION_KINDS,
    Equals,
    Expectation,
    MinAccuracy,
    OneOf,
    Scenario,
    ScenarioFileError,
    ScenarioSuite,
    Within,
    load_scenarios,
    parse_scenarios,
)

__all__ = [
    "EXPECTATION_KINDS",
    "MAX_RECORDED_PREDICTIONS",
    "Equals",
    "Expectation",
    "MinAccuracy",
    "OneOf",
    "Scenario",
    "ScenarioFileError",
    "ScenarioResult",
    "ScenarioRunReport",
    "ScenarioSuite",
    "Within",
    "load_scenarios",
    "parse_scenarios",
    "run_scenarios",
]
