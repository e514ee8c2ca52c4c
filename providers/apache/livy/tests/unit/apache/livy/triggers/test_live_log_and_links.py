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
"""LivyTrigger following Livy's log and reporting the application's links (a real aiohttp server)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow.providers.apache.livy.triggers.livy import LivyTrigger
from airflow.providers.apache.livy.utils.log_stream import LogStream

POLL = 0.01
RUNNING_INFO = {"driverLogUrl": "http://127.0.0.1:8042/driver", "sparkUiUrl": "http://127.0.0.1:4040/"}
LOG_QUERY = {"from": "0", "size": "-1"}


@pytest.fixture(autouse=True)
def no_links_event_delay(monkeypatch):
    monkeypatch.setattr(LivyTrigger, "links_event_delay", 0.0)


def livy_log(count: int) -> dict[str, Any]:
    lines = ["stdout: ", *[f"spark output {i:04d}" for i in range(1, count + 1)][-200:], "\nstderr: "]
    return {"id": 1, "from": 0, "total": len(lines), "log": lines}


def spark_lines(messages: list[str]) -> list[str]:
    return [message for message in messages if message.startswith("spark output")]


async def run_trigger(trigger: LivyTrigger) -> dict[str, Any]:
    events = [event async for event in trigger.run()]
    assert len(events) == 1
    return events[0].payload


def script_states(livy_server, *states: str) -> None:
    for state in states:
        livy_server.reply("GET", "/batches/1/state", json_body={"id": 1, "state": state})


def batch_read(state: str, count: int) -> dict[str, Any]:
    """Livy's batch object: its state and the last ten lines of its log."""
    info = {"driverLogUrl": None, "sparkUiUrl": None}
    tail = livy_log(count)["log"][-10:]
    return {"id": 1, "name": None, "state": state, "appId": None, "appInfo": info, "log": tail}


async def test_a_few_lines_a_poll_come_with_the_batch_reads_one_request_a_poll(livy_server, livy_logs):
    for count in (3, 6, 9, 12, 15):
        livy_server.reply("GET", "/batches/1", json_body=batch_read("running", count))
    livy_server.reply("GET", "/batches/1", json_body=batch_read("success", 15))
    trigger = LivyTrigger(batch_id=1, spark_params={}, polling_interval=POLL, follow_log=True)
    event = await run_trigger(trigger)
    assert spark_lines(livy_logs.messages) == [f"spark output {i:04d}" for i in range(1, 16)]
    assert event["status"] == "success"
    assert event["log_cursor"]["stdout"][0] == 1 + 15  # the marker and every line, shown
    assert livy_server.paths() == ["/batches/1"] * 6


async def test_a_fast_log_is_read_from_the_log_endpoint_each_line_once(livy_server, livy_logs):
    livy_server.reply("GET", "/batches/1", json_body=batch_read("running", 150))
    script_states(livy_server, "running", "running", "success")
    for count in (150, 300, 450):
        livy_server.reply("GET", "/batches/1/log", json_body=livy_log(count))
    trigger = LivyTrigger(batch_id=1, spark_params={}, polling_interval=POLL, follow_log=True)
    event = await run_trigger(trigger)
    assert spark_lines(livy_logs.messages) == [f"spark output {i:04d}" for i in range(1, 451)]
    assert event["log_cursor"]["stdout"][0] == 1 + 450
    # 150 new lines a poll: more than a batch object holds, so the polls read the state alone and
    # the log endpoint is asked for its end (all of it, the first time: its pace was unknown).
    assert livy_server.paths() == [
        "/batches/1",
        "/batches/1/log",
        "/batches/1/state",
        "/batches/1/log",
        "/batches/1/state",
        "/batches/1/log",
        "/batches/1/state",
    ]
    queries = [request.query for request in livy_server.requests if request.path.endswith("/log")]
    assert queries[0] == LOG_QUERY
    assert [query["from"] for query in queries[1:]] == ["-1", "-1"]
    assert all(150 < int(query["size"]) < 400 for query in queries[1:])


async def test_a_cursor_from_the_worker_is_where_the_trigger_starts(livy_server, livy_logs):
    shown = LogStream()
    shown.update(livy_log(100)["log"])
    livy_server.reply("GET", "/batches/1", json_body=batch_read("running", 105))
    livy_server.reply("GET", "/batches/1", json_body=batch_read("success", 105))
    trigger = LivyTrigger(
        batch_id=1, spark_params={}, polling_interval=POLL, follow_log=True, log_cursor=shown.cursor
    )
    await run_trigger(trigger)
    assert spark_lines(livy_logs.messages) == [f"spark output {i:04d}" for i in range(101, 106)]


