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
"""The synchronous LivyHook, through its real ``requests`` client against ``responses``."""

from __future__ import annotations

import base64
import inspect
import json
from typing import Any

import pytest
import requests
import responses
import tenacity
from airflow.exceptions import AirflowException
from responses import matchers

from airflow.providers.apache.livy.exceptions import (
    LivyAuthError,
    LivyBatchNotFound,
    LivyDuplicateBatchName,
    LivyError,
    LivyHttpError,
    LivyResponseError,
)
from airflow.providers.apache.livy.hooks.livy import (
    MAX_BATCH_ID,
    BatchOutcome,
    BatchState,
    LivyAsyncHook,
    LivyHook,
    batch_outcome,
    sanitize_endpoint_prefix,
    validate_batch_id,
)

CSRF_HEADER = "X-Requested-By"
FAST_RETRY = {"stop": tenacity.stop_after_attempt(3), "wait": tenacity.wait_none()}
SECRET_CONF_VALUE = "hunter2-very-secret-token"


def batch_json(batch_id: int = 7, state: str = "starting", **more: Any) -> dict[str, Any]:
    return {
        "id": batch_id,
        "name": None,
        "owner": None,
        "proxyUser": None,
        "state": state,
        "appId": None,
        "appInfo": {"driverLogUrl": None, "sparkUiUrl": None},
        "log": [],
        **more,
    }


def csrf_filter(handler):
    """Wrap a ``responses`` callback in Livy's CSRF filter: non-GET without the header gets a 400 page."""

    def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        if request.method not in ("GET", "HEAD", "OPTIONS") and CSRF_HEADER not in request.headers:
            return (
                400,
                {"Content-Type": "text/html"},
                "<html>Missing Required Header for CSRF protection.</html>",
            )
        return handler(request)

    return callback


# ---- class attributes and the released public API ---------------------------------------------------


@pytest.mark.parametrize("hook_class", [LivyHook, LivyAsyncHook])
def test_class_attributes(hook_class):
    assert hook_class.conn_type == "livy"
    assert hook_class.default_conn_name == "livy_default"
    assert hook_class.conn_name_attr == "livy_conn_id"
    assert hook_class.hook_name == "Apache Livy"
    assert {
        BatchState.SUCCESS,
        BatchState.DEAD,
        BatchState.KILLED,
        BatchState.ERROR,
    } == hook_class.TERMINAL_STATES
    assert sorted(state.value for state in hook_class.TERMINAL_STATES) == [
        "dead",
        "error",
        "killed",
        "success",
    ]


def test_default_headers():
    assert LivyHook.default_headers == {"Content-Type": "application/json", "Accept": "application/json"}


def test_batch_state_keeps_every_released_member():
    released = {
        "NOT_STARTED": "not_started",
        "STARTING": "starting",
        "RUNNING": "running",
        "IDLE": "idle",
        "BUSY": "busy",
        "SHUTTING_DOWN": "shutting_down",
        "ERROR": "error",
        "DEAD": "dead",
        "KILLED": "killed",
        "SUCCESS": "success",
    }
    for name, value in released.items():
        assert BatchState[name].value == value
        assert BatchState(value) is BatchState[name]
    assert BatchState("recovering") is BatchState.RECOVERING


def _parameters(function) -> list[tuple[str, Any]]:
    return [
        (name, parameter.default)
        for name, parameter in inspect.signature(function).parameters.items()
        if name != "self"
    ]


def test_sync_hook_signatures_match_the_released_api():
    empty = inspect.Parameter.empty
    assert _parameters(LivyHook.__init__) == [
        ("livy_conn_id", "livy_default"),
        ("extra_options", None),
        ("extra_headers", None),
        ("auth_type", None),
        ("endpoint_prefix", None),
    ]
    assert _parameters(LivyHook.run_method) == [
        ("endpoint", empty),
        ("method", "GET"),
        ("data", None),
        ("headers", None),
        ("retry_args", None),
    ]
    assert _parameters(LivyHook.get_batch_state) == [("session_id", empty), ("retry_args", None)]
    assert _parameters(LivyHook.get_batch_logs) == [
        ("session_id", empty),
        ("log_start_position", empty),
        ("log_batch_size", empty),
    ]
    assert next(iter(_parameters(LivyHook.get_batch)))[0] == "session_id"
    assert _parameters(LivyHook.delete_batch) == [("session_id", empty)]
    assert _parameters(LivyHook.dump_batch_logs) == [("session_id", empty)]


def test_async_hook_signature_extends_the_released_one():
    released = [
        ("livy_conn_id", "livy_default"),
        ("extra_options", None),
        ("extra_headers", None),
        ("endpoint_prefix", None),
    ]
    assert _parameters(LivyAsyncHook.__init__)[: len(released)] == released
    assert all(default is None for _, default in _parameters(LivyAsyncHook.__init__)[len(released) :])


