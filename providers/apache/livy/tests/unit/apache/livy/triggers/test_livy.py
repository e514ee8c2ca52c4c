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
LivyTrigger: serialization, and polling through the real LivyAsyncHook and ``aiohttp``.

The replies come from the ``livy_server`` fixture, a scripted Livy listening on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import importlib
import inspect
import socket
import time
from datetime import timedelta
from typing import Any
from unittest import mock

import aiohttp
import pytest
from airflow.serialization.serialized_objects import BaseSerialization

from airflow.providers.apache.livy.hooks.livy import BatchState, LivyAsyncHook
from airflow.providers.apache.livy.triggers import livy as trigger_module
from airflow.providers.apache.livy.triggers.livy import LivyTrigger
from airflow.providers.apache.livy.utils.batch_record import IdentityChecks
from unit.apache.livy.gateway_auth import GatewayAuth

CLASSPATH = "airflow.providers.apache.livy.triggers.livy.LivyTrigger"
SECRET = "s3-secret-key-value-123"
POLL = 0.01
NAME = "airflow-etl-spark_job-t1-s1-0123456789"

SPARK_PARAMS: dict[str, Any] = {
    "file": "s3://bucket/app.py",
    "class_name": None,
    "args": ["--day", "2026-01-01"],
    "name": "etl",
    "proxy_user": "carol",
    "conf": {"spark.hadoop.fs.s3a.secret.key": SECRET, "spark.executor.instances": "4"},
}


def import_string(dotted_path: str) -> Any:
    module_name, _, name = dotted_path.rpartition(".")
    return getattr(importlib.import_module(module_name), name)


def full_trigger(**overrides: Any) -> LivyTrigger:
    arguments: dict[str, Any] = {
        "batch_id": 3,
        "spark_params": copy.deepcopy(SPARK_PARAMS),
        "livy_conn_id": "livy_prod",
        "polling_interval": 30,
        "extra_options": {"ssl": False},
        "extra_headers": {"X-Tenant": "blue"},
        "execution_timeout": timedelta(hours=2),
        "endpoint_prefix": "/gateway/livy",
        "auth_type": GatewayAuth,
        "batch_name": "etl-s1-0123456789",
        "app_id": "application_1700000000000_0042",
        "on_kill_action": "keep_batch",
        "redeferrals": 2,
        **overrides,
    }
    return LivyTrigger(**arguments)


async def run_trigger(trigger: LivyTrigger) -> dict[str, Any]:
    events = [event async for event in trigger.run()]
    assert len(events) == 1
    return events[0].payload


# ---- serialization ------------------------------------------------------------------------------


def test_signature_keeps_the_released_parameters():
    parameters = list(inspect.signature(LivyTrigger.__init__).parameters.items())[1:]
    released = [
        ("batch_id", inspect.Parameter.empty),
        ("spark_params", inspect.Parameter.empty),
        ("livy_conn_id", "livy_default"),
        ("polling_interval", 0),
        ("extra_options", None),
        ("extra_headers", None),
        ("livy_hook_async", None),
        ("execution_timeout", None),
        ("endpoint_prefix", None),
    ]
    assert [(name, parameter.default) for name, parameter in parameters[: len(released)]] == released
    assert [(name, parameter.default) for name, parameter in parameters[len(released) :]] == [
        ("auth_type", None),
        ("batch_name", None),
        ("app_id", None),
        ("on_kill_action", "delete_batch"),
        ("redeferrals", 0),
        ("report_links", False),
        ("follow_log", False),
        ("log_cursor", None),
    ]


