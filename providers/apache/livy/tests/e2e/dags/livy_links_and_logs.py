"""
Test-only Airflow DAGs: the example's ``spark_pi`` task with a job that writes 1,000 log lines, polled
every second from the worker (``livy_live_log``) or from the triggerer (``livy_live_log_deferrable``).
``e2e/test_links_and_logs.py`` reads the task's extra links through the REST API and compares the
lines in the task log with the lines the stand-in produced.
"""

from __future__ import annotations

from livy_e2e_dag import spark_conf, spark_pi_dag

JOB_LINES = "1000"


def chatty_conf() -> dict[str, str]:
    return {**spark_conf(default_duration=15), "spark.standin.logLines": JOB_LINES}


livy_live_log = spark_pi_dag("livy_live_log", polling_interval=1, conf=chatty_conf())
livy_live_log_deferrable = spark_pi_dag(
    "livy_live_log_deferrable", deferrable=True, polling_interval=1, conf=chatty_conf()
)
