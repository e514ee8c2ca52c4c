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

from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import XCom

from airflow.providers.apache.livy.links import livy as links
from airflow.providers.apache.livy.links.livy import (
    LIVY_LINKS,
    LivyBatchLink,
    SparkDriverLogLink,
    SparkUiLink,
    push_links,
)
from airflow.providers.apache.livy.operators.livy import LivyOperator
from unit.apache.livy.task_context import FakeTaskInstance

TI_KEY = mock.sentinel.ti_key
WRITE_LINK_XCOM = links.write_link_xcom
"""The real writer (the unit tests' conftest routes links to the test's task instance)."""


@pytest.mark.parametrize(
    ("link", "name", "xcom_key"),
    [
        (LivyBatchLink(), "Livy Batch", "_link_LivyBatchLink"),
        (SparkUiLink(), "Spark UI", "_link_SparkUiLink"),
        (SparkDriverLogLink(), "Spark Driver Log", "_link_SparkDriverLogLink"),
    ],
)
def test_each_link_reads_its_own_xcom(link, name, xcom_key):
    with mock.patch.object(XCom, "get_value", return_value="http://127.0.0.1:4040/") as get_value:
        assert link.get_link(mock.Mock(), ti_key=TI_KEY) == "http://127.0.0.1:4040/"
    get_value.assert_called_once_with(ti_key=TI_KEY, key=xcom_key)
    assert link.name == name


@pytest.mark.parametrize("pushed", [None, "", 42, {"url": "x"}])
def test_without_a_pushed_url_a_link_is_empty(pushed):
    with mock.patch.object(XCom, "get_value", return_value=pushed):
        assert SparkUiLink().get_link(mock.Mock(), ti_key=TI_KEY) == ""


def test_the_operator_declares_the_three_links():
    assert [link.name for link in LivyOperator.operator_extra_links] == [
        "Livy Batch",
        "Spark UI",
        "Spark Driver Log",
    ]
    assert LivyOperator.operator_extra_links is LIVY_LINKS


def test_push_links_pushes_each_known_url_under_its_links_key():
    ti = FakeTaskInstance()
    push_links(ti, {"spark_ui": "http://127.0.0.1:4040/", "driver_log": "", "unknown": "x"})
    assert ti.xcoms == {"_link_SparkUiLink": "http://127.0.0.1:4040/"}


def test_the_links_are_registered_with_the_provider():
    from airflow.providers.apache.livy.get_provider_info import get_provider_info

    classes = [f"{type(link).__module__}.{type(link).__qualname__}" for link in LIVY_LINKS]
    assert get_provider_info()["extra-links"] == classes


def test_on_airflow_3_a_running_task_stores_links_as_airflow_does(monkeypatch):
    runner = pytest.importorskip("airflow.sdk.execution_time.task_runner")
    stored = []
    monkeypatch.setattr(runner, "_xcom_push_to_db", lambda ti, key, value: stored.append((ti, key, value)))
    ti = mock.Mock(spec=runner.RuntimeTaskInstance)
    WRITE_LINK_XCOM(ti, "_link_SparkUiLink", "http://127.0.0.1:4040/")
    assert stored == [(ti, "_link_SparkUiLink", "http://127.0.0.1:4040/")]
    ti.xcom_push.assert_not_called()  # past any custom XCom backend, as the task runner writes links


def test_on_airflow_3_a_stand_in_task_instance_gets_no_link():
    pytest.importorskip("airflow.sdk.execution_time.task_runner")
    ti = mock.Mock()
    WRITE_LINK_XCOM(ti, "_link_SparkUiLink", "http://127.0.0.1:4040/")
    ti.xcom_push.assert_not_called()