def test_serialize_round_trips():
    trigger = full_trigger()
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    trigger_class = import_string(classpath)
    assert trigger_class is LivyTrigger

    rebuilt = trigger_class(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["batch_id"] == 3
    assert kwargs["livy_conn_id"] == "livy_prod"
    assert kwargs["polling_interval"] == 30
    assert kwargs["extra_options"] == {"ssl": False}
    assert kwargs["extra_headers"] == {"X-Tenant": "blue"}
    assert kwargs["execution_timeout"] == timedelta(hours=2)
    assert kwargs["endpoint_prefix"] == "/gateway/livy"
    assert kwargs["batch_name"] == "etl-s1-0123456789"
    assert kwargs["app_id"] == "application_1700000000000_0042"
    assert kwargs["on_kill_action"] == "keep_batch"
    assert kwargs["redeferrals"] == 2
    assert kwargs["livy_hook_async"] is None  # as 4.6.4 serialized it: a hook is never serialized


def test_a_trigger_built_with_4_6_4s_arguments_serializes_as_it_did():
    _, kwargs = LivyTrigger(batch_id=1, spark_params={}).serialize()
    assert list(kwargs) == [
        "batch_id",
        "spark_params",
        "livy_conn_id",
        "polling_interval",
        "extra_options",
        "extra_headers",
        "livy_hook_async",
        "execution_timeout",
        "endpoint_prefix",
    ]
    rebuilt = LivyTrigger(**kwargs)
    assert (rebuilt._batch_name, rebuilt._on_kill_action, rebuilt._redeferrals) == (None, "delete_batch", 0)


def test_a_4_6_4_style_serialized_trigger_still_builds():
    # A trigger row written before on_kill_action and redeferrals existed.
    kwargs = {
        "batch_id": 3,
        "spark_params": {},
        "livy_conn_id": "livy_default",
        "polling_interval": 30,
        "extra_options": None,
        "extra_headers": None,
        "execution_timeout": None,
        "endpoint_prefix": None,
    }
    trigger = LivyTrigger(**kwargs)
    assert (trigger._on_kill_action, trigger._redeferrals) == ("delete_batch", 0)
    assert trigger.serialize()[1] == {**kwargs, "livy_hook_async": None}


@pytest.mark.parametrize("action", ["delete", "keep", "", None, "KEEP_BATCH"])
def test_an_unknown_on_kill_action_is_refused(action):
    with pytest.raises(ValueError, match="on_kill_action"):
        LivyTrigger(batch_id=1, spark_params={}, on_kill_action=action)


def test_serialized_kwargs_survive_airflow_serialization():
    classpath, kwargs = full_trigger().serialize()
    restored = BaseSerialization.deserialize(BaseSerialization.serialize(kwargs))
    assert restored == kwargs
    assert LivyTrigger(**restored).serialize() == (classpath, kwargs)


def test_serialized_conf_values_are_redacted():
    original = copy.deepcopy(SPARK_PARAMS)
    trigger = full_trigger(spark_params=original)
    _, kwargs = trigger.serialize()
    assert kwargs["spark_params"]["conf"] == {
        "spark.hadoop.fs.s3a.secret.key": "***",
        "spark.executor.instances": "***",
    }
    assert SECRET not in repr(kwargs)
    assert SECRET not in repr(BaseSerialization.serialize(kwargs))
    for key in ("file", "class_name", "args", "name", "proxy_user"):
        assert kwargs["spark_params"][key] == SPARK_PARAMS[key]
    # The caller's dict (the operator's spark_params) is not modified.
    assert original == SPARK_PARAMS


@pytest.mark.parametrize("spark_params", [{}, None, {"file": "a.py"}, {"file": "a.py", "conf": None}])
def test_spark_params_without_conf(spark_params):
    _, kwargs = LivyTrigger(batch_id=1, spark_params=spark_params).serialize()
    assert kwargs["spark_params"] == (spark_params or {})


def test_auth_type_is_serialized_as_a_dotted_path_and_imported_back():
    _, kwargs = full_trigger().serialize()
    assert kwargs["auth_type"] == f"{GatewayAuth.__module__}.GatewayAuth"
    hook = LivyTrigger(**kwargs)._get_async_hook()
    assert hook.auth_type is GatewayAuth


def test_library_auth_type_round_trips():
    _, kwargs = full_trigger(auth_type=aiohttp.BasicAuth).serialize()
    assert import_string(kwargs["auth_type"]) is aiohttp.BasicAuth
    assert LivyTrigger(**kwargs)._get_async_hook().auth_type is aiohttp.BasicAuth


def test_default_auth_type():
    _, kwargs = LivyTrigger(batch_id=1, spark_params={}).serialize()
    assert "auth_type" not in kwargs
    assert LivyTrigger(**kwargs)._get_async_hook().auth_type is aiohttp.BasicAuth


def test_hook_is_built_from_the_serialized_arguments():
    _, kwargs = full_trigger().serialize()
    hook = LivyTrigger(**kwargs)._get_async_hook()
    assert isinstance(hook, LivyAsyncHook)
    assert hook.http_conn_id == "livy_prod"
    assert hook.endpoint_prefix == "/gateway/livy"
    assert hook.extra_headers == {"X-Tenant": "blue"}
    assert hook.extra_options == {"ssl": False}


# ---- polling ------------------------------------------------------------------------------------


async def test_success_event(livy_server):
    for state in ("starting", "running", "success"):
        livy_server.reply("GET", "/batches/1/state", json_body={"id": 1, "state": state})
    event = await run_trigger(LivyTrigger(batch_id=1, spark_params={}, polling_interval=POLL))
    assert event == {
        "status": "success",
        "batch_id": 1,
        "response": "Batch 1 succeeded",
        "log_lines": None,
        "state": "success",
    }
    # The log is not read here: the worker shows it once (execute_complete).
    assert livy_server.paths() == ["/batches/1/state"] * 3


@pytest.mark.parametrize("state", ["dead", "killed", "error"])
async def test_failed_batch_gives_an_error_event_with_its_state(livy_server, state):
    livy_server.reply("GET", "/batches/1/state", json_body={"id": 1, "state": "running"})
    livy_server.reply("GET", "/batches/1/state", json_body={"id": 1, "state": state})
    event = await run_trigger(LivyTrigger(batch_id=1, spark_params={}, polling_interval=POLL))
    assert event["status"] == "error"
    assert event["state"] == state
    assert event["response"] == "Batch 1 did not succeed"
    assert event["log_lines"] is None
    assert event["transient"] is False
    assert livy_server.paths() == ["/batches/1/state"] * 2


@pytest.mark.parametrize("state", ["recovering", "not_started", "hibernating"])
async def test_non_terminal_states_keep_polling(livy_server, state):
    livy_server.reply("GET", "/batches/1/state", json_body={"id": 1, "state": state})
    livy_server.reply("GET", "/batches/1/state", json_body={"id": 1, "state": "success"})
    event = await run_trigger(LivyTrigger(batch_id=1, spark_params={}, polling_interval=POLL))
    assert event["status"] == "success"
    assert livy_server.paths() == ["/batches/1/state"] * 2


UNREADABLE_REPLIES = [
    # status, body, content type, a text the response shows, transient
    (404, '{"msg": "Session \'1\' not found."}', "application/json", "not found", False),
    (404, "<html>Knox: no such topology</html>", "text/html", "Knox", False),
    (400, '{"msg": "For input string: x"}', "application/json", "For input string", False),
    (401, "", "text/plain", "401", False),
    (403, '{"msg": "User not authorised to use Livy."}', "application/json", "not authorised", False),
    (429, "Too Many Requests", "text/plain", "429", True),
    (500, '{"msg": "internal trouble"}', "application/json", "internal trouble", True),
    (503, "<html>Service Unavailable</html>", "text/html", "503", True),
    (200, "<html>gateway login</html>", "text/html", "gateway login", False),
    (200, '{"id": 1}', "application/json", "batch 1", False),
]
UNREADABLE_IDS = ["404-livy", "404-html", "400", "401", "403", "429", "500", "503", "html", "no-state"]


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected", "transient"), UNREADABLE_REPLIES, ids=UNREADABLE_IDS
)
async def test_unreadable_state_gives_an_error_event(
    livy_server, status, body, content_type, expected, transient
):
    livy_server.reply("GET", "/batches/1/state", status=status, body=body, content_type=content_type)
    event = await run_trigger(LivyTrigger(batch_id=1, spark_params={}, polling_interval=POLL, redeferrals=1))
    assert event["status"] == "error"
    assert event["batch_id"] == 1
    assert expected in event["response"]
    assert event["transient"] is transient
    assert event["redeferrals"] == 1
    assert "state" not in event
    assert livy_server.paths() == ["/batches/1/state"]


