"""
Verdict: the gate's decision with every check and its reason, recordable and readable.

A verdict is self-consistent by construction: ``passed`` must equal "at least one check and no
failed check", so a hand-edited or forged record claiming a pass over failed checks is refused.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import zip_longest
from typing import Any

from airflow_ml_provider.gate.evidence import Subject
from airflow_ml_provider.parsing import (
    parse_time,
    require_bool,
    require_keys,
    require_text,
    set_field,
    time_to_json,
    to_utc,
)

__all__ = ["Check", "Verdict"]

#: ``to_table`` fits in this many columns (long reasons and names wrap), so a log viewer shows it whole.
TABLE_WIDTH = 120
#: The check-name column is at most this wide; a longer name continues on the next lines.
_NAME_WIDTH = 40


def _one_line(text: str) -> str:
    """Reasons may quote user text (comments, failure messages); keep each on one log line."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Check:
    """One rule applied to one piece of evidence, e.g. ``metric:accuracy:threshold``."""

    name: str
    passed: bool
    reason: str

    def __post_init__(self) -> None:
        require_text(self.name, "Check.name")
        require_bool(self.passed, "Check.passed")
        if not isinstance(self.reason, str):
            raise ValueError(f"Check.reason must be a string, got {self.reason!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        data = require_keys(data, "Check", ("name", "passed", "reason"))
        return cls(data["name"], data["passed"], data["reason"])


@dataclass(frozen=True)
class Verdict:
    """The decision on ``subject`` under ``policy`` (its ``to_dict()``), made at ``decided_at``."""

    subject: Subject
    passed: bool
    checks: tuple[Check, ...]
    decided_at: datetime
    policy: dict[str, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.subject, Subject):
            raise ValueError(f"Verdict.subject must be a Subject, got {self.subject!r}")
        require_bool(self.passed, "Verdict.passed")
        if isinstance(self.checks, (str, bytes, Mapping)) or not isinstance(self.checks, Iterable):
            raise ValueError(f"Verdict.checks must be a list of Check, got {self.checks!r}")
        checks = tuple(self.checks)
        for item in checks:
            if not isinstance(item, Check):
                raise ValueError(f"Verdict.checks must hold Check objects, got {item!r}")
        set_field(self, "checks", checks)
        set_field(self, "decided_at", to_utc(self.decided_at, "Verdict.decided_at"))
        if not isinstance(self.policy, Mapping):
            raise ValueError(f"Verdict.policy must be a mapping, got {self.policy!r}")
        try:
            # A deep, JSON-safe copy: the recorded policy must not change under the verdict's feet.
            set_field(self, "policy", json.loads(json.dumps(self.policy, allow_nan=False)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Verdict.policy must be JSON-safe: {exc}") from exc
        consistent = bool(checks) and all(item.passed for item in checks)
        if self.passed != consistent:
            raise ValueError(
                f"inconsistent verdict: passed={self.passed} but {len(self.failures)} of {len(checks)} "
                "checks failed" + ("" if checks else " (a verdict with no checks cannot pass)")
            )

    @property
    def failures(self) -> tuple[Check, ...]:
        """The failed checks, in decision order."""
        return tuple(item for item in self.checks if not item.passed)

    def summary(self) -> str:
        """One line for an exception message or a log header."""
        head = f"gate {'PASSED' if self.passed else 'FAILED'} for {self.subject.uri}"
        total = len(self.checks)
        if total == 0:
            return f"{head}: no checks were made"
        failures = self.failures
        if not failures:
            return f"{head}: all {total} checks passed"
        listed = "; ".join(f"{item.name} ({_one_line(item.reason)})" for item in failures)
        return f"{head}: {len(failures)} of {total} checks failed: {listed}"

    def to_table(self) -> str:
        """A fixed-width table (check | result | reason) for the Airflow task log."""
        subject = self.subject
        artifact = f", artifact {subject.model_fingerprint}" if subject.model_fingerprint else ""
        head = (
            f"gate {'PASSED' if self.passed else 'FAILED'} for {subject.uri}{artifact}, "
            f"decided {time_to_json(self.decided_at)}"
        )
        lines = textwrap.wrap(head, TABLE_WIDTH, subsequent_indent="    ")
        name_width = min(_NAME_WIDTH, max([len("CHECK"), *(len(item.name) for item in self.checks)]))
        reason_width = TABLE_WIDTH - (name_width + 2 + 6 + 2)
        lines.append(f"{'CHECK'.ljust(name_width)}  RESULT  REASON")
        lines.append(f"{'-' * name_width}  {'-' * 6}  {'-' * reason_width}")
        for item in self.checks:
            names = [item.name[i : i + name_width] for i in range(0, len(item.name), name_width)] or [""]
            reasons = textwrap.wrap(_one_line(item.reason), reason_width, break_on_hyphens=False) or [""]
            results = ["PASS" if item.passed else "FAIL"]
            for name, result, reason in zip_longest(names, results, reasons, fillvalue=""):
                lines.append(f"{name.ljust(name_width)}  {result.ljust(6)}  {reason}".rstrip())
        failed = len(self.failures)
        if not self.checks:
            lines.append("(no checks were made)")
        elif failed:
            lines.append(f"{failed} of {len(self.checks)} checks failed")
        else:
            lines.append(f"all {len(self.checks)} checks passed")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject.to_dict(),
            "passed": self.passed,
            "checks": [item.to_dict() for item in self.checks],
            "decided_at": time_to_json(self.decided_at),
            "policy": json.loads(json.dumps(self.policy)),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        data = require_keys(data, "Verdict", ("subject", "passed", "checks", "decided_at", "policy"))
        checks = data["checks"]
        if isinstance(checks, (str, bytes, Mapping)) or not isinstance(checks, Iterable):
            raise ValueError(f"Verdict.checks must be a list, got {checks!r}")
        return cls(
            subject=Subject.from_dict(data["subject"]),
            passed=data["passed"],
            checks=tuple(Check.from_dict(item) for item in checks),
            decided_at=parse_time(data["decided_at"], "Verdict.decided_at"),
            policy=data["policy"],
        )
