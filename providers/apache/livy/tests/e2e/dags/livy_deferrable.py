"""
Test-only DAG: the example's ``spark_pi`` task in deferrable mode (durable, one retry).

The worker submits the batch and defers; the triggerer polls it. The e2e tests mark the deferred task
failed through the REST API (the triggerer's ``LivyTrigger.on_kill`` must delete the batch), and kill
and restart the triggerer (the batch must be kept, and the restarted triggerer must adopt it).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow.providers.apache.livy.operators.livy import LivyOperator

with DAG(
    dag_id="livy_deferrable",
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
            "spark.standin.durationSeconds": "{{ dag_run.conf.get('duration', '30') }}",
        },
        polling_interval=2,
        durable=True,
        deferrable=True,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