async def test_timeout_event(livy_server):
    livy_server.reply("GET", "/batches/1/state", json_body={"id": 1, "state": "running"})
    trigger = LivyTrigger(
        batch_id=1, spark_params={}, polling_interval=POLL, execution_timeout=timedelta(milliseconds=150)
    )
    started = time.monotonic()
    event = await run_trigger(trigger)
    elapsed = time.monotonic() - started
    assert event["status"] == "timeout"
    assert event["batch_id"] == 1
    assert 0.15 <= elapsed < 5
    assert len(livy_server.requests) >= 2
    assert "/batches/1/log" not in livy_server.paths()


async def test_polling_interval_zero_reports_success_at_once(livy_server):
    event = await run_trigger(LivyTrigger(batch_id=5, spark_params={}, polling_interval=0))
    assert event["status"] == "success"
    assert event["batch_id"] == 5
    assert livy_server.requests == []


async def test_the_trigger_never_reads_the_log(livy_server):
    # A Livy log of thousands of lines would otherwise be logged twice and stored in the event.
    livy_server.reply(
        "GET", "/batches/1", json_body={"id": 1, "name": NAME, "state": "running", "appId": None}
    )
    livy_server.reply("GET", "/batches/1/state", json_body={"id": 1, "state": "dead"})
    livy_server.reply("GET", "/batches/1", json_body={"id": 1, "name": NAME, "state": "dead", "appId": None})
    hook = LivyAsyncHook()
    with mock.patch.object(LivyAsyncHook, "dump_batch_logs") as dump_batch_logs:
        event = await run_trigger(
            LivyTrigger(
                batch_id=1, spark_params={}, polling_interval=POLL, batch_name=NAME, livy_hook_async=hook
            )
        )
    assert (event["status"], event["state"], event["log_lines"]) == ("error", "dead", None)
    assert livy_server.paths() == ["/batches/1", "/batches/1/state", "/batches/1"]
    dump_batch_logs.assert_not_called()


async def test_invalid_batch_id_gives_an_error_event(livy_server):
    event = await run_trigger(LivyTrigger(batch_id="1/../2", spark_params={}, polling_interval=POLL))
    assert event["status"] == "error"
    assert livy_server.requests == []


async def test_execution_timeout_of_zero_times_out_after_one_poll(livy_server):
    # 4.6.4 ignored a zero timedelta (it is falsy) and waited forever.
    livy_server.reply("GET", "/batches/1/state", json_body={"id": 1, "state": "running"})
    trigger = LivyTrigger(batch_id=1, spark_params={}, polling_interval=POLL, execution_timeout=timedelta(0))
    event = await run_trigger(trigger)
    assert event == {
        "status": "timeout",
        "batch_id": 1,
        "response": "Batch 1 timed out",
        "log_lines": None,
    }
    assert livy_server.paths() == ["/batches/1/state"]


async def test_execution_timeout_of_zero_still_reports_a_finished_batch(livy_server):
    livy_server.reply("GET", "/batches/1/state", json_body={"id": 1, "state": "success"})
    trigger = LivyTrigger(batch_id=1, spark_params={}, polling_interval=POLL, execution_timeout=timedelta(0))
    event = await run_trigger(trigger)
    assert event["status"] == "success"
    assert event["state"] == "success"


# ---- transport errors ------------------------------------------------------------------------------


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("batch_name", [None, NAME], ids=["state-polls", "identity-checks"])
async def test_poll_for_termination_raises_when_livy_is_unreachable(make_livy_conn, batch_name):
    make_livy_conn("livy_down", port=free_loopback_port())
    trigger = LivyTrigger(
        batch_id=1, spark_params={}, livy_conn_id="livy_down", polling_interval=POLL, batch_name=batch_name
    )
    with pytest.raises(aiohttp.ClientConnectionError):
        await trigger.poll_for_termination(1)


