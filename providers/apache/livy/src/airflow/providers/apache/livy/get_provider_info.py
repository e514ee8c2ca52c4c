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
"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """Describe the provider: its modules, its extra links and the ``livy`` connection type."""
    return {
        "package-name": "apache-airflow-providers-apache-livy",
        "name": "Apache Livy",
        "description": "`Apache Livy <https://livy.apache.org/>`__, with a crash-safe LivyOperator\n",
        "integrations": [
            {
                "integration-name": "Apache Livy",
                "external-doc-url": "https://livy.apache.org/",
                "how-to-guide": ["/docs/apache-airflow-providers-apache-livy/operators.rst"],
                "tags": ["apache"],
            }
        ],
        "operators": [
            {
                "integration-name": "Apache Livy",
                "python-modules": ["airflow.providers.apache.livy.operators.livy"],
            }
        ],
        "sensors": [
            {
                "integration-name": "Apache Livy",
                "python-modules": ["airflow.providers.apache.livy.sensors.livy"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Apache Livy",
                "python-modules": ["airflow.providers.apache.livy.hooks.livy"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Apache Livy",
                "python-modules": ["airflow.providers.apache.livy.triggers.livy"],
            }
        ],
        "extra-links": [
            "airflow.providers.apache.livy.links.livy.LivyBatchLink",
            "airflow.providers.apache.livy.links.livy.SparkUiLink",
            "airflow.providers.apache.livy.links.livy.SparkDriverLogLink",
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow.providers.apache.livy.hooks.livy.LivyHook",
                "hook-name": "Apache Livy",
                "connection-type": "livy",
            }
        ],
    }
