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
The asynchronous LivyAsyncHook, through its real ``aiohttp`` client.

The replies come from the ``livy_server`` fixture, a scripted Livy listening on 127.0.0.1
(``aioresponses`` cannot build responses for the aiohttp 3.14 the provider requires).
"""

from __future__ import annotations

import base64
import json
import socket

import aiohttp
import pytest

from airflow.providers.apache.livy.hooks.livy import BatchState, LivyAsyncHook
from unit.apache.livy.gateway_auth import GatewayAuth

CSRF_HEADER = "X-Requested-By"


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- run_method -------------------------------------------------------------------------------------


async def test_run_method_success(livy_server):
    livy_server.reply("GET", "/batches/1", json_body={"id": 1, "state": "running"})
    result = await LivyAsyncHook().run_method("/batches/1", "GET")
    assert result == {"status": "success", "response": {"id": 1, "state": "running"}}
    assert livy_server.paths() == ["/batches/1"]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 500, 503])
async def test_run_method_http_error_is_a_dict(livy_server, status):
    livy_server.reply("GET", "/batches/1", status=status, json_body={"msg": f"livy says {status}"})
    result = await LivyAsyncHook().run_method("/batches/1", "GET")
    assert result["status"] == "error"
    assert result["status_code"] == status
    assert f"livy says {status}" in result["response"]
    assert "/batches/1" in result["response"]
    assert len(livy_server.requests) == 1


async def test_run_method_bare_string_error_is_surfaced(livy_server):
    livy_server.reply("GET", "/batches/1", status=400, json_body="For input string: x")
    result = await LivyAsyncHook().run_method("/batches/1", "GET")
    assert result["status"] == "error"
    assert "For input string: x" in result["response"]


async def test_run_method_html_body_is_an_error(livy_server):
    livy_server.reply(
        "GET", "/batches/1", body="<html>Sign in to the gateway</html>", content_type="text/html"
    )
    result = await LivyAsyncHook().run_method("/batches/1", "GET")
    assert result["status"] == "error"
    assert result["status_code"] is None
    assert "Sign in to the gateway" in result["response"]
    assert "/batches/1" in result["response"]


@pytest.mark.parametrize(
    "call",
    [
        lambda hook: hook.run_method("/batches/1", "GET"),
        lambda hook: hook.run_method("/batches/1", "DELETE"),
        lambda hook: hook.get_batch_state(1),
        lambda hook: hook.get_batch(1),
        lambda hook: hook.get_batch_logs(1, 0, 100),
        lambda hook: hook.dump_batch_logs(1),
        lambda hook: hook.delete_batch(1),
    ],
    ids=[
        "run_method-get",
        "run_method-delete",
        "get_batch_state",
        "get_batch",
        "get_batch_logs",
        "dump_batch_logs",
        "delete_batch",
    ],
)
async def test_unreachable_livy_raises(make_livy_conn, call):
    # As in 4.6.4: a transport error is not an answer from Livy, so it is not turned into a dict.
    make_livy_conn("livy_down", port=free_loopback_port())
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(LivyAsyncHook(livy_conn_id="livy_down"))


async def test_timeout_raises(livy_server):
    livy_server.reply("GET", "/batches/1/state", json_body={"id": 1, "state": "running"}, delay=0.5)
    hook = LivyAsyncHook(extra_options={"timeout": aiohttp.ClientTimeout(total=0.05)})
    with pytest.raises(TimeoutError):
        await hook.get_batch_state(1)
    assert livy_server.paths() == ["/batches/1/state"]


async def test_run_method_invalid_method(livy_server):
    result = await LivyAsyncHook().run_method("/batches/1", "TRACE")
    assert result["status"] == "error"
    assert "Invalid http method" in result["response"]
    assert livy_server.requests == []


async def test_run_method_takes_the_endpoint_as_given(livy_server):
    livy_server.reply("GET", "/version", json_body={"version": "0.9.0"})
    result = await LivyAsyncHook(endpoint_prefix="/gw").run_method("/version", "GET")
    assert result == {"status": "success", "response": {"version": "0.9.0"}}


# ---- batch state ------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [member.value for member in BatchState])
async def test_get_batch_state(livy_server, state):
    livy_server.reply("GET", "/batches/3/state", json_body={"id": 3, "state": state})
    result = await LivyAsyncHook().get_batch_state(3)
    assert result["status"] == "success"
    assert result["batch_state"] is BatchState(state)
    assert livy_server.paths() == ["/batches/3/state"]
    assert livy_server.requests[0].method == "GET"


async def test_get_batch_state_unknown_state(livy_server):
    livy_server.reply("GET", "/batches/3/state", json_body={"id": 3, "state": "hibernating"})
    result = await LivyAsyncHook().get_batch_state("3")
    assert result["status"] == "success"
    assert result["batch_state"].name == "UNKNOWN"
    assert result["batch_state"].value == "hibernating"


@pytest.mark.parametrize("status", [404, 500])
async def test_get_batch_state_http_error_does_not_raise(livy_server, status):
    livy_server.reply("GET", "/batches/3/state", status=status, json_body={"msg": "Session '3' not found."})
    result = await LivyAsyncHook().get_batch_state(3)
    assert result["status"] == "error"
    assert result["batch_state"] == "error"
    assert result["status_code"] == status
    assert "batch 3" in result["response"]
    assert "Session '3' not found." in result["response"]


@pytest.mark.parametrize(
    "reply", [{"id": 3}, {"id": 3, "state": None}, {"id": 3, "state": 1}, ["running"], "running"]
)
async def test_get_batch_state_unreadable_reply(livy_server, reply):
    livy_server.reply("GET", "/batches/3/state", json_body=reply)
    result = await LivyAsyncHook().get_batch_state(3)
    assert result["status"] == "error"
    assert result["batch_state"] == "error"
    assert result["status_code"] is None


async def test_get_batch_state_rejects_a_bad_id(livy_server):
    with pytest.raises(TypeError):
        await LivyAsyncHook().get_batch_state("../3")
    assert livy_server.requests == []


# ---- batch, logs ------------------------------------------------------------------------------------


async def test_get_batch(livy_server):
    batch = {"id": 3, "name": "etl-s1-abc", "state": "running", "appId": None}
    livy_server.reply("GET", "/batches/3", json_body=batch)
    assert await LivyAsyncHook().get_batch(3) == {"status": "success", "response": batch}


async def test_get_batch_not_found(livy_server):
    livy_server.reply("GET", "/batches/3", status=404, json_body={"msg": "Session '3' not found."})
    result = await LivyAsyncHook().get_batch(3)
    assert result["status"] == "error"
    assert result["status_code"] == 404


LIVYS_404 = [{"msg": "Session '3' not found."}, "Session '3' not found."]
NOT_LIVYS_404 = [
    ("<html><body><h2>HTTP ERROR 404</h2>Not Found</body></html>", "text/html"),
    ("", "text/plain"),
    ('{"msg": "Not Found"}', "application/json"),
    ('{"msg": "Session \'7\' not found."}', "application/json"),
]
NOT_LIVYS_404_IDS = ["html", "empty", "other-json", "another-batch"]


@pytest.mark.parametrize("body", LIVYS_404, ids=["livy-0.6+", "livy-0.5"])
@pytest.mark.parametrize(
    ("path", "call"),
    [
        ("/batches/3", lambda hook: hook.get_batch(3)),
        ("/batches/3/state", lambda hook: hook.get_batch_state(3)),
    ],
    ids=["get_batch", "get_batch_state"],
)
async def test_livys_own_404_is_marked_batch_not_found(livy_server, path, call, body):
    livy_server.reply("GET", path, status=404, json_body=body)
    result = await call(LivyAsyncHook())
    assert result["status"] == "error"
    assert result["status_code"] == 404
    assert result["batch_not_found"] is True


@pytest.mark.parametrize(("body", "content_type"), NOT_LIVYS_404, ids=NOT_LIVYS_404_IDS)
@pytest.mark.parametrize(
    ("path", "call"),
    [
        ("/batches/3", lambda hook: hook.get_batch(3)),
        ("/batches/3/state", lambda hook: hook.get_batch_state(3)),
    ],
    ids=["get_batch", "get_batch_state"],
)
async def test_another_404_is_not_batch_not_found(livy_server, path, call, body, content_type):
    livy_server.reply("GET", path, status=404, body=body, content_type=content_type)
    result = await call(LivyAsyncHook())
    assert result["status"] == "error"
    assert result["status_code"] == 404
    assert result["batch_not_found"] is False
    assert "not Livy's own" in result["response"]


# ---- delete --------------------------------------------------------------------------------------


async def test_delete_batch(livy_server):
    livy_server.reply("DELETE", "/batches/3", json_body={"msg": "deleted"})
    result = await LivyAsyncHook(extra_headers={"X-Tenant": "blue"}).delete_batch(3)
    assert result == {"status": "success", "response": {"msg": "deleted"}}
    request = livy_server.requests[0]
    assert (request.method, request.path) == ("DELETE", "/batches/3")
    assert request.headers[CSRF_HEADER]
    assert request.headers["X-Tenant"] == "blue"


async def test_delete_batch_behind_a_gateway(livy_server):
    livy_server.reply("DELETE", "/gw/livy/batches/3", json_body={"msg": "deleted"})
    result = await LivyAsyncHook(endpoint_prefix="gw/livy/").delete_batch("3")
    assert result["status"] == "success"
    assert [(r.method, r.path) for r in livy_server.requests] == [("DELETE", "/gw/livy/batches/3")]


@pytest.mark.parametrize(
    "body",
    [*LIVYS_404, {"msg": "Session 3 already stopped."}],
    ids=["livy-0.6+", "livy-0.5", "already-stopped"],
)
async def test_delete_batch_livys_not_found_is_done(livy_server, body):
    livy_server.reply("DELETE", "/batches/3", status=404, json_body=body)
    result = await LivyAsyncHook().delete_batch(3)
    assert result == {"status": "success", "response": "not found"}
    assert len(livy_server.requests) == 1


@pytest.mark.parametrize(("body", "content_type"), NOT_LIVYS_404, ids=NOT_LIVYS_404_IDS)
async def test_delete_batch_another_404_is_an_error(livy_server, body, content_type):
    livy_server.reply("DELETE", "/batches/3", status=404, body=body, content_type=content_type)
    result = await LivyAsyncHook().delete_batch(3)
    assert result["status"] == "error"
    assert result["status_code"] == 404
    assert result["batch_not_found"] is False
    assert len(livy_server.requests) == 1


@pytest.mark.parametrize("status", [400, 403, 500])
async def test_delete_batch_error_reply_is_a_dict(livy_server, status):
    livy_server.reply("DELETE", "/batches/3", status=status, json_body={"msg": "kill failed"})
    result = await LivyAsyncHook().delete_batch(3)
    assert result["status"] == "error"
    assert result["status_code"] == status
    assert "kill failed" in result["response"]
    assert len(livy_server.requests) == 1


@pytest.mark.parametrize("value", ["../3", "-1", None, True, 2**31])
async def test_delete_batch_rejects_a_bad_id(livy_server, value):
    with pytest.raises((TypeError, ValueError)):
        await LivyAsyncHook().delete_batch(value)
    assert livy_server.requests == []


# ---- logs ------------------------------------------------------------------------------------------


async def test_get_batch_logs(livy_server):
    page = {"id": 3, "from": 20, "total": 30, "log": ["a", "b"]}
    livy_server.reply("GET", "/batches/3/log", json_body=page, query={"from": 20, "size": 10})
    result = await LivyAsyncHook().get_batch_logs(3, 20, 10)
    assert result == {"status": "success", "response": page}
    assert livy_server.requests[0].query == {"from": "20", "size": "10"}


def _log_page(livy_server, start, total, lines, size=100):
    livy_server.reply(
        "GET",
        "/batches/3/log",
        json_body={"id": 3, "from": start, "total": total, "log": lines},
        query={"from": start, "size": size},
    )


async def test_dump_batch_logs_reads_every_page(livy_server, livy_logs):
    lines = [f"log line {number:03d}" for number in range(250)]
    for start in (0, 100, 200):
        _log_page(livy_server, start, 250, lines[start : start + 100])
    result = await LivyAsyncHook().dump_batch_logs(3)
    assert result == lines
    assert [request.query["from"] for request in livy_server.requests] == ["0", "100", "200"]
    assert [message for message in livy_logs.messages if message.startswith("log line")] == lines


async def test_dump_batch_logs_stops_at_an_empty_page(livy_server):
    _log_page(livy_server, 0, 500, ["only"])
    _log_page(livy_server, 1, 500, [])
    assert await LivyAsyncHook().dump_batch_logs(3) == ["only"]
    assert len(livy_server.requests) == 2


async def test_dump_batch_logs_http_error_returns_the_error(livy_server):
    livy_server.reply("GET", "/batches/3/log", status=403, body="")
    result = await LivyAsyncHook().dump_batch_logs(3)
    assert isinstance(result, str)
    assert "403" in result


async def test_dump_batch_logs_error_on_a_later_page(livy_server):
    _log_page(livy_server, 0, 150, ["x"] * 100)
    livy_server.reply(
        "GET", "/batches/3/log", status=500, json_body={"msg": "gc"}, query={"from": 100, "size": 100}
    )
    result = await LivyAsyncHook().dump_batch_logs(3)
    assert isinstance(result, str)
    assert "gc" in result


async def test_dump_batch_logs_page_without_log(livy_server):
    livy_server.reply("GET", "/batches/3/log", json_body={"id": 3, "from": 0, "total": 3})
    result = await LivyAsyncHook().dump_batch_logs(3)
    assert isinstance(result, str)
    assert "'log'" in result


# ---- prefix, headers, auth ----------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["gateway/livy", "/gateway/livy", "/gateway/livy/"])
async def test_endpoint_prefix_is_applied_exactly_once(livy_server, prefix):
    base = "/gateway/livy/batches/3"
    livy_server.reply("GET", f"{base}/state", json_body={"id": 3, "state": "running"})
    livy_server.reply("GET", base, json_body={"id": 3, "state": "running"})
    livy_server.reply("GET", f"{base}/log", json_body={"id": 3, "from": 0, "total": 1, "log": ["l"]})
    hook = LivyAsyncHook(endpoint_prefix=prefix)
    assert (await hook.get_batch_state(3))["status"] == "success"
    assert (await hook.get_batch(3))["status"] == "success"
    assert await hook.dump_batch_logs(3) == ["l"]
    assert livy_server.paths() == [f"{base}/state", base, f"{base}/log"]


async def test_headers_on_get(livy_server):
    livy_server.reply("GET", "/batches/3/state", json_body={"id": 3, "state": "running"})
    await LivyAsyncHook(extra_headers={"X-Tenant": "blue"}).get_batch_state(3)
    headers = livy_server.requests[0].headers
    assert headers["X-Tenant"] == "blue"
    assert headers["Accept"] == "application/json"


@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT", "PATCH"])
async def test_csrf_and_extra_headers_on_non_get(livy_server, method):
    livy_server.reply(method, "/batches/3", json_body={"msg": "deleted"})
    result = await LivyAsyncHook(extra_headers={"X-Tenant": "blue"}).run_method("/batches/3", method)
    assert result == {"status": "success", "response": {"msg": "deleted"}}
    request = livy_server.requests[0]
    assert request.method == method
    assert request.headers[CSRF_HEADER]
    assert request.headers["X-Tenant"] == "blue"


async def test_caller_csrf_value_is_kept(livy_server):
    livy_server.reply("DELETE", "/batches/3", json_body={"msg": "deleted"})
    await LivyAsyncHook(extra_headers={CSRF_HEADER: "team-a"}).run_method("/batches/3", "DELETE")
    assert livy_server.requests[0].headers[CSRF_HEADER] == "team-a"


async def test_custom_auth_type_is_used(livy_server, monkeypatch):
    monkeypatch.setattr(GatewayAuth, "created", [])
    livy_server.connection(login="alice", password="wonderland")
    livy_server.reply("GET", "/batches/3/state", json_body={"id": 3, "state": "running"})
    await LivyAsyncHook(auth_type=GatewayAuth).get_batch_state(3)
    # The hook builds the auth from the connection with the class it was given...
    assert [(auth.login, auth.password) for auth in GatewayAuth.created] == [("alice", "wonderland")]
    # ...and the credentials reach Livy. (The http provider's SessionConfig turns any BasicAuth
    # subclass back into a plain BasicAuth, so an overridden encode() would not survive.)
    expected = "Basic " + base64.b64encode(b"alice:wonderland").decode()
    assert livy_server.requests[0].headers["Authorization"] == expected


async def test_default_auth_is_basic_auth(livy_server):
    livy_server.connection(login="alice", password="wonderland")
    livy_server.reply("GET", "/batches/3", json_body={"id": 3, "state": "running"})
    hook = LivyAsyncHook()
    assert hook.auth_type is aiohttp.BasicAuth
    await hook.get_batch(3)
    expected = "Basic " + base64.b64encode(b"alice:wonderland").decode()
    assert livy_server.requests[0].headers["Authorization"] == expected


async def test_no_auth_without_login(livy_server):
    livy_server.reply("GET", "/batches/3", json_body={"id": 3, "state": "running"})
    await LivyAsyncHook(auth_type=GatewayAuth).get_batch(3)
    assert "Authorization" not in livy_server.requests[0].headers


async def test_password_is_not_in_error_results(livy_server, livy_logs):
    livy_server.connection(login="alice", password="never-print-this-pw")
    livy_server.reply("GET", "/batches/3/state", status=401, body="")
    result = await LivyAsyncHook().get_batch_state(3)
    assert result["status_code"] == 401
    assert "never-print-this-pw" not in json.dumps(result)
    assert livy_logs.warnings()
    assert "never-print-this-pw" not in livy_logs.text


async def test_connection_id_selects_the_connection(livy_server):
    livy_server.connection("livy_other", extra={"X-From-Extra": "yes"})
    livy_server.reply("GET", "/batches/3/state", json_body={"id": 3, "state": "success"})
    result = await LivyAsyncHook(livy_conn_id="livy_other").get_batch_state(3)
    assert result["batch_state"] is BatchState.SUCCESS
    assert livy_server.requests[0].headers["X-From-Extra"] == "yes"


def test_constructor():
    hook = LivyAsyncHook(
        livy_conn_id="other", extra_options={"ssl": False}, extra_headers={"X-A": "1"}, endpoint_prefix="gw/"
    )
    assert hook.http_conn_id == "other"
    assert hook.extra_options == {"ssl": False}
    assert hook.extra_headers == {"X-A": "1"}
    assert hook.endpoint_prefix == "/gw"
    assert hook.auth_type is aiohttp.BasicAuth
    assert LivyAsyncHook(auth_type=GatewayAuth).auth_type is GatewayAuth