@pytest.mark.parametrize("batch_name", [None, NAME], ids=["state-polls", "identity-checks"])
async def test_unreachable_livy_gives_an_error_event(make_livy_conn, batch_name):
    make_livy_conn("livy_down", port=free_loopback_port())
    trigger = LivyTrigger(
        batch_id=1, spark_params={}, livy_conn_id="livy_down", polling_interval=POLL, batch_name=batch_name
    )
    event = await run_trigger(trigger)
    assert event["status"] == "error"
    assert event["batch_id"] == 1
    assert event["log_lines"] is None
    assert event["transient"] is True
    assert "state" not in event
    assert "ClientConnectorError" in event["response"]


async def test_a_request_timeout_raises_and_gives_an_error_event(livy_server):
    livy_server.reply("GET", "/batches/1/state", json_body={"id": 1, "state": "running"}, delay=0.5)
    arguments = {
        "batch_id": 1,
        "spark_params": {},
        "polling_interval": POLL,
        "extra_options": {"timeout": aiohttp.ClientTimeout(total=0.05)},
    }
    with pytest.raises(TimeoutError):
        await LivyTrigger(**arguments).poll_for_termination(1)
    event = await run_trigger(LivyTrigger(**arguments))
    assert event["status"] == "error"
    assert event["transient"] is True
    assert "state" not in event


# ---- the batch's identity ----------------------------------------------------------------------------

FULL = "/batches/1"
STATE = "/batches/1/state"


def livy_batch(state: str | None, name: str | None = NAME, app_id: str | None = None) -> dict[str, Any]:
    batch: dict[str, Any] = {"id": 1, "name": name, "state": state, "appId": app_id}
    if state is None:
        del batch["state"]
    return batch


def script_reads(livy_server, reads: list[tuple[str, Any]]) -> list[str]:
    """
    Script the reads the trigger should make, in order: ``(FULL, batch)`` or ``(STATE, state)``.

    Each path answers its own replies in order, so a trigger that reads in another order, or more
    often, sees other states than the ones scripted here. Returns the paths, in order.
    """
    for path, reply in reads:
        body = reply if path == FULL else {"id": 1, "state": reply}
        livy_server.reply("GET", path, json_body=body)
    return [path for path, _ in reads]


def named_trigger(**more: Any) -> LivyTrigger:
    # The timeout only stops a trigger that reads other than scripted (the last reply repeats).
    arguments = {"execution_timeout": timedelta(seconds=10), **more}
    return LivyTrigger(batch_id=1, spark_params={}, polling_interval=POLL, batch_name=NAME, **arguments)


async def test_identity_is_read_first_after_a_change_and_at_the_end(livy_server):
    # The batch goes starting, running, running, success over four polls.
    expected = script_reads(
        livy_server,
        [
            (FULL, livy_batch("starting")),  # the first poll
            (STATE, "running"),  # a change...
            (FULL, livy_batch("running")),  # ...so the next poll reads the whole batch
            (STATE, "success"),  # terminal, seen through /state...
            (FULL, livy_batch("success")),  # ...is confirmed by reading the whole batch
        ],
    )

    event = await run_trigger(named_trigger())

    assert livy_server.paths() == expected
    assert event["status"] == "success"
    assert event["state"] == "success"
    assert event["log_lines"] is None


async def test_an_unchanged_state_is_polled_through_the_state_endpoint(livy_server):
    expected = script_reads(
        livy_server,
        [
            (FULL, livy_batch("running")),
            (STATE, "running"),
            (STATE, "running"),
            (STATE, "running"),
            (STATE, "dead"),
            (FULL, livy_batch("dead")),
        ],
    )
    event = await run_trigger(named_trigger())
    assert livy_server.paths() == expected
    assert event["status"] == "error"
    assert event["state"] == "dead"


async def test_an_end_the_whole_batch_contradicts_is_waited_through(livy_server):
    # /state said dead; the batch read says recovering (Livy restarted with recovery): keep waiting.
    expected = script_reads(
        livy_server,
        [
            (FULL, livy_batch("running")),
            (STATE, "dead"),
            (FULL, livy_batch("recovering")),
            (STATE, "recovering"),
            (STATE, "success"),
            (FULL, livy_batch("success")),
        ],
    )
    event = await run_trigger(named_trigger())
    assert livy_server.paths() == expected
    assert (event["status"], event["state"]) == ("success", "success")


async def test_the_app_id_learned_while_waiting_is_checked_afterwards(livy_server):
    script_reads(
        livy_server,
        [
            (FULL, livy_batch("running", name=None, app_id="application_1_0001")),
            (STATE, "starting"),
            (FULL, livy_batch("starting", name=None, app_id="application_9_0001")),  # another app
        ],
    )
    event = await run_trigger(named_trigger())
    assert event["status"] == "error"
    assert event["transient"] is False
    assert "state" not in event


async def test_without_a_batch_name_only_the_state_endpoint_is_read(livy_server):
    expected = script_reads(
        livy_server, [(STATE, "starting"), (STATE, "running"), (STATE, "running"), (STATE, "success")]
    )
    event = await run_trigger(LivyTrigger(batch_id=1, spark_params={}, polling_interval=POLL))
    assert livy_server.paths() == expected
    assert event["status"] == "success"


