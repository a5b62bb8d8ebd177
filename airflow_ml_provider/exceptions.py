"""The provider's exception base.

Every error the provider raises derives from :class:`AirflowMLError`, so a caller can catch all of
them in one ``except``; each also keeps its second base (``ValueError``, ``RuntimeError``...), so
code that caught those keeps working. The classes live with the code that raises them.

Standard library only: the pure core (gate, promotion rule, scenario and expectation parsing)
imports it.
"""

from __future__ import annotations


class AirflowMLError(Exception):
    """Base of every exception of airflow-ml-provider."""
