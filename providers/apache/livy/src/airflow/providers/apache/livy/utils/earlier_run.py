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
A batch that an earlier run of the task left running, found by its name after a clear lost the record.

Airflow 3.4's default clear discards the cleared task instance's task state store. If the earlier
run's worker died while its batch ran, ``on_kill`` never ran, and the batch's name is all that is left
of it. Names are deterministic
(:meth:`~airflow.providers.apache.livy.utils.durable_batch.TaskRun.batch_name`): the earlier run's
first try is one of the tries before this run's first try, and its submissions are numbered from 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowException

from airflow.providers.apache.livy.exceptions import LivyBatchNotFound
from airflow.providers.apache.livy.utils.batch_record import BatchRecord
from airflow.providers.apache.livy.utils.states import BatchOutcome, batch_outcome

if TYPE_CHECKING:
    from airflow.providers.apache.livy.hooks.livy import LivyHook
    from airflow.providers.apache.livy.utils.durable_batch import TaskRun

MAX_EARLIER_RUNS = 10
"""How many earlier first tries are looked up, newest first: the runs before the last ten clears."""
MAX_SUBMISSIONS_PER_RUN = 10
"""How many submissions of one earlier run are looked up (each failed batch makes one more)."""


def earlier_run_batches(hook: LivyHook, task: TaskRun, prefix: str | None) -> list[BatchRecord]:
    """
    Records of the batches of the newest earlier run of ``task`` that Livy still holds active.

    Looks up ``GET /batches/{name}`` for the earlier runs' names, newest run first, and stops at the
    first run Livy holds any batch of. Only Livy's own "not found" means a name is free; any other
    error propagates, so a lookup that failed is never read as "no batch".
    """
    for first_try in task.earlier_first_tries(MAX_EARLIER_RUNS):
        found = list(_batches_of_run(hook, task, prefix, first_try))
        if found:
            return [record for record, batch in found if _is_active(record, batch)]
    return []


def _batches_of_run(
    hook: LivyHook, task: TaskRun, prefix: str | None, first_try: int
) -> Iterator[tuple[BatchRecord, dict[str, Any]]]:
    """The batches of the run whose first try was ``first_try``, up to the first name Livy lacks."""
    for submission in range(1, MAX_SUBMISSIONS_PER_RUN + 1):
        name = task.batch_name(submission, prefix, first_try=first_try)
        try:
            batch = hook.get_batch_by_name(name)
        except LivyBatchNotFound:
            return
        yield BatchRecord.ahead_of_post(name, submission).found(batch), batch


def _is_active(record: BatchRecord, batch: dict[str, Any]) -> bool:
    """Whether ``batch`` is still active; a reply without a state is an error that names the batch."""
    state = batch.get("state")
    if not isinstance(state, str):
        raise AirflowException(f"Livy's reply for {record.describe()} has no state: {str(batch)[:200]}")
    return batch_outcome(state) is BatchOutcome.ACTIVE
