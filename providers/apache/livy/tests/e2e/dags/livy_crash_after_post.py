"""
Test-only DAG: try 1 SIGKILLs its own task process right after ``POST /batches`` returned.

That is the worst moment for a worker to die: Livy has created the batch, but the batch id never
reached the task state store (only the write-ahead record with the batch's name did). The retry must
find the batch by its name instead of submitting a second one.
"""

from __future__ import annotations

import os
import signal
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG

from airflow.providers.apache.livy.operators.livy import LivyOperator


class LivyOperatorDyingAfterPost(LivyOperator):
    """On try 1, SIGKILL the task process as soon as ``LivyHook.submit_batch`` returns."""

    def execute(self, context: Any) -> Any:
        if context["ti"].try_number == 1:
            submit_batch = self.hook.submit_batch

            def submit_then_die(body: dict[str, Any]) -> dict[str, Any]:
                reply = submit_batch(body)
                os.kill(os.getpid(), signal.SIGKILL)
                return reply  # never reached

            self.hook.submit_batch = submit_then_die  # type: ignore[method-assign]
        return super().execute(context)


with DAG(
    dag_id="livy_crash_after_post",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["test"],
):
    LivyOperatorDyingAfterPost(
        task_id="spark_pi",
        file="local:///opt/spark/examples/jars/spark-examples.jar",
        class_name="org.apache.spark.examples.SparkPi",
        args=["10"],
        conf={
            "spark.airflow.run_id": "{{ run_id }}",
            "spark.standin.durationSeconds": "{{ dag_run.conf.get('duration', '20') }}",
        },
        polling_interval=2,
        durable=True,
        deferrable=False,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
