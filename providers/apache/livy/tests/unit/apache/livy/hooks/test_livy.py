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
The synchronous LivyHook, through its real ``requests`` client against ``responses``.

What both hooks share on the wire (reply reading, the retry policy, log paging) is tested on its own
in ``test_transport.py``; here, that the hook applies it to each request it sends.
"""

from __future__ import annotations

import base64
import copy
import importlib
import inspect
import json
from typing import Any
from unittest import mock

import aiohttp
import pytest
import requests
import responses
import tenacity
from airflow.exceptions import AirflowException
from responses import matchers

from airflow.providers.apache.livy.exceptions import (
    LivyAuthError,
    LivyBatchNotCreated,
    LivyBatchNotFound,
    LivyBatchRejected,
    LivyDuplicateBatchName,
    LivyError,
    LivyHttpError,
    LivyResponseError,
)
from airflow.providers.apache.livy.hooks.livy import (
    BatchState,
    LivyAsyncHook,
    LivyHook,
    async_auth_type,
    sanitize_endpoint_prefix,
)
from airflow.providers.apache.livy.triggers.livy import LivyTrigger, import_class
from airflow.providers.apache.livy.utils.batch_record import MAX_BATCH_ID

CSRF_HEADER = "X-Requested-By"
FAST_RETRY = {"stop": tenacity.stop_after_attempt(3), "wait": tenacity.wait_none()}
SECRET_CONF_VALUE = "hunter2-very-secret-token"
NAME = "airflow-etl-job-t1-s1-0123456789"


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


def sent(mock_responses: responses.RequestsMock) -> list[tuple[str, str]]:
    """``(method, path)`` of every request sent, in order."""
    return [(call.request.method, call.request.path_url.split("?")[0]) for call in mock_responses.calls]


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


def _parameters(function) -> list[tuple[str, Any]]:
    return [
        (name, parameter.default)
        for name, parameter in inspect.signature(function).parameters.items()
        if name != "self"
    ]


def test_sync_hook_signatures_match_the_released_api():
    empty = inspect.Parameter.empty
    released_init = [
        ("livy_conn_id", "livy_default"),
        ("extra_options", None),
        ("extra_headers", None),
        ("auth_type", None),
        ("endpoint_prefix", None),
    ]
    assert _parameters(LivyHook.__init__) == [*released_init, ("retry_args", None)]
    assert _parameters(LivyHook.run_method) == [
        ("endpoint", empty),
        ("method", "GET"),
        ("data", None),
        ("headers", None),
        ("retry_args", None),
    ]
    assert _parameters(LivyHook.post_batch) == [("args", empty), ("kwargs", empty)]
    assert _parameters(LivyHook.get_batch) == [("session_id", empty)]
    assert _parameters(LivyHook.get_batch_state) == [("session_id", empty), ("retry_args", None)]
    assert _parameters(LivyHook.get_batch_logs) == [
        ("session_id", empty),
        ("log_start_position", empty),
        ("log_batch_size", empty),
    ]
    assert _parameters(LivyHook.delete_batch) == [("session_id", empty)]
    assert _parameters(LivyHook.dump_batch_logs) == [("session_id", empty)]
    assert not hasattr(LivyHook, "submit_batch")


def test_new_sync_hook_methods():
    empty = inspect.Parameter.empty
    assert _parameters(LivyHook.create_batch) == [("name", empty), ("batch_kwargs", empty)]
    assert _parameters(LivyHook.get_batch_by_name) == [("name", empty)]


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
        retry_args=FAST_RETRY,
    )
    assert hook.http_conn_id == "other"
    assert hook.extra_options == {"timeout": 3}
    assert hook.extra_headers == {"X-A": "1"}
    assert hook.auth_type is requests.auth.HTTPDigestAuth
    assert hook.endpoint_prefix == "/gateway/livy"
    assert hook.retry_args is FAST_RETRY


def test_defaults():
    hook = LivyHook()
    assert hook.extra_headers == {}
    assert hook.extra_options == {}
    assert hook.endpoint_prefix == ""
    assert hook.auth_type is requests.auth.HTTPBasicAuth
    assert hook.retry_args is None


def test_ui_field_behaviour():
    behaviour = LivyHook.get_ui_field_behaviour()
    assert set(behaviour) == {"hidden_fields", "relabeling", "placeholders"}
    assert "host" not in behaviour["hidden_fields"]


# ---- post_batch -------------------------------------------------------------------------------------


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
    assert type(batch_id) is int
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


def test_post_batch_takes_positional_arguments_as_released(mocked_responses, livy_base_url):
    mocked_responses.post(f"{livy_base_url}/batches", status=201, json=batch_json(2))
    assert LivyHook().post_batch("app.jar", ["a"], "com.example.Main") == 2
    assert json.loads(mocked_responses.calls[0].request.body) == {
        "file": "app.jar",
        "args": ["a"],
        "className": "com.example.Main",
    }


def test_post_batch_failure_does_not_log_conf_values(mocked_responses, livy_base_url, livy_logs):
    mocked_responses.post(f"{livy_base_url}/batches", status=500, json={"msg": "boom"})
    with pytest.raises(LivyHttpError) as error:
        LivyHook().post_batch(file="app.jar", conf={"spark.password": SECRET_CONF_VALUE})
    assert SECRET_CONF_VALUE not in str(error.value)
    assert livy_logs.messages
    assert SECRET_CONF_VALUE not in livy_logs.text


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


@pytest.mark.parametrize(
    ("reply", "error_class"),
    [
        ({"state": "starting"}, LivyResponseError),
        (["id"], LivyResponseError),
        ({"id": "seven"}, TypeError),
        ({"id": -1}, ValueError),
    ],
    ids=["no-id", "not-an-object", "id-not-an-integer", "id-out-of-range"],
)
def test_post_reply_without_a_usable_id_fails(mocked_responses, livy_base_url, reply, error_class):
    mocked_responses.post(f"{livy_base_url}/batches", status=201, json=reply)
    with pytest.raises(error_class):
        LivyHook().post_batch(file="app.jar")
    assert len(mocked_responses.calls) == 1


def test_invalid_body_is_refused_before_any_request(mocked_responses):
    with pytest.raises(ValueError, match="file"):
        LivyHook().post_batch(file="")
    assert len(mocked_responses.calls) == 0


@pytest.mark.parametrize("retry_args", [None, FAST_RETRY])
def test_post_is_never_retried(mocked_responses, livy_base_url, retry_args):
    mocked_responses.post(f"{livy_base_url}/batches", status=503, body="unavailable")
    hook = LivyHook(retry_args=retry_args)
    response = hook.run_method("/batches", "POST", data="{}", retry_args=FAST_RETRY)
    assert response.status_code == 503
    with pytest.raises(LivyHttpError) as error:
        hook.post_batch(file="app.jar")
    assert error.value.http_status == 503
    assert len(mocked_responses.calls) == 2


def test_post_connection_error_is_raised_after_one_attempt(mocked_responses, livy_base_url):
    mocked_responses.post(f"{livy_base_url}/batches", body=requests.ConnectionError("reset"))
    with pytest.raises(requests.ConnectionError):
        LivyHook(retry_args=FAST_RETRY).post_batch(file="app.jar")
    assert len(mocked_responses.calls) == 1


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"msg": "Rejected, Reason: Duplicate session name: Some(etl-s1-abc) for session 3"}),
        json.dumps("Duplicate session name: Some(etl-s1-abc)"),
    ],
    ids=["livy-0.8-msg", "livy-0.6-bare-string"],
)
def test_post_batch_duplicate_name_is_typed(mocked_responses, livy_base_url, body):
    mocked_responses.post(f"{livy_base_url}/batches", status=400, body=body)
    with pytest.raises(LivyDuplicateBatchName) as error:
        LivyHook().post_batch(file="app.jar", name="etl-s1-abc")
    assert error.value.http_status == 400
    assert error.value.batch == "etl-s1-abc"
    assert error.value.endpoint == "/batches"


@pytest.mark.parametrize("status", [400, 403, 500])
def test_post_batch_errors_are_raised_as_they_are(mocked_responses, livy_base_url, status):
    # post_batch is 4.6.4's one POST: no lookup, no LivyBatchRejected (that is create_batch's).
    mocked_responses.post(f"{livy_base_url}/batches", status=status, json={"msg": "no"})
    with pytest.raises(LivyHttpError) as error:
        LivyHook().post_batch(file="app.jar", name=NAME)
    assert not isinstance(error.value, LivyBatchRejected)
    assert error.value.http_status == status
    assert len(mocked_responses.calls) == 1


# ---- create_batch -------------------------------------------------------------------------------------

BATCH_KWARGS: dict[str, Any] = {
    "file": "s3://bucket/app.py",
    "name": "users-own-name",
    "conf": {"spark.password": SECRET_CONF_VALUE},
}


def duplicate_name_reply(name: str = NAME) -> str:
    return json.dumps({"msg": f"Rejected, Reason: Duplicate session name: Some({name}) for session 9"})


def test_create_batch_posts_under_the_name(mocked_responses, livy_base_url):
    mocked_responses.post(f"{livy_base_url}/batches", status=201, json=batch_json(7, name=NAME))
    kwargs = copy.deepcopy(BATCH_KWARGS)

    assert LivyHook().create_batch(NAME, kwargs) == 7

    assert sent(mocked_responses) == [("POST", "/batches")]
    assert json.loads(mocked_responses.calls[0].request.body) == {
        "file": "s3://bucket/app.py",
        "name": NAME,
        "conf": {"spark.password": SECRET_CONF_VALUE},
    }
    assert kwargs == BATCH_KWARGS


@pytest.mark.parametrize(
    "body",
    [duplicate_name_reply(), json.dumps(f"Duplicate session name: Some({NAME})")],
    ids=["livy-0.8", "livy-0.6"],
)
def test_create_batch_duplicate_name_is_found_by_name(mocked_responses, livy_base_url, body):
    mocked_responses.post(f"{livy_base_url}/batches", status=400, body=body)
    mocked_responses.get(f"{livy_base_url}/batches/{NAME}", json=batch_json(4, name=NAME, state="running"))

    assert LivyHook().create_batch(NAME, BATCH_KWARGS) == 4

    assert sent(mocked_responses) == [("POST", "/batches"), ("GET", f"/batches/{NAME}")]


@pytest.mark.parametrize(
    "lost",
    [requests.ConnectionError("reset by peer"), requests.ReadTimeout("read timed out")],
    ids=["connection-error", "timeout"],
)
def test_create_batch_lost_reply_is_resolved_by_name(mocked_responses, livy_base_url, lost):
    mocked_responses.post(f"{livy_base_url}/batches", body=lost)
    mocked_responses.get(f"{livy_base_url}/batches/{NAME}", json=batch_json(5, name=NAME))

    assert LivyHook().create_batch(NAME, BATCH_KWARGS) == 5

    assert sent(mocked_responses) == [("POST", "/batches"), ("GET", f"/batches/{NAME}")]


def test_create_batch_lost_reply_and_no_such_batch(mocked_responses, livy_base_url, livy_logs):
    mocked_responses.post(f"{livy_base_url}/batches", body=requests.ReadTimeout("read timed out"))
    mocked_responses.get(
        f"{livy_base_url}/batches/{NAME}", status=404, json={"msg": f"Session '{NAME}' not found."}
    )

    with pytest.raises(LivyBatchNotCreated) as error:
        LivyHook().create_batch(NAME, BATCH_KWARGS)

    assert isinstance(error.value, LivyError)
    assert not isinstance(error.value, LivyHttpError)
    assert error.value.batch == NAME
    assert error.value.endpoint == "/batches"
    assert NAME in str(error.value)
    # Posted once: posting again is the caller's decision.
    assert sent(mocked_responses) == [("POST", "/batches"), ("GET", f"/batches/{NAME}")]
    assert SECRET_CONF_VALUE not in livy_logs.text


def test_create_batch_duplicate_name_gone_by_the_lookup(mocked_responses, livy_base_url):
    mocked_responses.post(f"{livy_base_url}/batches", status=400, body=duplicate_name_reply())
    mocked_responses.get(
        f"{livy_base_url}/batches/{NAME}", status=404, json={"msg": f"Session '{NAME}' not found."}
    )
    with pytest.raises(LivyBatchNotCreated):
        LivyHook().create_batch(NAME, BATCH_KWARGS)


def test_create_batch_lookup_that_fails_too_propagates(mocked_responses, livy_base_url):
    # Livy did not say the batch is absent, so this is not LivyBatchNotCreated.
    mocked_responses.post(f"{livy_base_url}/batches", body=requests.ConnectionError("reset"))
    mocked_responses.get(f"{livy_base_url}/batches/{NAME}", body=requests.ConnectionError("refused"))
    with pytest.raises(requests.ConnectionError, match="refused"):
        LivyHook().create_batch(NAME, BATCH_KWARGS)
    assert sent(mocked_responses) == [("POST", "/batches"), ("GET", f"/batches/{NAME}")]


LOOKUP_ERRORS = [
    (401, "", LivyAuthError),
    (403, json.dumps({"msg": "User not authorised to use Livy."}), LivyAuthError),
    (429, "Too Many Requests", LivyHttpError),
    (404, "<html><body>Knox: no such topology</body></html>", LivyHttpError),
    (404, "", LivyHttpError),
    (503, "unavailable", LivyHttpError),
]
LOOKUP_ERROR_IDS = ["401", "403", "429", "404-html", "404-empty", "503"]


@pytest.mark.parametrize(("status", "body", "error_class"), LOOKUP_ERRORS, ids=LOOKUP_ERROR_IDS)
@pytest.mark.parametrize(
    "post_outcome",
    [
        {"body": requests.ConnectionError("reset")},
        {"body": requests.ReadTimeout("read timed out")},
        {"status": 400, "body": duplicate_name_reply()},
    ],
    ids=["connection-error", "timeout", "duplicate-name"],
)
def test_create_batch_lookup_error_propagates(
    mocked_responses, livy_base_url, post_outcome, status, body, error_class
):
    # Only Livy's own "not found" says no batch has the name; anything else says nothing about the
    # POST, so it is neither a refusal nor "not created", and nothing is posted again.
    mocked_responses.post(f"{livy_base_url}/batches", **post_outcome)
    mocked_responses.get(f"{livy_base_url}/batches/{NAME}", status=status, body=body)

    with pytest.raises(LivyHttpError) as error:
        LivyHook().create_batch(NAME, BATCH_KWARGS)

    assert type(error.value) is error_class
    assert not isinstance(error.value, LivyBatchRejected | LivyBatchNotFound)
    assert error.value.http_status == status
    assert error.value.endpoint == f"/batches/{NAME}"
    assert sent(mocked_responses) == [("POST", "/batches"), ("GET", f"/batches/{NAME}")]


def test_create_batch_lookup_livy_0_5_not_found_is_not_created(mocked_responses, livy_base_url):
    mocked_responses.post(f"{livy_base_url}/batches", body=requests.ReadTimeout("read timed out"))
    mocked_responses.get(
        f"{livy_base_url}/batches/{NAME}", status=404, body=json.dumps(f"Session '{NAME}' not found.")
    )
    with pytest.raises(LivyBatchNotCreated):
        LivyHook().create_batch(NAME, BATCH_KWARGS)
    assert sent(mocked_responses) == [("POST", "/batches"), ("GET", f"/batches/{NAME}")]


def test_create_batch_lookup_uses_the_hooks_retry_args(mocked_responses, livy_base_url):
    mocked_responses.post(f"{livy_base_url}/batches", body=requests.ConnectionError("reset"))
    mocked_responses.get(f"{livy_base_url}/batches/{NAME}", status=503, body="unavailable")
    mocked_responses.get(f"{livy_base_url}/batches/{NAME}", json=batch_json(6, name=NAME))
    assert LivyHook(retry_args=FAST_RETRY).create_batch(NAME, BATCH_KWARGS) == 6
    assert sent(mocked_responses) == [("POST", "/batches")] + [("GET", f"/batches/{NAME}")] * 2


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, json.dumps({"msg": "Rejected, too many sessions are being created!"})),
        (400, json.dumps({"msg": "Rejected, Reason: requirement failed: File is required."})),
        (400, json.dumps('Unrecognized field "ttl"')),
        (401, ""),
        (403, json.dumps({"msg": "User 'airflow' not allowed to impersonate 'Some(carol)'."})),
        (404, "no such gateway path"),
        (413, "request entity too large"),
    ],
    ids=["too-many", "file-required", "unknown-field", "401", "403", "404-gateway", "413"],
)
def test_create_batch_4xx_is_rejected(mocked_responses, livy_base_url, status, body):
    mocked_responses.post(f"{livy_base_url}/batches", status=status, body=body)

    with pytest.raises(LivyBatchRejected) as error:
        LivyHook().create_batch(NAME, BATCH_KWARGS)

    rejected = error.value
    assert isinstance(rejected, LivyHttpError)
    assert rejected.http_status == status
    assert rejected.batch == NAME
    assert rejected.endpoint == "/batches"
    assert isinstance(rejected.__cause__, LivyHttpError)
    assert rejected.livy_message == rejected.__cause__.livy_message
    # A refusal is final: no lookup, no second POST.
    assert sent(mocked_responses) == [("POST", "/batches")]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_create_batch_5xx_is_not_a_rejection(mocked_responses, livy_base_url, status):
    mocked_responses.post(f"{livy_base_url}/batches", status=status, json={"msg": "server trouble"})

    with pytest.raises(LivyHttpError) as error:
        LivyHook(retry_args=FAST_RETRY).create_batch(NAME, BATCH_KWARGS)

    assert not isinstance(error.value, LivyBatchRejected)
    assert error.value.http_status == status
    assert sent(mocked_responses) == [("POST", "/batches")]


def test_create_batch_2xx_without_an_id_is_a_response_error(mocked_responses, livy_base_url):
    mocked_responses.post(f"{livy_base_url}/batches", status=201, json={"state": "starting"})
    with pytest.raises(LivyResponseError):
        LivyHook().create_batch(NAME, BATCH_KWARGS)
    assert sent(mocked_responses) == [("POST", "/batches")]


def test_create_batch_found_batch_without_an_id_fails(mocked_responses, livy_base_url):
    mocked_responses.post(f"{livy_base_url}/batches", status=400, body=duplicate_name_reply())
    mocked_responses.get(f"{livy_base_url}/batches/{NAME}", json={"name": NAME, "state": "running"})
    with pytest.raises(LivyResponseError) as error:
        LivyHook().create_batch(NAME, BATCH_KWARGS)
    assert error.value.batch == NAME
    assert error.value.endpoint == f"/batches/{NAME}"


@pytest.mark.parametrize("name", ["", "123", "a/b", "../batches", "with space", None])
def test_create_batch_refuses_a_name_it_could_not_look_up(mocked_responses, name):
    with pytest.raises(ValueError, match="batch name"):
        LivyHook().create_batch(name, BATCH_KWARGS)
    assert len(mocked_responses.calls) == 0


def test_create_batch_behind_a_gateway(mocked_responses, livy_base_url):
    base = f"{livy_base_url}/gateway/livy/batches"
    mocked_responses.post(base, body=requests.ConnectionError("reset"))
    mocked_responses.get(f"{base}/{NAME}", json=batch_json(3, name=NAME))
    assert LivyHook(endpoint_prefix="gateway/livy").create_batch(NAME, BATCH_KWARGS) == 3
    assert sent(mocked_responses) == [
        ("POST", "/gateway/livy/batches"),
        ("GET", f"/gateway/livy/batches/{NAME}"),
    ]


class RecordingHook(LivyHook):
    """A DAG's hook subclass that overrides 4.6.4's ``post_batch``."""

    def __init__(self, outcome: int | Exception, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outcome = outcome
        self.posted: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def post_batch(self, *args: Any, **kwargs: Any) -> int:
        self.posted.append((args, kwargs))
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def test_create_batch_goes_through_an_overridden_post_batch(mocked_responses):
    hook = RecordingHook(99)
    assert hook.create_batch(NAME, BATCH_KWARGS) == 99
    assert hook.posted == [((), {**BATCH_KWARGS, "name": NAME})]
    assert len(mocked_responses.calls) == 0


def test_create_batch_resolves_a_lost_reply_from_an_overridden_post_batch(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/{NAME}", json=batch_json(12, name=NAME))
    hook = RecordingHook(requests.ConnectionError("reset"))
    assert hook.create_batch(NAME, BATCH_KWARGS) == 12
    assert len(hook.posted) == 1
    assert sent(mocked_responses) == [("GET", f"/batches/{NAME}")]


def test_create_batch_rejects_only_the_posts_own_4xx(mocked_responses):
    # An overridden post_batch that fails on another request (here a GET) was not refused.
    other = LivyHttpError("x", endpoint="/batches/7", http_status=403, livy_message="no", batch=7)
    hook = RecordingHook(other)
    with pytest.raises(LivyHttpError) as error:
        hook.create_batch(NAME, BATCH_KWARGS)
    assert error.value is other
    assert len(hook.posted) == 1
    assert len(mocked_responses.calls) == 0


def test_create_batch_rejects_the_posts_4xx_behind_a_gateway(mocked_responses, livy_base_url):
    mocked_responses.post(f"{livy_base_url}/gw/batches", status=404, body="<html>no route</html>")
    with pytest.raises(LivyBatchRejected) as error:
        LivyHook(endpoint_prefix="gw").create_batch(NAME, BATCH_KWARGS)
    assert error.value.http_status == 404
    assert sent(mocked_responses) == [("POST", "/gw/batches")]


def test_create_batch_with_a_mocked_post_batch(mocked_responses, livy_base_url):
    mocked_responses.get(
        f"{livy_base_url}/batches/{NAME}", status=404, json={"msg": f"Session '{NAME}' not found."}
    )
    with (
        mock.patch.object(LivyHook, "post_batch", side_effect=requests.Timeout("slow")) as post_batch,
        pytest.raises(LivyBatchNotCreated),
    ):
        LivyHook().create_batch(NAME, BATCH_KWARGS)
    post_batch.assert_called_once_with(**{**BATCH_KWARGS, "name": NAME})
    assert sent(mocked_responses) == [("GET", f"/batches/{NAME}")]


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
    assert CSRF_HEADER not in mocked_responses.calls[0].request.headers


def test_get_batch_by_name(mocked_responses, livy_base_url):
    reply = batch_json(9, name="etl-s2-0123abcd")
    mocked_responses.get(f"{livy_base_url}/batches/etl-s2-0123abcd", json=reply)
    assert LivyHook().get_batch_by_name("etl-s2-0123abcd") == reply


NOT_LIVYS_404 = [
    ("<html><body><h2>HTTP ERROR 404</h2>Not Found</body></html>", "text/html"),
    ("", "text/plain"),
    (json.dumps({"msg": "Not Found"}), "application/json"),
]
NOT_LIVYS_404_IDS = ["html", "empty", "other-json"]


@pytest.mark.parametrize(
    ("method", "path", "call", "batch"),
    [
        ("GET", "/batches/3", lambda hook: hook.get_batch(3), 3),
        ("GET", "/batches/3/state", lambda hook: hook.get_batch_state(3), 3),
        ("GET", "/batches/etl-s1-x", lambda hook: hook.get_batch_by_name("etl-s1-x"), "etl-s1-x"),
        ("DELETE", "/batches/3", lambda hook: hook.delete_batch(3), 3),
    ],
    ids=["get_batch", "get_batch_state", "get_batch_by_name", "delete_batch"],
)
@pytest.mark.parametrize(("body", "content_type"), NOT_LIVYS_404, ids=NOT_LIVYS_404_IDS)
def test_a_404_that_is_not_livys_is_not_batch_not_found(
    mocked_responses, livy_base_url, method, path, call, batch, body, content_type
):
    # Not "already gone" for delete_batch either: a gateway's 404 says nothing about the batch.
    mocked_responses.add(method, f"{livy_base_url}{path}", status=404, body=body, content_type=content_type)
    with pytest.raises(LivyHttpError) as error:
        call(LivyHook(retry_args=FAST_RETRY))
    assert type(error.value) is LivyHttpError
    assert error.value.http_status == 404
    assert error.value.batch == batch
    assert sent(mocked_responses) == [(method, path)]


@pytest.mark.parametrize(
    ("path", "call", "body"),
    [
        ("/batches/3", lambda hook: hook.get_batch(3), {"msg": "Session '3' not found."}),
        ("/batches/3", lambda hook: hook.get_batch(3), "Session '3' not found."),
        ("/batches/3/state", lambda hook: hook.get_batch_state(3), {"msg": "Session '3' not found."}),
        ("/batches/3/state", lambda hook: hook.get_batch_state(3), "Session '3' not found."),
        (
            "/batches/etl-s1-x",
            lambda hook: hook.get_batch_by_name("etl-s1-x"),
            {"msg": "Session 'etl-s1-x' not found."},
        ),
    ],
    ids=["get_batch", "get_batch-0.5", "get_batch_state", "get_batch_state-0.5", "get_batch_by_name"],
)
def test_livys_own_404_is_batch_not_found(mocked_responses, livy_base_url, path, call, body):
    mocked_responses.get(f"{livy_base_url}{path}", status=404, json=body)
    with pytest.raises(LivyBatchNotFound):
        call(LivyHook())
    assert sent(mocked_responses) == [("GET", path)]


def test_get_batch_by_name_not_found(mocked_responses, livy_base_url):
    mocked_responses.get(
        f"{livy_base_url}/batches/etl-s1-x", status=404, json={"msg": "Session 'etl-s1-x' not found."}
    )
    with pytest.raises(LivyBatchNotFound) as error:
        LivyHook().get_batch_by_name("etl-s1-x")
    assert error.value.batch == "etl-s1-x"
    assert error.value.endpoint == "/batches/etl-s1-x"


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
    assert sent(mocked_responses) == [("GET", "/batches/4/state")]


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
    assert error.value.endpoint == "/batches/4/state"
    assert error.value.batch == 4


# ---- batch ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path"), [(7, "7"), ("7", "7"), (0, "0"), (MAX_BATCH_ID, str(MAX_BATCH_ID))]
)
def test_valid_ids_reach_livy_as_integers(mocked_responses, livy_base_url, value, path):
    mocked_responses.get(f"{livy_base_url}/batches/{path}", json=batch_json(int(path)))
    LivyHook().get_batch(value)
    assert sent(mocked_responses) == [("GET", f"/batches/{path}")]


@pytest.mark.parametrize(
    "value",
    [True, None, 1.0, "abc", "-1", " 7", "", "٣", "../admin", -1, MAX_BATCH_ID + 1, "2147483648"],
)
@pytest.mark.parametrize(
    "call",
    [
        lambda hook, value: hook.get_batch(value),
        lambda hook, value: hook.get_batch_state(value),
        lambda hook, value: hook.delete_batch(value),
        lambda hook, value: hook.get_batch_logs(value, 0, 100),
        lambda hook, value: hook.dump_batch_logs(value),
    ],
    ids=["get_batch", "get_batch_state", "delete_batch", "get_batch_logs", "dump_batch_logs"],
)
def test_invalid_ids_are_refused_before_any_request(mocked_responses, call, value):
    with pytest.raises((TypeError, ValueError)):
        call(LivyHook(), value)
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


@pytest.mark.parametrize(
    "body",
    [{"msg": "Session '6' not found."}, "Session '6' not found.", {"msg": "Session 6 already stopped."}],
    ids=["livy-0.6+", "livy-0.5", "already-stopped"],
)
def test_delete_batch_already_gone(mocked_responses, livy_base_url, body):
    mocked_responses.delete(f"{livy_base_url}/batches/6", status=404, json=body)
    assert LivyHook().delete_batch(6) == {"msg": "not found"}
    assert len(mocked_responses.calls) == 1


def test_delete_batch_server_error_raises_and_is_not_retried(mocked_responses, livy_base_url):
    mocked_responses.delete(f"{livy_base_url}/batches/6", status=500, json={"msg": "kill failed"})
    with pytest.raises(LivyHttpError) as error:
        LivyHook(retry_args=FAST_RETRY).delete_batch(6)
    assert error.value.livy_message == "kill failed"
    assert len(mocked_responses.calls) == 1


# ---- logs ---------------------------------------------------------------------------------------


def _register_log_page(mock_responses, url, start, size, total, lines, status=200):
    mock_responses.get(
        url,
        status=status,
        json={"id": 2, "from": start, "total": total, "log": lines},
        match=[matchers.query_param_matcher({"from": str(start), "size": str(size)})],
    )


def test_get_batch_logs(mocked_responses, livy_base_url):
    url = f"{livy_base_url}/batches/2/log"
    _register_log_page(mocked_responses, url, 10, 5, 20, ["a", "b", "c", "d", "e"])
    page = LivyHook().get_batch_logs(2, 10, 5)
    assert page == {"id": 2, "from": 10, "total": 20, "log": ["a", "b", "c", "d", "e"]}


def test_dump_batch_logs_reads_every_page_into_the_task_log(mocked_responses, livy_base_url, livy_logs):
    url = f"{livy_base_url}/batches/2/log"
    lines = [f"log line {number:03d}" for number in range(250)]
    for start in (0, 100, 200):
        _register_log_page(mocked_responses, url, start, 100, 250, lines[start : start + 100])

    assert LivyHook().dump_batch_logs(2) is None

    assert [call.request.params["from"] for call in mocked_responses.calls] == ["0", "100", "200"]
    # Writing the lines to the task log is what dump_batch_logs is for.
    logged = [message for message in livy_logs.messages if message.startswith("log line")]
    assert logged == lines


def test_dump_batch_logs_malformed_page(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/2/log", json={"id": 2, "from": 0, "total": 3})
    with pytest.raises(LivyResponseError) as error:
        LivyHook().dump_batch_logs(2)
    assert error.value.batch == 2


def test_dump_batch_logs_http_error_raises(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/2/log", status=403, body="")
    with pytest.raises(LivyAuthError):
        LivyHook().dump_batch_logs(2)


# ---- run_method and retries -----------------------------------------------------------------------


def test_run_method_rejects_unknown_methods(mocked_responses):
    with pytest.raises(ValueError, match="Invalid http method"):
        LivyHook().run_method("/batches", "TRACE")
    assert len(mocked_responses.calls) == 0


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


def test_without_retry_args_a_read_is_sent_once(mocked_responses, livy_base_url):
    url = f"{livy_base_url}/batches/1"
    mocked_responses.get(url, status=503, body="unavailable")
    assert LivyHook().run_method("/batches/1").status_code == 503
    with pytest.raises(LivyHttpError):
        LivyHook().get_batch(1)
    assert len(mocked_responses.calls) == 2


def test_per_call_retry_args_retry_a_read(mocked_responses, livy_base_url):
    url = f"{livy_base_url}/batches/1/state"
    mocked_responses.get(url, status=500, json={"msg": "busy"})
    mocked_responses.get(url, body=requests.ConnectionError("refused"))
    mocked_responses.get(url, json={"id": 1, "state": "success"})
    assert LivyHook().get_batch_state(1, retry_args=FAST_RETRY) is BatchState.SUCCESS
    assert len(mocked_responses.calls) == 3


def _flaky(mock_responses, url, good_json):
    mock_responses.get(url, status=503, body="unavailable")
    mock_responses.get(url, body=requests.ConnectionError("refused"))
    mock_responses.get(url, json=good_json)


@pytest.mark.parametrize("set_on", ["constructor", "attribute"])
@pytest.mark.parametrize(
    ("path", "read", "good_json", "expected"),
    [
        ("/batches/1", lambda hook: hook.get_batch(1)["state"], batch_json(1, "running"), "running"),
        (
            f"/batches/{NAME}",
            lambda hook: hook.get_batch_by_name(NAME)["name"],
            batch_json(1, name=NAME),
            NAME,
        ),
        ("/batches/1/state", lambda hook: hook.get_batch_state(1).value, {"id": 1, "state": "dead"}, "dead"),
        (
            "/batches/1/log",
            lambda hook: hook.get_batch_logs(1, 0, 100)["log"],
            {"id": 1, "from": 0, "total": 1, "log": ["x"]},
            ["x"],
        ),
        ("/batches/1", lambda hook: hook.run_method("/batches/1").status_code, batch_json(1), 200),
    ],
    ids=["get_batch", "get_batch_by_name", "get_batch_state", "get_batch_logs", "run_method"],
)
def test_the_hooks_retry_args_apply_to_every_read(
    mocked_responses, livy_base_url, set_on, path, read, good_json, expected
):
    _flaky(mocked_responses, f"{livy_base_url}{path}", good_json)
    if set_on == "constructor":
        hook = LivyHook(retry_args=FAST_RETRY)
    else:
        hook = LivyHook()
        hook.retry_args = FAST_RETRY  # as the operator sets it
    assert read(hook) == expected
    assert sent(mocked_responses) == [("GET", path)] * 3


def test_the_hooks_retry_args_apply_to_dump_batch_logs(mocked_responses, livy_base_url, livy_logs):
    url = f"{livy_base_url}/batches/2/log"
    _register_log_page(mocked_responses, url, 0, 100, 2, [], status=502)
    _register_log_page(mocked_responses, url, 0, 100, 2, ["a", "b"])
    LivyHook(retry_args=FAST_RETRY).dump_batch_logs(2)
    assert len(mocked_responses.calls) == 2
    assert [message for message in livy_logs.messages if message in ("a", "b")] == ["a", "b"]


def test_per_call_retry_args_win_over_the_hooks(mocked_responses, livy_base_url):
    url = f"{livy_base_url}/batches/1/state"
    mocked_responses.get(url, status=503, body="unavailable")
    hook = LivyHook(retry_args={"stop": tenacity.stop_after_attempt(4), "wait": tenacity.wait_none()})
    with pytest.raises(LivyHttpError):
        hook.get_batch_state(
            1, retry_args={"stop": tenacity.stop_after_attempt(2), "wait": tenacity.wait_none()}
        )
    assert len(mocked_responses.calls) == 2


def test_empty_per_call_retry_args_turn_retries_off(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/1/state", status=503, body="unavailable")
    with pytest.raises(LivyHttpError):
        LivyHook(retry_args=FAST_RETRY).get_batch_state(1, retry_args={})
    assert len(mocked_responses.calls) == 1


def test_hook_retry_args_without_a_stop_give_up_after_five_reads(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/1", status=503, body="unavailable")
    with pytest.raises(LivyHttpError) as error:
        LivyHook(retry_args={"wait": tenacity.wait_none()}).get_batch(1)
    assert error.value.http_status == 503
    assert len(mocked_responses.calls) == 5


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_4xx_reads_are_not_retried(mocked_responses, livy_base_url, status):
    url = f"{livy_base_url}/batches/1"
    mocked_responses.get(url, status=status, json={"msg": "client error"})
    mocked_responses.get(url, json=batch_json(1))
    with pytest.raises(LivyHttpError) as error:
        LivyHook(retry_args=FAST_RETRY).get_batch(1)
    assert error.value.http_status == status
    assert len(mocked_responses.calls) == 1


def test_exhausted_retries_raise_the_typed_error(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/1/state", status=503, json={"msg": "still down"})
    with pytest.raises(LivyHttpError) as error:
        LivyHook(retry_args=FAST_RETRY).get_batch_state(1)
    assert error.value.http_status == 503
    assert error.value.livy_message == "still down"
    assert len(mocked_responses.calls) == 3


def test_exhausted_retries_reraise_the_connection_error(mocked_responses, livy_base_url):
    mocked_responses.get(f"{livy_base_url}/batches/1", body=requests.ConnectionError("refused"))
    with pytest.raises(requests.ConnectionError, match="refused"):
        LivyHook(retry_args=FAST_RETRY).get_batch(1)
    assert len(mocked_responses.calls) == 3


class ReleasedStyleHook(LivyHook):
    """A DAG's subclass written for 4.6.4: ``get_batch(self, session_id)``, no ``retry_args``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asked: list[Any] = []

    def get_batch(self, session_id):
        self.asked.append(session_id)
        batch = super().get_batch(session_id)
        return {**batch, "seen_by_subclass": True}


