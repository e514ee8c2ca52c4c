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
The durable-batch component on its own, against the scripted Livy (``fake_livy.py``), no operator.

Each test plays one or two tries the way ``ResumableJobMixin`` drives them: ``resume`` with what the
store holds, then ``submit`` when told to, ``wait``, ``result`` and ``mark_delivered``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import requests

from airflow.providers.apache.livy.exceptions import (
    LivyBatchNotCreated,
    LivyBatchRejected,
    LivyBatchReplaced,
    LivyBatchTakenOver,
    LivyHttpError,
    LivyTaskStopped,
)
from airflow.providers.apache.livy.hooks.livy import LivyHook
from airflow.providers.apache.livy.utils.batch_record import RECORD_FORMAT, BatchRecord
from airflow.providers.apache.livy.utils.durable_batch import (
    DurableBatch,
    PriorStatus,
    ResumeDecision,
    TaskRun,
)
from airflow.providers.apache.livy.utils.kill_policy import KillAction, KillOutcome, KillPolicy, KillReason
from airflow.providers.apache.livy.utils.states import BatchState
from unit.apache.livy.task_context import FakeTaskInstance

KEY = "livy_batch_record"
ID_KEY = "livy_batch_id"
"""Where the mixin keeps the batch id (the operator's ``external_id_key``)."""
LOG = logging.getLogger("durable_batch_test")
TASK = TaskRun(dag_id="etl", task_id="spark_job", run_id="manual__1", map_index=-1, try_number=1, first_try=1)
SPARK = {"file": "pi.py", "conf": {"spark.executor.cores": "2"}, "name": None}
FAILED = ["dead", "killed", "error"]


def our_name(submission: int = 1) -> str:
    return TASK.batch_name(submission, None)


def durable(store: Any, *, try_number: int = 1, first_try: int = 1) -> DurableBatch:
    task = TaskRun(**{**TASK.__dict__, "try_number": try_number, "first_try": first_try})
    return DurableBatch(LivyHook(), store=store, key=KEY, id_key=ID_KEY, task=task, log=LOG)


def stored(store) -> BatchRecord:
    return BatchRecord.from_stored(store.get(KEY))


def requests_sent(livy) -> list[str]:
    return [f"{entry[1]} {entry[2]}" for entry in livy.journal if entry[0] == "http"]


def one_try(store, *, try_number: int = 1, first_try: int = 1, interval: float = 0.001) -> DurableBatch:
    """One try as the mixin drives it: resume what is stored, else submit; wait; deliver."""
    batch = durable(store, try_number=try_number, first_try=first_try)
    stored_value = store.get(ID_KEY)
    decision = ResumeDecision.of(batch.resume(stored_value)) if stored_value else ResumeDecision.SUBMIT
    if decision is ResumeDecision.SUBMIT:
        batch.submit(SPARK)
        store.set(ID_KEY, batch.external_id())
    if decision is not ResumeDecision.RETURN_RESULT:
        batch.wait(interval)
    batch.result()
    batch.app_id()
    batch.mark_delivered()
    return batch


