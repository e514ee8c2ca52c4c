"""
Test-only: the one shape of the e2e DAGs, imported by the DAG files of this folder (Airflow puts the
dags folder on ``sys.path``): the example's ``spark_pi`` task on the Livy stand-in, durable, polling
every 2 s, one retry a second later. The job's length comes from the run's conf (``duration``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG

from airflow.providers.apache.livy.operators.livy import LivyOperator

SPARK_PI = {
    "file": "local:///opt/spark/examples/jars/spark-examples.jar",
    "class_name": "org.apache.spark.examples.SparkPi",
}


def spark_conf(default_duration: int = 20) -> dict[str, str]:
    """Tags the batch with its run (and map index); tells the stand-in how long the job runs."""
    return {
        "spark.airflow.run_id": "{{ run_id }}",
        "spark.airflow.map_index": "{{ ti.map_index }}",
        "spark.standin.durationSeconds": f"{{{{ dag_run.conf.get('duration', '{default_duration}') }}}}",
    }


def task_defaults(**overrides: Any) -> dict[str, Any]:
    """The task's arguments: durable, synchronous polling, one retry; ``overrides`` win."""
    return {
        **SPARK_PI,
        "args": ["10"],
        "conf": spark_conf(),
        "polling_interval": 2,
        "durable": True,
        "deferrable": False,
        "retries": 1,
        "retry_delay": timedelta(seconds=1),
        **overrides,
    }


def spark_pi_dag(dag_id: str, operator: type[LivyOperator] = LivyOperator, **overrides: Any) -> DAG:
    """A DAG with one ``spark_pi`` task (see :func:`task_defaults`)."""
    with DAG(
        dag_id=dag_id, schedule=None, start_date=datetime(2025, 1, 1), catchup=False, tags=["test"]
    ) as dag:
        operator(task_id="spark_pi", **task_defaults(**overrides))
    return dag
