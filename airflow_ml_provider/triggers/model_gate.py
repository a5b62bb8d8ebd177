"""ModelGateTrigger: waits, in the triggerer, until the evidence for one model version is complete.

The deferrable mode of :class:`~airflow_ml_provider.sensors.model_gate.ModelGateSensor`. The
trigger only watches: every ``poke_interval`` it gathers the evidence (blocking MLflow calls run in
a worker thread, so the triggerer's event loop never blocks) and fires as soon as nothing is left to
wait for. The decision is never made here: the sensor's ``execute_complete`` gathers again on a
worker, decides and records the verdict exactly as a poke does. It fires with

- ``{"status": "ready"}`` when the evidence is complete, or present evidence already fails;
- ``{"status": "timeout"}`` when ``deadline`` passes first (the gate then fails closed);
- ``{"status": "error"}`` when MLflow cannot be read (the gate decides on that, failing closed).

Credentials: the trigger talks to ``tracking_uri`` with the triggerer's environment
(``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``/``_TOKEN``), never with secrets in its kwargs. Each trigger
has its own :class:`~airflow_ml_provider.hooks.mlflow.MlflowHook` (URIs, HTTP bounds) and changes no
process-wide MLflow state, so one triggerer serves gates of several connections.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_ml_provider.parsing import parse_time, utc_now

if TYPE_CHECKING:
    from airflow_ml_provider.hooks.mlflow import MlflowHook

CLASSPATH = "airflow_ml_provider.triggers.model_gate.ModelGateTrigger"


class ModelGateTrigger(BaseTrigger):
    """
    Fire when the gate's evidence for ``models:/<model_name>/<model_version>`` is complete.

    :param model_name: registered model name.
    :param model_version: version under decision.
    :param tracking_uri: MLflow tracking URI (also the registry unless ``registry_uri`` is set).
    :param policy: the gate policy as a dict (``GatePolicy.to_dict()``).
    :param scenario_names: scenarios of the scenario file, all required.
    :param poke_interval: seconds between checks.
    :param deadline: ISO-8601 UTC time after which the trigger fires ``timeout`` (None: never). An
        absolute time, so a trigger restarted by another triggerer does not wait afresh.
    :param wait_for_evidence: False fires after the first check, whatever it found.
    :param http_request_timeout: the connection's HTTP bounds (see ``MlflowHook``), so that a tracking
        server that is down costs a check seconds, not MLflow's minutes of retries.
    """

    def __init__(
        self,
        *,
        model_name: str,
        model_version: str,
        tracking_uri: str,
        policy: Mapping[str, Any],
        registry_uri: str | None = None,
        scenario_names: Sequence[str] = (),
        poke_interval: float = 60.0,
        deadline: str | None = None,
        wait_for_evidence: bool = True,
        http_request_timeout: int | None = None,
        http_request_max_retries: int | None = None,
        http_request_backoff_factor: int | None = None,
    ) -> None:
        super().__init__()
        self.model_name = str(model_name)
        self.model_version = str(model_version)
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri
        self.policy = dict(policy)
        self.scenario_names = [str(name) for name in scenario_names]
        self.poke_interval = float(poke_interval)
        self.deadline = deadline
        self.wait_for_evidence = bool(wait_for_evidence)
        self.http_request_timeout = http_request_timeout
        self.http_request_max_retries = http_request_max_retries
        self.http_request_backoff_factor = http_request_backoff_factor
        self._hook: MlflowHook | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            CLASSPATH,
            {
                "model_name": self.model_name,
                "model_version": self.model_version,
                "tracking_uri": self.tracking_uri,
                "registry_uri": self.registry_uri,
                "policy": self.policy,
                "scenario_names": list(self.scenario_names),
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
                "wait_for_evidence": self.wait_for_evidence,
                "http_request_timeout": self.http_request_timeout,
                "http_request_max_retries": self.http_request_max_retries,
                "http_request_backoff_factor": self.http_request_backoff_factor,
            },
        )

    @property
    def uri(self) -> str:
        return f"models:/{self.model_name}/{self.model_version}"

    def _deadline(self) -> datetime | None:
        if not self.deadline:
            return None
        return parse_time(self.deadline, "ModelGateTrigger deadline")  # the sensor writes it with its offset

    def check(self) -> tuple[str, ...]:
        """Blocking: the evidence steps still worth waiting for (empty: decide now)."""
        from airflow_ml_provider.gate.gather import gather, waiting_for, with_scenarios
        from airflow_ml_provider.model.reference import ModelRef

        if self._hook is None:
            from airflow_ml_provider.hooks.mlflow import MlflowHook, MlflowSettings

            bounds: dict[str, Any] = {
                key: value
                for key, value in (
                    ("http_request_timeout", self.http_request_timeout),
                    ("http_request_max_retries", self.http_request_max_retries),
                    ("http_request_backoff_factor", self.http_request_backoff_factor),
                )
                if value is not None
            }
            settings = dataclasses.replace(MlflowSettings(self.tracking_uri, self.registry_uri, None), **bounds)
            # One hook per trigger: its own URIs and HTTP bounds, and nothing process-wide changed, so
            # the gates of many connections share one triggerer (see hooks._client for the bounds' limit).
            self._hook = MlflowHook.for_settings(settings, f"gate trigger of {self.uri}")
        policy = with_scenarios(self.policy, self.scenario_names)
        # Completeness only: the artifact is verified and the champion checked by the decision on the worker.
        gathered = gather(self._hook, ModelRef(self.model_name, self.model_version), verify_artifact=False)
        return waiting_for(policy, gathered, utc_now())

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = self._deadline()
        checks = 0
        while True:
            checks += 1
            try:
                missing = await asyncio.to_thread(self.check)
            except Exception as e:  # MLflow down, version gone: the worker decides on it, failing closed
                self.log.warning("Cannot gather evidence for %s: %s", self.uri, e)
                yield TriggerEvent({"status": "error", "checks": checks, "message": f"{type(e).__name__}: {e}"})
                return
            if not missing or not self.wait_for_evidence:
                self.log.info("Evidence for %s is complete after %d check(s)", self.uri, checks)
                yield TriggerEvent({"status": "ready", "checks": checks, "missing": list(missing)})
                return
            now = utc_now()
            if deadline is not None and now >= deadline:
                yield TriggerEvent(
                    {
                        "status": "timeout",
                        "checks": checks,
                        "missing": list(missing),
                        "message": (
                            f"timed out at {deadline.isoformat()} after {checks} check(s) waiting for "
                            f"{', '.join(missing)} evidence of {self.uri}"
                        ),
                    }
                )
                return
            self.log.info("Waiting for %s evidence of %s", ", ".join(missing), self.uri)
            delay = self.poke_interval
            if deadline is not None:
                delay = max(0.0, min(delay, (deadline - now).total_seconds()))
            await asyncio.sleep(delay)