class TestSubmission:
    def test_the_record_is_written_ahead_of_the_post(self, livy, store):
        batch = durable(store)
        batch.submit(SPARK)
        assert [entry[:2] for entry in livy.journal[:2]] == [("store", KEY), ("http", "POST")]
        ahead = json.loads(livy.journal[0][2])
        assert (ahead["name"], ahead["batch_id"]) == (our_name(), None)
        assert livy.posted[0]["body"]["name"] == our_name()
        assert batch.record == BatchRecord(name=our_name(), batch_id=0, owner_try=1)

    def test_without_a_store_the_dag_name_is_sent_and_nothing_kept(self, livy):
        batch = DurableBatch(LivyHook(), store=None, key=KEY, task=TASK, log=LOG)
        batch.submit({**SPARK, "name": "My Job"})
        assert livy.posted[0]["body"]["name"] == "My Job"
        assert batch.external_id() == 0

    def test_a_duplicate_name_adopts_the_batch_an_earlier_post_created(self, livy, store):
        livy.add(our_name(), ["running"], id=6)
        assert durable(store).submit(SPARK).batch_id == 6
        assert livy.post_count == 1

    def test_a_lost_reply_is_resolved_by_name(self, livy, store):
        def lose_the_reply(body: dict[str, Any]) -> Exception:
            livy.add(body["name"], ["running"])  # Livy created it; the reply never arrived
            return requests.ConnectionError("connection reset")

        livy.post_failure = lose_the_reply
        assert durable(store).submit(SPARK).batch_id == 0
        assert requests_sent(livy) == ["POST /batches", f"GET /batches/{our_name()}"]

    def test_a_post_lost_on_the_way_is_posted_again_under_the_same_name(self, livy, store):
        lost = iter([requests.ConnectionError("refused")])
        livy.post_failure = lambda body: next(lost, None)
        assert durable(store).submit(SPARK).batch_id == 0
        assert [post["body"]["name"] for post in livy.posted] == [our_name(), our_name()]

    def test_two_lost_posts_leave_the_name_for_the_next_try(self, livy, store):
        livy.post_failure = lambda body: requests.ConnectionError("refused")
        with pytest.raises(LivyBatchNotCreated):
            durable(store).submit(SPARK)
        assert livy.post_count == 2
        assert stored(store).awaits_creation
        livy.post_failure = None
        assert durable(store, try_number=2).submit(SPARK).name == our_name()

    def test_a_refused_post_is_recorded_and_its_zombie_deleted(self, livy, store):
        def register_then_refuse(body: dict[str, Any]) -> tuple[int, str]:
            livy.add(body["name"], ["starting"], id=5)  # Livy registers it, then refuses it
            return 400, json.dumps({"msg": "Rejected, Reason: requirement failed: File is required."})

        livy.post_failure = register_then_refuse
        with pytest.raises(LivyBatchRejected) as refused:
            durable(store).submit(SPARK)
        assert refused.value.http_status == 400
        assert stored(store).final_state == "error"
        assert "DELETE /batches/5" in requests_sent(livy)
        livy.post_failure = None
        assert durable(store, try_number=2).submit(SPARK).name == our_name(submission=2)

    def test_a_server_error_on_the_post_keeps_the_name(self, livy, store):
        livy.post_failure = lambda body: (502, "<html>Bad gateway</html>")
        with pytest.raises(LivyHttpError):
            durable(store).submit(SPARK)
        assert stored(store).awaits_creation
        assert "DELETE" not in " ".join(requests_sent(livy))


