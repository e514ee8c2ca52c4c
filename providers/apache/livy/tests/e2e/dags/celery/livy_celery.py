"""
Test-only DAGs of the distributed (CeleryExecutor) e2e scenarios, one per scenario.

Each Livy task is routed with ``executor_queue`` to the Celery queue of its scenario, which two workers
of its own consume: killing the worker that runs try 1 touches no other scenario, and the retry runs
on the other worker. ``livy_celery_routed`` sets both queues (the task runs on the only worker of
``spark_workers``; its batch goes to the YARN queue ``etl``). ``livy_celery_legacy_queue`` is a
4.6.4-style DAG whose ``default_args`` name a ``queue``: as in 4.6.4 it routes the task and is also the
YARN queue; ``livy_celery_routed_by_default_args`` is the same DAG with ``yarn_queue="etl"``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG
from livy_e2e_dag import spark_conf, spark_pi_dag, task_defaults

from airflow.providers.apache.livy.operators.livy import LivyOperator

MAPPED_TASKS = 20

livy_celery_sigkill = spark_pi_dag("livy_celery_sigkill", executor_queue="sigkill", conf=spark_conf(30))
livy_celery_not_durable = spark_pi_dag(
    "livy_celery_not_durable", executor_queue="not_durable", durable=False, conf=spark_conf(30)
)
livy_celery_graceful = spark_pi_dag("livy_celery_graceful", executor_queue="graceful", conf=spark_conf(40))
livy_celery_cold = spark_pi_dag("livy_celery_cold", executor_queue="cold", conf=spark_conf(40))
livy_celery_mark_failed = spark_pi_dag("livy_celery_mark_failed", conf=spark_conf(60))
livy_celery_deferrable = spark_pi_dag("livy_celery_deferrable", deferrable=True, conf=spark_conf(30))
livy_celery_routed = spark_pi_dag(
    "livy_celery_routed", executor_queue="spark_workers", yarn_queue="etl", conf=spark_conf(3)
)


def routed_by_default_args(dag_id: str, **task: Any) -> DAG:
    """Celery's usual routing: ``default_args={"queue": "spark_workers"}`` for every task of the DAG."""
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        tags=["test"],
        default_args={"queue": "spark_workers"},
    ) as dag:
        LivyOperator(task_id="spark_pi", **task_defaults(conf=spark_conf(3), **task))
    return dag


# As in 4.6.4: the default_args queue routes the task and is also the YARN queue (with a warning).
livy_celery_legacy_queue = routed_by_default_args("livy_celery_legacy_queue")
# The same DAG saying what it means: the YARN queue apart; the default_args queue only routes.
livy_celery_routed_by_default_args = routed_by_default_args(
    "livy_celery_routed_by_default_args", yarn_queue="etl"
)

with DAG(
    dag_id="livy_celery_mapped",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["test"],
    max_active_tasks=MAPPED_TASKS,
):
    mapped = task_defaults(executor_queue="mapped", conf=spark_conf(45))
    del mapped["args"]  # expanded: one task instance per argument list
    LivyOperator.partial(task_id="spark_pi", **mapped).expand(args=[[str(i)] for i in range(MAPPED_TASKS)])
