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

from typing import Any

import pytest

from airflow.providers.apache.livy.utils.kill_policy import (
    GONE,
    KillAction,
    KillDecision,
    KillPolicy,
    KillReason,
    airflow_state_of,
    retry_follows,
)


def policy(state: str | None, action: KillAction = KillAction.AUTO, retry: bool = True) -> KillPolicy:
    return KillPolicy(action, lambda: state, retry)


@pytest.mark.parametrize(
    ("state", "retry", "delete"),
    [
        ("failed", True, True),
        ("success", True, True),
        ("restarting", True, True),
        ("none", True, True),
        (GONE, True, True),
        ("up_for_retry", True, True),
        ("running", True, False),
        ("running", False, True),
        (None, True, False),
        (None, False, False),
    ],
)
def test_auto_deletes_only_when_airflow_means_the_task_to_stop(state, retry, delete):
    assert policy(state, retry=retry).on_sigterm().delete is delete


@pytest.mark.parametrize("state", ["failed", "running", None])
def test_the_dag_can_choose(state):
    assert policy(state, KillAction.DELETE_BATCH).on_sigterm() == KillDecision(True, KillReason.ALWAYS_DELETE)
    assert policy(state, KillAction.KEEP_BATCH).on_sigterm() == KillDecision(False, KillReason.NEVER_DELETE)


def test_a_timeout_deletes_unless_the_dag_keeps_batches():
    assert policy("running").on_timeout() == KillDecision(True, KillReason.TIMED_OUT)
    assert policy("running", KillAction.DELETE_BATCH).on_timeout() == KillDecision(True, KillReason.TIMED_OUT)
    assert policy("running", KillAction.KEEP_BATCH).on_timeout() == KillDecision(
        False, KillReason.NEVER_DELETE
    )


@pytest.mark.parametrize(
    ("state", "retry", "reason"),
    [
        ("failed", True, KillReason.MARKED_FAILED),
        ("success", True, KillReason.MARKED_SUCCESS),
        ("skipped", True, KillReason.MARKED_SKIPPED),
        ("restarting", True, KillReason.CLEARED),
        ("none", True, KillReason.CLEARED),
        (GONE, True, KillReason.TASK_INSTANCE_DELETED),
        ("up_for_retry", True, KillReason.NOT_RUNNING),
        ("running", True, KillReason.WORKER_LEAVING),
        ("running", False, KillReason.LAST_TRY),
        (None, True, KillReason.INTENT_UNKNOWN),
    ],
)
def test_the_reason_is_data(state, retry, reason):
    assert policy(state, retry=retry).on_sigterm().reason is reason


def test_an_unexpected_state_is_named_in_the_reason():
    decision = policy("up_for_retry").on_sigterm()
    assert (decision.delete, decision.state) == (True, "up_for_retry")
    assert str(decision) == "Airflow no longer runs this try (it is up_for_retry)"


def test_unknown_actions_are_refused():
    with pytest.raises(ValueError):
        KillAction("delete")


class TaskInstance:
    dag_id, task_id, run_id, map_index = "etl", "spark", "manual__1", -1
    try_number, max_tries = 1, 1

    def __init__(self, states: Any = None, error: Exception | None = None) -> None:
        self.states, self.error = states, error
        self.asked: list[dict[str, Any]] = []

    def get_task_states(self, **criteria: Any) -> Any:
        self.asked.append(criteria)
        if self.error:
            raise self.error
        return self.states


def test_asks_the_api_server_for_exactly_this_task_instance():
    ti = TaskInstance({"manual__1": {"spark": "running", "other": "failed"}})
    assert airflow_state_of(ti) == "running"
    assert ti.asked == [{"dag_id": "etl", "task_ids": ["spark"], "run_ids": ["manual__1"], "map_index": None}]


def test_a_mapped_instance_is_keyed_by_its_index():
    ti = TaskInstance({"manual__1": {"spark_3": "failed"}})
    ti.map_index = 3
    assert airflow_state_of(ti) == "failed"
    assert ti.asked[0]["map_index"] == 3


@pytest.mark.parametrize(
    ("states", "expected"), [({}, GONE), ({"manual__1": {}}, GONE), ({"manual__1": {"spark": None}}, "none")]
)
def test_an_instance_the_server_no_longer_runs(states, expected):
    assert airflow_state_of(TaskInstance(states)) == expected


def test_a_server_that_cannot_be_asked_means_unknown():
    assert airflow_state_of(TaskInstance(error=ConnectionError("no API server"))) is None
    assert airflow_state_of(object()) is None  # Airflow 2: no way to ask
    assert airflow_state_of(TaskInstance(states="garbage")) is None


@pytest.mark.parametrize(
    ("try_number", "max_tries", "expected"), [(1, 1, True), (2, 1, False), (1, 0, False)]
)
def test_retry_follows(try_number, max_tries, expected):
    ti = TaskInstance()
    ti.try_number, ti.max_tries = try_number, max_tries
    assert retry_follows(ti) is expected
    assert retry_follows(object()) is True
