"""
DAGs that run a real PySpark application through the Livy stand-in's real-Spark backend (``--spark``).

``livy_real_spark`` is durable, ``livy_real_spark_not_durable`` is not; both run ``spark_pi``, which
submits ``dev/spark-apps/pi.py``. The trigger's conf names it and sets its length: ``{"app":
"local:///.../dev/spark-apps/pi.py", "partitions": "8", "seconds": "2"}`` (the DAG file is copied into
the deployment's dags folder, so it cannot find the app by its own path). Used by
``tests/e2e/test_real_spark.py`` and ``dev/demo.sh --spark``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow.providers.apache.livy.operators.livy import LivyOperator


def real_spark_dag(dag_id: str, *, durable: bool) -> DAG:
    """One task: the Pi app as a Livy batch, waited for in the worker."""
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:
        LivyOperator(
            task_id="spark_pi",
            file="{{ dag_run.conf['app'] }}",
            args=["{{ dag_run.conf.get('partitions', '8') }}", "{{ dag_run.conf.get('seconds', '2') }}"],
            conf={"spark.airflow.run_id": "{{ run_id }}"},
            polling_interval=2,
            durable=durable,
            deferrable=False,
            retries=1,
            retry_delay=timedelta(seconds=1),
        )
    return dag


livy_real_spark = real_spark_dag("livy_real_spark", durable=True)
livy_real_spark_not_durable = real_spark_dag("livy_real_spark_not_durable", durable=False)
