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
"""LivyOperator's extra links and live Spark log, in each wait mode, against the scripted Livy."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from airflow.exceptions import AirflowException

from airflow.providers.apache.livy.hooks.livy import LivyHook
from airflow.providers.apache.livy.operators.livy import LivyOperator
from airflow.providers.apache.livy.utils.batch_record import BatchRecord
from airflow.providers.apache.livy.utils.log_stream import LogStream
from unit.apache.livy.task_context import FakeTaskInstance

try:
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 2.11
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef]

KEY = "livy_batch_record"
LIVY_UI = "http://127.0.0.1:8998/ui/batch/0/log"
SPARK_UI = "http://127.0.0.1:18080/history/application_1_0000"
DRIVER_LOG = "http://127.0.0.1:8042/node/containerlogs/container_1/stderr"
RUNNING_INFO = {"driverLogUrl": DRIVER_LOG, "sparkUiUrl": SPARK_UI}
ENDED_INFO = {"driverLogUrl": None, "sparkUiUrl": SPARK_UI}  # YARN cleared the driver log URL
LINK_KEYS = {
    "livy_batch": "_link_LivyBatchLink",
    "spark_ui": "_link_SparkUiLink",
    "driver_log": "_link_SparkDriverLogLink",
}


@dataclass
class JournaledTaskInstance(FakeTaskInstance):
    """Its XCom pushes go to the shared journal, between the requests Livy saw."""

    journal: list[tuple[str, ...]] = field(default_factory=list)

    def xcom_push(self, key: str, value: Any) -> None:
        super().xcom_push(key, value)
        self.journal.append(("xcom", key))


def spark_lines(count: int) -> list[str]:
    return [f"spark output {i:04d}" for i in range(1, count + 1)]


def livy_log(lines: list[str]) -> list[str]:
    return ["stdout: ", *lines[-200:], "\nstderr: "]


@pytest.fixture
def logs(caplog, capsys):
    """
    What the task logged since the last call: Airflow 3 logs through structlog to stdout, Airflow 2
    through ``logging`` (which may echo it to stdout too: then the records alone count).
    """
    caplog.set_level(logging.DEBUG)

    def since_last_call() -> str:
        records = "\n".join(record.getMessage() for record in caplog.records)
        caplog.clear()
        out = capsys.readouterr().out
        return records if shown(records) else out

    return since_last_call


def shown(text: str) -> list[str]:
    return re.findall(r"spark output \d{4}", text)


def operator(**kwargs: Any) -> LivyOperator:
    return LivyOperator(**{"task_id": "spark_job", "file": "pi.py", "polling_interval": 0.001, **kwargs})


def script_batch(livy, *, lines: int, polls: int) -> list[str]:
    """A batch that runs ``polls`` reads, its log growing evenly to ``lines`` lines, URLs while running."""
    everything = spark_lines(lines)
    livy.states_for_new = ["starting"] + ["running"] * polls + ["success"]
    batch_logs = [livy_log(everything[: lines * read // (polls + 1)]) for read in range(polls + 2)]
    infos = [{"driverLogUrl": None, "sparkUiUrl": None}] + [RUNNING_INFO] * polls + [ENDED_INFO]

    def post_failure(body: dict[str, Any]) -> None:
        livy.posted_logs, livy.posted_infos = batch_logs, infos  # picked up right after the POST
        return

    livy.post_failure = post_failure
    return everything


def run(livy, store, ti, **kwargs: Any) -> Any:
    op = operator(**kwargs)
    context: dict[str, Any] = {"ti": ti}
    if store is not None:
        context["task_state_store"] = store
    return op.execute(context)


@pytest.fixture
def scripted(livy):
    """Give every batch the log and app info ``script_batch`` prepared."""
    original_add = livy.add

    def add(*args: Any, **kwargs: Any):
        batch = original_add(*args, **kwargs)
        batch.logs = getattr(livy, "posted_logs", None)
        batch.app_info = getattr(livy, "posted_infos", None)
        return batch

    livy.add = add
    return livy


class TestPolling:
    @pytest.mark.parametrize("durable", [True, False])
    def test_every_line_reaches_the_task_log_once_while_it_waits(self, scripted, store, logs, durable):
        # 50 lines a poll: more than a batch object shows, so the log endpoint is read (every 2 polls)
        everything = script_batch(scripted, lines=1000, polls=20)
        ti = JournaledTaskInstance(journal=scripted.journal)
        assert run(scripted, store, ti, durable=durable) == 0
        assert shown(logs()) == everything

    def test_1000_lines_in_small_steps_are_each_shown_once_in_order(self, scripted, store, logs):
        everything = script_batch(scripted, lines=1000, polls=20)
        run(scripted, store, JournaledTaskInstance(journal=scripted.journal))
        assert shown(logs()) == everything
        assert "were lost" not in logs()

    def test_a_few_lines_a_poll_need_no_log_request_one_request_a_poll(self, scripted, store, logs):
        everything = script_batch(scripted, lines=60, polls=20)  # 3 lines a poll
        run(scripted, store, JournaledTaskInstance(journal=scripted.journal))
        requests = [f"{e[1]} {e[2]}" for e in scripted.journal if e[0] == "http"]
        assert shown(logs()) == everything
        # The log's end is read once, after the batch ended; every other line came with a poll.
        assert [request for request in requests if request.endswith("/log")] == ["GET /batches/0/log"]
        assert requests[-1] == "GET /batches/0/log"
        # A read per state the script holds (starting, 20 running, success), the end's check and log.
        assert len(requests[1:]) <= 22 + 2

    @pytest.mark.airflow33  # the record is kept in the task state store
    @pytest.mark.parametrize(("lines", "outcome"), [(10, "success"), (1000, "success"), (1000, "dead")])
    def test_a_task_writes_the_store_five_times_whatever_its_log(self, scripted, store, lines, outcome):
        script_batch(scripted, lines=lines, polls=20)
        scripted.states_for_new[-1] = outcome
        ti = JournaledTaskInstance(journal=scripted.journal)
        if outcome == "success":
            run(scripted, store, ti)
        else:
            with pytest.raises(AirflowException, match="did not succeed"):
                run(scripted, store, ti)
        writes = [entry[1] for entry in scripted.journal if entry[0] == "store"]
        # Ahead of the POST, the id (the record's, the mixin's), the final state, the delivered result.
        assert writes == [KEY, KEY, "livy_batch_id", KEY, KEY][: 5 if outcome == "success" else 4]
        final = BatchRecord.from_stored(store.get(KEY))
        assert final.final_state == outcome
        if outcome == "success":  # stored with the delivered result, after the log's end was shown
            assert final.log_cursor["stdout"][0] == 1 + lines  # the marker and every line

    @pytest.mark.airflow33  # the record is kept in the task state store
    def test_the_links_are_pushed_while_the_batch_runs_and_the_driver_log_is_kept(self, scripted, store):
        script_batch(scripted, lines=10, polls=4)
        ti = JournaledTaskInstance(journal=scripted.journal)
        run(scripted, store, ti)
        order = [e[1] if e[0] == "xcom" else f"{e[1]} {e[2]}" for e in scripted.journal if e[0] != "store"]
        first_poll = order.index("GET /batches/0")
        assert order.index("POST /batches") < order.index("_link_LivyBatchLink") < first_poll
        first_state_read_of_success = len(order) - 1 - order[::-1].index("GET /batches/0")
        assert order.index("_link_SparkUiLink") < first_state_read_of_success
        assert order.index("_link_SparkDriverLogLink") < first_state_read_of_success
        assert {key: ti.xcoms[xcom] for key, xcom in LINK_KEYS.items()} == {
            "livy_batch": LIVY_UI,
            "spark_ui": SPARK_UI,
            "driver_log": DRIVER_LOG,
        }
        assert BatchRecord.from_stored(store.get(KEY)).links == {
            "spark_ui": SPARK_UI,
            "driver_log": DRIVER_LOG,
        }

    @pytest.mark.airflow33  # durable: without a store the reads are 4.6.4's (one whole read, at the end)
    def test_a_batch_running_at_the_first_poll_still_gets_its_driver_log_link(self, scripted, store):
        # No state change is seen after the first poll: the links come from one whole read of the
        # running batch, before YARN drops the driver log URL at the end.
        scripted.states_for_new = ["running"] * 4 + ["success"]
        scripted.posted_infos = [RUNNING_INFO] * 4 + [ENDED_INFO]
        ti = JournaledTaskInstance(journal=scripted.journal)
        run(scripted, store, ti)
        assert ti.xcoms["_link_SparkDriverLogLink"] == DRIVER_LOG
        assert ti.xcoms["_link_SparkUiLink"] == SPARK_UI
        polls = [e[2] for e in scripted.journal if e[0] == "http" and e[1] == "GET"]
        assert len(polls) == 7  # a request a poll, the end's check, the log's end
        assert polls.index("/batches/0/log") == 6  # else the log came with the batch reads

    def test_the_livy_link_follows_the_endpoint_prefix(self, scripted, store):
        scripted.prefix = "/gateway/livy"
        script_batch(scripted, lines=10, polls=1)
        ti = JournaledTaskInstance(journal=scripted.journal)
        run(scripted, store, ti, livy_endpoint_prefix="gateway/livy/")
        assert ti.xcoms["_link_LivyBatchLink"] == "http://127.0.0.1:8998/gateway/livy/ui/batch/0/log"


@pytest.mark.airflow33  # the record is kept in the task state store
class TestReconnect:
    def test_a_retry_shows_only_what_the_earlier_try_did_not_and_pushes_the_links_again(
        self, scripted, store, logs
    ):
        everything = spark_lines(600)
        earlier = LogStream()
        earlier.update(livy_log(everything[:350]))  # what try 1 showed before its worker died
        from unit.apache.livy.operators.test_livy import our_name

        store.set(
            KEY,
            BatchRecord(
                name=our_name(),
                batch_id=3,
                app_id="application_1_0003",
                links={"spark_ui": SPARK_UI, "driver_log": DRIVER_LOG},
                log_cursor=earlier.cursor,
                owner_try=1,
            ).to_json(),
        )
        batch = scripted.add(our_name(), ["running"] * 6 + ["success"], id=3, app_id="application_1_0003")
        batch.logs = [livy_log(everything[:n]) for n in range(350, 601, 50)]
        batch.app_info = [ENDED_INFO]  # the driver log URL is gone by now
        ti = JournaledTaskInstance(try_number=2, max_tries=2, journal=scripted.journal)
        assert run(scripted, store, ti, retries=2) == 3
        assert shown(logs()) == everything[350:]
        assert ti.xcoms["_link_SparkDriverLogLink"] == DRIVER_LOG
        assert ti.xcoms["_link_SparkUiLink"] == SPARK_UI
        assert ti.xcoms["_link_LivyBatchLink"] == "http://127.0.0.1:8998/ui/batch/3/log"


class TestFireAndForget:
    def test_pushes_what_the_first_read_gave(self, scripted, store):
        scripted.states_for_new = ["running"]
        scripted.posted_infos = [RUNNING_INFO]
        ti = JournaledTaskInstance(journal=scripted.journal)
        assert run(scripted, store, ti, polling_interval=0) == 0
        assert ti.xcoms["_link_SparkUiLink"] == SPARK_UI
        assert ti.xcoms["_link_SparkDriverLogLink"] == DRIVER_LOG
        assert ti.xcoms["_link_LivyBatchLink"] == LIVY_UI
        assert [f"{e[1]} {e[2]}" for e in scripted.journal if e[0] == "http"] == [
            "POST /batches",
            "GET /batches/0",  # the app id (and its links), read once
        ]


class TestDeferrable:
    def test_a_starting_batch_is_waited_for_on_the_worker_until_its_links_are_known(
        self, scripted, store, logs
    ):
        script_batch(scripted, lines=10, polls=3)
        ti = JournaledTaskInstance(journal=scripted.journal)
        with pytest.raises(TaskDeferred) as deferred:
            operator(deferrable=True, polling_interval=5).execute({"ti": ti, "task_state_store": store})
        trigger = deferred.value.trigger
        assert (trigger._report_links, trigger._follow_log) == (False, True)
        assert trigger._log_cursor["stdout"][0] > 1  # the lines the worker showed while it waited
        assert ti.xcoms["_link_SparkUiLink"] == SPARK_UI
        assert ti.xcoms["_link_SparkDriverLogLink"] == DRIVER_LOG
        requests = [f"{e[1]} {e[2]}" for e in scripted.journal if e[0] == "http"]
        # The log's lines so far came with the whole read that brought the links.
        assert requests == ["POST /batches", "GET /batches/0/state", "GET /batches/0"]

    def test_a_batch_already_running_is_read_whole_once_so_the_trigger_follows_the_log(
        self, scripted, store, logs
    ):
        script_batch(scripted, lines=10, polls=3)
        scripted.states_for_new = ["running"] * 3 + ["success"]  # running at the first check
        ti = JournaledTaskInstance(journal=scripted.journal)
        with pytest.raises(TaskDeferred) as deferred:
            operator(deferrable=True, polling_interval=5).execute({"ti": ti, "task_state_store": store})
        trigger = deferred.value.trigger
        # Not a links-only trigger that leaves the log unfollowed until the task resumes.
        assert (trigger._report_links, trigger._follow_log) == (False, True)
        assert ti.xcoms["_link_SparkUiLink"] == SPARK_UI

    @pytest.mark.airflow33  # the record is kept in the task state store
    def test_a_deferred_task_writes_the_store_five_times(self, scripted, store, logs):
        script_batch(scripted, lines=10, polls=3)
        ti = JournaledTaskInstance(journal=scripted.journal)
        context = {"ti": ti, "task_state_store": store}
        with pytest.raises(TaskDeferred) as deferred:
            operator(deferrable=True, polling_interval=5).execute(context)
        trigger_cursor = LogStream(deferred.value.trigger._log_cursor)
        trigger_cursor.update(livy_log(spark_lines(10)))  # the trigger showed the rest
        scripted.batches[0].states = ["success"]
        scripted.batches[0].logs = [livy_log(spark_lines(10))]
        event = {"status": "success", "batch_id": 0, "response": "ok", "log_lines": None, "state": "success"}
        event["log_cursor"] = trigger_cursor.cursor
        assert operator(deferrable=True, polling_interval=5).execute_complete(context, event) == 0
        writes = [entry[1] for entry in scripted.journal if entry[0] == "store"]
        assert writes == [KEY, KEY, "livy_batch_id", KEY, KEY]  # ahead, the ids, final state, delivered
        final = BatchRecord.from_stored(store.get(KEY))
        assert (final.final_state, final.delivered_try) == ("success", 1)
        assert final.log_cursor == trigger_cursor.cursor

    def test_links_come_back_in_a_running_event_and_the_task_defers_again(
        self, scripted, store, logs, monkeypatch
    ):
        monkeypatch.setattr(LivyOperator, "LINKS_WAIT_SECONDS", 0.0)  # the batch starts for long
        script_batch(scripted, lines=10, polls=3)
        ti = JournaledTaskInstance(journal=scripted.journal)
        context = {"ti": ti, "task_state_store": store}
        with pytest.raises(TaskDeferred) as first:
            operator(deferrable=True, polling_interval=5).execute(context)
        trigger = first.value.trigger
        assert (trigger._report_links, trigger._follow_log, trigger._log_cursor) == (True, False, None)
        assert ti.xcoms["_link_LivyBatchLink"] == LIVY_UI

        cursor = LogStream()
        cursor.update(livy_log(spark_lines(4)))  # the trigger showed 4 lines
        running = {
            "status": "running",
            "batch_id": 0,
            "response": "Batch 0 is running",
            "log_lines": None,
            "redeferrals": 0,
            "log_cursor": cursor.cursor,
            "state": "running",
            "batch": {"appId": "application_1_0000", "appInfo": RUNNING_INFO},
        }
        scripted.batches[0].logs = [livy_log(spark_lines(6))]
        logs()  # forget what was logged so far
        with pytest.raises(TaskDeferred) as again:
            operator(deferrable=True, polling_interval=5).execute_complete(context, running)
        assert shown(logs()) == spark_lines(6)[4:]  # logged since the event: shown before deferring
        cursor.update(livy_log(spark_lines(6)))
        trigger = again.value.trigger
        assert (trigger._report_links, trigger._follow_log, trigger._log_cursor) == (
            False,
            True,
            cursor.cursor,
        )
        assert ti.xcoms["_link_SparkDriverLogLink"] == DRIVER_LOG

        scripted.batches[0].states = ["success"]
        scripted.batches[0].logs = [livy_log(spark_lines(10))]
        scripted.batches[0].app_info = [ENDED_INFO]
        done = {**running, "status": "success", "state": "success", "response": "ok"}
        done["log_cursor"] = cursor.cursor
        del done["batch"]
        assert operator(deferrable=True, polling_interval=5).execute_complete(context, done) == 0
        assert shown(logs()) == spark_lines(10)[6:]
        assert ti.xcoms["_link_SparkDriverLogLink"] == DRIVER_LOG


class TestDropInSeams:
    def test_a_mocked_get_batch_logs_intercepts_the_live_log(self, mocker, store, logs):
        from airflow.providers.apache.livy.utils.states import BatchState

        mocker.patch.object(LivyHook, "post_batch", return_value=7)
        mocker.patch.object(LivyHook, "get_batch_state", side_effect=[BatchState.RUNNING, BatchState.SUCCESS])
        mocker.patch.object(LivyHook, "get_batch", return_value={"id": 7, "appId": "app-7"})
        pages = mocker.patch.object(
            LivyHook, "get_batch_logs", return_value={"id": 7, "from": 0, "total": 2, "log": ["a", "b"]}
        )
        ti = FakeTaskInstance()
        operator(durable=False).execute({"ti": ti})
        # A mocked get_batch_state is called on every poll, so the log comes from the log endpoint:
        # all of it while running, then its end (as many lines as it grew by a poll, and more).
        assert pages.call_args_list[0] == mocker.call(7, 0, -1)
        assert [call.args[:2] for call in pages.call_args_list[1:]] == [(7, -1)]

    def test_an_overridden_dump_batch_logs_keeps_4_6_4s_log_handling(self, scripted, store, mocker):
        dump = mocker.patch.object(LivyHook, "dump_batch_logs")
        pages = mocker.spy(LivyHook, "get_batch_logs")
        script_batch(scripted, lines=10, polls=2)
        run(scripted, store, FakeTaskInstance())
        dump.assert_called_once_with(0)
        pages.assert_not_called()