async def test_a_batch_finished_at_the_first_read_is_read_once(livy_server):
    expected = script_reads(livy_server, [(FULL, livy_batch("success", app_id="application_1_0001"))])
    event = await run_trigger(named_trigger())
    assert livy_server.paths() == expected
    assert event["status"] == "success"


async def test_the_whole_batch_is_read_again_once_the_interval_passed(livy_server, monkeypatch):
    # A clock that advances 100 s with every request Livy receives; IdentityChecks.interval is 300 s.
    def clock() -> float:
        return 100.0 * len(livy_server.requests)

    monkeypatch.setattr(trigger_module, "IdentityChecks", functools.partial(IdentityChecks, clock=clock))
    assert IdentityChecks.interval == 300
    expected = script_reads(
        livy_server,
        [
            (FULL, livy_batch("running")),
            (STATE, "running"),
            (STATE, "running"),
            (STATE, "running"),
            (FULL, livy_batch("running")),  # 300 s after the last full read
            (STATE, "running"),
            (STATE, "running"),
            (STATE, "running"),
            (FULL, livy_batch("success")),
        ],
    )
    event = await run_trigger(named_trigger())
    assert livy_server.paths() == expected
    assert event["status"] == "success"


async def test_batch_with_another_name_is_not_watched(livy_server):
    script_reads(livy_server, [(FULL, livy_batch("running", name="someone-else-s1-ffff"))])
    event = await run_trigger(named_trigger())
    assert event["status"] == "error"
    assert event["batch_id"] == 1
    assert event["log_lines"] is None
    assert event["transient"] is False
    assert "state" not in event
    assert "someone-else-s1-ffff" in event["response"]
    assert NAME in event["response"]
    assert livy_server.paths() == [FULL]


async def test_a_batch_replaced_while_watched_is_caught_by_the_end_check(livy_server):
    expected = script_reads(
        livy_server,
        [
            (FULL, livy_batch("running")),
            (STATE, "success"),
            (FULL, livy_batch("success", name="other-s1-9")),  # Livy restarted and reused id 1
        ],
    )
    event = await run_trigger(named_trigger())
    assert livy_server.paths() == expected
    assert event["status"] == "error"
    assert event["transient"] is False
    assert "state" not in event
    assert "other-s1-9" in event["response"]


async def test_a_batch_replaced_after_a_state_change_is_caught(livy_server):
    expected = script_reads(
        livy_server,
        [
            (FULL, livy_batch("starting")),
            (STATE, "running"),
            (FULL, livy_batch("running", name="other-s1-9")),
        ],
    )
    event = await run_trigger(named_trigger())
    assert livy_server.paths() == expected
    assert event["status"] == "error"


@pytest.mark.parametrize(
    ("trigger_app_id", "livy_app_id"),
    [(None, None), (None, "application_1_0001"), ("application_1_0001", None), ("application_1_0001",) * 2],
    ids=["neither-known", "livy-knows", "trigger-knows", "same"],
)
async def test_a_server_without_names_is_followed_while_the_app_id_agrees(
    livy_server, trigger_app_id, livy_app_id
):
    # Livy 0.5 and some gateways answer "name": null; the app id is all there is to check.
    expected = script_reads(
        livy_server,
        [
            (FULL, livy_batch("running", name=None, app_id=livy_app_id)),
            (STATE, "success"),
            (FULL, livy_batch("success", name=None, app_id=livy_app_id)),
        ],
    )
    event = await run_trigger(named_trigger(app_id=trigger_app_id))
    assert livy_server.paths() == expected
    assert event["status"] == "success"
    assert event["state"] == "success"


async def test_livy_0_5_without_a_name_field_is_followed(livy_server):
    expected = script_reads(livy_server, [(FULL, {"id": 1, "state": "dead", "appId": None})])
    event = await run_trigger(named_trigger())
    assert livy_server.paths() == expected
    assert event["status"] == "error"
    assert event["state"] == "dead"


@pytest.mark.parametrize("name", [NAME, None], ids=["named", "name-null"])
async def test_another_app_id_is_not_watched(livy_server, name):
    script_reads(livy_server, [(FULL, livy_batch("running", name=name, app_id="application_2_0007"))])
    event = await run_trigger(named_trigger(app_id="application_1_0001"))
    assert livy_server.paths() == [FULL]
    assert event["status"] == "error"
    assert "state" not in event


async def test_another_app_id_at_the_end_check_is_not_reported_as_ours(livy_server):
    expected = script_reads(
        livy_server,
        [
            (FULL, livy_batch("running", name=None, app_id="application_1_0001")),
            (STATE, "success"),
            (FULL, livy_batch("success", name=None, app_id="application_2_0007")),
        ],
    )
    event = await run_trigger(named_trigger(app_id="application_1_0001"))
    assert livy_server.paths() == expected
    assert event["status"] == "error"
    assert "state" not in event


async def test_a_whole_batch_without_a_state_falls_back_to_the_state_endpoint(livy_server):
    expected = script_reads(
        livy_server,
        [
            (FULL, livy_batch(None)),
            (STATE, "running"),
            (STATE, "success"),
            (FULL, livy_batch(None)),
            (STATE, "success"),
        ],
    )
    event = await run_trigger(named_trigger())
    assert livy_server.paths() == expected
    assert event["status"] == "success"


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected", "transient"),
    UNREADABLE_REPLIES[:-1],  # a batch without a state falls back to /state (tested above)
    ids=UNREADABLE_IDS[:-1],
)
async def test_an_unreadable_batch_gives_an_error_event(
    livy_server, status, body, content_type, expected, transient
):
    livy_server.reply("GET", FULL, status=status, body=body, content_type=content_type)
    event = await run_trigger(named_trigger())
    assert event["status"] == "error"
    assert event["transient"] is transient
    assert "state" not in event
    assert livy_server.paths() == [FULL]


