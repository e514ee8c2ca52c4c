"""
Test-only DAG: ``spark_pi`` with an ``execution_timeout`` far shorter than its job, and no retry.

Airflow's task runner raises ``AirflowTaskTimeout`` in the task process after 8 s and calls
``on_kill``: Airflow means the task to stop, so the batch must be deleted; the task ends failed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow.providers.apache.livy.operators.livy import LivyOperator

EXECUTION_TIMEOUT_SECONDS = 8

with DAG(
    dag_id="livy_execution_timeout",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["test"],
):
    LivyOperator(
        task_id="spark_pi",
        file="local:///opt/spark/examples/jars/spark-examples.jar",
        class_name="org.apache.spark.examples.SparkPi",
        args=["10"],
        conf={
            "spark.airflow.run_id": "{{ run_id }}",
            "spark.standin.durationSeconds": "{{ dag_run.conf.get('duration', '60') }}",
        },
        polling_interval=2,
        durable=True,
        deferrable=False,
        execution_timeout=timedelta(seconds=EXECUTION_TIMEOUT_SECONDS),
        retries=0,
    )
