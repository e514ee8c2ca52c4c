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

import inspect
import json
import logging
from datetime import timedelta
from typing import Any

import pytest
import requests
import responses
from airflow.exceptions import AirflowException

from airflow.providers.apache.livy.hooks.livy import LivyHook
from airflow.providers.apache.livy.operators.livy import LivyOperator
from airflow.providers.apache.livy.triggers.livy import LivyTrigger
from airflow.providers.apache.livy.utils.batch_record import (
    BatchRecord,
    batch_name,
    is_valid_batch_name,
)
from airflow.providers.apache.livy.version_compat import AIRFLOW_V_3_3_PLUS as HAS_RESUMABLE_JOB_MIXIN
from unit.apache.livy.task_context import FakeTaskInstance, MemoryTaskStateStore

try:
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 2.11
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef]

KEY = "livy_batch_id"
"""Where the mixin keeps the batch id."""
RECORD_KEY = "livy_batch_record"
"""Where the operator keeps its record."""
ACTIVE_STATES = ["not_started", "starting", "running", "idle", "busy", "shutting_down", "recovering"]
FAILED_STATES = ["dead", "killed", "error"]


@pytest.fixture
def logs(caplog, capsys):
    """Everything logged so far: Airflow 3 logs through structlog to stdout, Airflow 2 through logging."""
    caplog.set_level(logging.DEBUG)
    return lambda: caplog.text + capsys.readouterr().out


def operator(**kwargs: Any) -> LivyOperator:
    params: dict[str, Any] = {"task_id": "spark_job", "file": "pi.py", "polling_interval": 0.001}
    params.update(kwargs)
    return LivyOperator(**params)


def run_try(
    store: MemoryTaskStateStore | None, try_number: int = 1, *, cleared: bool = False, **kwargs: Any
) -> tuple[Any, FakeTaskInstance]:
    """
    Run one try of the task. ``max_tries`` is what Airflow would hold: ``retries`` for the tries of
    a first run, ``try_number - 1 + retries`` for the first try after the task was cleared.
    """
    op = operator(**kwargs)
    max_tries = try_number - 1 + op.retries if cleared else op.retries
    ti = FakeTaskInstance(try_number=try_number, max_tries=max_tries)
    context: dict[str, Any] = {"ti": ti}
    if store is not None:
        context["task_state_store"] = store
    return op.execute(context), ti


def our_name(submission: int = 1, prefix: str | None = None, first_try: int = 1) -> str:
    ti = FakeTaskInstance()
    return batch_name(
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        run_id=ti.run_id,
        map_index=ti.map_index,
        submission=submission,
        first_try=first_try,
        prefix=prefix,
    )


def record(**fields: Any) -> dict[str, Any]:
    return BatchRecord(**{"name": our_name(), **fields}).to_json()


def remember(store: MemoryTaskStateStore, earlier: dict[str, Any]) -> None:
    """Leave what an earlier try leaves: its record, and the batch id the mixin stored (once known)."""
    store.set(RECORD_KEY, earlier)
    if earlier.get("batch_id") is not None:
        store.set(KEY, earlier["batch_id"])


def stored(store: MemoryTaskStateStore) -> BatchRecord:
    return BatchRecord.from_stored(store.get(RECORD_KEY))