class TestResume:
    @pytest.mark.parametrize("state", [*(member.value for member in BatchState), "a_future_state"])
    def test_every_state_has_a_decision(self, livy, store, state):
        livy.add(our_name(), [state], id=3)
        store.set(KEY, BatchRecord(name=our_name(), batch_id=3).to_json())
        expected = {"success": ResumeDecision.RETURN_RESULT, **dict.fromkeys(FAILED, ResumeDecision.SUBMIT)}
        assert ResumeDecision.of(durable(store).resume(store.get(KEY))) is expected.get(
            state, ResumeDecision.RECONNECT
        )

    def test_a_finished_state_is_kept_so_it_survives_livy_forgetting_the_batch(self, livy, store):
        livy.add(our_name(), ["success"], id=3, app_id="application_1_0003")
        store.set(KEY, BatchRecord(name=our_name(), batch_id=3).to_json())
        durable(store).resume(store.get(KEY))
        livy.forget(3)
        livy.journal.clear()
        assert (
            ResumeDecision.of(durable(store, try_number=2).resume(store.get(KEY)))
            is ResumeDecision.RETURN_RESULT
        )
        assert requests_sent(livy) == []
        assert (stored(store).final_state, stored(store).app_id) == ("success", "application_1_0003")

    def test_a_write_ahead_record_is_found_by_name(self, livy, store):
        livy.add(our_name(), ["running"], id=8)
        store.set(KEY, BatchRecord.ahead_of_post(our_name(), 1).to_json())
        assert ResumeDecision.of(durable(store).resume(store.get(KEY))) is ResumeDecision.RECONNECT
        assert stored(store).batch_id == 8

    def test_a_write_ahead_record_livy_never_saw_is_posted_under_its_name(self, livy, store):
        store.set(KEY, BatchRecord.ahead_of_post(our_name(), 1).to_json())
        batch = durable(store, try_number=2)
        assert ResumeDecision.of(batch.resume(store.get(KEY))) is ResumeDecision.SUBMIT
        batch.submit(SPARK)
        assert livy.posted[0]["body"]["name"] == our_name()

    def test_a_reused_id_is_never_adopted(self, livy, store):
        livy.add("another-teams-batch", ["running"], id=3)
        store.set(KEY, BatchRecord(name=our_name(), batch_id=3).to_json())
        assert ResumeDecision.of(durable(store).resume(store.get(KEY))) is ResumeDecision.SUBMIT
        assert stored(store).batch_id == 3, "the record is not pointed at the other batch"

    def test_a_reused_id_with_our_batch_still_known_by_name(self, livy, store):
        livy.add("another-teams-batch", ["running"], id=3)
        livy.add(our_name(), ["running"], id=11)
        store.set(KEY, BatchRecord(name=our_name(), batch_id=3).to_json())
        assert ResumeDecision.of(durable(store).resume(store.get(KEY))) is ResumeDecision.RECONNECT
        assert stored(store).batch_id == 11

    def test_a_batch_livy_forgot_is_looked_up_by_name_then_submitted_again(self, livy, store):
        store.set(KEY, BatchRecord(name=our_name(), batch_id=3).to_json())
        assert ResumeDecision.of(durable(store).resume(store.get(KEY))) is ResumeDecision.SUBMIT
        assert requests_sent(livy) == ["GET /batches/3", f"GET /batches/{our_name()}"]

    def test_other_errors_fail_and_decide_nothing(self, livy, store):
        livy.override["GET /batches/3"] = (500, json.dumps({"msg": "boom"}))
        store.set(KEY, BatchRecord(name=our_name(), batch_id=3).to_json())
        with pytest.raises(LivyHttpError):
            durable(store).resume(store.get(KEY))
        assert stored(store) == BatchRecord(name=our_name(), batch_id=3)

    def test_a_result_delivered_in_this_run_is_returned_again(self, livy, store):
        store.set(
            KEY, BatchRecord(name=our_name(), batch_id=3, final_state="success", delivered_try=1).to_json()
        )
        assert (
            ResumeDecision.of(durable(store, try_number=2).resume(store.get(KEY)))
            is ResumeDecision.RETURN_RESULT
        )

    def test_a_result_delivered_before_a_clear_means_a_re_run(self, livy, store):
        store.set(
            KEY, BatchRecord(name=our_name(), batch_id=3, final_state="success", delivered_try=1).to_json()
        )
        batch = durable(store, try_number=2, first_try=2)
        assert ResumeDecision.of(batch.resume(store.get(KEY))) is ResumeDecision.SUBMIT
        assert batch.submit(SPARK).name == TASK.batch_name(2, None).replace("-t1-", "-t2-")

    @pytest.mark.parametrize("value", ["abc", "3/../../admin", {"x": 1}, -1, 2**40, True, 1.5, [1]])
    def test_values_not_ours_are_treated_as_nothing_stored(self, livy, store, value):
        store.set(KEY, value)
        batch = durable(store)
        assert ResumeDecision.of(batch.resume(value)) is ResumeDecision.SUBMIT
        batch.submit(SPARK)
        assert requests_sent(livy) == ["POST /batches"]

    @pytest.mark.parametrize(("state", "posts"), [("running", 0), ("success", 0), ("dead", 1)])
    def test_a_bare_zero_stored_by_4_6_4_is_resumed(self, livy, store, state, posts):
        livy.add(None, [state], id=0)
        store.set(KEY, 0)
        durable(store).submit(SPARK)  # the mixin skips a stored 0, so submit checks it
        assert livy.post_count == posts


