"""
DAGs that run a real PySpark application through real Apache Livy (``tests/e2e/test_apache_livy.py``).

Each has one task, ``spark_pi``, that submits ``dev/spark-apps/pi.py``; the trigger's conf names it and
sets its length: ``{"app": "/.../dev/spark-apps/pi.py", "partitions": "8", "seconds": "2"}`` (the DAG
file is copied into the deployment's dags folder, so it cannot find the app by its own path) and may
set ``"drop_reply": "true"``: the journaling proxy in front of Livy then drops the reply to the POST.

* ``livy_apache``: durable, waits in the worker;
* ``livy_apache_deferrable``: durable, waits in the triggerer.

Reads retry for up to 90 s (``retry_args``), as a DAG whose Livy may restart would set them: while
Livy is down, its port refuses connections.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import tenacity
from airflow.sdk import DAG

from airflow.providers.apache.livy.operators.livy import LivyOperator


def apache_livy_dag(dag_id: str, *, deferrable: bool) -> DAG:
    """One task: the Pi app as a Livy batch."""
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:
        LivyOperator(
            task_id="spark_pi",
            file="{{ dag_run.conf['app'] }}",
            args=["{{ dag_run.conf.get('partitions', '8') }}", "{{ dag_run.conf.get('seconds', '2') }}"],
            conf={
                "spark.airflow.run_id": "{{ run_id }}",
                "spark.standin.dropReply": "{{ dag_run.conf.get('drop_reply', 'false') }}",
            },
            polling_interval=2,
            retry_args={"stop": tenacity.stop_after_delay(90), "wait": tenacity.wait_fixed(2)},
            deferrable=deferrable,
            retries=1,
            retry_delay=timedelta(seconds=1),
        )
    return dag


livy_apache = apache_livy_dag("livy_apache", deferrable=False)
livy_apache_deferrable = apache_livy_dag("livy_apache_deferrable", deferrable=True)
