"""
Test-only, Airflow 3.4+ (task loops; a clear that discards the task state store by default): the DAGs
of ``e2e/test_airflow34.py``. Loaded only by a 3.4 deployment (``e2e/conftest.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, task_group
from livy_e2e_dag import spark_conf, spark_pi_dag, task_defaults

from airflow.providers.apache.livy.operators.livy import LivyOperator

ITERATION_CONF_KEY = "spark.airflow.loop_index"
LOOP_ITERATIONS = 3
MAPPED_LOOP_ITERATIONS = 2
MAPPED_ARGS = [["1"], ["2"]]


def loop_conf() -> dict[str, str]:
    """The e2e Spark conf, plus the loop iteration the batch was submitted in."""
    return {**spark_conf(default_duration=5), ITERATION_CONF_KEY: "{{ loop.index }}"}


with DAG(dag_id="livy_loop", schedule=None, start_date=datetime(2025, 1, 1), catchup=False, tags=["test"]):

    @task_group
    def body() -> None:
        LivyOperator(task_id="spark_pi", **task_defaults(conf=loop_conf()))

    body.loop(max_iterations=LOOP_ITERATIONS)


with DAG(
    dag_id="livy_loop_mapped", schedule=None, start_date=datetime(2025, 1, 1), catchup=False, tags=["test"]
):

    @task_group
    def mapped_body() -> None:
        defaults = task_defaults(conf=loop_conf())
        del defaults["args"]
        LivyOperator.partial(task_id="spark_pi", **defaults).expand(args=MAPPED_ARGS)

    mapped_body.loop(max_iterations=MAPPED_LOOP_ITERATIONS)


# A retry an hour later: only the harness's clear runs the task again after its worker died.
NO_RETRY_BEFORE_THE_CLEAR = timedelta(hours=1)
clear_dead_worker = spark_pi_dag("livy_clear_dead_worker", retry_delay=NO_RETRY_BEFORE_THE_CLEAR)
clear_dead_worker_keep = spark_pi_dag(
    "livy_clear_dead_worker_keep", retry_delay=NO_RETRY_BEFORE_THE_CLEAR, on_kill_action="keep_batch"
)