class TestWaiting:
    def test_polls_read_the_state_and_the_whole_batch_only_when_it_changed(self, livy, store):
        livy.states_for_new = ["starting", "running", "running", "success"]
        one_try(store)
        assert requests_sent(livy) == [
            "POST /batches",
            "GET /batches/0/state",
            "GET /batches/0/state",
            "GET /batches/0",  # the state changed: still ours?
            "GET /batches/0/state",
            "GET /batches/0",  # the end: ours, and its app id
            "GET /batches/0/log",
        ]
        assert stored(store) == BatchRecord(
            name=our_name(),
            batch_id=0,
            app_id="application_1_0000",
            final_state="success",
            delivered_try=1,
            owner_try=1,
        )

    def test_a_reconnect_checks_the_batch_once_then_polls_its_state(self, livy, store):
        livy.add(our_name(), ["running", "running", "success"], id=3)
        store.set(KEY, BatchRecord(name=our_name(), batch_id=3).to_json())
        one_try(store, try_number=2)
        assert requests_sent(livy) == [
            "GET /batches/3",
            "GET /batches/3/state",
            "GET /batches/3/state",
            "GET /batches/3",
            "GET /batches/3/log",
        ]
        assert livy.post_count == 0

    def test_a_batch_replaced_while_waiting_is_detected_at_the_state_change(self, livy, store):
        livy.states_for_new = ["running", "running", "starting", "running"]
        batch = durable(store)
        batch.submit(SPARK)
        livy.batches[0].name = "another-teams-batch"  # Livy restarted and gave id 0 to another batch
        with pytest.raises(LivyBatchReplaced):
            batch.wait(0.001)
        assert "DELETE" not in " ".join(requests_sent(livy))

    def test_an_end_the_whole_batch_contradicts_is_waited_through(self, livy, store):
        # /state says dead, but the batch read says recovering (Livy restarted with recovery).
        livy.add(our_name(), ["running", "dead", "recovering", "success"], id=3)
        store.set(KEY, BatchRecord(name=our_name(), batch_id=3).to_json())
        one_try(store, try_number=2)
        assert requests_sent(livy) == [
            "GET /batches/3",  # reconnect: running
            "GET /batches/3/state",  # dead...
            "GET /batches/3",  # ...but the batch says recovering
            "GET /batches/3/state",  # success
            "GET /batches/3",  # the end
            "GET /batches/3/log",
        ]
        assert stored(store).final_state == "success"

    def test_a_server_that_echoes_no_names_works_and_warns_once(self, livy, store, caplog):
        livy.echo_names = False
        livy.states_for_new = ["starting", "running", "running", "success"]
        caplog.set_level(logging.WARNING, LOG.name)
        batch = one_try(store)
        assert batch.record.succeeded
        assert livy.posted[0]["body"]["name"] == our_name(), "names are still sent"
        assert len([r for r in caplog.records if r.name == LOG.name and r.levelno == logging.WARNING]) == 1

    @pytest.mark.parametrize("state", FAILED)
    def test_a_failed_batch_raises_after_its_log_is_shown(self, livy, store, state):
        livy.states_for_new = ["running", state]
        with pytest.raises(Exception, match=f"ended {state}"):
            one_try(store)
        assert requests_sent(livy)[-1] == "GET /batches/0/log"
        assert stored(store).final_state == state


class TestResult:
    def test_the_log_is_shown_once(self, livy, store):
        livy.states_for_new = ["success"]
        batch = one_try(store)
        batch.result()
        assert requests_sent(livy).count("GET /batches/0/log") == 1

    def test_an_unfinished_batch_is_read_for_its_app_id(self, livy, store):
        batch = durable(store)
        batch.submit(SPARK)
        assert batch.app_id() == "application_1_0000"

    def test_delivered_is_recorded_once_per_try(self, livy, store):
        livy.states_for_new = ["success"]
        batch = one_try(store, try_number=3)
        assert batch.delivered_in_this_try
        assert stored(store).delivered_try == 3


