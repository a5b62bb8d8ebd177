"""pyfunc wrapper for models that are not scikit-learn estimators (imported only when logging one)."""

from __future__ import annotations

from typing import Any

from mlflow.pyfunc import PythonModel


class PredictWrapper(PythonModel):
    """Serves any object with a ``predict(frame)`` method through MLflow's pyfunc interface."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return self.model.predict(model_input)
