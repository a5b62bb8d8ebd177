"""Create the DAG runs that queued asset events call for, as one scheduler loop would (used by `make demo`).

`airflow dags test` runs no scheduler, so an asset event it records only *queues* the DAGs scheduled
on that asset (a row per DAG and asset in the metadata DB). This runs the scheduler's own step that
turns those rows into asset-triggered DAG runs, without executing them, then prints what is queued.
Usage: python scripts/create_asset_triggered_runs.py DAG_ID
"""

from __future__ import annotations

import sys


def main(dag_id: str) -> int:
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.sqlalchemy import prohibit_commit

    runner = SchedulerJobRunner(job=Job(), num_runs=1)
    with create_session() as session, prohibit_commit(session) as guard:
        runner._create_dagruns_for_dags(guard, session)  # the scheduler loop's run creation
    with create_session() as session:
        runs = session.query(DagRun).filter_by(dag_id=dag_id, run_type="asset_triggered").all()
        for run in runs:
            events = ", ".join(
                f"{e.asset.name} (from {e.source_dag_id}.{e.source_task_id})" for e in run.consumed_asset_events
            )
            print(f"{dag_id}: run {run.run_id} is {run.state}, triggered by {events}")
    return 0 if runs else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
