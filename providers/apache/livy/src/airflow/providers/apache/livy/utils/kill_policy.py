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

RUNNING = "running"
GONE = ""
"""What :func:`airflow_state_of` returns when the API server no longer has the task instance."""


class KillAction(StrEnum):
    """``LivyOperator(on_kill_action=...)``: what ``on_kill`` does with the batch."""

    AUTO = "auto"
    """Delete the batch when Airflow means the task to stop; keep it when the worker goes away."""
    DELETE_BATCH = "delete_batch"
    """Always delete the batch (provider 4.6.4's behaviour)."""
    KEEP_BATCH = "keep_batch"
    """Never delete the batch; a retry or a re-run reconnects to it."""

    @property
    def on_user_action(self) -> str:
        """What ``LivyTrigger.on_kill`` does when a user marks the deferred task or clears it."""
        return self.KEEP_BATCH if self is KillAction.KEEP_BATCH else self.DELETE_BATCH

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


_STOPPED_BY_AIRFLOW = {
    "failed": "the task was marked failed",
    "success": "the task was marked success",
    "skipped": "the task was marked skipped",
    "restarting": "the task was cleared",
    "none": "the task was cleared",
    GONE: "the task instance or its dag run was deleted",
}


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

    def on_timeout(self) -> tuple[bool, str]:
        """``(delete?, why)`` when the try hit its ``execution_timeout``."""
        if self.action is KillAction.KEEP_BATCH:
            return False, "on_kill_action='keep_batch'"
        return True, "the task hit its execution_timeout"

    def on_sigterm(self) -> tuple[bool, str]:
        """``(delete?, why)`` when the try was sent SIGTERM."""
        if self.action is KillAction.DELETE_BATCH:
            return True, "on_kill_action='delete_batch'"
        if self.action is KillAction.KEEP_BATCH:
            return False, "on_kill_action='keep_batch'"
        state = self.airflow_state()
        if state is None:
            return (
                False,
                "the API server cannot be reached, so Airflow's intent is unknown; a retry reconnects",
            )
        if state != RUNNING:
            return True, _STOPPED_BY_AIRFLOW.get(state, f"Airflow no longer runs this try (it is {state})")
        if not self.retry_follows:
            return True, "the worker is shutting down and no retry follows"
        return False, "the worker is shutting down; the retry reconnects to the batch"


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
    return "none" if state is None else str(getattr(state, "value", state))


def retry_follows(ti: Any) -> bool:
    """Whether Airflow retries task instance ``ti`` if this try fails (unknown: ``True``)."""
    try_number, max_tries = getattr(ti, "try_number", None), getattr(ti, "max_tries", None)
    if not isinstance(try_number, int) or not isinstance(max_tries, int):
        return True
    return try_number <= max_tries
