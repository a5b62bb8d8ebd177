"""Great Expectations for ML pipelines: load suites safely, validate frames, report results as JSON.

Importing this package is cheap (stdlib only); great_expectations and pandas load on first use.
"""

from airflow_ml_provider.expectations.validation import (
    DataExpectationError,
    ExpectationReport,
    ExpectationResult,
    ExpectationSuiteError,
    check_frame,
    load_suite,
    validate_frame,
)

__all__ = [
    "DataExpectationError",
    "ExpectationReport",
    "ExpectationResult",
    "ExpectationSuiteError",
    "check_frame",
    "load_suite",
    "validate_frame",
]
