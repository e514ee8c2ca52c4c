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
"""Resuming (:mod:`.batch_resume`): what a try makes of the batch an earlier try left."""

from __future__ import annotations

import json

import pytest

from airflow.providers.apache.livy.exceptions import (
    LivyHttpError,
)
from airflow.providers.apache.livy.utils.batch_record import BatchRecord
from airflow.providers.apache.livy.utils.durable_batch import (
    PriorStatus,
    ResumeDecision,
)
from airflow.providers.apache.livy.utils.states import BatchState
from unit.apache.livy.utils.durable_helpers import (
    FAILED,
    ID_KEY,
    KEY,
    SPARK,
    TASK,
    durable,
    one_try,
    our_name,
    requests_sent,
    stored,
)


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


def test_resume_decisions_read_livy_states_too():
    assert ResumeDecision.of("reconnect") is ResumeDecision.RECONNECT
    assert ResumeDecision.of("running") is ResumeDecision.RECONNECT
    assert ResumeDecision.of("success") is ResumeDecision.RETURN_RESULT
    assert ResumeDecision.of("dead") is ResumeDecision.SUBMIT
    assert ResumeDecision.of("some_future_state") is ResumeDecision.RECONNECT


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
