"""
The promotion gate: a policy, the evidence gathered for one model version, and a verdict.

Pure data and pure functions, no I/O: the sensor gathers evidence, ``decide`` judges it, and the
verdict records every check with its reason. Importing this package costs nothing beyond stdlib.
"""

from airflow_ml_provider.gate.decide import CLOCK_SKEW_TOLERANCE, decide
from airflow_ml_provider.gate.evidence import (
    ApprovalEvidence,
    EvaluationEvidence,
    Evidence,
    ExpectationEvidence,
    ScenarioEvidence,
    Subject,
)
from airflow_ml_provider.gate.policy import FirstVersionRule, GatePolicy, MetricThreshold
from airflow_ml_provider.gate.verdict import Check, Verdict

__all__ = [
    "CLOCK_SKEW_TOLERANCE",
    "ApprovalEvidence",
    "Check",
    "EvaluationEvidence",
    "Evidence",
    "ExpectationEvidence",
    "FirstVersionRule",
    "GatePolicy",
    "MetricThreshold",
    "ScenarioEvidence",
    "Subject",
    "Verdict",
    "decide",
]
