# Licensed to the Apache Software Foundation (ASF) under one
# or more contributor license agreements.  See the NOTICE file
# distributed with this work for additional information
# regarding copyright ownership.  The ASF licenses this file
# to you under the Apache License, Version 2.0 (the
# "License"); you may not use this file except in compliance
# with the License.  You may obtain a copy of the License at
#
#   http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing,
# software distributed under the License is distributed on an
# "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY
# KIND, either express or implied.  See the License for the
# specific language governing permissions and limitations
# under the License.
"""
Example DAGs: run SparkPi through Apache Livy, crash-safe.

``example_livy`` is durable: if the worker running ``spark_pi`` dies (OOM kill, node loss, deploy),
the retry reconnects to the Spark batch the first try submitted instead of submitting a second one.
``example_livy_not_durable`` is the same task with ``durable=False``: every try submits a new batch.

Both use the ``livy_default`` connection. Trigger with a conf to choose the job's length on the Livy
stand-in used by the demo and the end-to-end tests, e.g. ``{"duration": "30"}`` (seconds).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow.providers.apache.livy.operators.livy import LivyOperator


def spark_pi_dag(dag_id: str, *, durable: bool) -> DAG:
    """A DAG with one task that runs SparkPi as a Livy batch and waits for it."""
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        tags=["example", "livy"],
    ) as dag:
        # [START howto_operator_livy]
        LivyOperator(
            task_id="spark_pi",
            file="local:///opt/spark/examples/jars/spark-examples.jar",
            class_name="org.apache.spark.examples.SparkPi",
            args=["{{ dag_run.conf.get('partitions', '10') }}"],
            conf={
                "spark.executor.instances": "2",
                # Tags the Spark application with the Airflow run that submitted it.
                "spark.airflow.run_id": "{{ run_id }}",
                # Read by the Livy stand-in only (how long the simulated job runs); Spark ignores it.
                "spark.standin.durationSeconds": "{{ dag_run.conf.get('duration', '20') }}",
            },
            polling_interval=2,  # wait in the worker, checking the batch every 2 s
            durable=durable,  # True: a retry reconnects to the batch an earlier try submitted
            deferrable=False,
            retries=1,
            retry_delay=timedelta(seconds=1),
        )
        # [END howto_operator_livy]
    return dag


example_livy = spark_pi_dag("example_livy", durable=True)
example_livy_not_durable = spark_pi_dag("example_livy_not_durable", durable=False)
