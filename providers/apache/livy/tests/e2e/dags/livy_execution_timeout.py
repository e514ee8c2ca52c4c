"""
Test-only DAG: ``spark_pi`` with an ``execution_timeout`` far shorter than its job, and no retry.

Airflow's task runner raises ``AirflowTaskTimeout`` in the task process after 8 s and calls
``on_kill``: Airflow means the task to stop, so the batch must be deleted; the task ends failed.
"""

from __future__ import annotations

from datetime import timedelta

from livy_e2e_dag import spark_conf, spark_pi_dag

EXECUTION_TIMEOUT_SECONDS = 8

livy_execution_timeout = spark_pi_dag(
    "livy_execution_timeout",
    conf=spark_conf(default_duration=60),
    execution_timeout=timedelta(seconds=EXECUTION_TIMEOUT_SECONDS),
    retries=0,
)