class TestDelete:
    def batch_of(self, store, record: BatchRecord, **kwargs: Any) -> DurableBatch:
        store.set(KEY, record.to_json())
        batch = durable(store, **kwargs)
        batch.follow(record.to_json())
        return batch

    def test_deletes_our_batch(self, livy, store):
        livy.add(our_name(), ["running"], id=3)
        self.batch_of(store, BatchRecord(name=our_name(), batch_id=3)).delete("a test")
        assert requests_sent(livy) == ["GET /batches/3", "DELETE /batches/3"]

    def test_never_deletes_a_batch_that_reused_our_id(self, livy, store):
        livy.add("another-teams-batch", ["running"], id=3)
        self.batch_of(store, BatchRecord(name=our_name(), batch_id=3)).delete("a test")
        assert requests_sent(livy) == ["GET /batches/3"]

    def test_a_batch_already_gone(self, livy, store):
        self.batch_of(store, BatchRecord(name=our_name(), batch_id=3)).delete("a test")
        assert requests_sent(livy) == ["GET /batches/3"]

    def test_without_a_name_deletes_by_id_as_4_6_4_did(self, livy, store):
        livy.add(None, ["running"], id=3)
        self.batch_of(store, BatchRecord.of_batch(3)).delete("a test")
        assert requests_sent(livy) == ["DELETE /batches/3"]

    def test_before_livy_answered_the_post_finds_the_batch_by_name(self, livy, store):
        livy.add(our_name(), ["starting"], id=4)
        self.batch_of(store, BatchRecord.ahead_of_post(our_name(), 1)).delete("a test")
        assert requests_sent(livy) == [f"GET /batches/{our_name()}", "DELETE /batches/4"]

    def test_before_any_batch_does_nothing(self, livy, store):
        durable(store).delete("a test")
        assert requests_sent(livy) == []

    def test_a_stale_try_deletes_nothing(self, livy, store):
        livy.add(our_name(), ["running"], id=3)
        record = BatchRecord(name=our_name(), batch_id=3, owner_try=2)
        self.batch_of(store, record, try_number=1).delete("a test")
        assert requests_sent(livy) == []


def policy(state: str | None, *, action: KillAction = KillAction.AUTO, retry: bool = True) -> KillPolicy:
    return KillPolicy(action, lambda: state, retry)