@pytest.mark.parametrize("hook_class", [LivyHook, LivyAsyncHook])
def test_build_post_batch_body_signature_matches_the_released_api(hook_class):
    assert isinstance(inspect.getattr_static(hook_class, "build_post_batch_body"), staticmethod)
    names = [name for name, _ in _parameters(hook_class.build_post_batch_body)]
    assert names == [
        "file",
        "args",
        "class_name",
        "jars",
        "py_files",
        "files",
        "archives",
        "name",
        "driver_memory",
        "driver_cores",
        "executor_memory",
        "executor_cores",
        "num_executors",
        "queue",
        "proxy_user",
        "conf",
    ]


def test_constructor_stores_options():
    hook = LivyHook(
        livy_conn_id="other",
        extra_options={"timeout": 3},
        extra_headers={"X-A": "1"},
        auth_type=requests.auth.HTTPDigestAuth,
        endpoint_prefix="gateway/livy/",
    )
    assert hook.http_conn_id == "other"
    assert hook.extra_options == {"timeout": 3}
    assert hook.extra_headers == {"X-A": "1"}
    assert hook.auth_type is requests.auth.HTTPDigestAuth
    assert hook.endpoint_prefix == "/gateway/livy"


def test_default_auth_is_basic_auth():
    hook = LivyHook()
    assert hook.extra_headers == {}
    assert hook.extra_options == {}
    assert hook.endpoint_prefix == ""
    assert hook.auth_type is requests.auth.HTTPBasicAuth


def test_ui_field_behaviour():
    behaviour = LivyHook.get_ui_field_behaviour()
    assert set(behaviour) == {"hidden_fields", "relabeling", "placeholders"}
    assert "host" not in behaviour["hidden_fields"]


# ---- submitting ---------------------------------------------------------------------------------


def test_post_batch_sends_the_body_and_returns_the_id(mocked_responses, livy_base_url, livy_logs):
    mocked_responses.post(
        f"{livy_base_url}/batches",
        status=201,
        json=batch_json(7),
        headers={"Location": "/batches/7"},
    )
    batch_id = LivyHook().post_batch(
        file="s3://bucket/app.py",
        args=[1, "two", 3.5],
        py_files=["s3://bucket/lib.py"],
        name="etl-s1-abc",
        driver_memory="1g",
        conf={"spark.hadoop.fs.s3a.secret.key": SECRET_CONF_VALUE, "spark.app.x": "1"},
    )

    assert batch_id == 7
    assert len(mocked_responses.calls) == 1
    request = mocked_responses.calls[0].request
    assert request.method == "POST"
    assert request.url == f"{livy_base_url}/batches"
    assert request.headers[CSRF_HEADER]
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == {
        "file": "s3://bucket/app.py",
        "args": ["1", "two", "3.5"],
        "pyFiles": ["s3://bucket/lib.py"],
        "name": "etl-s1-abc",
        "driverMemory": "1g",
        "conf": {"spark.hadoop.fs.s3a.secret.key": SECRET_CONF_VALUE, "spark.app.x": "1"},
    }
    # The submission is logged (so the capture works), its conf value never is.
    assert any("s3://bucket/app.py" in message for message in livy_logs.messages)
    assert SECRET_CONF_VALUE not in livy_logs.text


def test_submit_batch_failure_does_not_log_conf_values(mocked_responses, livy_base_url, livy_logs):
    mocked_responses.post(f"{livy_base_url}/batches", status=500, json={"msg": "boom"})
    body = LivyHook.build_post_batch_body(file="app.jar", conf={"spark.password": SECRET_CONF_VALUE})
    with pytest.raises(LivyHttpError) as error:
        LivyHook().submit_batch(body)
    assert SECRET_CONF_VALUE not in str(error.value)
    assert livy_logs.messages
    assert SECRET_CONF_VALUE not in livy_logs.text


def test_submit_batch_returns_the_whole_reply(mocked_responses, livy_base_url):
    reply = batch_json(12, name="n-s1-x", appId=None)
    mocked_responses.post(f"{livy_base_url}/batches", status=201, json=reply)
    assert LivyHook().submit_batch({"file": "app.jar", "name": "n-s1-x"}) == reply


def test_post_batch_is_not_rejected_by_livy_csrf_filter(mocked_responses, livy_base_url):
    mocked_responses.add_callback(
        responses.POST,
        f"{livy_base_url}/batches",
        callback=csrf_filter(lambda request: (201, {}, json.dumps(batch_json(3)))),
    )
    assert LivyHook().post_batch(file="app.jar") == 3


def test_caller_csrf_header_value_is_kept(mocked_responses, livy_base_url):
    mocked_responses.post(f"{livy_base_url}/batches", status=201, json=batch_json(1))
    LivyHook(extra_headers={CSRF_HEADER: "my-team"}).post_batch(file="app.jar")
    assert mocked_responses.calls[0].request.headers[CSRF_HEADER] == "my-team"


def test_post_reply_without_id_is_a_response_error(mocked_responses, livy_base_url):
    mocked_responses.post(f"{livy_base_url}/batches", status=201, json={"state": "starting"})
    with pytest.raises(LivyResponseError, match="'id'"):
        LivyHook().post_batch(file="app.jar")