class TestLivyOperatorInit:
    def test_released_public_attributes(self):
        assert LivyOperator.template_fields == ("spark_params",)
        assert LivyOperator.template_fields_renderers == {"spark_params": "json"}
        assert LivyOperator.external_id_key == "livy_batch_id"

    def test_every_released_constructor_argument_is_accepted(self):
        released = [
            "file",
            "class_name",
            "args",
            "conf",
            "jars",
            "py_files",
            "files",
            "driver_memory",
            "driver_cores",
            "executor_memory",
            "executor_cores",
            "num_executors",
            "archives",
            "queue",
            "name",
            "proxy_user",
            "livy_conn_id",
            "livy_conn_auth_type",
            "livy_endpoint_prefix",
            "polling_interval",
            "extra_options",
            "extra_headers",
            "retry_args",
            "deferrable",
            "openlineage_inject_parent_job_info",
            "openlineage_inject_transport_info",
            "durable",
        ]
        parameters = inspect.signature(LivyOperator.__init__).parameters
        assert [name for name in released if name not in parameters] == []
        assert all(parameters[name].kind is inspect.Parameter.KEYWORD_ONLY for name in released)
        assert parameters["durable"].default is None

    def test_spark_params_hold_what_the_dag_passed(self):
        op = operator(file="app.jar", class_name="Main", args=[1, "a"], conf={"k": "v"}, name="n")
        assert op.spark_params["file"] == "app.jar"
        assert op.spark_params["class_name"] == "Main"
        assert op.spark_params["args"] == [1, "a"]
        assert op.spark_params["conf"] == {"k": "v"}
        assert op.spark_params["name"] == "n"

    @pytest.mark.parametrize(("given", "expected"), [(None, True), (True, True), (False, False)])
    def test_durable_defaults_to_true(self, given, expected, recwarn):
        op = operator() if given is None else operator(durable=given)
        assert op.durable is (expected and HAS_RESUMABLE_JOB_MIXIN), "never durable before 3.3"

    @pytest.mark.parametrize("durable", [True, False])
    def test_durable_comes_from_default_args(self, durable):
        from airflow.providers.apache.livy.version_compat import AIRFLOW_V_3_0_PLUS

        if AIRFLOW_V_3_0_PLUS:
            from airflow.sdk import DAG
        else:
            from airflow.models import DAG
        with DAG("d", schedule=None, default_args={"durable": durable}):
            op = LivyOperator(task_id="t", file="f.py")
        assert op.durable is (durable and HAS_RESUMABLE_JOB_MIXIN)

    def test_hook_carries_the_operator_settings(self):
        op = operator(
            livy_endpoint_prefix="gw/livy/", extra_headers={"X-A": "1"}, extra_options={"timeout": 5}
        )
        assert op.hook.endpoint_prefix == "/gw/livy"
        assert op.hook.extra_headers == {"X-A": "1"}
        assert op.hook.extra_options == {"timeout": 5}


class TestWithoutDurability:
    """``durable=False`` and contexts without a task state store: the released behaviour."""

    def test_polls_to_success_and_returns_the_batch_id(self, livy):
        livy.states_for_new = ["starting", "running", "running", "success"]
        result, ti = run_try(None, durable=False)
        assert result == 0
        assert ti.xcoms["app_id"] == "application_1_0000"
        assert livy.post_count == 1
        assert livy.posted[0]["body"] == {"file": "pi.py"}

    def test_user_name_is_sent_verbatim(self, livy, store):
        run_try(store, durable=False, name="My Job")
        assert livy.posted[0]["body"]["name"] == "My Job"
        assert store.get(KEY) is None

    def test_always_resubmits(self, livy, store):
        remember(store, record(batch_id=0))
        livy.add(our_name(), ["running", "success"], id=0)
        result, _ = run_try(store, try_number=2, durable=False)
        assert livy.post_count == 1
        assert result == 1

    def test_failed_batch_raises_after_showing_its_log(self, livy):
        livy.states_for_new = ["running", "dead"]
        op = operator(durable=False)
        with pytest.raises(AirflowException, match="did not succeed"):
            op.execute({"ti": FakeTaskInstance()})
        # The whole log (its marker and two lines) came with the batch reads; nothing was left to read.
        assert op._batch.record.log_cursor["stdout"][0] == 3

    def test_fire_and_forget_returns_once_submitted(self, livy):
        result, ti = run_try(None, durable=False, polling_interval=0)
        assert result == 0
        assert ti.xcoms["app_id"] == "application_1_0000"
        assert [entry[1:] for entry in livy.journal] == [("POST", "/batches"), ("GET", "/batches/0")]

    @pytest.mark.parametrize(*("durable", [True, False]))
    def test_post_sends_the_csrf_header(self, livy, store, durable):
        run_try(store, durable=durable)
        assert livy.posted[0]["headers"]["X-Requested-By"] == "airflow"

    @pytest.mark.parametrize("durable", [True, False])
    def test_endpoint_prefix_is_used(self, livy, store, durable):
        livy.prefix = "/gw/livy"
        result, _ = run_try(store, durable=durable, livy_endpoint_prefix="/gw/livy/")
        assert (result, livy.post_count) == (0, 1)


