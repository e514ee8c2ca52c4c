"""
Test-only Airflow DAG: the example's ``spark_pi`` task in deferrable mode (durable, one retry).

The worker submits the batch and defers; the triggerer polls it. The e2e tests mark the deferred task
failed through the REST API (the triggerer's ``LivyTrigger.on_kill`` must delete the batch), and kill
and restart the triggerer (the batch must be kept, and the restarted triggerer must adopt it).
"""

from __future__ import annotations

from livy_e2e_dag import spark_conf, spark_pi_dag

livy_deferrable = spark_pi_dag("livy_deferrable", deferrable=True, conf=spark_conf(default_duration=30))