def test_post_is_never_retried(mocked_responses, livy_base_url):
    mocked_responses.post(f"{livy_base_url}/batches", status=503, body="unavailable")
    response = LivyHook().run_method("/batches", "POST", data="{}", retry_args=FAST_RETRY)
    assert response.status_code == 503
    assert len(mocked_responses.calls) == 1


def test_submit_batch_503_raises_after_one_request(mocked_responses, livy_base_url):
    mocked_responses.post(f"{livy_base_url}/batches", status=503, body="unavailable")
    with pytest.raises(LivyHttpError) as error:
        LivyHook().post_batch(file="app.jar")
    assert error.value.http_status == 503
    assert len(mocked_responses.calls) == 1


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"msg": "Rejected, Reason: Duplicate session name: Some(etl-s1-abc) for session 3"}),
        json.dumps("Duplicate session name: Some(etl-s1-abc)"),
    ],
    ids=["livy-0.8-msg", "livy-0.6-bare-string"],
)
def test_duplicate_name_is_typed(mocked_responses, livy_base_url, body):
    mocked_responses.post(f"{livy_base_url}/batches", status=400, body=body)
    with pytest.raises(LivyDuplicateBatchName) as error:
        LivyHook().post_batch(file="app.jar", name="etl-s1-abc")
    assert error.value.http_status == 400
    assert "Duplicate session name: Some(etl-s1-abc)" in error.value.livy_message
    assert "Duplicate session name: Some(etl-s1-abc)" in str(error.value)


def test_other_400_is_a_plain_http_error(mocked_responses, livy_base_url):
    mocked_responses.post(
        f"{livy_base_url}/batches",
        status=400,
        json={"msg": "Rejected, too many sessions are being created!"},
    )
    with pytest.raises(LivyHttpError) as error:
        LivyHook().post_batch(file="app.jar")
    assert type(error.value) is LivyHttpError
    assert "too many sessions" in str(error.value)


# ---- reading batches ----------------------------------------------------------------------------


def test_get_batch(mocked_responses, livy_base_url):
    reply = batch_json(5, state="running", appId="application_1_0005")
    mocked_responses.get(f"{livy_base_url}/batches/5", json=reply)
    assert LivyHook().get_batch(5) == reply
    request = mocked_responses.calls[0].request
    assert request.method == "GET"
    assert request.url == f"{livy_base_url}/batches/5"


def test_get_is_not_rejected_by_livy_csrf_filter(mocked_responses, livy_base_url):
    mocked_responses.add_callback(
        responses.GET,
        f"{livy_base_url}/batches/5",
        callback=csrf_filter(lambda request: (200, {}, json.dumps(batch_json(5)))),
    )
    assert LivyHook().get_batch("5")["id"] == 5


def test_get_batch_by_name(mocked_responses, livy_base_url):
    reply = batch_json(9, name="etl-s2-0123abcd")
    mocked_responses.get(f"{livy_base_url}/batches/etl-s2-0123abcd", json=reply)
    assert LivyHook().get_batch_by_name("etl-s2-0123abcd") == reply


def test_get_batch_by_name_not_found(mocked_responses, livy_base_url):
    mocked_responses.get(
        f"{livy_base_url}/batches/etl-s1-x", status=404, json={"msg": "Session 'etl-s1-x' not found."}
    )
    with pytest.raises(LivyBatchNotFound, match="Session 'etl-s1-x' not found"):
        LivyHook().get_batch_by_name("etl-s1-x")


@pytest.mark.parametrize("name", ["", "a/b", "../batches", "123", "0", "name with space", "x?y", None, 7])
def test_get_batch_by_name_rejects_unsafe_names(mocked_responses, name):
    with pytest.raises(ValueError, match="batch name"):
        LivyHook().get_batch_by_name(name)
    assert len(mocked_responses.calls) == 0


ALL_STATES = [member.value for member in BatchState]


@pytest.mark.parametrize("state", ALL_STATES)
def test_get_batch_state_for_every_state(mocked_responses, livy_base_url, state):
    mocked_responses.get(f"{livy_base_url}/batches/4/state", json={"id": 4, "state": state})
    result = LivyHook().get_batch_state(4)
    assert result is BatchState(state)
    assert result.value == state


