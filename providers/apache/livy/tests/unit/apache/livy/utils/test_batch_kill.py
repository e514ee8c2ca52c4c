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
"""The kill (:mod:`.batch_kill`): what is deleted, kept or left alone, and what the try reports."""

from __future__ import annotations

from typing import Any

import pytest

from airflow.providers.apache.livy.exceptions import (
    LivyBatchTakenOver,
    LivyTaskStopped,
)
from airflow.providers.apache.livy.hooks.livy import LivyHook
from airflow.providers.apache.livy.utils.batch_record import BatchRecord
from airflow.providers.apache.livy.utils.durable_batch import (
    DurableBatch,
    ResumeDecision,
)
from airflow.providers.apache.livy.utils.kill_policy import KillAction, KillOutcome, KillPolicy, KillReason
from unit.apache.livy.utils.durable_helpers import (
    ID_KEY,
    KEY,
    LOG,
    SPARK,
    TASK,
    durable,
    our_name,
    policy,
    requests_sent,
    stored,
)


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
        assert stored(store).name == batch.record.name, "the record still names the batch for the retry"

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
        batch.tracked.checkpoint_seconds = 0.0  # a long wait: the app id is checkpointed when seen
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
