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
"""Submitting (:mod:`.batch_submit`): the record written ahead of the POST, lost and refused POSTs."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from airflow.providers.apache.livy.exceptions import (
    LivyBatchNotCreated,
    LivyBatchRejected,
    LivyHttpError,
)
from airflow.providers.apache.livy.hooks.livy import LivyHook
from airflow.providers.apache.livy.utils.batch_record import BatchRecord
from airflow.providers.apache.livy.utils.durable_batch import (
    DurableBatch,
)
from unit.apache.livy.utils.durable_helpers import (
    KEY,
    LOG,
    SPARK,
    TASK,
    durable,
    our_name,
    requests_sent,
    stored,
)


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

    def test_a_dead_batch_found_under_the_written_ahead_name_is_not_posted_again(self, livy, store):
        # Try 1 wrote the record ahead, posted, and died before the id was stored; its batch then died.
        livy.add(our_name(1), ["dead"], id=4)
        store.set(KEY, BatchRecord.ahead_of_post(our_name(1), 1).owned_by(1).to_json())
        batch = durable(store, try_number=2)
        record = batch.submit(SPARK)
        assert livy.posted[-1]["body"]["name"] == our_name(2), "a new submission, under a new name"
        assert record.batch_id != 4
        assert (record.name, stored(store).name) == (our_name(2), our_name(2))