class TestOnKill:
    """``on_kill`` as Airflow calls it: from the SIGTERM handler, or after ``execution_timeout``."""

    def waiting_batch(self, store, livy, kill_policy: KillPolicy, *, kill_on_read: int = 2) -> DurableBatch:
        """A try that submitted and waits; SIGTERM arrives during its ``kill_on_read``-th state read."""
        batch = DurableBatch(LivyHook(), store=store, key=KEY, task=TASK, log=LOG, kill_policy=kill_policy)
        batch.submit(SPARK)
        store.set(ID_KEY, batch.external_id())
        reads = {"n": 0}

        def sigterm_on_a_read(body: dict[str, Any]) -> None:
            reads["n"] += 1
            if reads["n"] == kill_on_read:
                batch.on_kill(timed_out=False, executing=True)

        livy.on_state_read = sigterm_on_a_read
        return batch

    @pytest.mark.parametrize(
        ("state", "why"),
        [
            ("failed", KillReason.MARKED_FAILED),
            ("success", KillReason.MARKED_SUCCESS),
            ("restarting", KillReason.CLEARED),
            ("", KillReason.TASK_INSTANCE_DELETED),
        ],
    )
    def test_airflow_stopped_the_task_so_the_batch_is_deleted(self, livy, store, state, why):
        livy.states_for_new = ["running"] * 10
        batch = self.waiting_batch(store, livy, policy(state))
        with pytest.raises(LivyTaskStopped) as stopped:
            batch.wait(0.001)
        assert (stopped.value.decision.reason, stopped.value.outcome) == (why, KillOutcome.DELETED)
        assert requests_sent(livy)[-2:] == ["GET /batches/0", "DELETE /batches/0"]
        assert livy.post_count == 1

    @pytest.mark.parametrize("state", ["running", None])
    def test_the_worker_goes_away_so_the_batch_is_kept(self, livy, store, state):
        livy.states_for_new = ["running"] * 10
        batch = self.waiting_batch(store, livy, policy(state))
        with pytest.raises(LivyTaskStopped) as stopped:
            batch.wait(0.001)
        assert stopped.value.outcome is KillOutcome.KEPT
        assert "DELETE /batches/0" not in requests_sent(livy)
        assert stored(store).awaits_creation is False, "the record still names the batch for the retry"

    def test_the_worker_goes_away_on_the_last_try_so_the_batch_is_deleted(self, livy, store):
        livy.states_for_new = ["running"] * 10
        batch = self.waiting_batch(store, livy, policy("running", retry=False))
        with pytest.raises(LivyTaskStopped) as stopped:
            batch.wait(0.001)
        assert (stopped.value.decision.reason, stopped.value.outcome) == (
            KillReason.LAST_TRY,
            KillOutcome.DELETED,
        )
        assert requests_sent(livy)[-1] == "DELETE /batches/0"

    @pytest.mark.parametrize(
        ("action", "deleted"), [(KillAction.KEEP_BATCH, False), (KillAction.DELETE_BATCH, True)]
    )
    def test_the_dag_can_choose(self, livy, store, action, deleted):
        livy.states_for_new = ["running"] * 10
        batch = self.waiting_batch(store, livy, policy("failed" if not deleted else "running", action=action))
        with pytest.raises(LivyTaskStopped):
            batch.wait(0.001)
        assert ("DELETE /batches/0" in requests_sent(livy)) is deleted

    def test_a_timeout_deletes_at_once(self, livy, store):
        batch = durable(store)
        batch.submit(SPARK)
        batch.on_kill(timed_out=True, executing=False)  # the task's code has stopped
        assert requests_sent(livy)[-2:] == ["GET /batches/0", "DELETE /batches/0"]

    def test_a_kill_during_the_post_deletes_the_batch_once_livy_answered(self, livy, store):
        batch = DurableBatch(
            LivyHook(), store=store, key=KEY, task=TASK, log=LOG, kill_policy=policy("failed")
        )
        livy.post_failure = lambda body: batch.on_kill(timed_out=False, executing=True)  # SIGTERM mid-POST
        with pytest.raises(LivyTaskStopped) as stopped:
            batch.submit(SPARK)
        assert stopped.value.outcome is KillOutcome.DELETED
        assert requests_sent(livy) == ["POST /batches", "GET /batches/0", "DELETE /batches/0"]
        assert (stored(store).batch_id, stored(store).final_state) == (0, "killed")
        next_try = durable(store, try_number=2)
        assert ResumeDecision.of(next_try.resume(store.get(KEY))) is ResumeDecision.SUBMIT
        assert next_try.submit(SPARK).name == our_name(submission=2), "never the deleted batch's name"

    def test_without_a_store_on_kill_deletes_at_once_as_4_6_4_did(self, livy):
        batch = DurableBatch(
            LivyHook(), store=None, key=KEY, task=TASK, log=LOG, kill_policy=policy("running")
        )
        batch.submit(SPARK)
        batch.on_kill(timed_out=False, executing=True)
        assert requests_sent(livy) == ["POST /batches", "DELETE /batches/0"]
        with pytest.raises(LivyTaskStopped) as stopped:
            batch.wait(0.001)  # not a 404: the error says what happened
        assert (stopped.value.decision.reason, stopped.value.outcome) == (
            KillReason.NOT_DURABLE,
            KillOutcome.DELETED,
        )


class TestStoppedBetweenHeartbeats:
    def test_a_sigterm_for_the_execution_timeout_deletes_even_while_airflow_still_runs_the_try(
        self, livy, store
    ):
        # Airflow 3.4's supervisor enforces execution_timeout with a SIGTERM of its own.
        livy.states_for_new = ["running"] * 10
        batch = DurableBatch(
            LivyHook(), store=store, key=KEY, task=TASK, log=LOG, kill_policy=policy("running")
        )
        batch.submit(SPARK)
        livy.on_state_read = lambda body: batch.on_kill(timed_out=True, executing=True)
        with pytest.raises(LivyTaskStopped) as stopped:
            batch.wait(0.001)
        assert (stopped.value.decision.reason, stopped.value.outcome) == (
            KillReason.TIMED_OUT,
            KillOutcome.DELETED,
        )
        assert requests_sent(livy)[-1] == "DELETE /batches/0"

    def test_a_write_refused_because_the_try_was_cleared_deletes_the_batch(self, livy, store):
        class ClearedStore(type(store)):  # the API server refuses the writes of a cleared try
            refuse = False

            def set(self, key: str, value: Any, retention: Any = None) -> None:
                if self.refuse:
                    raise RuntimeError("task instance not found (410)")
                super().set(key, value, retention)

        cleared = ClearedStore(livy.journal)
        livy.states_for_new = ["starting", "running", "running", "success"]
        batch = DurableBatch(
            LivyHook(), store=cleared, key=KEY, task=TASK, log=LOG, kill_policy=policy("restarting")
        )
        batch.submit(SPARK)
        cleared.refuse = True  # cleared before the app id is written
        with pytest.raises(LivyTaskStopped) as stopped:
            batch.wait(0.001)
        assert (stopped.value.decision.reason, stopped.value.outcome) == (
            KillReason.CLEARED,
            KillOutcome.DELETED,
        )
        assert requests_sent(livy)[-1] == "DELETE /batches/0"

    def test_a_write_refused_for_another_reason_is_just_an_error(self, livy, store):
        class FlakyStore(type(store)):
            def set(self, key: str, value: Any, retention: Any = None) -> None:
                raise RuntimeError("API server overloaded")

        batch = DurableBatch(
            LivyHook(), store=FlakyStore([]), key=KEY, task=TASK, log=LOG, kill_policy=policy("running")
        )
        with pytest.raises(RuntimeError, match="overloaded"):
            batch.submit(SPARK)
        assert requests_sent(livy) == []