def test_a_released_style_get_batch_override_still_works(mocked_responses, livy_base_url):
    _flaky(mocked_responses, f"{livy_base_url}/batches/3", batch_json(3, "running"))
    hook = ReleasedStyleHook(retry_args=FAST_RETRY)
    assert hook.get_batch(3)["seen_by_subclass"] is True
    assert hook.asked == [3]
    # The hook's retry_args reach the override's super() call without a parameter.
    assert len(mocked_responses.calls) == 3


def test_released_style_override_is_called_with_the_id_only(mocked_responses, livy_base_url):
    # Every caller in the provider calls get_batch(session_id); a keyword would break this override.
    hook = ReleasedStyleHook()
    with mock.patch.object(LivyHook, "get_batch", return_value=batch_json(3)) as parent:
        assert hook.get_batch(3)["id"] == 3
    parent.assert_called_once_with(3)


# ---- typed errors, as the hook raises them ----------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "method", "endpoint", "batch"),
    [
        (lambda hook: hook.get_batch(3), "GET", "/batches/3", 3),
        (lambda hook: hook.get_batch_state("3"), "GET", "/batches/3/state", 3),
        (lambda hook: hook.get_batch_logs(3, 0, 10), "GET", "/batches/3/log", 3),
        (lambda hook: hook.get_batch_by_name("etl-s1-x"), "GET", "/batches/etl-s1-x", "etl-s1-x"),
        (lambda hook: hook.delete_batch(3), "DELETE", "/batches/3", 3),
        (lambda hook: hook.post_batch(file="a.py", name="etl-s1-x"), "POST", "/batches", "etl-s1-x"),
    ],
    ids=["get_batch", "get_batch_state", "get_batch_logs", "get_batch_by_name", "delete_batch", "post_batch"],
)
def test_errors_name_the_batch_and_the_endpoint(
    mocked_responses, livy_base_url, call, method, endpoint, batch
):
    mocked_responses.add(method, f"{livy_base_url}{endpoint}", status=502, json={"msg": "bad gateway"})
    with pytest.raises(LivyHttpError) as error:
        call(LivyHook())
    assert isinstance(error.value, AirflowException)
    assert error.value.http_status == 502
    assert error.value.endpoint == endpoint
    assert error.value.batch == batch
    assert error.value.livy_message == "bad gateway"