async def test_a_reply_that_is_not_a_batch_is_not_transient(livy_server):
    livy_server.reply("GET", FULL, json_body=["not", "a", "batch"])
    event = await run_trigger(named_trigger())
    assert (event["status"], event["transient"]) == ("error", False)
    assert livy_server.paths() == [FULL]


async def test_a_transient_error_after_polls_is_marked(livy_server):
    # The batch was followed for a while; then Livy's gateway answered 503 on a state poll.
    script_reads(livy_server, [(FULL, livy_batch("running")), (STATE, "running")])
    livy_server.reply("GET", STATE, status=503, body="unavailable")
    event = await run_trigger(named_trigger(redeferrals=4))
    assert event["status"] == "error"
    assert event["transient"] is True
    assert event["redeferrals"] == 4
    assert livy_server.paths() == [FULL, STATE, STATE]


# ---- what reaches Livy --------------------------------------------------------------------------


async def test_prefix_headers_and_auth_reach_livy(livy_server, monkeypatch):
    monkeypatch.setattr(GatewayAuth, "created", [])
    livy_server.connection("livy_gateway", login="svc-airflow", password="gateway-password")
    livy_server.reply("GET", "/gw/livy/batches/8/state", json_body={"id": 8, "state": "running"})
    livy_server.reply("GET", "/gw/livy/batches/8/state", json_body={"id": 8, "state": "success"})

    # Through serialize(), as the triggerer would build it.
    _, kwargs = LivyTrigger(
        batch_id=8,
        spark_params={},
        livy_conn_id="livy_gateway",
        polling_interval=POLL,
        extra_headers={"X-Tenant": "blue"},
        endpoint_prefix="/gw/livy/",
        auth_type=GatewayAuth,
    ).serialize()
    event = await run_trigger(LivyTrigger(**kwargs))

    assert event["status"] == "success"
    assert livy_server.paths() == ["/gw/livy/batches/8/state"] * 2
    expected_auth = "Basic " + base64.b64encode(b"svc-airflow:gateway-password").decode()
    for request in livy_server.requests:
        assert request.headers["X-Tenant"] == "blue"
        assert request.headers["Authorization"] == expected_auth
    assert [(auth.login, auth.password) for auth in GatewayAuth.created] == [
        ("svc-airflow", "gateway-password")
    ]
    assert "gateway-password" not in repr(event)


# ---- a ready-made hook ----------------------------------------------------------------------------


async def test_given_async_hook_is_used():
    hook = mock.MagicMock(spec=LivyAsyncHook)
    hook.get_batch_state = mock.AsyncMock(
        side_effect=[
            {"status": "success", "batch_state": BatchState.RUNNING, "response": "ok"},
            {"status": "success", "batch_state": BatchState.KILLED, "response": "ok"},
        ]
    )
    hook.dump_batch_logs = mock.AsyncMock(return_value=["a line"])
    trigger = LivyTrigger(batch_id=2, spark_params={}, polling_interval=POLL, livy_hook_async=hook)
    event = await run_trigger(trigger)
    assert event["status"] == "error"
    assert event["state"] == "killed"
    assert event["log_lines"] is None
    assert hook.get_batch_state.await_args_list == [mock.call(2), mock.call(2)]
    hook.dump_batch_logs.assert_not_awaited()
    assert trigger.serialize()[1]["livy_hook_async"] is None


async def test_hook_error_dict_becomes_an_error_event():
    hook = mock.MagicMock(spec=LivyAsyncHook)
    hook.get_batch_state = mock.AsyncMock(
        return_value={
            "status": "error",
            "batch_state": "error",
            "response": "Livy is down",
            "status_code": 503,
        }
    )
    trigger = LivyTrigger(batch_id=2, spark_params={}, polling_interval=POLL, livy_hook_async=hook)
    event = await run_trigger(trigger)
    assert event == {
        "status": "error",
        "batch_id": 2,
        "response": "Livy is down",
        "log_lines": None,
        "transient": True,
    }


async def test_unexpected_exception_becomes_an_error_event():
    hook = mock.MagicMock(spec=LivyAsyncHook)
    hook.get_batch_state = mock.AsyncMock(side_effect=RuntimeError("event loop trouble"))
    trigger = LivyTrigger(batch_id=2, spark_params={}, polling_interval=POLL, livy_hook_async=hook)
    event = await run_trigger(trigger)
    assert event["status"] == "error"
    assert event["transient"] is False
    assert "event loop trouble" in event["response"]


# ---- redeferrals ----------------------------------------------------------------------------------


