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
"""LivySensor, through the real LivyHook and ``requests`` against ``responses``."""

from __future__ import annotations

import inspect

import pytest
import requests
from airflow.exceptions import AirflowException

from airflow.providers.apache.livy.exceptions import LivyBatchNotFound, LivyHttpError
from airflow.providers.apache.livy.hooks.livy import LivyHook
from airflow.providers.apache.livy.sensors.livy import LivySensor
from airflow.providers.apache.livy.utils.states import BatchOutcome, BatchState, batch_outcome


def make_sensor(**kwargs) -> LivySensor:
    return LivySensor(task_id="wait_for_batch", **{"batch_id": 4, **kwargs})


def script_state(mock, base_url, state, batch_id=4, prefix=""):
    mock.get(f"{base_url}{prefix}/batches/{batch_id}/state", json={"id": batch_id, "state": state})


def test_template_fields_and_signature():
    assert LivySensor.template_fields == ("batch_id",)
    parameters = inspect.signature(LivySensor.__init__).parameters
    for name, default in {
        "livy_conn_id": "livy_default",
        "livy_conn_auth_type": None,
        "extra_options": None,
        "endpoint_prefix": None,
    }.items():
        assert parameters[name].default == default
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["batch_id"].kind is inspect.Parameter.KEYWORD_ONLY


def test_poke_true_on_success(mocked_responses, livy_base_url):
    script_state(mocked_responses, livy_base_url, "success")
    assert make_sensor().poke({}) is True
    assert mocked_responses.calls[0].request.path_url == "/batches/4/state"


@pytest.mark.parametrize(
    "state",
    ["not_started", "starting", "running", "idle", "busy", "shutting_down", "recovering", "hibernating"],
)
def test_poke_false_while_not_finished(mocked_responses, livy_base_url, state):
    script_state(mocked_responses, livy_base_url, state)
    assert make_sensor().poke({}) is False


@pytest.mark.parametrize("state", ["dead", "killed", "error"])
def test_poke_raises_on_failure(mocked_responses, livy_base_url, state):
    # Regression: the released provider returned True here, so a failed batch looked successful.
    script_state(mocked_responses, livy_base_url, state)
    with pytest.raises(AirflowException) as error:
        make_sensor().poke({})
    assert state in str(error.value)
    assert "4" in str(error.value)


def test_poke_follows_the_batch_to_success(mocked_responses, livy_base_url):
    for state in ("starting", "running", "success"):
        script_state(mocked_responses, livy_base_url, state)
    sensor = make_sensor()
    assert [sensor.poke({}) for _ in range(3)] == [False, False, True]
    assert len(mocked_responses.calls) == 3


def test_poke_on_an_unknown_batch_raises(mocked_responses, livy_base_url):
    mocked_responses.get(
        f"{livy_base_url}/batches/4/state", status=404, json={"msg": "Session '4' not found."}
    )
    with pytest.raises(LivyBatchNotFound):
        make_sensor().poke({})


def test_batch_id_is_templated(mocked_responses, livy_base_url):
    script_state(mocked_responses, livy_base_url, "success", batch_id=42)
    sensor = make_sensor(batch_id="{{ batch_from_upstream }}")
    sensor.render_template_fields({"batch_from_upstream": 42})
    assert sensor.batch_id == "42"
    assert sensor.poke({}) is True
    assert mocked_responses.calls[0].request.path_url == "/batches/42/state"


def test_endpoint_prefix_is_honoured(mocked_responses, livy_base_url):
    script_state(mocked_responses, livy_base_url, "running", prefix="/gateway/livy")
    assert make_sensor(endpoint_prefix="gateway/livy/").poke({}) is False
    assert mocked_responses.calls[0].request.path_url == "/gateway/livy/batches/4/state"


def test_connection_and_options_reach_the_hook(mocked_responses, make_livy_conn):
    make_livy_conn("livy_sensor", port=9100, login="dora", password="digest-pw")
    mocked_responses.get("http://127.0.0.1:9100/batches/4/state", json={"id": 4, "state": "success"})
    sensor = make_sensor(
        livy_conn_id="livy_sensor",
        livy_conn_auth_type=requests.auth.HTTPDigestAuth,
        extra_options={"timeout": 9},
    )
    hook = sensor.get_hook()
    assert isinstance(hook, LivyHook)
    assert sensor.get_hook() is hook
    assert hook.http_conn_id == "livy_sensor"
    assert hook.auth_type is requests.auth.HTTPDigestAuth
    assert sensor.poke({}) is True
    assert mocked_responses.calls[0].request.req_kwargs["timeout"] == 9


def test_invalid_batch_id_fails_without_a_request(mocked_responses):
    with pytest.raises(TypeError):
        make_sensor(batch_id="4; DROP").poke({})
    assert len(mocked_responses.calls) == 0


@pytest.mark.parametrize("state", [member.value for member in BatchState])
def test_poke_follows_the_shared_classification(mocked_responses, livy_base_url, state):
    script_state(mocked_responses, livy_base_url, state)
    outcome = batch_outcome(state)
    if outcome is BatchOutcome.FAILED:
        with pytest.raises(AirflowException):
            make_sensor().poke({})
    else:
        assert make_sensor().poke({}) is (outcome is BatchOutcome.SUCCEEDED)


def test_poke_reads_the_state_once_without_retries(mocked_responses, livy_base_url):
    url = f"{livy_base_url}/batches/4/state"
    mocked_responses.get(url, status=503, json={"msg": "unavailable"})
    mocked_responses.get(url, json={"id": 4, "state": "success"})
    with pytest.raises(LivyHttpError) as error:
        make_sensor().poke({})
    assert error.value.http_status == 503
    assert len(mocked_responses.calls) == 1