def test_html_success_page_is_a_response_error(mocked_responses, livy_base_url):
    page = "<html><head><title>Knox login</title></head><body>Please sign in</body></html>"
    mocked_responses.get(f"{livy_base_url}/batches/3/state", body=page, content_type="text/html")
    with pytest.raises(LivyResponseError) as error:
        LivyHook().get_batch_state(3)
    assert error.value.endpoint == "/batches/3/state"
    assert error.value.batch == 3
    assert "Knox login" in str(error.value)


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


@pytest.mark.parametrize("size", ["512m", "512M", "2g", "2G", "1gb", "10KB", "3t", "1p"])
def test_valid_memory_sizes(size):
    body = LivyHook.build_post_batch_body(file="app.py", driver_memory=size, executor_memory=size)
    assert body["driverMemory"] == size
    assert body["executorMemory"] == size


@pytest.mark.parametrize("field", ["driver_memory", "executor_memory"])
@pytest.mark.parametrize("size", ["1x", "abc", "1.5g", "-1g", "1 g", "g", "1gg", 512, "512", "7b"])
def test_invalid_memory_sizes(field, size):
    with pytest.raises(ValueError, match=field):
        LivyHook.build_post_batch_body(file="app.py", **{field: size})


@pytest.mark.parametrize("field", ["args", "jars", "py_files", "files", "archives"])
@pytest.mark.parametrize("value", ["a.jar", {"a": "b"}, 5])
def test_list_fields_must_be_lists(field, value):
    with pytest.raises(ValueError, match=field):
        LivyHook.build_post_batch_body(file="app.py", **{field: value})