def test_get_batch_state_recovering(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/4/state", json={"id": 4, "state": "recovering"})
    assert LivyHook().get_batch_state(4) is BatchState.RECOVERING


def test_get_batch_state_unknown_state_does_not_raise(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/4/state", json={"id": 4, "state": "hibernating"})
    state = LivyHook().get_batch_state(4)
    assert isinstance(state, BatchState)
    assert state.name == "UNKNOWN"
    assert state.value == "hibernating"
    assert state not in LivyHook.TERMINAL_STATES


@pytest.mark.parametrize("reply", [{"id": 4}, [], {"id": 4, "state": None}, {"id": 4, "state": 3}])
def test_get_batch_state_without_a_string_state(mocked_responses, livy_base_url, reply):
    mocked_responses.get(f"{livy_base_url}/batches/4/state", json=reply)
    with pytest.raises(LivyResponseError) as error:
        LivyHook().get_batch_state(4)
    assert "/batches/4/state" in str(error.value)
    assert error.value.batch == 4


def test_non_string_value_is_not_a_batch_state():
    with pytest.raises(ValueError):
        BatchState(3)


# ---- state classification -------------------------------------------------------------------------

EXPECTED_OUTCOMES = {
    "not_started": BatchOutcome.ACTIVE,
    "starting": BatchOutcome.ACTIVE,
    "running": BatchOutcome.ACTIVE,
    "idle": BatchOutcome.ACTIVE,
    "busy": BatchOutcome.ACTIVE,
    "shutting_down": BatchOutcome.ACTIVE,
    "recovering": BatchOutcome.ACTIVE,
    "success": BatchOutcome.SUCCEEDED,
    "dead": BatchOutcome.FAILED,
    "killed": BatchOutcome.FAILED,
    "error": BatchOutcome.FAILED,
}


def test_every_member_is_classified():
    assert set(EXPECTED_OUTCOMES) == {member.value for member in BatchState}


@pytest.mark.parametrize(("state", "outcome"), EXPECTED_OUTCOMES.items())
def test_batch_outcome(state, outcome, livy_logs):
    assert batch_outcome(state) is outcome
    assert batch_outcome(BatchState(state)) is outcome
    assert not any("not known" in message for message in livy_logs.warnings())


@pytest.mark.parametrize("state", ["hibernating", "SUCCESS", ""])
def test_unknown_state_is_active_with_a_warning(state, livy_logs):
    assert batch_outcome(state) is BatchOutcome.ACTIVE
    assert batch_outcome(BatchState(state)) is BatchOutcome.ACTIVE
    assert any(repr(state) in message and "not known" in message for message in livy_logs.warnings())


def test_terminal_states_are_the_non_active_outcomes():
    finished = {state for state, outcome in EXPECTED_OUTCOMES.items() if outcome is not BatchOutcome.ACTIVE}
    assert {state.value for state in LivyHook.TERMINAL_STATES} == finished


# ---- batch ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [(7, 7), ("7", 7), (0, 0), ("0", 0), (MAX_BATCH_ID, MAX_BATCH_ID)]
)
def test_validate_batch_id_accepts(value, expected):
    assert validate_batch_id(value) == expected
    assert type(validate_batch_id(value)) is int


@pytest.mark.parametrize("value", [True, False, None, 1.0, 2.5, "abc", "-1", "1.5", " 7", "", "٣", [1], b"7"])
def test_validate_batch_id_type_errors(value):
    with pytest.raises(TypeError):
        validate_batch_id(value)


@pytest.mark.parametrize("value", [-1, MAX_BATCH_ID + 1, 10**20, "2147483648", "99999999999999999999"])
def test_validate_batch_id_range_errors(value):
    with pytest.raises(ValueError, match="range"):
        validate_batch_id(value)


@pytest.mark.parametrize(
    "call",
    [
        lambda hook: hook.get_batch("../admin"),
        lambda hook: hook.get_batch_state(-1),
        lambda hook: hook.delete_batch(True),
        lambda hook: hook.get_batch_logs(None, 0, 100),
    ],
    ids=["get_batch", "get_batch_state", "delete_batch", "get_batch_logs"],
)
def test_invalid_ids_are_refused_before_any_request(mocked_responses, call):
    with pytest.raises((TypeError, ValueError)):
        call(LivyHook())
    assert len(mocked_responses.calls) == 0


# ---- deleting -----------------------------------------------------------------------------------


def test_delete_batch(mocked_responses, livy_base_url):
    mocked_responses.add_callback(
        responses.DELETE,
        f"{livy_base_url}/batches/6",
        callback=csrf_filter(lambda request: (200, {}, json.dumps({"msg": "deleted"}))),
    )
    assert LivyHook().delete_batch(6) == {"msg": "deleted"}
    request = mocked_responses.calls[0].request
    assert request.method == "DELETE"
    assert request.headers[CSRF_HEADER]


def test_delete_batch_already_gone(mocked_responses, livy_base_url, livy_logs):
    mocked_responses.delete(f"{livy_base_url}/batches/6", status=404, json={"msg": "Session '6' not found."})
    result = LivyHook().delete_batch(6)
    assert isinstance(result, dict)
    assert len(mocked_responses.calls) == 1
    assert any("6" in message for message in livy_logs.messages)


def test_delete_batch_server_error_raises(mocked_responses, livy_base_url):
    mocked_responses.delete(f"{livy_base_url}/batches/6", status=500, json={"msg": "kill failed"})
    with pytest.raises(LivyHttpError, match="kill failed"):
        LivyHook().delete_batch(6)


# ---- logs ---------------------------------------------------------------------------------------


def _register_log_page(mock, url, start, size, total, lines):
    mock.get(
        url,
        json={"id": 2, "from": start, "total": total, "log": lines},
        match=[matchers.query_param_matcher({"from": str(start), "size": str(size)})],
    )


def test_get_batch_logs(mocked_responses, livy_base_url):
    url = f"{livy_base_url}/batches/2/log"
    _register_log_page(mocked_responses, url, 10, 5, 20, ["a", "b", "c", "d", "e"])
    page = LivyHook().get_batch_logs(2, 10, 5)
    assert page == {"id": 2, "from": 10, "total": 20, "log": ["a", "b", "c", "d", "e"]}


def test_dump_batch_logs_reads_every_page(mocked_responses, livy_base_url, livy_logs):
    url = f"{livy_base_url}/batches/2/log"
    lines = [f"log line {number:03d}" for number in range(250)]
    for start in (0, 100, 200):
        _register_log_page(mocked_responses, url, start, 100, 250, lines[start : start + 100])

    LivyHook().dump_batch_logs(2)

    assert len(mocked_responses.calls) == 3
    logged = [message for message in livy_logs.messages if message.startswith("log line")]
    assert logged == lines


def test_dump_batch_logs_stops_at_an_empty_page(mocked_responses, livy_base_url, livy_logs):
    url = f"{livy_base_url}/batches/2/log"
    _register_log_page(mocked_responses, url, 0, 100, 300, [f"line {n}" for n in range(100)])
    _register_log_page(mocked_responses, url, 100, 100, 300, [])
    LivyHook().dump_batch_logs(2)
    assert len(mocked_responses.calls) == 2
    assert "line 99" in livy_logs.messages


def test_dump_batch_logs_of_an_empty_log(mocked_responses, livy_base_url):
    _register_log_page(mocked_responses, f"{livy_base_url}/batches/2/log", 0, 100, 0, [])
    LivyHook().dump_batch_logs(2)
    assert len(mocked_responses.calls) == 1


@pytest.mark.parametrize(
    "page",
    [{"id": 2, "from": 0, "total": 3}, {"id": 2, "from": 0, "total": 3, "log": "x"}, {"log": ["a"]}, []],
)
def test_dump_batch_logs_malformed_page(mocked_responses, livy_base_url, page):
    mocked_responses.get(f"{livy_base_url}/batches/2/log", json=page)
    with pytest.raises(LivyResponseError, match="'log'"):
        LivyHook().dump_batch_logs(2)


# ---- run_method and retries -----------------------------------------------------------------------


def test_run_method_rejects_unknown_methods():
    with pytest.raises(ValueError, match="Invalid http method"):
        LivyHook().run_method("/batches", "TRACE")


def test_run_method_returns_error_replies_without_raising(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/1", status=404, json={"msg": "nope"})
    response = LivyHook().run_method("/batches/1")
    assert isinstance(response, requests.Response)
    assert response.status_code == 404


def test_run_method_leaves_the_hook_method_alone(mocked_responses, livy_base_url):
    mocked_responses.delete(f"{livy_base_url}/batches/1", json={"msg": "deleted"})
    hook = LivyHook()
    before = hook.method
    hook.run_method("/batches/1", "delete")
    assert hook.method == before
    assert mocked_responses.calls[0].request.method == "DELETE"


def test_get_with_retry_args_retries_5xx(mocked_responses, livy_base_url):
    url = f"{livy_base_url}/batches/1"
    mocked_responses.get(url, status=503, body="unavailable")
    mocked_responses.get(url, status=502, body="bad gateway")
    mocked_responses.get(url, json=batch_json(1, "running"))
    response = LivyHook().run_method("/batches/1", retry_args=FAST_RETRY)
    assert response.status_code == 200
    assert len(mocked_responses.calls) == 3


def test_get_batch_state_with_retry_args_retries_5xx(mocked_responses, livy_base_url):
    url = f"{livy_base_url}/batches/1/state"
    mocked_responses.get(url, status=500, json={"msg": "busy"})
    mocked_responses.get(url, json={"id": 1, "state": "success"})
    assert LivyHook().get_batch_state(1, retry_args=FAST_RETRY) is BatchState.SUCCESS
    assert len(mocked_responses.calls) == 2


def test_get_with_retry_args_retries_connection_errors(mocked_responses, livy_base_url):
    url = f"{livy_base_url}/batches/1"
    mocked_responses.get(url, body=requests.ConnectionError("connection refused"))
    mocked_responses.get(url, json=batch_json(1, "running"))
    assert LivyHook().get_batch(1, retry_args=FAST_RETRY)["state"] == "running"
    assert len(mocked_responses.calls) == 2


def test_without_retry_args_a_get_is_sent_once(mocked_responses, livy_base_url):
    url = f"{livy_base_url}/batches/1"
    mocked_responses.get(url, status=503, body="unavailable")
    mocked_responses.get(url, json=batch_json(1))
    assert LivyHook().run_method("/batches/1").status_code == 503
    assert len(mocked_responses.calls) == 1


@pytest.mark.parametrize("status", [400, 404, 409])
def test_get_with_retry_args_does_not_retry_4xx(mocked_responses, livy_base_url, status):
    url = f"{livy_base_url}/batches/1"
    mocked_responses.get(url, status=status, json={"msg": "client error"})
    mocked_responses.get(url, json=batch_json(1))
    assert LivyHook().run_method("/batches/1", retry_args=FAST_RETRY).status_code == status
    assert len(mocked_responses.calls) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_are_typed_and_not_retried(mocked_responses, livy_base_url, status):
    url = f"{livy_base_url}/batches/1"
    mocked_responses.get(url, status=status, body="")
    mocked_responses.get(url, json=batch_json(1))
    with pytest.raises(LivyAuthError) as error:
        LivyHook().get_batch(1, retry_args=FAST_RETRY)
    assert error.value.http_status == status
    assert len(mocked_responses.calls) == 1


def test_exhausted_retries_return_the_last_reply(mocked_responses, livy_base_url):
    url = f"{livy_base_url}/batches/1"
    mocked_responses.get(url, status=503, body="first")
    mocked_responses.get(url, status=503, body="second")
    mocked_responses.get(url, status=504, body="third")
    response = LivyHook().run_method("/batches/1", retry_args=FAST_RETRY)
    assert response.status_code == 504
    assert response.text == "third"
    assert len(mocked_responses.calls) == 3


def test_exhausted_retries_raise_the_typed_error(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/1/state", status=503, json={"msg": "still down"})
    with pytest.raises(LivyHttpError, match="still down") as error:
        LivyHook().get_batch_state(1, retry_args=FAST_RETRY)
    assert error.value.http_status == 503
    assert len(mocked_responses.calls) == 3


def test_exhausted_retries_reraise_the_connection_error(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/1", body=requests.ConnectionError("refused"))
    with pytest.raises(requests.ConnectionError, match="refused"):
        LivyHook().run_method("/batches/1", retry_args=FAST_RETRY)
    assert len(mocked_responses.calls) == 3


def test_caller_retry_predicate_wins(mocked_responses, livy_base_url):
    url = f"{livy_base_url}/batches/1"
    mocked_responses.get(url, status=404, body="not yet")
    mocked_responses.get(url, json=batch_json(1))
    retry_args = {
        **FAST_RETRY,
        "retry": tenacity.retry_if_result(lambda response: response.status_code == 404),
    }
    assert LivyHook().run_method("/batches/1", retry_args=retry_args).status_code == 200
    assert len(mocked_responses.calls) == 2


# ---- typed errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (401, LivyAuthError),
        (403, LivyAuthError),
        (404, LivyBatchNotFound),
        (400, LivyHttpError),
        (500, LivyHttpError),
        (502, LivyHttpError),
    ],
)
def test_http_errors_are_typed(mocked_responses, livy_base_url, status, error_class):
    mocked_responses.get(f"{livy_base_url}/batches/3", status=status, json={"msg": f"livy says {status}"})
    with pytest.raises(error_class) as error:
        LivyHook().get_batch(3)
    assert type(error.value) is error_class
    assert isinstance(error.value, AirflowException)
    assert isinstance(error.value, LivyError)
    assert error.value.http_status == status
    assert error.value.endpoint == "/batches/3"
    assert error.value.batch == 3
    assert error.value.livy_message == f"livy says {status}"
    message = str(error.value)
    assert str(status) in message
    assert "batch 3" in message
    assert "/batches/3" in message
    assert f"livy says {status}" in message


def test_bare_string_error_body_is_surfaced(mocked_responses, livy_base_url):
    text = 'Unrecognized field "ttl" (class org.apache.livy.server.batch.CreateBatchRequest)'
    mocked_responses.post(f"{livy_base_url}/batches", status=400, body=json.dumps(text))
    with pytest.raises(LivyHttpError) as error:
        LivyHook().submit_batch({"file": "app.jar", "ttl": "1h"})
    assert error.value.livy_message == text
    assert text in str(error.value)


def test_html_success_page_is_a_response_error(mocked_responses, livy_base_url):
    page = "<html><head><title>Knox login</title></head><body>Please sign in</body></html>"
    mocked_responses.get(f"{livy_base_url}/batches/3/state", body=page, content_type="text/html")
    with pytest.raises(LivyResponseError) as error:
        LivyHook().get_batch_state(3)
    message = str(error.value)
    assert "batch 3" in message
    assert "/batches/3/state" in message
    assert "Knox login" in message
    assert error.value.endpoint == "/batches/3/state"
    assert error.value.batch == 3
    assert isinstance(error.value, AirflowException)


def test_long_error_bodies_are_shortened(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/3", status=502, body="x" * 5000)
    with pytest.raises(LivyHttpError) as error:
        LivyHook().get_batch(3)
    assert len(str(error.value)) < 600


# ---- gateway, headers, options and auth -----------------------------------------------------------


def test_endpoint_prefix_is_used_for_every_request(mocked_responses, livy_base_url):
    base = f"{livy_base_url}/gateway/livy/batches"
    mocked_responses.post(base, status=201, json=batch_json(1))
    mocked_responses.get(f"{base}/1", json=batch_json(1))
    mocked_responses.get(f"{base}/1/state", json={"id": 1, "state": "running"})
    mocked_responses.get(f"{base}/etl-s1-x", json=batch_json(1, name="etl-s1-x"))
    mocked_responses.get(f"{base}/1/log", json={"id": 1, "from": 0, "total": 1, "log": ["l"]})
    mocked_responses.delete(f"{base}/1", json={"msg": "deleted"})

    hook = LivyHook(endpoint_prefix="/gateway/livy/")
    assert hook.post_batch(file="app.jar") == 1
    assert hook.get_batch(1)["id"] == 1
    assert hook.get_batch_state(1) is BatchState.RUNNING
    assert hook.get_batch_by_name("etl-s1-x")["name"] == "etl-s1-x"
    hook.dump_batch_logs(1)
    assert hook.delete_batch(1) == {"msg": "deleted"}

    paths = [call.request.path_url.split("?")[0] for call in mocked_responses.calls]
    assert paths == [
        "/gateway/livy/batches",
        "/gateway/livy/batches/1",
        "/gateway/livy/batches/1/state",
        "/gateway/livy/batches/etl-s1-x",
        "/gateway/livy/batches/1/log",
        "/gateway/livy/batches/1",
    ]


def test_extra_headers_are_sent(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/1/state", json={"id": 1, "state": "running"})
    mocked_responses.post(f"{livy_base_url}/batches", status=201, json=batch_json(1))
    hook = LivyHook(extra_headers={"X-Gateway-Tenant": "blue"})
    hook.get_batch_state(1)
    hook.post_batch(file="app.jar")
    for call in mocked_responses.calls:
        assert call.request.headers["X-Gateway-Tenant"] == "blue"
    assert mocked_responses.calls[0].request.headers["Accept"] == "application/json"


def test_extra_options_reach_requests(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/1", json=batch_json(1))
    LivyHook(extra_options={"timeout": 17, "verify": False}).get_batch(1)
    kwargs = mocked_responses.calls[0].request.req_kwargs
    assert kwargs["timeout"] == 17
    assert kwargs["verify"] is False


def test_connection_id_selects_the_connection(mocked_responses, make_livy_conn):
    make_livy_conn("livy_other", port=9001, schema="https")
    mocked_responses.get("https://127.0.0.1:9001/batches/1", json=batch_json(1))
    assert LivyHook(livy_conn_id="livy_other").get_batch(1)["id"] == 1


def test_basic_auth_from_the_connection(mocked_responses, livy_base_url, make_livy_conn, livy_logs):
    password = "Pa55-word-never-shown"
    make_livy_conn(login="alice", password=password)
    mocked_responses.get(f"{livy_base_url}/batches/1", json=batch_json(1))
    mocked_responses.get(f"{livy_base_url}/batches/2", status=500, json={"msg": "internal"})
    mocked_responses.post(f"{livy_base_url}/batches", status=401, body="")

    hook = LivyHook()
    hook.get_batch(1)
    expected = "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()
    assert mocked_responses.calls[0].request.headers["Authorization"] == expected

    with pytest.raises(LivyHttpError) as server_error:
        hook.get_batch(2)
    with pytest.raises(LivyAuthError) as auth_error:
        hook.post_batch(file="app.jar")
    for error in (server_error.value, auth_error.value):
        assert password not in str(error)
        assert password not in repr(error.__dict__)
    assert livy_logs.messages
    assert password not in livy_logs.text


def test_without_login_no_authorization_header(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/1", json=batch_json(1))
    LivyHook().get_batch(1)
    assert "Authorization" not in mocked_responses.calls[0].request.headers


class TokenAuth(requests.auth.AuthBase):
    """A custom ``requests`` auth: built with the connection's login and password."""

    def __init__(self, login: str, password: str) -> None:
        self.token = f"{login}:{password[::-1]}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["X-Token"] = self.token
        return request


class NoCredentialsAuth(requests.auth.AuthBase):
    """An auth that needs no login (like Kerberos): built without arguments."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["X-Ticket"] = "kerberos-ish"
        return request


def test_auth_type_with_connection_credentials(mocked_responses, livy_base_url, make_livy_conn):
    make_livy_conn(login="bob", password="abc")
    mocked_responses.get(f"{livy_base_url}/batches/1/state", json={"id": 1, "state": "running"})
    LivyHook(auth_type=TokenAuth).get_batch_state(1)
    headers = mocked_responses.calls[0].request.headers
    assert headers["X-Token"] == "bob:cba"
    assert "Authorization" not in headers


def test_auth_type_without_credentials(mocked_responses, livy_base_url):
    mocked_responses.delete(f"{livy_base_url}/batches/1", json={"msg": "deleted"})
    LivyHook(auth_type=NoCredentialsAuth).delete_batch(1)
    assert mocked_responses.calls[0].request.headers["X-Ticket"] == "kerberos-ish"


# ---- the POST body ------------------------------------------------------------------------------


def test_build_post_batch_body_maps_every_field():
    body = LivyHook.build_post_batch_body(
        file="hdfs:///apps/app.jar",
        args=["--day", 20260101, 1.5],
        class_name="com.example.Main",
        jars=["a.jar"],
        py_files=["b.py"],
        files=["c.txt"],
        archives=["d.zip"],
        name="etl-s1-abc",
        driver_memory="512m",
        driver_cores=2,
        executor_memory="2g",
        executor_cores=4,
        num_executors="3",
        queue="default",
        proxy_user="carol",
        conf={"spark.x": "1", "spark.y": 2},
    )
    assert body == {
        "file": "hdfs:///apps/app.jar",
        "args": ["--day", "20260101", "1.5"],
        "className": "com.example.Main",
        "jars": ["a.jar"],
        "pyFiles": ["b.py"],
        "files": ["c.txt"],
        "archives": ["d.zip"],
        "name": "etl-s1-abc",
        "driverMemory": "512m",
        "driverCores": 2,
        "executorMemory": "2g",
        "executorCores": 4,
        "numExecutors": "3",
        "queue": "default",
        "proxyUser": "carol",
        "conf": {"spark.x": "1", "spark.y": 2},
    }


def test_build_post_batch_body_omits_unset_fields():
    assert LivyHook.build_post_batch_body(file="app.py") == {"file": "app.py"}
    assert LivyHook.build_post_batch_body(file="app.py", args=[], jars=[], conf={}, name=None) == {
        "file": "app.py"
    }


def test_build_post_batch_body_accepts_tuples():
    body = LivyAsyncHook.build_post_batch_body(file="app.py", args=("a", 1), jars=("x.jar",))
    assert body["args"] == ["a", "1"]
    assert body["jars"] == ["x.jar"]


@pytest.mark.parametrize("size", ["512", "512m", "512M", "2g", "2G", "1gb", "10KB", "3t", "1p", "7b"])
def test_valid_memory_sizes(size):
    body = LivyHook.build_post_batch_body(file="app.py", driver_memory=size, executor_memory=size)
    assert body["driverMemory"] == size
    assert body["executorMemory"] == size


@pytest.mark.parametrize("field", ["driver_memory", "executor_memory"])
@pytest.mark.parametrize("size", ["1x", "abc", "1.5g", "-1g", "1 g", "g", "1gg", 512])
def test_invalid_memory_sizes(field, size):
    with pytest.raises(ValueError, match=field):
        LivyHook.build_post_batch_body(file="app.py", **{field: size})


@pytest.mark.parametrize("field", ["args", "jars", "py_files", "files", "archives"])
@pytest.mark.parametrize("value", ["a.jar", {"a": "b"}, 5])
def test_list_fields_must_be_lists(field, value):
    with pytest.raises(ValueError, match=field):
        LivyHook.build_post_batch_body(file="app.py", **{field: value})


@pytest.mark.parametrize("item", [None, True, {"x": 1}, ["nested"]])
def test_list_items_must_be_strings_or_numbers(item):
    with pytest.raises(ValueError, match="jars"):
        LivyHook.build_post_batch_body(file="app.py", jars=["ok.jar", item])


@pytest.mark.parametrize(
    "value",
    [{"token": "leak-me-not"}, ["leak-me-not"], ("leak-me-not",), {"leak-me-not"}, None],
    ids=["dict", "list", "tuple", "set", "none"],
)
def test_conf_values_must_be_scalars_and_are_not_echoed(value):
    with pytest.raises(ValueError) as error:
        LivyHook.build_post_batch_body(file="app.py", conf={"spark.credentials": value})
    assert "spark.credentials" in str(error.value)
    assert "leak-me-not" not in str(error.value)


@pytest.mark.parametrize("conf", [{"": "x"}, {1: "x"}, "spark.x=1", ["spark.x"]])
def test_conf_shape_is_checked(conf):
    with pytest.raises(ValueError, match="conf"):
        LivyHook.build_post_batch_body(file="app.py", conf=conf)


@pytest.mark.parametrize("file", ["", None, 3, ["a.py"]])
def test_file_is_required(file):
    with pytest.raises(ValueError, match="file"):
        LivyHook.build_post_batch_body(file=file)


# ---- endpoint prefix ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (None, ""),
        ("", ""),
        ("/", ""),
        ("//", ""),
        ("gateway/livy", "/gateway/livy"),
        ("/gateway/livy", "/gateway/livy"),
        ("/gateway/livy/", "/gateway/livy"),
        ("gateway/livy//", "/gateway/livy"),
        ("livy", "/livy"),
    ],
)
def test_sanitize_endpoint_prefix(prefix, expected):
    assert sanitize_endpoint_prefix(prefix) == expected


def test_root_prefix_does_not_double_the_slash(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/1/state", json={"id": 1, "state": "running"})
    assert LivyHook(endpoint_prefix="/").get_batch_state(1) is BatchState.RUNNING
    assert mocked_responses.calls[0].request.path_url == "/batches/1/state"


def test_retry_args_without_a_stop_give_up_after_five_reads(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/1", status=503, body="unavailable")
    with pytest.raises(LivyHttpError) as error:
        LivyHook().get_batch(1, retry_args={"wait": tenacity.wait_none()})
    assert error.value.http_status == 503
    assert len(mocked_responses.calls) == 5
