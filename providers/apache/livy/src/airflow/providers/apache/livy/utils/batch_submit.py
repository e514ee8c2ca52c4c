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
Submitting a try's Livy batch: the record written ahead of the POST, so no worker death duplicates it.

The record with the batch's unique name is stored *before* the POST; a later try finds the batch by
that name whatever happened to the worker or to the POST's reply, and a submission whose batch was
never seen is posted again under the same name. A batch an earlier try left under a name, but whose
id the mixin never stored, is resumed rather than posted again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowException

from airflow.providers.apache.livy.exceptions import LivyBatchNotCreated, LivyBatchRejected, LivyError
from airflow.providers.apache.livy.utils.batch_record import BatchRecord
from airflow.providers.apache.livy.utils.batch_resume import ResumeDecision
from airflow.providers.apache.livy.utils.kill_policy import EarlierRunAction

if TYPE_CHECKING:
    from airflow.providers.apache.livy.utils.batch_kill import BatchKill
    from airflow.providers.apache.livy.utils.batch_output import BatchOutput
    from airflow.providers.apache.livy.utils.batch_resume import BatchResume
    from airflow.providers.apache.livy.utils.task_run import TaskRun
    from airflow.providers.apache.livy.utils.tracked_batch import TrackedBatch


class BatchSubmit:
    """
    Submits the tracked batch: write-ahead with a store, a plain POST (as 4.6.4) without one.

    :param task: the running try; ``None`` for a batch watched outside a task run (plain POST).
    """

    def __init__(
        self,
        tracked: TrackedBatch,
        resume: BatchResume,
        output: BatchOutput,
        kill: BatchKill,
        task: TaskRun | None,
    ) -> None:
        self.tracked = tracked
        self.resume = resume
        self.output = output
        self.kill = kill
        self.task = task
        self.hook = tracked.hook
        self.log = tracked.log

    def submit(self, batch_kwargs: Mapping[str, Any]) -> BatchRecord:
        """Submit the batch (or go on with one an earlier try left unrecorded) and return its record."""
        tracked, prefix = self.tracked, batch_kwargs.get("name")
        records = tracked.records
        if records is None or self.task is None:
            tracked.record = _record_of_posted(self.hook.post_batch(**batch_kwargs))
        else:
            previous = records.read() or records.legacy_zero()
            if previous is not None and not records.mixin_decided() and self._resumed(previous):
                return tracked.current
            if previous is None and self._adopted_earlier_run_batch(prefix):
                return tracked.current
            # What resuming just learnt (e.g. the batch under the written-ahead name ended dead) wins
            # over the record read before it: else the next POST would reuse that name and adopt it.
            record = self._next_submission(tracked.record or previous, prefix)
            tracked.save(record)
            tracked.keep(record.created(self._create(record, batch_kwargs)))
        tracked.verified = True
        self.output.publish_links()
        self.kill.honour_request()
        return tracked.current

    def _resumed(self, previous: BatchRecord) -> bool:
        """
        Go on with ``previous`` instead of submitting if it is still ours to go on with.

        That is a batch submitted (or written ahead, then found by its name) by a try whose id the
        mixin never stored: a worker that died around the POST or before the mixin's write, or batch 0.
        """
        return ResumeDecision.of(self.resume.resume(previous.to_json())) is not ResumeDecision.SUBMIT

    def _adopted_earlier_run_batch(self, prefix: str | None) -> bool:
        """
        Deal with a batch an earlier run left running, if nothing is stored: delete or adopt it.

        A cleared task whose record was discarded (Airflow 3.4's default clear) after its worker died
        may have left its batch running, owned by nobody. The policy's :class:`~.EarlierRunAction`
        says what becomes of it; return whether this try adopted it (then it submits nothing).
        """
        assert self.task is not None, "a durable submission needs the task run"
        action = self.kill.policy.action
        for record in self.tracked.finder.earlier_run_batches(self.task, prefix):
            if action.on_earlier_run_batch is EarlierRunAction.ADOPT:
                self.log.warning(
                    "An earlier run of this task left Livy %s running; adopting it (on_kill_action=%r)",
                    record.describe(),
                    action.value,
                )
                self.tracked.save(record.owned_by(self.task.try_number))
                self.tracked.verified = True
                return True
            self.log.warning(
                "An earlier run of this task left Livy %s running, owned by nobody since the task was "
                "cleared; deleting it before submitting anew",
                record.describe(),
            )
            self.hook.delete_batch(record.batch_id)  # type: ignore[arg-type]  # found: it has an id
        return False

    def _next_submission(self, previous: BatchRecord | None, prefix: str | None) -> BatchRecord:
        assert self.task is not None, "a durable submission needs the task run"
        if previous is not None and previous.awaits_creation:
            return previous.owned_by(self.task.try_number)
        submission = 1 if previous is None or previous.is_legacy else previous.submission + 1
        record = BatchRecord.ahead_of_post(self.task.batch_name(submission, prefix), submission)
        return record.owned_by(self.task.try_number)

    def _create(self, record: BatchRecord, batch_kwargs: Mapping[str, Any]) -> int:
        """POST under the record's name; once more if a lost POST created nothing. Refusals are recorded."""
        try:
            return self._post_once(record, batch_kwargs)
        except LivyBatchNotCreated as lost:
            self.log.warning("%s; posting it again under the same name", lost)
        return self._post_once(record, batch_kwargs)

    def _post_once(self, record: BatchRecord, batch_kwargs: Mapping[str, Any]) -> int:
        assert record.name is not None
        try:
            return self.hook.create_batch(record.name, batch_kwargs)
        except LivyBatchRejected:
            self._abandon_rejected(record)
            raise

    def _abandon_rejected(self, record: BatchRecord) -> None:
        """
        Record a refused POST, and delete the batch Livy may have registered before refusing it.

        Livy runs some checks (file, conf) only after registering the batch, so a refused POST can
        leave a batch stuck in ``starting`` under our name; a retry must neither adopt nor keep it.
        An error while looking for it is logged: the refusal is what the try reports.
        """
        self.tracked.save(record.rejected())
        try:
            zombie = self.tracked.finder.by_name(record.name)
            if zombie is not None:
                self.log.warning(
                    "Deleting batch %s that Livy left behind after refusing it", zombie.get("id")
                )
                self.hook.delete_batch(zombie["id"])
        except LivyError as error:
            self.log.warning("Could not check for a batch Livy left behind under %r: %s", record.name, error)


def _record_of_posted(batch_id: Any) -> BatchRecord:
    """The record of a batch ``post_batch`` returned the id of; anything but an id is a clear error."""
    try:
        return BatchRecord.of_batch(batch_id)
    except (TypeError, ValueError) as error:
        raise AirflowException(
            f"LivyHook.post_batch returned {batch_id!r}, not a Livy batch id: {error}"
        ) from None
