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
The kill of a try's Livy batch: when Airflow stops the try, decide, act, and say what was done.

The decision comes from the :class:`~.KillPolicy` (data: :class:`~.KillDecision`); the action
deletes only this try's own batch, and only while this try owns it; the outcome
(:class:`~.KillOutcome`) records what was actually done, and is what the try's error reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from airflow.providers.apache.livy.exceptions import (
    LivyBatchNotFound,
    LivyBatchTakenOver,
    LivyError,
    LivyTaskStopped,
)
from airflow.providers.apache.livy.utils.kill_policy import (
    RUNNING,
    KillDecision,
    KillOutcome,
    KillPolicy,
    KillReason,
)

if TYPE_CHECKING:
    from airflow.providers.apache.livy.utils.batch_record import BatchRecord
    from airflow.providers.apache.livy.utils.tracked_batch import TrackedBatch


class BatchKill:
    """
    Deletes or keeps the tracked batch when Airflow stops the try, as ``policy`` decides.

    A write the store refuses because Airflow no longer runs the try is acted on as a kill too.
    """

    def __init__(self, tracked: TrackedBatch, policy: KillPolicy) -> None:
        self.tracked = tracked
        self.hook = tracked.hook
        self.log = tracked.log
        self.policy = policy
        self._requested: bool | None = None
        """A kill ``on_kill`` noted while the task's code ran: whether it was a timeout."""
        self._deleted_because: KillDecision | None = None
        tracked.on_write_failed = self.stop_if_airflow_stopped_this_try

    def on_kill(self, *, timed_out: bool, executing: bool) -> None:
        """
        Airflow is killing this try: delete the batch or keep it, as the policy says.

        While the task's code runs (``executing``), this is the task runner's SIGTERM handler, where
        the task's channel to the API server must not be used (the interrupted code may hold it):
        a durable try only notes the request, and the waiting code acts on it
        (:meth:`honour_request`) between two sleeps. Once the code has stopped (after
        ``execution_timeout``), it acts at once.
        """
        if self.tracked.record is None:
            return
        if not self.tracked.durable:
            self.delete(KillDecision(True, KillReason.NOT_DURABLE))
        elif executing:  # deciding may ask Airflow for the task's state: not from the signal handler
            self._requested = timed_out
        else:
            self._act(self._decision(timed_out))

    def _decision(self, timed_out: bool) -> KillDecision:
        return self.policy.on_timeout() if timed_out else self.policy.on_sigterm()

    def honour_request(self) -> None:
        """Act on a kill request ``on_kill`` made; the try then stops with an error that says why."""
        if self._requested is None:
            return
        timed_out, self._requested = self._requested, None
        self.stop("The task was killed", self._decision(timed_out))

    def stop(self, what: str, decision: KillDecision, cause: Exception | None = None) -> NoReturn:
        """Act on ``decision`` and stop the try with an error that says what became of the batch."""
        outcome = self._act(decision)
        message = f"{what} and Livy {self.tracked.current.describe()} {outcome.value} ({decision})"
        raise LivyTaskStopped(message, decision=decision, outcome=outcome) from cause

    def _act(self, decision: KillDecision) -> KillOutcome:
        """Delete or keep the batch as decided; return what became of it."""
        describe = self.tracked.current.describe()
        if not decision.delete:
            self.log.warning("Keeping Livy %s: %s", describe, decision)
            return KillOutcome.KEPT
        try:
            return self.delete(decision)
        except LivyError as error:
            self.log.error("Could not delete Livy %s (%s): %s", describe, decision, error)
            return KillOutcome.NOT_DELETED

    def delete(self, decision: KillDecision) -> KillOutcome:
        """
        Delete the batch as ``decision`` says; only this try's own batch (by name), and only if it owns it.

        Before Livy answered the POST the batch is found by the name written ahead.
        """
        record = self.tracked.record
        if record is None:
            return KillOutcome.NEVER_CREATED
        try:
            self.tracked.fence()
        except LivyBatchTakenOver as taken_over:
            self.log.warning("Not deleting Livy %s: %s", record.describe(), taken_over)
            return KillOutcome.TAKEN_OVER
        batch_id = record.batch_id
        if batch_id is None:
            found = self.tracked.finder.by_name(record.name)
            batch_id = None if found is None else found.get("id")
        elif record.name is not None and (not_ours := self._why_not_ours(record)) is not None:
            return not_ours
        if batch_id is None:
            self.log.info("Livy holds no batch %s; nothing to delete", record.describe())
            return KillOutcome.NEVER_CREATED
        self.log.warning("Deleting Livy %s: %s", record.describe(), decision)
        self._deleted_because = decision
        self.hook.delete_batch(batch_id)
        self._remember_deleted(record, batch_id)
        return KillOutcome.DELETED

    def _remember_deleted(self, record: BatchRecord, batch_id: int) -> None:
        """Record the deleted batch as ``killed``, so no later try adopts it or posts its name again."""
        records = self.tracked.records
        if record.is_finished or records is None:
            return
        killed = (record if record.batch_id is not None else record.created(batch_id)).finished("killed")
        self.tracked.record = killed
        try:
            records.store.set(records.key, killed.to_json())
        except Exception as error:  # a try Airflow stopped may no longer write; the DELETE is done
            self.log.warning("Could not record that %s was deleted: %s", record.describe(), error)

    def _why_not_ours(self, record: BatchRecord) -> KillOutcome | None:
        """Why the batch under the record's id must not be deleted (gone, another's); ``None`` if ours."""
        assert record.batch_id is not None
        try:
            batch = self.hook.get_batch(record.batch_id)
        except LivyBatchNotFound:
            self.log.info("%s is already gone; nothing to delete", record.describe())
            return KillOutcome.ALREADY_GONE
        if not self.tracked.finder.is_ours(record, batch):
            self.log.warning(
                "Not deleting Livy batch %s: it is now %r, not ours", record.batch_id, batch.get("name")
            )
            return KillOutcome.NOT_OURS
        return None

    def raise_if_deleted(self) -> None:
        """Raise :class:`~.LivyTaskStopped` if this try's own kill deleted the batch."""
        why = self._deleted_because
        if why is not None:
            raise LivyTaskStopped(
                f"Livy {self.tracked.current.describe()} was deleted by this task's on_kill ({why})",
                decision=why,
                outcome=KillOutcome.DELETED,
            )

    def stop_if_airflow_stopped_this_try(self, error: Exception) -> None:
        """
        A write failed: if that is because Airflow no longer runs this try, act as ``on_kill`` would.

        A try cleared or marked failed between two heartbeats learns it here first: its writes are
        refused before the supervisor's SIGTERM arrives.
        """
        state = self.policy.airflow_state()
        if state is None or state == RUNNING:
            return
        self.stop("Airflow stopped this try", self.policy.on_sigterm(), cause=error)
