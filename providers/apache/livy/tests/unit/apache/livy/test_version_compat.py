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
The provider imports and works on every supported Airflow: 2.11, 3.0-3.2 (common-compat's fallback
mixin, every try submits) and 3.3+ (the SDK's ``ResumableJobMixin``).

Run on each installed Airflow; the tests marked ``airflow33`` only apply from 3.3 on.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import pkgutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.version import Version

from airflow.providers.apache.livy import version_compat
from airflow.providers.apache.livy.get_provider_info import get_provider_info
from airflow.providers.apache.livy.version_compat import AIRFLOW_V_3_3_PLUS
from unit.apache.livy.task_context import FakeTaskInstance

PUBLIC_MODULES = sorted(
    {"airflow.providers.apache.livy"}
    | {
        module.name
        for module in pkgutil.walk_packages(
            importlib.import_module("airflow.providers.apache.livy").__path__,
            "airflow.providers.apache.livy.",
        )
    }
)
"""Every module of the provider: each must import on every supported Airflow."""

RELEASED_NAMES = {
    "airflow.providers.apache.livy.hooks.livy": [
        "BatchState",
        "LivyHook",
        "LivyAsyncHook",
        "sanitize_endpoint_prefix",
    ],
    "airflow.providers.apache.livy.operators.livy": ["LivyOperator", "LivyHook", "LivyTrigger"],
    "airflow.providers.apache.livy.sensors.livy": ["LivySensor"],
    "airflow.providers.apache.livy.triggers.livy": ["LivyTrigger"],
}

only_before_3_3 = pytest.mark.skipif(AIRFLOW_V_3_3_PLUS, reason="Airflow 3.3+ has the SDK's mixin")
requires_3_3 = pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="needs Airflow 3.3+ (ResumableJobMixin)")


def airflow_version() -> Version:
    from airflow import __version__

    return Version(Version(__version__).base_version)


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_module_imports(module):
    assert importlib.import_module(module) is not None


@pytest.mark.parametrize(("module", "names"), RELEASED_NAMES.items())
def test_released_names_exist(module, names):
    imported = importlib.import_module(module)
    for name in names:
        assert hasattr(imported, name), f"{module}.{name}"


def test_version_flags_match_the_installed_airflow():
    version = airflow_version()
    assert version_compat.get_base_airflow_version_tuple() == (version.major, version.minor, version.micro)
    assert (version >= Version("3.0.0")) == version_compat.AIRFLOW_V_3_0_PLUS
    assert (version >= Version("3.3.0")) == AIRFLOW_V_3_3_PLUS


def test_the_mixin_is_common_compats():
    from airflow.providers.common.compat.sdk import ResumableJobMixin

    from airflow.providers.apache.livy.operators.livy import LivyOperator

    assert ResumableJobMixin in LivyOperator.__mro__
    expected = "airflow.sdk" if AIRFLOW_V_3_3_PLUS else "airflow.providers.common.compat._resumable_job_mixin"
    assert ResumableJobMixin.__module__.startswith(expected)


