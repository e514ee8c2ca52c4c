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
When ``on_kill`` deletes the Livy batch: only when Airflow means the task to stop.

Airflow's task runner calls ``on_kill`` on SIGTERM and after ``execution_timeout``. SIGTERM comes
from two places that look the same to the task process: the supervisor, because the API server no
longer holds this try as running (it was marked failed or success, cleared, or its dag run was
deleted), or the worker going away (a pod eviction, a deploy, ``systemctl stop``, a Celery cold
shutdown: Airflow 3.3's supervisor forwards its own SIGTERM; 3.4's waits for the task instead, and
the SIGKILL that follows leaves the batch to the retry). The policy tells them apart by asking the
API server for this task instance's state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from airflow.providers.common.compat.sdk import TaskInstanceState

RUNNING = TaskInstanceState.RUNNING.value
GONE = ""
"""What :func:`airflow_state_of` returns when the API server no longer has the task instance."""


class KillAction(StrEnum):
    """``LivyOperator(on_kill_action=...)``: what killing the task does with the batch (and the trigger's)."""

    AUTO = "auto"
    """Delete the batch when Airflow means the task to stop; keep it when the worker goes away."""
    DELETE_BATCH = "delete_batch"
    """Always delete the batch (provider 4.6.4's behaviour)."""
    KEEP_BATCH = "keep_batch"
    """Never delete the batch; a retry or a re-run reconnects to it."""

    @property
    def on_user_action(self) -> KillAction:
        """What ``LivyTrigger.on_kill`` does when a user marks the deferred task or clears it."""
        return KillAction.KEEP_BATCH if self is KillAction.KEEP_BATCH else KillAction.DELETE_BATCH

    @property
    def on_earlier_run_batch(self) -> EarlierRunAction:
        """What a re-run does with a batch that an earlier run of the task left running."""
        return EarlierRunAction.ADOPT if self is KillAction.KEEP_BATCH else EarlierRunAction.DELETE


class EarlierRunAction(StrEnum):
    """
    What a re-run does with a batch that an earlier run left running, found by its name.

    That happens when the worker of the earlier run died (so ``on_kill`` never ran) and the task was
    then cleared in a way that discarded its record: Airflow 3.4's default clear.
    """

    DELETE = "delete"
    """The clear means Airflow wants the task run anew: delete the old batch, then submit."""
    ADOPT = "adopt"
    """``on_kill_action="keep_batch"``: the re-run reconnects to the old batch instead of submitting."""


class KillReason(StrEnum):
    """Why a killed try deletes its batch or keeps it; the value is what the log and the error say."""

    MARKED_FAILED = "the task was marked failed"
    MARKED_SUCCESS = "the task was marked success"
    MARKED_SKIPPED = "the task was marked skipped"
    CLEARED = "the task was cleared"
    TASK_INSTANCE_DELETED = "the task instance or its dag run was deleted"
    NOT_RUNNING = "Airflow no longer runs this try"
    TIMED_OUT = "the task hit its execution_timeout"
    ALWAYS_DELETE = "on_kill_action='delete_batch'"
    NEVER_DELETE = "on_kill_action='keep_batch'"
    INTENT_UNKNOWN = "the API server cannot be reached, so Airflow's intent is unknown; a retry reconnects"
    LAST_TRY = "the worker is shutting down and no retry follows"
    WORKER_LEAVING = "the worker is shutting down; the retry reconnects to the batch"
    NOT_DURABLE = "durable=False, as provider 4.6.4 did"
    KILL_CALLED = "LivyOperator.kill() was called"


@dataclasses.dataclass(frozen=True)
class KillDecision:
    """Whether a killed try deletes its batch, and why."""

    delete: bool
    reason: KillReason
    state: str | None = None
    """The task instance's state as the API server held it, where the reason rests on it."""

    def __str__(self) -> str:
        if self.reason is KillReason.NOT_RUNNING and self.state is not None:
            return f"{self.reason.value} (it is {self.state})"
        return self.reason.value


