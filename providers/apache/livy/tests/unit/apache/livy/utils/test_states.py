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
"""Livy batch states and their classification (``utils/states.py``)."""

from __future__ import annotations

import pytest

from airflow.providers.apache.livy.hooks import livy as hooks_module
from airflow.providers.apache.livy.utils.states import (
    FAILED_STATES,
    TERMINAL_STATE_VALUES,
    TERMINAL_STATES,
    BatchOutcome,
    BatchState,
    batch_outcome,
)

RELEASED_MEMBERS = {
    "NOT_STARTED": "not_started",
    "STARTING": "starting",
    "RUNNING": "running",
    "IDLE": "idle",
    "BUSY": "busy",
    "SHUTTING_DOWN": "shutting_down",
    "ERROR": "error",
    "DEAD": "dead",
    "KILLED": "killed",
    "SUCCESS": "success",
}

EXPECTED_OUTCOMES = {
    "not_started": BatchOutcome.ACTIVE,
    "starting": BatchOutcome.ACTIVE,
    "running": BatchOutcome.ACTIVE,
    "idle": BatchOutcome.ACTIVE,
    "busy": BatchOutcome.ACTIVE,
    "shutting_down": BatchOutcome.ACTIVE,
    "recovering": BatchOutcome.ACTIVE,
    "success": BatchOutcome.SUCCEEDED,
    "dead": BatchOutcome.FAILED,
    "killed": BatchOutcome.FAILED,
    "error": BatchOutcome.FAILED,
}


# ---- BatchState ---------------------------------------------------------------------------------------


def test_batch_state_keeps_every_released_member():
    for name, value in RELEASED_MEMBERS.items():
        assert BatchState[name].value == value
        assert BatchState(value) is BatchState[name]


def test_recovering_is_a_member():
    assert BatchState("recovering") is BatchState.RECOVERING
    assert {member.name for member in BatchState} == {*RELEASED_MEMBERS, "RECOVERING"}


def test_the_hook_module_reexports_the_same_enum():
    # DAGs written for 4.6.4 import BatchState from the hook module.
    assert hooks_module.BatchState is BatchState
    assert "BatchState" in hooks_module.__all__


@pytest.mark.parametrize("value", ["hibernating", "SUCCESS", "", "Running "])
def test_an_unknown_state_converts_to_a_pseudo_member(value):
    state = BatchState(value)
    assert isinstance(state, BatchState)
    assert state.name == "UNKNOWN"
    assert state.value == value
    assert state not in set(BatchState)


@pytest.mark.parametrize("value", [3, None, 1.5, b"success"])
def test_a_non_string_is_not_a_batch_state(value):
    with pytest.raises(ValueError):
        BatchState(value)


# ---- outcomes ----------------------------------------------------------------------------------------


def test_every_member_is_classified():
    assert set(EXPECTED_OUTCOMES) == {member.value for member in BatchState}


@pytest.mark.parametrize(("state", "outcome"), EXPECTED_OUTCOMES.items())
def test_batch_outcome(state, outcome, livy_logs):
    assert batch_outcome(state) is outcome
    assert batch_outcome(BatchState(state)) is outcome
    assert livy_logs.warnings() == []


@pytest.mark.parametrize("state", ["hibernating", "SUCCESS", ""])
def test_an_unknown_state_is_active_and_reported(state, livy_logs):
    # The warning is the behaviour: an operator sees which state Livy sent.
    assert batch_outcome(state) is BatchOutcome.ACTIVE
    assert batch_outcome(BatchState(state)) is BatchOutcome.ACTIVE
    warnings = livy_logs.warnings()
    assert len(warnings) == 2
    assert all(repr(state) in warning for warning in warnings)


def test_the_state_sets():
    assert {BatchState.DEAD, BatchState.KILLED, BatchState.ERROR} == FAILED_STATES
    assert {BatchState.SUCCESS, *FAILED_STATES} == TERMINAL_STATES
    assert {"success", "dead", "killed", "error"} == TERMINAL_STATE_VALUES
    finished = {state for state, outcome in EXPECTED_OUTCOMES.items() if outcome is not BatchOutcome.ACTIVE}
    assert {state.value for state in TERMINAL_STATES} == finished


@pytest.mark.parametrize("hook_class", [hooks_module.LivyHook, hooks_module.LivyAsyncHook])
def test_the_hooks_terminal_states_are_the_same(hook_class):
    assert hook_class.TERMINAL_STATES == TERMINAL_STATES
    # A copy: a DAG that edits the hook attribute does not change the provider's classification.
    hook_class.TERMINAL_STATES.add(BatchState.RUNNING)
    try:
        assert BatchState.RUNNING not in TERMINAL_STATES
        assert batch_outcome("running") is BatchOutcome.ACTIVE
    finally:
        hook_class.TERMINAL_STATES.discard(BatchState.RUNNING)