def test_importing_the_operator_loads_no_http_client():
    """A DAG file pays only for what ``BaseOperator`` already loads (Airflow 2.11 loads ``requests``)."""
    code = (
        "import sys\n"
        "from airflow.providers.common.compat.sdk import BaseOperator\n"
        "before = set(sys.modules)\n"
        "import airflow.providers.apache.livy.operators.livy\n"
        "heavy = ('requests', 'aiohttp', 'airflow.providers.http.hooks.http',\n"
        "         'airflow.providers.apache.livy.hooks.livy')\n"
        "print(sorted(set(heavy) & (set(sys.modules) - before)))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip().splitlines()[-1] == "[]"


def make_operator(**kwargs: Any):
    from airflow.providers.apache.livy.operators.livy import LivyOperator

    return LivyOperator(task_id="spark_job", file="s3://bucket/app.py", **kwargs)


def durability_warnings(**kwargs: Any) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_operator(**kwargs)
    return [
        warning
        for warning in caught
        if issubclass(warning.category, UserWarning) and "no effect" in str(warning.message)
    ]


# ---- Airflow < 3.3: common-compat's fallback mixin -------------------------------------------------


@only_before_3_3
def test_fallback_is_not_durable_before_3_3():
    operator = make_operator()
    assert operator.durable is False
    assert operator.external_id_key == "livy_batch_id"


@only_before_3_3
@pytest.mark.parametrize("durable", [True, False])
def test_durable_given_by_the_dag_warns_before_3_3(durable):
    assert len(durability_warnings(durable=durable)) == 1


@only_before_3_3
def test_no_warning_without_durable():
    assert durability_warnings() == []


BATCH = {"id": 9, "name": None, "state": "starting", "appId": None, "appInfo": {}, "log": []}


@only_before_3_3
def test_operator_submits_polls_and_returns_on_the_fallback(mocked_responses, livy_base_url):
    mocked_responses.post(f"{livy_base_url}/batches", status=201, json=BATCH)
    running = {**BATCH, "state": "running", "log": ["stdout: ", "\nstderr: "]}
    done = {
        **running,
        "state": "success",
        "appId": "application_1_0009",
        "log": ["stdout: ", "done", "\nstderr: "],
    }
    mocked_responses.get(f"{livy_base_url}/batches/9", json=running)
    mocked_responses.get(f"{livy_base_url}/batches/9", json=done)
    mocked_responses.get(f"{livy_base_url}/batches/9/log", json={"from": 0, "total": 3, "log": done["log"]})
    ti = FakeTaskInstance()
    operator = make_operator(polling_interval=0.01, conf={"spark.x": "1"})

    assert operator.execute({"ti": ti}) == 9

    requests_sent = [(call.request.method, call.request.path_url) for call in mocked_responses.calls]
    assert [method for method, _ in requests_sent].count("POST") == 1
    # One request a poll: the batch objects carry the state, the app id and the log's last lines;
    # the log's end once more after the end (a few lines more than a poll brought).
    paths = [path for _, path in requests_sent]
    assert paths[:3] == ["/batches", "/batches/9", "/batches/9"]
    assert paths[3:] == ["/batches/9/log?from=-1&size=15"]
    assert operator._batch.record.log_cursor["stdout"][0] == 2  # "stdout: " and "done", shown
    assert json.loads(mocked_responses.calls[0].request.body) == {
        "file": "s3://bucket/app.py",
        "conf": {"spark.x": "1"},
    }
    assert ti.xcoms["app_id"] == "application_1_0009"


@only_before_3_3
def test_operator_fails_when_the_batch_dies_on_the_fallback(mocked_responses, livy_base_url):
    from airflow.exceptions import AirflowException

    mocked_responses.post(f"{livy_base_url}/batches", status=201, json=BATCH)
    mocked_responses.get(f"{livy_base_url}/batches/9/state", json={"id": 9, "state": "dead"})
    mocked_responses.get(f"{livy_base_url}/batches/9", json={**BATCH, "state": "dead"})
    mocked_responses.get(f"{livy_base_url}/batches/9/log", json={"id": 9, "from": 0, "total": 0, "log": []})
    with pytest.raises(AirflowException, match="dead"):
        make_operator(polling_interval=0.01).execute({"ti": FakeTaskInstance()})


# ---- Airflow 3.3+: the SDK's mixin --------------------------------------------------------------------


@pytest.mark.airflow33
@requires_3_3
@pytest.mark.parametrize("durable", [True, False, None])
def test_durable_is_honoured_without_warning_on_3_3(durable):
    kwargs = {} if durable is None else {"durable": durable}
    assert durability_warnings(**kwargs) == []
    assert make_operator(**kwargs).durable is (True if durable is None else durable)


# ---- provider metadata ----------------------------------------------------------------------------


def provider_yaml() -> dict[str, Any]:
    for folder in Path(__file__).resolve().parents:
        candidate = folder / "provider.yaml"
        if candidate.is_file():
            return yaml.safe_load(candidate.read_text())
    raise AssertionError("provider.yaml not found above the tests")


def modules(section: list[dict[str, Any]]) -> list[str]:
    return sorted(module for entry in section for module in entry.get("python-modules", []))


def test_provider_info_matches_provider_yaml():
    declared = provider_yaml()
    info = get_provider_info()
    assert info["package-name"] == declared["package-name"] == "apache-airflow-providers-apache-livy"
    assert info["name"] == declared["name"]
    for section in ("operators", "sensors", "hooks", "triggers"):
        assert modules(info[section]) == modules(declared[section]), section
    assert [entry["integration-name"] for entry in info["integrations"]] == [
        entry["integration-name"] for entry in declared["integrations"]
    ]
    assert [(entry["hook-class-name"], entry["connection-type"]) for entry in info["connection-types"]] == [
        (entry["hook-class-name"], entry["connection-type"]) for entry in declared["connection-types"]
    ]


def test_provider_info_points_at_real_code():
    info = get_provider_info()
    for section in ("operators", "sensors", "hooks", "triggers"):
        for module in modules(info[section]):
            importlib.import_module(module)
    for entry in info["connection-types"]:
        module_name, _, class_name = entry["hook-class-name"].rpartition(".")
        hook_class = getattr(importlib.import_module(module_name), class_name)
        assert hook_class.conn_type == entry["connection-type"] == "livy"
        assert hook_class.hook_name == entry.get("hook-name", hook_class.hook_name)


def test_provider_info_is_registered_as_an_entry_point():
    values = [entry.value for entry in importlib.metadata.entry_points(group="apache_airflow_provider")]
    assert "airflow.providers.apache.livy.get_provider_info:get_provider_info" in values


def test_package_version_matches_provider_yaml():
    from airflow.providers.apache import livy

    assert livy.__version__ == provider_yaml()["versions"][0]
    assert importlib.metadata.version("apache-airflow-providers-apache-livy") == livy.__version__