class KillOutcome(StrEnum):
    """What became of the batch when a try acted on a kill; the value completes "Livy batch N ..."."""

    DELETED = "was deleted"
    KEPT = "was kept"
    ALREADY_GONE = "was already gone"
    NEVER_CREATED = "was never created"
    NOT_OURS = "was left alone: Livy now uses its id for another batch"
    TAKEN_OVER = "was left alone: a later try owns it"
    NOT_DELETED = "could not be deleted"


CLEARED = "none"
"""What :func:`airflow_state_of` returns for a task instance without a state: cleared, not yet queued."""

_STOPPED_BY_AIRFLOW = {
    TaskInstanceState.FAILED.value: KillReason.MARKED_FAILED,
    TaskInstanceState.SUCCESS.value: KillReason.MARKED_SUCCESS,
    TaskInstanceState.SKIPPED.value: KillReason.MARKED_SKIPPED,
    TaskInstanceState.RESTARTING.value: KillReason.CLEARED,
    CLEARED: KillReason.CLEARED,
    GONE: KillReason.TASK_INSTANCE_DELETED,
}
"""The states of a task instance that mean Airflow stopped it, and what each means."""


@dataclasses.dataclass(frozen=True)
class KillPolicy:
    """
    Decide, when a try is killed, whether its batch is deleted.

    :param action: the DAG's ``on_kill_action``.
    :param airflow_state: returns this try's state as the API server holds it, :data:`GONE` if it
        holds none, or ``None`` if it cannot be asked.
    :param retry_follows: whether Airflow will retry this task if this try fails.
    """

    action: KillAction = KillAction.AUTO
    airflow_state: Callable[[], str | None] = lambda: None
    retry_follows: bool = True

    def on_timeout(self) -> KillDecision:
        """The decision when the try hit its ``execution_timeout``."""
        if self.action is KillAction.KEEP_BATCH:
            return KillDecision(False, KillReason.NEVER_DELETE)
        return KillDecision(True, KillReason.TIMED_OUT)

    def on_sigterm(self) -> KillDecision:
        """The decision when the try was sent SIGTERM."""
        if self.action is KillAction.DELETE_BATCH:
            return KillDecision(True, KillReason.ALWAYS_DELETE)
        if self.action is KillAction.KEEP_BATCH:
            return KillDecision(False, KillReason.NEVER_DELETE)
        state = self.airflow_state()
        if state is None:
            return KillDecision(False, KillReason.INTENT_UNKNOWN)
        if state != RUNNING:
            return KillDecision(True, _STOPPED_BY_AIRFLOW.get(state, KillReason.NOT_RUNNING), state)
        if not self.retry_follows:
            return KillDecision(True, KillReason.LAST_TRY)
        return KillDecision(False, KillReason.WORKER_LEAVING)


def airflow_state_of(ti: Any) -> str | None:
    """
    The state of task instance ``ti`` as the API server holds it now.

    Asked through the task runner's channel to its supervisor (``RuntimeTaskInstance``, Airflow 3).
    Returns :data:`GONE` if the server has no such task instance, ``None`` if it cannot be asked.
    """
    get_task_states = getattr(ti, "get_task_states", None)
    if get_task_states is None:
        return None
    map_index = ti.map_index if isinstance(ti.map_index, int) and ti.map_index >= 0 else None
    try:
        states = get_task_states(
            dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=map_index
        )
    except Exception:
        return None
    if not isinstance(states, dict):
        return None
    run_states = states.get(ti.run_id) or {}
    key = ti.task_id if map_index is None else f"{ti.task_id}_{map_index}"
    if key not in run_states:
        return GONE
    state = run_states[key]
    return CLEARED if state is None else str(getattr(state, "value", state))


def retry_follows(ti: Any) -> bool:
    """Whether Airflow retries task instance ``ti`` if this try fails (unknown: ``True``)."""
    try_number, max_tries = getattr(ti, "try_number", None), getattr(ti, "max_tries", None)
    if not isinstance(try_number, int) or not isinstance(max_tries, int):
        return True
    return try_number <= max_tries