@pytest.mark.usefixtures("livy")
class TestDeferrable:
    @pytest.fixture(autouse=True)
    def _gateway(self, livy):
        livy.prefix = "/gw"

    def _defer(self, store, **kwargs: Any) -> LivyTrigger:
        kwargs.setdefault("livy_endpoint_prefix", "gw")
        with pytest.raises(TaskDeferred) as deferred:
            run_try(store, deferrable=True, polling_interval=5, **kwargs)
        trigger = deferred.value.trigger
        assert isinstance(trigger, LivyTrigger)
        assert deferred.value.method_name == "execute_complete"
        return trigger

    def test_defers_with_everything_the_triggerer_needs(self, store, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_LIVY_DEFAULT", "livy://user:pw@127.0.0.1:8998")
        trigger = self._defer(
            store,
            extra_headers={"X-Tenant": "a"},
            livy_conn_auth_type=requests.auth.HTTPBasicAuth,
            conf={"spark.secret.token": "s3cr3t"},
        )
        _, kwargs = trigger.serialize()
        assert kwargs["endpoint_prefix"] == "gw"
        assert kwargs["extra_headers"] == {"X-Tenant": "a"}
        assert kwargs["auth_type"] == "aiohttp.helpers.BasicAuth"
        assert kwargs.get("batch_name") == (our_name() if HAS_RESUMABLE_JOB_MIXIN else None)
        assert "s3cr3t" not in json.dumps(kwargs, default=str)

    def test_requests_auth_other_than_basic_leaves_the_triggerer_basic_auth(self, store, monkeypatch):
        # As in 4.6.4: the triggerer uses aiohttp's basic auth with the connection's login.
        monkeypatch.setenv("AIRFLOW_CONN_LIVY_DEFAULT", "livy://user:pw@127.0.0.1:8998")
        trigger = self._defer(store, livy_conn_auth_type=requests.auth.HTTPDigestAuth)
        assert "auth_type" not in trigger.serialize()[1]  # None: the default, aiohttp.BasicAuth

    @pytest.mark.parametrize("durable", [True, False])
    def test_finished_batch_is_not_deferred(self, livy, store, durable):
        livy.states_for_new = ["success"]
        result, ti = run_try(
            store, deferrable=True, polling_interval=5, durable=durable, livy_endpoint_prefix="gw"
        )
        assert result == 0
        assert ti.xcoms["app_id"] == "application_1_0000"

    def test_execute_complete_success_returns_the_batch_and_pushes_app_id(self, livy):
        livy.add(None, ["success"], id=7)
        ti = FakeTaskInstance()
        event = {"status": "success", "batch_id": 7, "response": "ok", "log_lines": ["a"], "state": "success"}
        assert operator(deferrable=True, livy_endpoint_prefix="gw").execute_complete({"ti": ti}, event) == 7
        assert ti.xcoms["app_id"] == "application_1_0007"

    def test_execute_complete_without_polling_caches_no_unseen_success(self, livy, store):
        livy.add(our_name(), ["running"], id=7)
        remember(store, record(batch_id=7))
        context = {"ti": FakeTaskInstance(), "task_state_store": store}
        event = {"status": "success", "batch_id": 7, "response": "Batch 7 succeeded", "log_lines": None}
        assert (
            operator(deferrable=True, polling_interval=0, livy_endpoint_prefix="gw").execute_complete(
                context, event
            )
            == 7
        )
        assert stored(store).final_state is None

    def test_execute_complete_error_raises(self):
        event = {"status": "error", "batch_id": 7, "response": "Batch 7 did not succeed", "log_lines": None}
        with pytest.raises(AirflowException, match="did not succeed"):
            operator(deferrable=True).execute_complete({"ti": FakeTaskInstance()}, event)

    def test_execute_complete_timeout_deletes_the_batch(self, livy):
        livy.add(None, ["running"], id=7)
        event = {"status": "timeout", "batch_id": 7, "response": "Batch 7 timed out", "log_lines": None}
        op = operator(deferrable=True, livy_endpoint_prefix="gw")
        with pytest.raises(AirflowException, match="timed out"):
            op.execute_complete({"ti": FakeTaskInstance()}, event)
        assert ("http", "DELETE", "/batches/7") in livy.journal


@pytest.mark.airflow33
@pytest.mark.skipif(not HAS_RESUMABLE_JOB_MIXIN, reason="needs Airflow 3.3+ (ResumableJobMixin)")
class TestLivyOperatorResumable:
    def test_fresh_submit_persists_before_the_post_and_the_id_before_the_first_poll(self, livy, store):
        livy.states_for_new = ["running", "success"]
        result, _ = run_try(store)
        kinds = [
            (entry[1], json.loads(entry[2]).get("batch_id")) if entry[1] == RECORD_KEY else entry[:3]
            for entry in livy.journal
        ]
        # The record with the name, then the POST; the id (in the record, then the mixin's) before a poll.
        assert kinds[:5] == [
            (RECORD_KEY, None),
            ("http", "POST", "/batches"),
            (RECORD_KEY, 0),
            ("store", KEY, "0"),
            ("http", "GET", "/batches/0"),  # the first poll reads the whole batch: its log's last lines
        ]
        write_ahead = json.loads(livy.journal[0][2])
        assert write_ahead["name"] == livy.posted[0]["body"]["name"] == our_name()
        assert result == 0

    def test_uninterrupted_run_returns_the_id_and_pushes_app_id(self, livy, store):
        result, ti = run_try(store)
        assert (result, ti.xcoms["app_id"]) == (0, "application_1_0000")
        assert stored(store).final_state == "success"
        assert stored(store).delivered_try == 1

    @pytest.mark.parametrize("state", [*ACTIVE_STATES, "some_future_state"])
    def test_reconnects_to_an_active_batch(self, livy, store, state):
        livy.add(our_name(), [state, "running", "success"], id=3)
        remember(store, record(batch_id=3))
        result, ti = run_try(store, try_number=2)
        assert livy.post_count == 0
        assert result == 3, "a reconnect must return the batch id like an uninterrupted run"
        assert ti.xcoms["app_id"] == "application_1_0003"

    def test_reconnect_after_success_returns_without_polling(self, livy, store):
        livy.add(our_name(), ["success"], id=3)
        remember(store, record(batch_id=3))
        result, ti = run_try(store, try_number=2)
        assert (result, ti.xcoms["app_id"], livy.post_count) == (3, "application_1_0003", 0)
        assert [e[2] for e in livy.journal if e[0] == "http"] == ["/batches/3", "/batches/3/log"]

    @pytest.mark.parametrize("state", FAILED_STATES)
    def test_resubmits_after_a_failed_batch(self, livy, store, state):
        livy.add(our_name(), [state], id=3)
        remember(store, record(batch_id=3))
        result, _ = run_try(store, try_number=2)
        assert livy.post_count == 1
        assert livy.posted[0]["body"]["name"] == our_name(submission=2)
        assert result == 4

    def test_without_a_task_state_store_warns_and_runs_plainly(self, livy, logs):
        result, _ = run_try(None)
        assert result == 0
        assert livy.post_count == 1
        assert "task_state_store not available" in logs()

    @pytest.mark.parametrize("batch_id", [0, 5])
    def test_bare_id_stored_by_the_released_provider_is_reconnected(self, livy, store, batch_id):
        livy.add(None, ["running", "success"], id=batch_id)
        store.set(KEY, batch_id)
        result, ti = run_try(store, try_number=2)
        assert (result, livy.post_count) == (batch_id, 0)
        assert ti.xcoms["app_id"] == f"application_1_{batch_id:04d}"

    def test_batch_livy_forgot_is_submitted_again_with_a_warning(self, livy, store, logs):
        remember(store, record(batch_id=3))
        result, _ = run_try(store, try_number=2)
        assert livy.post_count == 1
        assert livy.posted[0]["body"]["name"] == our_name(submission=2)
        assert "no longer knows" in logs()
        assert result == 0

    def test_html_reply_names_the_batch_and_endpoint(self, livy, store):
        livy.override["GET /batches/3"] = (200, "<html><body>Knox login</body></html>")
        remember(store, record(batch_id=3))
        with pytest.raises(AirflowException, match=r"batch 3 at GET /batches/3 .*not JSON"):
            run_try(store, try_number=2)

    def test_retry_args_retry_a_5xx_read(self, livy, store):
        import tenacity

        livy.add(our_name(), ["running", "success"], id=3)
        remember(store, record(batch_id=3))
        livy.queued["GET /batches/3"] = [(503, "unavailable")]
        retry_args = {"stop": tenacity.stop_after_attempt(3), "wait": tenacity.wait_none()}
        result, _ = run_try(store, try_number=2, retry_args=retry_args)
        assert (result, livy.post_count) == (3, 0)
        assert [e[2] for e in livy.journal if e[0] == "http"][:2] == ["/batches/3", "/batches/3"]

    def test_without_retry_args_a_5xx_read_fails(self, livy, store):
        livy.add(our_name(), ["running", "success"], id=3)
        remember(store, record(batch_id=3))
        livy.queued["GET /batches/3"] = [(503, "unavailable")]
        with pytest.raises(AirflowException, match="HTTP 503"):
            run_try(store, try_number=2)
        assert livy.post_count == 0


@pytest.mark.airflow33
@pytest.mark.skipif(not HAS_RESUMABLE_JOB_MIXIN, reason="needs Airflow 3.3+ (ResumableJobMixin)")
class TestExactlyOneBatch:
    def test_write_ahead_record_found_by_name_is_adopted(self, livy, store):
        livy.add(our_name(), ["running", "success"], id=8)
        remember(store, record())  # died after the write-ahead, before learning the id
        result, ti = run_try(store, try_number=2)
        assert (result, livy.post_count) == (8, 0)
        assert ti.xcoms["app_id"] == "application_1_0008"

    def test_refused_post_leaves_no_zombie_for_the_retry_to_adopt(self, livy, store):
        def refuse_but_register(body: dict[str, Any]) -> tuple[int, str]:
            livy.add(body["name"], ["starting"])  # Livy's zombie: registered, then refused
            return 400, json.dumps({"msg": "Rejected, Reason: requirement failed: File is required."})

        livy.post_failure = refuse_but_register
        with pytest.raises(AirflowException, match="File is required"):
            run_try(store)
        assert livy.batches == {}, "the zombie holding our name must be deleted"
        assert stored(store).final_state == "error"
        livy.post_failure = None
        result, _ = run_try(store, try_number=2)
        assert livy.posted[-1]["body"]["name"] == our_name(submission=2)
        assert result == 1

    def test_reused_id_is_never_adopted(self, livy, store, logs):
        livy.add("another-teams-batch", ["running", "success"], id=3)
        remember(store, record(batch_id=3, app_id="application_1_0003"))
        result, _ = run_try(store, try_number=2)
        assert livy.post_count == 1
        assert result == 4
        assert "reused the id" in logs()
        assert livy.batches[3].name == "another-teams-batch"

    def test_cached_outcome_survives_livy_forgetting_the_batch(self, livy, store, logs):
        remember(store, record(batch_id=3, app_id="application_1_0003", final_state="success"))
        result, ti = run_try(store, try_number=2)
        assert (result, ti.xcoms["app_id"], livy.post_count) == (3, "application_1_0003", 0)
        assert "not available" in logs()  # the log is gone; the result is not

    @pytest.mark.parametrize("retries", [0, 2])
    def test_rerun_after_success_submits_a_new_batch(self, livy, store, retries):
        first, _ = run_try(store, retries=retries)
        second, ti = run_try(store, try_number=2, cleared=True, retries=retries)
        assert (first, second, livy.post_count) == (0, 1, 2)
        assert livy.posted[1]["body"]["name"] == our_name(submission=2, first_try=2)
        assert ti.xcoms["app_id"] == "application_1_0001"

    def test_rerun_after_success_with_clear_on_success_never_adopts_the_old_batch(self, livy, store):
        first, _ = run_try(store)
        store.clear()  # [state_store] clear_on_success = True; the old batch is still in Livy's memory
        second, _ = run_try(store, try_number=2, cleared=True)
        assert (first, second, livy.post_count) == (0, 1, 2)
        assert livy.posted[1]["body"]["name"] == our_name(submission=1, first_try=2)

    def test_fire_and_forget_retry_after_delivery_returns_the_same_batch(self, livy, store):
        first, _ = run_try(store, polling_interval=0, retries=1)
        livy.batches[0].states = ["dead"]  # it failed after the first try handed it over, then died
        second, ti = run_try(store, try_number=2, polling_interval=0, retries=1)
        assert (first, second, livy.post_count) == (0, 0, 1)
        assert ti.xcoms["app_id"] == "application_1_0000"

    @pytest.mark.parametrize("retries", [1, 3])
    def test_retry_after_dying_once_the_result_was_delivered_returns_it_again(self, livy, store, retries):
        first, _ = run_try(store, retries=retries)  # then the worker died before success was recorded
        second, ti = run_try(store, try_number=2, retries=retries)
        assert (first, second, livy.post_count) == (0, 0, 1)
        assert ti.xcoms["app_id"] == "application_1_0000"
        assert stored(store).delivered_try == 2

    def test_rerun_after_a_clear_that_followed_a_retry(self, livy, store):
        run_try(store, retries=1)
        run_try(store, try_number=2, retries=1)  # retry after a crash after delivery: same batch
        third, _ = run_try(store, try_number=3, cleared=True, retries=1)
        assert (third, livy.post_count) == (1, 2)

    def test_deferrable_persists_before_deferring_and_redefers_on_retry(self, livy, store):
        livy.states_for_new = ["running"]
        with pytest.raises(TaskDeferred):
            run_try(store, deferrable=True, polling_interval=5)
        assert stored(store).batch_id == 0
        with pytest.raises(TaskDeferred) as again:
            run_try(store, try_number=2, deferrable=True, polling_interval=5)
        assert livy.post_count == 1
        assert again.value.trigger.serialize()[1]["batch_id"] == 0

    def test_deferrable_completion_caches_and_delivers(self, livy, store):
        livy.states_for_new = ["running"]
        with pytest.raises(TaskDeferred):
            run_try(store, deferrable=True, polling_interval=5)
        livy.batches[0].states = ["success"]
        ti = FakeTaskInstance()
        context = {"ti": ti, "task_state_store": store}
        event = {"status": "success", "batch_id": 0, "response": "ok", "log_lines": [], "state": "success"}
        assert operator(deferrable=True).execute_complete(context, event) == 0
        assert (stored(store).final_state, stored(store).delivered_try) == ("success", 1)
        assert ti.xcoms["app_id"] == "application_1_0000"

    def test_fire_and_forget_retry_returns_the_live_batch(self, livy, store):
        livy.add(our_name(), ["running"], id=3)
        remember(store, record(batch_id=3))
        result, _ = run_try(store, try_number=2, polling_interval=0)
        assert (result, livy.post_count) == (3, 0)

    def test_dag_name_becomes_the_prefix_of_a_unique_name(self, livy, store):
        run_try(store, name="nightly etl/v2")
        sent = livy.posted[0]["body"]["name"]
        assert sent.startswith("nightly_etl_v2-t1-s1-")
        assert sent == our_name(prefix="nightly etl/v2")
        assert is_valid_batch_name(sent)

    def test_conf_values_are_never_logged(self, livy, store, logs):
        secret = "AKIA-very-secret-value"
        run_try(store, conf={"spark.hadoop.fs.s3a.access.key": secret, "spark.executor.cores": "2"})
        assert livy.posted[0]["body"]["conf"]["spark.hadoop.fs.s3a.access.key"] == secret
        text = logs()
        assert "spark.hadoop.fs.s3a.access.key" in text
        assert secret not in text

    def test_the_trigger_never_serializes_conf_values(self):
        trigger = LivyTrigger(batch_id=1, spark_params={"file": "f", "conf": {"spark.password": "hunter2"}})
        assert "hunter2" not in json.dumps(trigger.serialize(), default=str)

    def test_sensitive_conf_values_are_masked_after_rendering(self, mocker):
        mask = mocker.patch("airflow.providers.apache.livy.operators.livy.mask_secret")
        op = operator(conf={"spark.hadoop.fs.s3a.secret.key": "{{ 's3cr3t' }}", "spark.executor.cores": "2"})
        op.render_template_fields(context={"ds": "2026-11-23"})
        assert op.spark_params["conf"]["spark.hadoop.fs.s3a.secret.key"] == "s3cr3t"
        mask.assert_called_once_with("s3cr3t")


def test_execution_timeout_reaches_the_trigger(livy, store):
    with pytest.raises(TaskDeferred) as deferred:
        run_try(store, deferrable=True, polling_interval=5, execution_timeout=timedelta(minutes=3))
    assert deferred.value.trigger.serialize()[1]["execution_timeout"] == timedelta(minutes=3)


class TestKill:
    def test_on_kill_action_defaults_to_auto_and_is_checked(self):
        assert operator().on_kill_action == "auto"
        assert operator(on_kill_action="keep_batch").on_kill_action == "keep_batch"
        with pytest.raises(ValueError):
            operator(on_kill_action="delete")

    @pytest.mark.airflow33
    @pytest.mark.skipif(not HAS_RESUMABLE_JOB_MIXIN, reason="needs Airflow 3.3+ (ResumableJobMixin)")
    def test_execution_timeout_then_on_kill_deletes_the_batch(self, livy, store):
        from airflow.providers.common.compat.sdk import AirflowTaskTimeout

        def time_out(body: dict[str, Any]) -> None:
            raise AirflowTaskTimeout("Timeout")  # what Airflow's timeout raises in the middle of a poll

        livy.states_for_new = ["running"] * 5
        livy.on_state_read = time_out
        op = operator()
        with pytest.raises(AirflowTaskTimeout):
            op.execute({"ti": FakeTaskInstance(), "task_state_store": store})
        op.on_kill()  # the task runner calls it after the timeout
        assert [entry[1:] for entry in livy.journal if entry[0] == "http"][-2:] == [
            ("GET", "/batches/0"),
            ("DELETE", "/batches/0"),
        ]

    def test_kill_deletes_the_batch(self, livy, store):
        op = operator(polling_interval=0, durable=False)
        op.execute({"ti": FakeTaskInstance(), "task_state_store": store})
        op.kill()
        assert ("http", "DELETE", "/batches/0") in livy.journal

    @pytest.mark.parametrize(("action", "sent"), [("auto", "delete_batch"), ("keep_batch", "keep_batch")])
    def test_the_trigger_is_told_what_to_do_on_kill(self, livy, store, action, sent):
        livy.states_for_new = ["running"]
        with pytest.raises(TaskDeferred) as deferred:
            run_try(store, deferrable=True, polling_interval=5, on_kill_action=action)
        assert deferred.value.trigger.serialize()[1].get("on_kill_action", "delete_batch") == sent

    def test_a_transient_trigger_error_waits_again_a_few_times(self, livy, store):
        livy.add(None, ["running"], id=7)
        context = {"ti": FakeTaskInstance(), "task_state_store": store}
        event = {"status": "error", "batch_id": 7, "response": "connection reset", "log_lines": None}
        for redeferrals in range(LivyOperator.MAX_REDEFERRALS):
            with pytest.raises(TaskDeferred) as again:
                operator(deferrable=True).execute_complete(
                    context, {**event, "transient": True, "redeferrals": redeferrals}
                )
            assert again.value.trigger.serialize()[1]["redeferrals"] == redeferrals + 1
        last = {**event, "transient": True, "redeferrals": LivyOperator.MAX_REDEFERRALS}
        with pytest.raises(AirflowException, match="connection reset"):
            operator(deferrable=True).execute_complete(context, last)
        with pytest.raises(AirflowException, match="connection reset"):
            operator(deferrable=True).execute_complete(context, event)  # not transient: fails at once


class Released464Hook(LivyHook):
    """A subclass written for provider 4.6.4: its signatures, its ``__init__``, counting its calls."""

    def __init__(
        self,
        livy_conn_id="livy_default",
        extra_options=None,
        extra_headers=None,
        auth_type=None,
        endpoint_prefix=None,
    ):
        super().__init__(livy_conn_id, extra_options, extra_headers, auth_type, endpoint_prefix)
        self.calls: list[str] = []

    def post_batch(self, *args, **kwargs):
        self.calls.append("post_batch")
        return super().post_batch(*args, **kwargs)

    def get_batch(self, session_id):
        self.calls.append("get_batch")
        return super().get_batch(session_id)

    def get_batch_state(self, session_id, retry_args=None):
        self.calls.append("get_batch_state")
        return super().get_batch_state(session_id, retry_args=retry_args)

    def dump_batch_logs(self, session_id):
        self.calls.append("dump_batch_logs")
        return super().dump_batch_logs(session_id)

    def delete_batch(self, session_id):
        self.calls.append("delete_batch")
        return super().delete_batch(session_id)


class TestDropInSeams:
    """What users of 4.6.4 override and mock is what this operator calls, with 4.6.4's signatures."""

    MODES = {
        "polling": {"polling_interval": 0.001},
        "fire_and_forget": {"polling_interval": 0},
        "deferrable": {"deferrable": True, "polling_interval": 5},
    }

    @pytest.fixture
    def hooks(self, mocker) -> list[Released464Hook]:
        made: list[Released464Hook] = []

        def make(*args: Any, **kwargs: Any) -> Released464Hook:
            made.append(Released464Hook(*args, **kwargs))
            return made[-1]

        mocker.patch("airflow.providers.apache.livy.operators.livy.LivyHook", side_effect=make)
        return made

    @pytest.mark.parametrize("durable", [True, False])
    @pytest.mark.parametrize("mode", MODES)
    def test_a_4_6_4_hook_subclass_works_in_every_mode(self, livy, store, hooks, mode, durable):
        livy.states_for_new = ["starting", "running", "success"]
        try:
            result, ti = run_try(store, durable=durable, **self.MODES[mode])
        except TaskDeferred:
            livy.batches[0].states = ["success"]
            event = {
                "status": "success",
                "batch_id": 0,
                "response": "ok",
                "log_lines": None,
                "state": "success",
            }
            ti = FakeTaskInstance()
            result = operator(durable=durable, **self.MODES[mode]).execute_complete(
                {"ti": ti, "task_state_store": store}, event
            )
        assert (result, ti.xcoms["app_id"]) == (0, "application_1_0000")
        calls = [call for hook in hooks for call in hook.calls]
        assert calls.count("post_batch") == 1
        sent = [f"{entry[1]} {entry[2]}" for entry in livy.journal if entry[0] == "http"]
        assert len(sent) == len(calls), "every request went through a method the subclass overrides"

    @pytest.mark.parametrize("durable", [True, False])
    def test_mocked_hook_methods_intercept_every_call(self, mocker, store, durable):
        from airflow.providers.apache.livy.utils.states import BatchState

        post = mocker.patch.object(LivyHook, "post_batch", return_value=42)
        state = mocker.patch.object(
            LivyHook,
            "get_batch_state",
            side_effect=[BatchState.STARTING, BatchState.RUNNING, BatchState.SUCCESS],
        )
        batch = mocker.patch.object(LivyHook, "get_batch", return_value={"id": 42, "appId": "app-42"})
        dump = mocker.patch.object(LivyHook, "dump_batch_logs")
        with responses.RequestsMock() as no_http:  # a request that was not mocked fails the test
            ti = FakeTaskInstance()
            result = operator(durable=durable).execute({"ti": ti, "task_state_store": store})
            assert len(no_http.calls) == 0
        assert (result, ti.xcoms["app_id"]) == (42, "app-42")
        post.assert_called_once()
        assert state.call_args_list[0] == mocker.call(42, retry_args=None)
        assert all(call.args == (42,) for call in batch.call_args_list)
        dump.assert_called_once_with(42)


LIVY_UI_100 = "http://127.0.0.1:8998/ui/batch/100/log"


class TestWrittenFor464:
    """Tests a user wrote against 4.6.4's hook methods still hold: same calls, same arguments."""

    @pytest.fixture
    def hook(self, mocker):
        from airflow.providers.apache.livy.utils.states import BatchState

        with responses.RequestsMock() as no_http:  # any request a mock did not intercept fails
            yield {
                "post_batch": mocker.patch.object(LivyHook, "post_batch", return_value=100),
                "get_batch_state": mocker.patch.object(
                    LivyHook,
                    "get_batch_state",
                    side_effect=[BatchState.RUNNING, BatchState.RUNNING, BatchState.SUCCESS],
                ),
                "get_batch": mocker.patch.object(LivyHook, "get_batch", return_value={"appId": "app-100"}),
                "dump_batch_logs": mocker.patch.object(LivyHook, "dump_batch_logs"),
                "delete_batch": mocker.patch.object(LivyHook, "delete_batch"),
            }
            assert len(no_http.calls) == 0

    def test_poll_for_termination_reads_only_the_state(self, hook):
        operator(polling_interval=0.001).poll_for_termination(100)
        assert hook["get_batch_state"].call_args_list == [((100,), {"retry_args": None})] * 3
        hook["dump_batch_logs"].assert_called_once_with(100)
        hook["get_batch"].assert_not_called()

    def test_polling_without_a_store(self, hook):
        ti = FakeTaskInstance()
        assert operator(polling_interval=0.001).execute({"ti": ti}) == 100
        assert hook["get_batch_state"].call_count == 3
        hook["get_batch"].assert_called_once_with(100)
        hook["dump_batch_logs"].assert_called_once_with(100)
        assert ti.xcoms == {"app_id": "app-100", "_link_LivyBatchLink": LIVY_UI_100}

    def test_kill_after_fire_and_forget_deletes_by_id(self, hook):
        op = operator(polling_interval=0)
        op.execute({"ti": FakeTaskInstance()})
        op.kill()
        hook["delete_batch"].assert_called_once_with(100)
        hook["get_batch_state"].assert_not_called()

    def test_kill_before_execute_deletes_nothing(self, hook):
        operator().kill()
        hook["delete_batch"].assert_not_called()

    def test_execute_complete_success_pushes_the_app_id(self, hook):
        ti = FakeTaskInstance()
        event = {"status": "success", "batch_id": 100, "response": "ok", "log_lines": None}
        assert operator(deferrable=True).execute_complete({"ti": ti}, event) == 100
        hook["get_batch"].assert_called_once_with(100)
        assert ti.xcoms == {"app_id": "app-100", "_link_LivyBatchLink": LIVY_UI_100}

    def test_execute_complete_timeout_deletes_the_batch(self, hook):
        event = {"status": "timeout", "batch_id": 100, "response": "timed out", "log_lines": None}
        with pytest.raises(AirflowException):
            operator(deferrable=True).execute_complete({"ti": FakeTaskInstance()}, event)
        hook["delete_batch"].assert_called_once_with(100)

    def test_a_post_batch_that_returns_no_id_is_a_clear_error(self, hook):
        hook["post_batch"].return_value = {"id": 100}
        with pytest.raises(AirflowException, match="post_batch returned"):
            operator(polling_interval=0).execute({"ti": FakeTaskInstance()})


def test_the_trigger_is_looked_up_where_tests_patch_it(livy, store, mocker):
    import airflow.providers.apache.livy.operators.livy as module

    class RecordingTrigger(LivyTrigger):
        made: list[dict[str, Any]] = []

        def __init__(self, **kwargs: Any) -> None:
            RecordingTrigger.made.append(kwargs)
            super().__init__(**kwargs)

    mocker.patch.object(module, "LivyTrigger", RecordingTrigger)
    livy.states_for_new = ["running"]
    with pytest.raises(TaskDeferred) as deferred:
        run_try(store, deferrable=True, polling_interval=5)
    assert isinstance(deferred.value.trigger, RecordingTrigger)
    assert RecordingTrigger.made[0]["batch_id"] == 0
