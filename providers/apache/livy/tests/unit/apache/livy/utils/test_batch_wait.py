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
"""Waiting (:mod:`.batch_wait`): polls, identity checks while waiting, the final state."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import tenacity

from airflow.providers.apache.livy.exceptions import (
    LivyBatchReplaced,
)
from airflow.providers.apache.livy.hooks.livy import LivyHook
from airflow.providers.apache.livy.utils.batch_record import BatchRecord
from airflow.providers.apache.livy.utils.durable_batch import DurableBatch
from unit.apache.livy.utils.durable_helpers import (
    FAILED,
    ID_KEY,
    KEY,
    LOG,
    SPARK,
    TASK,
    durable,
    one_try,
    our_name,
    requests_sent,
    stored,
)


def durable_with_retries(store: Any, *, follow_log: bool = True) -> DurableBatch:
    """A durable batch whose hook retries reads at once (as a DAG's ``retry_args`` would)."""
    hook = LivyHook()
    hook.retry_args = {"stop": tenacity.stop_after_attempt(3), "wait": tenacity.wait_none()}
    return DurableBatch(hook, store=store, key=KEY, id_key=ID_KEY, task=TASK, log=LOG, follow_log=follow_log)


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

    def test_a_poll_that_needed_a_retry_checks_the_batch_before_trusting_its_state(self, livy, store):
        # Livy crashed (one 503 from its gateway) and came back: id 0 now names another team's batch,
        # in the same state as ours was. Without a check its state and log would pass for ours.
        livy.states_for_new = ["running"] * 10
        batch = durable_with_retries(store, follow_log=False)  # its polls read the state alone
        batch.submit(SPARK)
        livy.batches[0].name = "another-teams-batch"
        livy.queued["GET /batches/0/state"] = [(503, "restarting")]
        with pytest.raises(LivyBatchReplaced):
            batch.wait(0.001)
        assert requests_sent(livy)[-3:] == ["GET /batches/0/state", "GET /batches/0/state", "GET /batches/0"]
        assert "GET /batches/0/log" not in requests_sent(livy), "no line of the other batch's log is shown"

    def test_polls_without_a_retry_send_one_request_each(self, livy, store):
        livy.states_for_new = ["running", "running", "running", "success"]
        batch = durable_with_retries(store)
        batch.submit(SPARK)
        batch.wait(0.001)
        polls = requests_sent(livy)[1:]
        assert len(polls) == 4, polls  # the state or the whole batch (for its log's last lines)
        assert "GET /batches/0/log" not in polls  # the short log came with the batch reads

    def test_polls_without_a_live_log_read_only_the_state(self, livy, store):
        livy.states_for_new = ["running", "running", "running", "success"]
        batch = durable_with_retries(store, follow_log=False)
        batch.submit(SPARK)
        batch.wait(0.001)
        assert requests_sent(livy).count("GET /batches/0") == 1, "only the end is confirmed by a whole read"

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