async def test_every_event_echoes_redeferrals(livy_server, make_livy_conn):
    livy_server.reply("GET", "/batches/1/state", json_body={"id": 1, "state": "success"})
    livy_server.reply("GET", "/batches/2/state", json_body={"id": 2, "state": "dead"})
    livy_server.reply("GET", "/batches/3/state", json_body={"id": 3, "state": "running"})
    livy_server.reply("GET", "/batches/4/state", status=503, body="unavailable")
    make_livy_conn("livy_down", port=free_loopback_port())
    triggers = {
        "success": LivyTrigger(batch_id=1, spark_params={}, polling_interval=POLL, redeferrals=3),
        "failed": LivyTrigger(batch_id=2, spark_params={}, polling_interval=POLL, redeferrals=3),
        "timeout": LivyTrigger(
            batch_id=3, spark_params={}, polling_interval=POLL, execution_timeout=timedelta(0), redeferrals=3
        ),
        "http-error": LivyTrigger(batch_id=4, spark_params={}, polling_interval=POLL, redeferrals=3),
        "unreachable": LivyTrigger(
            batch_id=5, spark_params={}, polling_interval=POLL, livy_conn_id="livy_down", redeferrals=3
        ),
        "no-polling": LivyTrigger(batch_id=6, spark_params={}, polling_interval=0, redeferrals=3),
    }
    events = {name: await run_trigger(trigger) for name, trigger in triggers.items()}
    assert {name: event["status"] for name, event in events.items()} == {
        "success": "success",
        "failed": "error",
        "timeout": "timeout",
        "http-error": "error",
        "unreachable": "error",
        "no-polling": "success",
    }
    assert {name: event["redeferrals"] for name, event in events.items()} == dict.fromkeys(triggers, 3)
    assert {name: event.get("transient") for name, event in events.items()} == {
        "success": None,
        "failed": False,
        "timeout": None,
        "http-error": True,
        "unreachable": True,
        "no-polling": None,
    }


async def test_redeferrals_survive_serialization(livy_server):
    livy_server.reply("GET", "/batches/1/state", json_body={"id": 1, "state": "success"})
    _, kwargs = LivyTrigger(batch_id=1, spark_params={}, polling_interval=POLL, redeferrals=7).serialize()
    restored = BaseSerialization.deserialize(BaseSerialization.serialize(kwargs))
    event = await run_trigger(LivyTrigger(**restored))
    assert event["redeferrals"] == 7


# ---- on_kill ----------------------------------------------------------------------------------------

CSRF_HEADER = "X-Requested-By"


def requests_of(livy_server) -> list[tuple[str, str]]:
    return [(request.method, request.path) for request in livy_server.requests]


async def test_on_kill_deletes_our_batch(livy_server):
    livy_server.reply("GET", FULL, json_body=livy_batch("running", app_id="application_1_0001"))
    livy_server.reply("DELETE", FULL, json_body={"msg": "deleted"})
    trigger = named_trigger(app_id="application_1_0001", extra_headers={"X-Tenant": "blue"})

    assert await trigger.on_kill() is None

    assert requests_of(livy_server) == [("GET", FULL), ("DELETE", FULL)]
    delete = livy_server.requests[1]
    assert delete.headers[CSRF_HEADER]
    assert delete.headers["X-Tenant"] == "blue"


@pytest.mark.parametrize(
    ("name", "app_id"), [(None, None), (None, "application_1_0001")], ids=["no-app-id", "same-app-id"]
)
async def test_on_kill_deletes_a_batch_on_a_server_without_names(livy_server, name, app_id):
    livy_server.reply("GET", FULL, json_body=livy_batch("running", name=name, app_id=app_id))
    livy_server.reply("DELETE", FULL, json_body={"msg": "deleted"})
    await named_trigger(app_id="application_1_0001").on_kill()
    assert requests_of(livy_server) == [("GET", FULL), ("DELETE", FULL)]


@pytest.mark.parametrize(
    "batch",
    [
        livy_batch("running", name="someone-else-s1-ffff"),
        livy_batch("running", name=None, app_id="application_9_0009"),
        livy_batch("running", name=NAME, app_id="application_9_0009"),
    ],
    ids=["another-name", "another-app-id-unnamed", "another-app-id"],
)
async def test_on_kill_leaves_another_batch_alone(livy_server, batch):
    livy_server.reply("GET", FULL, json_body=batch)
    await named_trigger(app_id="application_1_0001").on_kill()
    assert requests_of(livy_server) == [("GET", FULL)]


@pytest.mark.parametrize(
    "body", [{"msg": "Session '1' not found."}, "Session '1' not found."], ids=["livy-0.6+", "livy-0.5"]
)
async def test_on_kill_has_nothing_to_delete_when_livy_forgot_the_batch(livy_server, body):
    livy_server.reply("GET", FULL, status=404, json_body=body)
    await named_trigger().on_kill()
    assert requests_of(livy_server) == [("GET", FULL)]


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (404, "<html>Knox: no such topology</html>", "text/html"),
        (401, "", "text/plain"),
        (500, '{"msg": "internal"}', "application/json"),
        (200, "<html>gateway login</html>", "text/html"),
        (200, '["not", "a", "batch"]', "application/json"),
    ],
    ids=["404-html", "401", "500", "html", "not-an-object"],
)
async def test_on_kill_does_not_delete_what_it_could_not_check(livy_server, status, body, content_type):
    livy_server.reply("GET", FULL, status=status, body=body, content_type=content_type)
    await named_trigger().on_kill()
    assert requests_of(livy_server) == [("GET", FULL)]