class TestFencing:
    def test_a_reconnecting_try_takes_the_batch_over(self, livy, store):
        livy.add(our_name(), ["running"], id=3)
        store.set(KEY, BatchRecord(name=our_name(), batch_id=3, owner_try=1).to_json())
        durable(store, try_number=2).resume(store.get(KEY))
        assert stored(store).owner_try == 2

    def test_a_stale_try_that_is_killed_says_it_left_the_batch_alone(self, livy, store):
        # Frozen while try 2 took the batch over, then resumed and SIGTERMed as "marked failed": the
        # fence keeps it from deleting, and its error says so (not what it would have done).
        old = DurableBatch(
            LivyHook(), store=store, key=KEY, id_key=ID_KEY, task=TASK, log=LOG, kill_policy=policy("failed")
        )
        old.submit(SPARK)
        store.set(KEY, BatchRecord(name=our_name(), batch_id=0, owner_try=2).to_json())  # try 2 reconnected
        old.on_kill(timed_out=False, executing=True)
        with pytest.raises(LivyTaskStopped) as stopped:
            old.wait(0.001)
        assert (stopped.value.decision.reason, stopped.value.outcome) == (
            KillReason.MARKED_FAILED,
            KillOutcome.TAKEN_OVER,
        )
        assert "a later try owns it" in str(stopped.value)
        assert "DELETE /batches/0" not in requests_sent(livy)

    def test_a_stale_try_writes_nothing_and_stops_waiting(self, livy, store):
        livy.states_for_new = ["starting", "running", "running", "success"]
        old = durable(store, try_number=1)
        old.submit(SPARK)
        store.set(ID_KEY, old.external_id())
        store.set(KEY, BatchRecord(name=our_name(), batch_id=0, owner_try=2).to_json())  # try 2 reconnected
        writes = len([entry for entry in livy.journal if entry[0] == "store"])
        with pytest.raises(LivyBatchTakenOver, match="try 2 took it over"):
            old.wait(0.001)
        assert len([entry for entry in livy.journal if entry[0] == "store"]) == writes
        assert "DELETE /batches/0" not in requests_sent(livy)


def test_resume_decisions_read_livy_states_too():
    assert ResumeDecision.of("reconnect") is ResumeDecision.RECONNECT
    assert ResumeDecision.of("running") is ResumeDecision.RECONNECT
    assert ResumeDecision.of("success") is ResumeDecision.RETURN_RESULT
    assert ResumeDecision.of("dead") is ResumeDecision.SUBMIT
    assert ResumeDecision.of("some_future_state") is ResumeDecision.RECONNECT


def test_record_format_is_stable():
    assert RECORD_FORMAT == "airflow-livy-batch/1"