@pytest.mark.parametrize("item", [None, {"x": 1}, ["nested"]])
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


# ---- the triggerer's auth class -----------------------------------------------------------------------


def test_async_auth_type_without_an_auth_class():
    assert async_auth_type(None) is None


def test_async_auth_type_of_basic_auth():
    # Whatever form it takes (a class or its dotted path), the trigger resolves it to aiohttp's.
    assert import_class(async_auth_type(requests.auth.HTTPBasicAuth)) is aiohttp.BasicAuth


def test_async_auth_type_reaches_the_triggers_hook():
    trigger = LivyTrigger(batch_id=1, spark_params={}, auth_type=async_auth_type(requests.auth.HTTPBasicAuth))
    _, kwargs = trigger.serialize()
    module_name, _, attribute = kwargs["auth_type"].rpartition(".")
    assert getattr(importlib.import_module(module_name), attribute) is aiohttp.BasicAuth
    assert LivyTrigger(**kwargs)._get_async_hook().auth_type is aiohttp.BasicAuth


class BasicAuthSubclass(requests.auth.HTTPBasicAuth):
    """A subclass may do anything on the wire; it has no aiohttp counterpart."""


@pytest.mark.parametrize(
    "auth_type",
    [
        requests.auth.HTTPDigestAuth,
        requests.auth.HTTPProxyAuth,
        TokenAuth,
        NoCredentialsAuth,
        BasicAuthSubclass,
    ],
    ids=lambda auth_type: auth_type.__name__,
)
def test_async_auth_type_without_a_counterpart(auth_type):
    # 4.6.4's triggerer used aiohttp's basic auth with the connection's login whatever the class.
    assert async_auth_type(auth_type) is None


class TestRetriedReads:
    """``LivyHook.retried_reads``: how the durable wait learns that Livy failed for a moment."""

    def test_a_read_that_needed_another_attempt_is_counted_once(self, mocked_responses, livy_base_url):
        url = f"{livy_base_url}/batches/1/state"
        mocked_responses.get(url, status=503, body="restarting")
        mocked_responses.get(url, body=requests.ConnectionError("refused"))
        mocked_responses.get(url, json={"id": 1, "state": "running"})
        hook = LivyHook()
        hook.retry_args = FAST_RETRY
        assert hook.get_batch_state(1) is BatchState.RUNNING
        assert hook.retried_reads == 1
        assert hook.get_batch_state(1) is BatchState.RUNNING
        assert (hook.retried_reads, len(mocked_responses.calls)) == (1, 4), "answered at once: not counted"

    def test_without_retry_args_nothing_is_counted(self, mocked_responses, livy_base_url):
        mocked_responses.get(f"{livy_base_url}/batches/1/state", json={"id": 1, "state": "running"})
        hook = LivyHook()
        hook.get_batch_state(1)
        assert hook.retried_reads == 0