async def test_a_log_that_cannot_be_read_is_given_up_and_the_wait_goes_on(livy_server, livy_logs):
    livy_server.reply("GET", "/batches/1", json_body=batch_read("running", 150))
    script_states(livy_server, "running", "success")
    livy_server.reply("GET", "/batches/1/log", status=500, json_body={"msg": "boom"})
    trigger = LivyTrigger(batch_id=1, spark_params={}, polling_interval=POLL, follow_log=True)
    event = await run_trigger(trigger)
    assert event["status"] == "success"
    assert livy_server.paths() == ["/batches/1", "/batches/1/log", "/batches/1/state", "/batches/1/state"]
    assert any("Not following the log" in warning for warning in livy_logs.warnings())


async def test_without_follow_log_the_log_is_not_read(livy_server):
    script_states(livy_server, "running", "success")
    event = await run_trigger(LivyTrigger(batch_id=1, spark_params={}, polling_interval=POLL))
    assert "log_cursor" not in event
    assert "/batches/1/log" not in livy_server.paths()


async def test_report_links_reads_the_batch_until_the_urls_appear_then_reports_them(livy_server):
    for info in ({"driverLogUrl": None, "sparkUiUrl": None}, RUNNING_INFO):
        livy_server.reply(
            "GET",
            "/batches/1",
            json_body={"id": 1, "name": None, "state": "running", "appId": "app-1", "appInfo": info},
        )
    trigger = LivyTrigger(batch_id=1, spark_params={}, polling_interval=POLL, report_links=True)
    event = await run_trigger(trigger)
    assert event["status"] == "running"
    assert event["batch"] == {"appId": "app-1", "appInfo": RUNNING_INFO}
    assert livy_server.paths() == ["/batches/1", "/batches/1"]


async def test_report_links_still_ends_on_a_batch_that_finished_first(livy_server):
    livy_server.reply(
        "GET",
        "/batches/1",
        json_body={"id": 1, "name": None, "state": "success", "appId": "app-1", "appInfo": RUNNING_INFO},
    )
    trigger = LivyTrigger(batch_id=1, spark_params={}, polling_interval=POLL, report_links=True)
    assert (await run_trigger(trigger))["status"] == "success"


def test_the_new_arguments_are_serialized():
    trigger = LivyTrigger(
        batch_id=1, spark_params={}, report_links=True, follow_log=True, log_cursor={"stdout": [3, 3, "ab"]}
    )
    _, kwargs = trigger.serialize()
    assert (kwargs["report_links"], kwargs["follow_log"], kwargs["log_cursor"]) == (
        True,
        True,
        {"stdout": [3, 3, "ab"]},
    )


async def test_the_links_event_leaves_the_log_to_the_worker(livy_server, livy_logs):
    livy_server.reply(
        "GET",
        "/batches/1",
        json_body={"id": 1, "name": None, "state": "running", "appId": "app-1", "appInfo": RUNNING_INFO},
    )
    trigger = LivyTrigger(
        batch_id=1, spark_params={}, polling_interval=POLL, report_links=True, follow_log=True
    )
    event = await run_trigger(trigger)
    assert (event["status"], event["log_cursor"]) == ("running", None)
    assert "/batches/1/log" not in livy_server.paths()


async def test_a_links_trigger_hands_back_the_cursor_it_was_given(livy_server):
    livy_server.reply(
        "GET",
        "/batches/1",
        json_body={**batch_read("running", 3), "appId": "app-1", "appInfo": RUNNING_INFO},
    )
    given = LogStream()
    given.update(livy_log(2)["log"])  # what the worker showed before deferring
    trigger = LivyTrigger(
        batch_id=1, spark_params={}, polling_interval=POLL, report_links=True, log_cursor=given.cursor
    )
    event = await run_trigger(trigger)
    assert (event["status"], event["log_cursor"]) == ("running", given.cursor)


async def test_the_links_event_waits_for_its_delay_while_the_log_is_followed(
    livy_server, livy_logs, monkeypatch
):
    monkeypatch.setattr(LivyTrigger, "links_event_delay", 0.2)
    livy_server.reply(
        "GET",
        "/batches/1",
        json_body={**batch_read("running", 3), "appId": "app-1", "appInfo": RUNNING_INFO},
    )
    livy_server.reply("GET", "/batches/1/state", json_body={"id": 1, "state": "running"})
    trigger = LivyTrigger(
        batch_id=1, spark_params={}, polling_interval=POLL, report_links=True, follow_log=True
    )
    event = await run_trigger(trigger)
    assert event["status"] == "running"
    # The log's last lines come with the whole reads; a quiet log is looked at less often.
    assert livy_server.paths()[:3] == ["/batches/1", "/batches/1", "/batches/1/state"]
    assert "/batches/1/log" not in livy_server.paths()
    assert spark_lines(livy_logs.messages) == [f"spark output {i:04d}" for i in range(1, 4)]
