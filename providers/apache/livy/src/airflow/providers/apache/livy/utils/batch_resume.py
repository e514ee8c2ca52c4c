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
What a try makes of the Livy batch an earlier try left: the status ``get_job_status`` reports.

The status is Livy's state (as provider 4.6.4 reported it), or a :class:`PriorStatus` for cases
4.6.4 never knew; :meth:`ResumeDecision.of` maps either to what the mixin does next.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowException

from airflow.providers.apache.livy.exceptions import LivyBatchNotFound
from airflow.providers.apache.livy.utils.states import BatchOutcome, BatchState, batch_outcome

if TYPE_CHECKING:
    from airflow.providers.apache.livy.utils.batch_output import BatchOutput
    from airflow.providers.apache.livy.utils.batch_record import BatchRecord
    from airflow.providers.apache.livy.utils.task_run import TaskRun
    from airflow.providers.apache.livy.utils.tracked_batch import TrackedBatch


class ResumeDecision(StrEnum):
    """What a try does with what an earlier try left (``get_job_status`` hands it to the mixin)."""

    RECONNECT = "reconnect"
    """The batch is still running: wait for it."""
    RETURN_RESULT = "return_result"
    """The batch succeeded (or its result was delivered in this run): return its result."""
    SUBMIT = "submit"
    """Nothing to resume (failed, gone, not ours, or a re-run after a clear): submit a new batch."""

    @classmethod
    def of(cls, status: str) -> ResumeDecision:
        """The decision a status of ``get_job_status`` implies: a Livy state, or a :class:`PriorStatus`."""
        if status in cls._value2member_map_:
            return cls(status)
        if status in PriorStatus._value2member_map_:
            return ResumeDecision.SUBMIT
        return _DECISION_FOR[batch_outcome(status)]


class PriorStatus(StrEnum):
    """What ``get_job_status`` reports besides Livy's own states, for cases provider 4.6.4 never knew."""

    GONE = "gone"
    """Livy no longer holds the batch (nor, under its name, a batch of ours): submit a new batch."""
    RERUN = "rerun"
    """The batch's result was delivered before the task was cleared: a re-run submits a new batch."""


_DECISION_FOR = {
    BatchOutcome.ACTIVE: ResumeDecision.RECONNECT,
    BatchOutcome.SUCCEEDED: ResumeDecision.RETURN_RESULT,
    BatchOutcome.FAILED: ResumeDecision.SUBMIT,
}


class BatchResume:
    """
    Finds out what became of the batch an earlier try left; a try that goes on with it takes it over.

    :param task: the running try; ``None`` for a batch watched outside a task run.
    :param retry_args: passed to ``get_batch_state``, as the released operator did.
    """

    def __init__(
        self,
        tracked: TrackedBatch,
        output: BatchOutput,
        task: TaskRun | None,
        retry_args: dict[str, Any] | None = None,
    ) -> None:
        self.tracked = tracked
        self.output = output
        self.task = task
        self.hook = tracked.hook
        self.log = tracked.log
        self.retry_args = retry_args

    def resume(self, stored: Any) -> str:
        """
        What became of the batch an earlier try left: the status ``get_job_status`` reports.

        ``stored`` is what the mixin read (the batch id; 4.6.4 stored it too). The record, written
        ahead of every POST, is at least as recent, so it is the one followed when there is one.
        """
        tracked = self.tracked
        record = tracked.stored() or tracked.parse(stored)
        if record is None:
            return PriorStatus.GONE
        tracked.record = record
        status = self._status_of(record)
        if ResumeDecision.of(status) is not ResumeDecision.SUBMIT:
            if self.task is not None:
                tracked.save(tracked.current.owned_by(self.task.try_number))
            self.output.publish_links()
        return status

    def _status_of(self, record: BatchRecord) -> str:
        if record.delivered_try is not None:
            return self._status_of_delivered(record, record.delivered_try)
        if record.is_finished:
            self.log.info("%s finished in state %s (remembered)", record.describe(), record.final_state)
            return str(record.final_state)
        if not record.is_identifiable:  # nothing to check it against: its state, as 4.6.4 read it
            return self._state_by_id(record)
        batch = self.tracked.locate(record)
        if batch is None:
            self.log.warning("Livy does not know %s any more; submitting a new batch", record.describe())
            return PriorStatus.GONE
        state = _state_of(batch, record)
        if batch_outcome(state) is not BatchOutcome.ACTIVE:
            self.tracked.keep(self.tracked.current.finished(state, batch))
        self.log.info("%s is %s", self.tracked.current.describe(), state)
        return state

    def _state_by_id(self, record: BatchRecord) -> str:
        """The state of a batch known only by its id (``get_batch_state``, as provider 4.6.4 read it)."""
        try:
            state = self.hook.get_batch_state(self.tracked.current_id, retry_args=self.retry_args)
        except LivyBatchNotFound:
            self.log.warning("Livy does not know %s any more; submitting a new batch", record.describe())
            return PriorStatus.GONE
        return str(getattr(state, "value", state))

    def _status_of_delivered(self, record: BatchRecord, delivered_try: int) -> str:
        if self.task is None or self.task.cleared_since(delivered_try):
            self.log.info(
                "%s delivered its result in try %s and the task was cleared since: submitting a new batch",
                record.describe(),
                delivered_try,
            )
            return PriorStatus.RERUN
        self.log.info(
            "%s delivered its result in try %s, which ended before Airflow recorded it: returning it again",
            record.describe(),
            delivered_try,
        )
        return BatchState.SUCCESS.value


def _state_of(batch: Mapping[str, Any], record: BatchRecord) -> str:
    """The batch's state; a reply without one is an error that names the batch."""
    state = batch.get("state")
    if not isinstance(state, str):
        raise AirflowException(f"Livy's reply for {record.describe()} has no state: {str(batch)[:200]}")
    return state