class TestLinksAndLiveLog:
    def test_links_are_published_once_each_as_they_appear(self, livy, store):
        published: list[dict[str, str]] = []
        livy.states_for_new = ["starting", "running", "running", "success"]
        batch = DurableBatch(
            LivyHook(),
            store=store,
            key=KEY,
            task=TaskRun.of(FakeTaskInstance(), 0),
            log=LOG,
            publish_links=published.append,
        )
        batch.submit(SPARK)
        livy.batches[0].app_info = [
            {"driverLogUrl": None, "sparkUiUrl": None},
            {"driverLogUrl": "http://127.0.0.1:8042/d", "sparkUiUrl": "http://127.0.0.1:4040/"},
        ]
        batch.wait(0.001)
        assert published == [
            {"livy_batch": "http://127.0.0.1:8998/ui/batch/0/log"},
            {"driver_log": "http://127.0.0.1:8042/d", "spark_ui": "http://127.0.0.1:4040/"},
        ]

    def test_without_follow_log_the_end_shows_the_whole_log_through_dump_batch_logs(self, livy, store):
        livy.states_for_new = ["running", "success"]
        one_try(store)
        assert requests_sent(livy).count("GET /batches/0/log") == 1

    def test_the_end_shows_only_what_the_live_log_did_not(self, livy, store, caplog):
        caplog.set_level(logging.INFO)
        livy.states_for_new = ["running", "running", "success"]
        batch = DurableBatch(
            LivyHook(),
            store=store,
            key=KEY,
            task=TaskRun.of(FakeTaskInstance(), 0),
            log=LOG,
            follow_log=True,
        )
        batch.submit(SPARK)
        livy.batches[0].logs = [["stdout: ", "a"], ["stdout: ", "a", "b"], ["stdout: ", "a", "b", "c"]]
        batch.wait(0.001)
        assert stored(store).log_cursor is not None
        batch.result()
        assert [r.getMessage() for r in caplog.records if r.getMessage() in ("stdout: ", "a", "b", "c")] == [
            "stdout: ",
            "a",
            "b",
            "c",
        ]


def test_prior_statuses_mean_submitting_anew():
    assert ResumeDecision.of(PriorStatus.GONE) is ResumeDecision.SUBMIT
    assert ResumeDecision.of(PriorStatus.RERUN) is ResumeDecision.SUBMIT


class TestTheMixinsKey:
    """The mixin keeps the batch id under its own key (as 4.6.4 did); the record is kept apart."""

    def test_the_mixin_stores_the_batch_id_and_the_record_is_kept_apart(self, livy, store):
        batch = one_try(store)
        assert store.get(ID_KEY) == 0 == batch.external_id()
        assert stored(store).name == our_name()

    def test_get_job_status_reports_livys_state(self, livy, store):
        livy.add(our_name(), ["running"], id=3)
        store.set(KEY, BatchRecord(name=our_name(), batch_id=3).to_json())
        store.set(ID_KEY, 3)
        assert durable(store, try_number=2).resume(3) == "running"

    def test_a_bare_id_stored_by_4_6_4_is_read_by_its_state_alone(self, livy, store):
        livy.add(None, ["running"], id=5)
        store.set(ID_KEY, 5)
        assert durable(store, try_number=2).resume(5) == "running"
        assert requests_sent(livy) == ["GET /batches/5/state"]

    def test_livy_forgot_it_reports_gone(self, livy, store):
        store.set(KEY, BatchRecord(name=our_name(), batch_id=3).to_json())
        assert durable(store, try_number=2).resume(3) == PriorStatus.GONE

    def test_a_batch_whose_id_the_mixin_never_stored_is_resumed_not_posted_again(self, livy, store):
        # The worker died after the POST, before the mixin stored the id: the record has it.
        livy.add(our_name(), ["running", "success"], id=4)
        store.set(KEY, BatchRecord(name=our_name(), batch_id=4, owner_try=1).to_json())
        batch = durable(store, try_number=2)
        assert batch.submit(SPARK).batch_id == 4
        assert livy.post_count == 0
        assert stored(store).owner_try == 2

    def test_after_the_mixin_chose_to_resubmit_a_new_batch_is_posted(self, livy, store):
        # Whoever answered get_job_status (a subclass, say) said the batch is over: submit anew.
        livy.add(our_name(), ["running"], id=4)
        store.set(KEY, BatchRecord(name=our_name(), batch_id=4, owner_try=1).to_json())
        store.set(ID_KEY, 4)
        record = durable(store, try_number=2).submit(SPARK)
        assert (record.submission, record.batch_id) == (2, 5)
        assert livy.post_count == 1
