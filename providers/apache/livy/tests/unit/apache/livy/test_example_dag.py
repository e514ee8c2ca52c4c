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
from __future__ import annotations

import importlib

import pytest

from airflow.providers.apache.livy.operators.livy import LivyOperator
from airflow.providers.apache.livy.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS

pytestmark = pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="the example DAG is written for Airflow 3")


@pytest.mark.parametrize(
    ("dag_name", "durable"), [("example_livy", True), ("example_livy_not_durable", False)]
)
def test_example_dag_is_what_the_docs_show(dag_name, durable):
    example = importlib.import_module("system.apache.livy.example_livy")
    dag = getattr(example, dag_name)
    task = dag.get_task("spark_pi")
    assert isinstance(task, LivyOperator)
    assert task.durable is (durable and AIRFLOW_V_3_3_PLUS), "never durable before Airflow 3.3"
    assert task.deferrable is False
    assert task._polling_interval > 0
    assert task.retries == 1
    assert task.spark_params["class_name"] == "org.apache.spark.examples.SparkPi"
