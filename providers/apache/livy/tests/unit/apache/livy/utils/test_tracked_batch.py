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
"""The record one try keeps of its batch (:mod:`.tracked_batch`): saving, the fence, checked reads."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.exceptions import AirflowException

from airflow.providers.apache.livy.exceptions import LivyBatchReplaced, LivyBatchTakenOver
from airflow.providers.apache.livy.hooks.livy import LivyHook
from airflow.providers.apache.livy.utils.batch_record import BatchRecord
from airflow.providers.apache.livy.utils.durable_batch import DurableBatch
from airflow.providers.apache.livy.utils.kill_policy import KillAction, KillPolicy
from airflow.providers.apache.livy.utils.record_store import RecordStore
from airflow.providers.apache.livy.utils.tracked_batch import TrackedBatch
from unit.apache.livy.task_context import MemoryTaskStateStore
from unit.apache.livy.utils.durable_helpers import KEY, LOG, SPARK, TASK, durable, requests_sent


def tracked(store: Any, *, try_number: int = 1) -> TrackedBatch:
    records = None if store is None else RecordStore(store, KEY, id_key=None, try_number=try_number, log=LOG)
    return TrackedBatch(LivyHook(), records, KEY, LOG)


def store_writes(journal: list[tuple[str, ...]]) -> int:
    return sum(1 for entry in journal if entry[0] == "store")


class TestSaving:
    def test_without_a_store_the_record_is_only_kept_in_memory(self, journal):
        batch = tracked(None)
        batch.save(BatchRecord.of_batch(3))
        assert (batch.record, batch.durable, store_writes(journal)) == (BatchRecord.of_batch(3), False, 0)

    def test_an_update_is_stored_with_the_next_write(self, store, journal):
        batch = tracked(store)
        batch.save(BatchRecord.of_batch(3))
        batch.update(BatchRecord.of_batch(3).seen({"id": 3, "appId": "app-3"}))
        assert store_writes(journal) == 1
        batch.keep(batch.current.finished("success"))
        assert store_writes(journal) == 2
        assert BatchRecord.from_stored(store.get(KEY)).app_id == "app-3"

    def test_an_update_waits_for_a_checkpoint_after_a_long_silence(self, store, journal, monkeypatch):
        batch = tracked(store)
        batch.save(BatchRecord.of_batch(3))
        batch.update(BatchRecord.of_batch(3).with_log_cursor({"log": [2, ["0123abcd", "4567abcd"]]}))
        batch.checkpoint()
        assert store_writes(journal) == 1  # written a moment ago
        monkeypatch.setattr(batch, "checkpoint_seconds", 0.0)
        batch.checkpoint()
        batch.checkpoint()  # nothing changed since
        assert store_writes(journal) == 2
        assert BatchRecord.from_stored(store.get(KEY)).log_cursor == {"log": [2, ["0123abcd", "4567abcd"]]}

    def test_a_refused_write_is_reported_to_the_kill_then_raised(self, store):
        class RefusingStore(type(store)):
            def set(self, key: str, value: Any, retention: Any = None) -> None:
                raise RuntimeError("410 Gone")

        batch = tracked(RefusingStore([]))
        seen: list[Exception] = []
        batch.on_write_failed = seen.append
        with pytest.raises(RuntimeError, match="410"):
            batch.save(BatchRecord.of_batch(3))
        assert [str(error) for error in seen] == ["410 Gone"]
        assert batch.record is None

    def test_a_fenced_write_is_not_a_refusal(self, store):
        store.set(KEY, BatchRecord.of_batch(3).owned_by(2).to_json())
        batch = tracked(store, try_number=1)
        seen: list[Exception] = []
        batch.on_write_failed = seen.append
        with pytest.raises(LivyBatchTakenOver):
            batch.save(BatchRecord.of_batch(3).owned_by(1))
        assert seen == []
        assert BatchRecord.from_stored(store.get(KEY)).owner_try == 2

    def test_no_batch_yet_is_a_clear_error(self):
        with pytest.raises(AirflowException, match="No Livy batch"):
            _ = tracked(None).current_id


class TestCheckedReads:
    def test_reading_our_batch_verifies_it_and_keeps_what_was_seen(self, livy, store):
        first = durable(store)
        first.submit(SPARK)
        batch = tracked(store)
        batch.record = first.record
        read = batch.read_own_batch()
        assert (read["id"], batch.verified) == (0, True)
        assert requests_sent(livy)[-1] == "GET /batches/0"

    def test_a_reused_id_is_refused_and_nothing_is_adopted(self, livy, store):
        batch = tracked(store)
        livy.add("another-teams-batch", ["running"], id=0)
        batch.record = BatchRecord.ahead_of_post(TASK.batch_name(1, None), 1).created(0)
        with pytest.raises(LivyBatchReplaced):
            batch.read_own_batch()
        assert batch.verified is False


class TestWritesARetryCanDoWithout:
    """A write after the POST that fails while Airflow still runs the try does not fail the try."""

    @staticmethod
    def flaky_store(store: Any, failing_writes: set[int]) -> Any:
        class FlakyStore(type(store)):  # the API server timed out on some writes
            writes = 0

            def set(self, key: str, value: Any, retention: Any = None) -> None:
                FlakyStore.writes += 1
                if FlakyStore.writes in failing_writes:
                    raise RuntimeError("API_SERVER_ERROR: ReadTimeout")
                super().set(key, value, retention)

        return FlakyStore(store.journal)

    def test_a_failed_id_write_is_stored_whole_by_the_next_write(self, livy):
        store = self.flaky_store(MemoryTaskStateStore(livy.journal), failing_writes={2})
        livy.states_for_new = ["running", "success"]
        batch = DurableBatch(LivyHook(), store=store, key=KEY, task=TASK, log=LOG, kill_policy=_running())
        batch.submit(SPARK)  # write 1: the write-ahead record; write 2 (the id) fails
        assert BatchRecord.from_stored(store.get(KEY)).batch_id is None
        batch.wait(0.001)
        batch.result()
        batch.mark_delivered()
        final = BatchRecord.from_stored(store.get(KEY))
        assert (final.batch_id, final.final_state, final.delivered_try) == (0, "success", 1)
        assert livy.post_count == 1

    def test_the_write_ahead_record_still_fails_closed(self, livy):
        store = self.flaky_store(MemoryTaskStateStore(livy.journal), failing_writes={1})
        batch = DurableBatch(LivyHook(), store=store, key=KEY, task=TASK, log=LOG, kill_policy=_running())
        with pytest.raises(RuntimeError, match="ReadTimeout"):
            batch.submit(SPARK)
        assert livy.post_count == 0, "nothing is posted without its record"


def _running() -> KillPolicy:
    """Airflow still runs the try (what the kill policy asks the API server)."""
    return KillPolicy(KillAction.AUTO, lambda: "running")