async def test_on_kill_keep_batch_sends_nothing(livy_server):
    await named_trigger(on_kill_action="keep_batch").on_kill()
    await LivyTrigger(
        batch_id=1, spark_params={}, polling_interval=POLL, on_kill_action="keep_batch"
    ).on_kill()
    assert livy_server.requests == []


async def test_on_kill_without_a_batch_name_deletes_by_id(livy_server):
    # As 4.6.4's operator did: a batch known only by its id cannot be checked by name.
    livy_server.reply("DELETE", "/batches/7", json_body={"msg": "deleted"})
    await LivyTrigger(batch_id=7, spark_params={}, polling_interval=POLL).on_kill()
    assert requests_of(livy_server) == [("DELETE", "/batches/7")]
    assert livy_server.requests[0].headers[CSRF_HEADER]


@pytest.mark.parametrize(
    ("status", "body"),
    [(404, {"msg": "Session '7' not found."}), (404, "<html>gone</html>"), (500, {"msg": "kill failed"})],
    ids=["livy-not-found", "404-html", "500"],
)
async def test_on_kill_never_raises_on_a_failed_delete(livy_server, status, body):
    livy_server.reply("DELETE", "/batches/7", status=status, json_body=body)
    await LivyTrigger(batch_id=7, spark_params={}, polling_interval=POLL).on_kill()
    assert requests_of(livy_server) == [("DELETE", "/batches/7")]


async def test_on_kill_through_serialize_uses_prefix_and_headers(livy_server, monkeypatch):
    monkeypatch.setattr(GatewayAuth, "created", [])
    livy_server.connection("livy_gateway", login="svc-airflow", password="gateway-password")
    livy_server.reply("GET", "/gw/livy/batches/1", json_body=livy_batch("running"))
    livy_server.reply("DELETE", "/gw/livy/batches/1", json_body={"msg": "deleted"})
    _, kwargs = named_trigger(
        livy_conn_id="livy_gateway",
        endpoint_prefix="/gw/livy/",
        extra_headers={"X-Tenant": "blue"},
        auth_type=GatewayAuth,
    ).serialize()

    await LivyTrigger(**kwargs).on_kill()

    assert requests_of(livy_server) == [("GET", "/gw/livy/batches/1"), ("DELETE", "/gw/livy/batches/1")]
    expected_auth = "Basic " + base64.b64encode(b"svc-airflow:gateway-password").decode()
    for request in livy_server.requests:
        assert request.headers["X-Tenant"] == "blue"
        assert request.headers["Authorization"] == expected_auth


@pytest.mark.parametrize("hanging", ["GET", "DELETE"])
async def test_on_kill_returns_within_its_bound_when_livy_hangs(livy_server, monkeypatch, hanging):
    monkeypatch.setattr(LivyTrigger, "on_kill_timeout", 0.3)
    livy_server.reply("GET", FULL, json_body=livy_batch("running"), delay=2.0 if hanging == "GET" else 0)
    livy_server.reply("DELETE", FULL, json_body={"msg": "deleted"}, delay=2.0 if hanging == "DELETE" else 0)
    started = time.monotonic()
    await named_trigger().on_kill()
    assert time.monotonic() - started < 1.5
    expected = [("GET", FULL)] if hanging == "GET" else [("GET", FULL), ("DELETE", FULL)]
    assert requests_of(livy_server) == expected


def test_on_kill_timeout_fits_the_triggerers_default_bound():
    assert 0 < LivyTrigger.on_kill_timeout < 30


@pytest.mark.parametrize("batch_name", [None, NAME], ids=["by-id", "named"])
async def test_on_kill_never_raises_when_livy_is_unreachable(make_livy_conn, batch_name):
    make_livy_conn("livy_down", port=free_loopback_port())
    trigger = LivyTrigger(
        batch_id=1, spark_params={}, livy_conn_id="livy_down", polling_interval=POLL, batch_name=batch_name
    )
    started = time.monotonic()
    assert await trigger.on_kill() is None
    assert time.monotonic() - started < 5


async def test_on_kill_never_raises_on_an_unexpected_error():
    hook = mock.MagicMock(spec=LivyAsyncHook)
    hook.delete_batch = mock.AsyncMock(side_effect=RuntimeError("event loop trouble"))
    await LivyTrigger(batch_id=2, spark_params={}, polling_interval=POLL, livy_hook_async=hook).on_kill()
    hook.delete_batch.assert_awaited_once_with(2)


async def test_on_kill_after_a_cancelled_wait_checks_the_app_id_learned_while_waiting(livy_server):
    # As the triggerer does on a user action: cancel run(), then call on_kill() on the same trigger.
    livy_server.reply("GET", FULL, json_body=livy_batch("running", name=None, app_id="application_1_0001"))
    livy_server.reply("GET", FULL, json_body=livy_batch("running", name=None, app_id="application_9_0009"))
    livy_server.reply("GET", STATE, json_body={"id": 1, "state": "running"})
    trigger = named_trigger()
    waiting = asyncio.ensure_future(run_trigger(trigger))
    while STATE not in livy_server.paths():
        await asyncio.sleep(0.01)
    waiting.cancel("__airflow_user_action__")
    with pytest.raises(asyncio.CancelledError):
        await waiting

    await trigger.on_kill()

    # Livy now holds another application under id 1 (and no names): not ours, not deleted.
    assert ("DELETE", FULL) not in requests_of(livy_server)
    assert requests_of(livy_server)[-1] == ("GET", FULL)
