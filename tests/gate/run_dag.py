"""Run one DAG of tests/gate/dags with ``dag.test()`` (in a subprocess: ``python -m tests.gate.run_dag``).

Prints ``RESULT {"run_id", "state", "tasks": {task_id: state}}`` as its last line.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag_id, conf = sys.argv[1], json.loads(sys.argv[2])
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    run = dag.test(run_conf=conf)
    tasks = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    print("RESULT " + json.dumps({"run_id": run.run_id, "state": str(run.state), "tasks": tasks}), flush=True)


if __name__ == "__main__":
    main()
