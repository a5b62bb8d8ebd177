"""Keep MLflow's output readable in an Airflow task log.

Airflow 3's task supervisor logs everything a task writes to stderr at ERROR level, so a
successful task showed red ERROR lines: MLflow gives its loggers a handler of its own on stderr,
prints its registry messages ("Successfully registered model ...", "Created version ...") straight
to that stream (``eprint``), and draws artifact progress bars there too. In a task we turn the bars
off, hand MLflow's loggers to the task's logging (the root logger, which Airflow routes into the task
log with each record's own level) and turn its printed messages into INFO records of ``mlflow``.
"""

from __future__ import annotations

import io
import logging
import os
from typing import Any

#: MLflow reads this before every artifact transfer.
PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
#: The loggers MLflow gives a stderr handler of its own when it is imported (mlflow.utils.logging_utils).
MLFLOW_LOGGERS = ("mlflow", "alembic", "huey", "sqlalchemy.engine")


def route_mlflow_output_to_task_log() -> None:
    """Turn MLflow's progress bars off and send its log records through the task's logger.

    Idempotent and cheap; call it in a task process before the first MLflow call. Levels stay as
    MLflow set them (INFO for ``mlflow``, WARNING for the database loggers), so nothing new gets
    noisy; only where the records go changes. A user who set the progress-bar variable keeps it.
    """
    os.environ.setdefault(PROGRESS_BAR_ENV, "false")
    from mlflow.utils import logging_utils

    if isinstance(logging_utils.MLFLOW_LOGGING_STREAM, _LinesToLogger):
        return
    mlflow_stream = logging_utils.MLFLOW_LOGGING_STREAM
    for name in MLFLOW_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if getattr(h, "stream", None) is not mlflow_stream]
        logger.propagate = True
    # ``eprint`` looks the stream up in its module on every call.
    logging_utils.MLFLOW_LOGGING_STREAM = _LinesToLogger(  # type: ignore[assignment]  # same write/flush/enabled
        logging.getLogger("mlflow"), mlflow_stream
    )


class _LinesToLogger(io.TextIOBase):
    """A text stream that logs each complete line it is given as one INFO record."""

    def __init__(self, logger: logging.Logger, replaced: Any) -> None:
        self._logger = logger
        self._pending = ""
        #: MLflow's ``disable_logging()`` / ``enable_logging()`` flip this on whatever stream is installed.
        self.enabled = bool(getattr(replaced, "enabled", True))

    def write(self, text: str) -> int:
        if self.enabled:
            *lines, self._pending = (self._pending + text).split("\n")
            for line in lines:
                if line.strip():
                    self._logger.info(line.rstrip())
        return len(text)

    def flush(self) -> None:
        if self._pending.strip() and self.enabled:
            self._logger.info(self._pending.rstrip())
        self._pending = ""
