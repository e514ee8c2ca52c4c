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
The Livy batch of one task instance, kept across its tries: the facade ``LivyOperator`` calls.

:class:`DurableBatch` wires the parts of the durable core together and exposes the calls the
operator's mixin methods make; each part has one reason to change:

* :mod:`.tracked_batch`: the record of this try's batch and how it is saved (with
  :mod:`.record_store`, the store and its ownership fence; :mod:`.batch_finder`, identity);
* :mod:`.batch_resume`: what became of the batch an earlier try left (``get_job_status``);
* :mod:`.batch_submit`: the write-ahead submission (``submit_job``);
* :mod:`.batch_wait`: polling until the batch finishes (``poll_until_complete``);
* :mod:`.batch_output`: links, the live and final log, the result (``get_job_result``);
* :mod:`.batch_kill`: the kill (``on_kill``), decided by :mod:`.kill_policy`.

The operator is glue that calls this facade; the hook does the HTTP. Without a task state store
(``durable=False``, Airflow < 3.3) the same code runs with nothing kept, as the released provider did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.apache.livy.utils.batch_kill import BatchKill
from airflow.providers.apache.livy.utils.batch_output import BatchOutput, LinkPublisher
from airflow.providers.apache.livy.utils.batch_record import BatchRecord
from airflow.providers.apache.livy.utils.batch_resume import BatchResume, PriorStatus, ResumeDecision
from airflow.providers.apache.livy.utils.batch_submit import BatchSubmit
from airflow.providers.apache.livy.utils.batch_wait import BatchWait
from airflow.providers.apache.livy.utils.kill_policy import KillDecision, KillOutcome, KillPolicy
from airflow.providers.apache.livy.utils.record_store import RecordStore, TaskStateStore
from airflow.providers.apache.livy.utils.task_run import TaskRun
from airflow.providers.apache.livy.utils.tracked_batch import TrackedBatch

if TYPE_CHECKING:
    import logging

    from airflow.providers.apache.livy.hooks.livy import LivyHook

__all__ = ["DurableBatch", "PriorStatus", "ResumeDecision", "TaskRun"]


class DurableBatch:
    """
    The Livy batch of one task instance across its tries.

    Every record it writes goes to ``store`` under ``key``, the whole record each time, the name
    before the POST; the mixin stores the batch's id (:meth:`external_id`) under ``id_key``, as
    provider 4.6.4 did. Every read of a batch by id checks that the batch is still ours
    (:meth:`~.BatchRecord.identify`) before it is adopted, waited on or deleted.

    :param hook: the hook to Livy; only its public methods are called, with 4.6.4's signatures.
    :param store: the task state store, or ``None`` to keep nothing (every try submits).
    :param key: the store key of the record (the operator's ``record_key``).
    :param id_key: the store key under which the mixin keeps the batch id (the operator's
        ``external_id_key``); read only, to tell whether the mixin already decided about it.
    :param task: the running try; ``None`` for a batch watched outside a task run.
    :param log: the operator's logger.
    :param retry_args: passed to ``get_batch_state``, as the released operator did.
    :param kill_policy: when :meth:`on_kill` deletes the batch.
    :param publish_links: called with the batch's links (``livy_batch``, ``spark_ui``,
        ``driver_log``) that are new or changed, as soon as they are known, e.g. to push XComs.
    :param follow_log: show new lines of Livy's log in the task log while waiting.
    :param state_from_batch: polls that read the whole batch take its state from it; ``False`` when
        the hook's ``get_batch_state`` is a user's, which is then called on every poll.
    """

    def __init__(
        self,
        hook: LivyHook,
        *,
        store: TaskStateStore | None,
        key: str,
        id_key: str | None = None,
        task: TaskRun | None,
        log: logging.Logger | Any,
        retry_args: dict[str, Any] | None = None,
        kill_policy: KillPolicy | None = None,
        publish_links: LinkPublisher | None = None,
        follow_log: bool = False,
        state_from_batch: bool = True,
    ) -> None:
        try_number = None if task is None else task.try_number
        records = (
            None if store is None else RecordStore(store, key, id_key=id_key, try_number=try_number, log=log)
        )
        self.tracked = TrackedBatch(hook, records, key, log)
        self.output = BatchOutput(self.tracked, publish_links, follow_log)
        self.kill = BatchKill(self.tracked, kill_policy or KillPolicy())
        self.waiting = BatchWait(
            self.tracked, self.output, self.kill, retry_args, state_from_batch=state_from_batch
        )
        self.resuming = BatchResume(self.tracked, self.output, task, retry_args)
        self.submitting = BatchSubmit(self.tracked, self.resuming, self.output, self.kill, task)
        self.task = task
        self._delivered = False

    # ---- The batch this try follows ------------------------------------------------------------

    @property
    def record(self) -> BatchRecord | None:
        """What this try knows of its batch; ``None`` before it submitted or resumed one."""
        return self.tracked.record

    @property
    def batch_id(self) -> int | None:
        """Livy's id of the batch, once known."""
        return self.tracked.current.batch_id

    def external_id(self) -> int | None:
        """What the mixin stores and hands back: the batch's id, as provider 4.6.4 stored it."""
        return self.tracked.current.batch_id

    def follow(self, external_id: Any) -> BatchRecord:
        """
        The record of the batch the mixin hands back (its id), once per try.

        What this try already knows (it resumed or submitted the batch, and may since have found it
        under another id) wins; otherwise the stored record if it describes that batch, else a
        record of the bare id.
        """
        tracked = self.tracked
        if tracked.record is None:
            stored = tracked.stored()
            bare = BatchRecord.from_stored(external_id)
            tracked.record = stored if stored is not None and stored.batch_id == bare.batch_id else bare
        return tracked.current

    def follow_deferred(self, batch_id: Any) -> BatchRecord:
        """The record of the batch a trigger reported on: the stored one if it names that batch."""
        self.tracked.record = None
        self.tracked.verified = True  # the trigger checked the batch's identity while it waited
        return self.follow(batch_id)

    # ---- The mixin's steps ---------------------------------------------------------------------

    def resume(self, stored: Any) -> str:
        """The status of the batch an earlier try left (see :meth:`.BatchResume.resume`)."""
        return self.resuming.resume(stored)

    def submit(self, batch_kwargs: Mapping[str, Any]) -> BatchRecord:
        """Submit the batch and return its record (see :meth:`.BatchSubmit.submit`)."""
        return self.submitting.submit(batch_kwargs)

    def wait(self, polling_interval: float) -> None:
        """Poll until the batch finishes (see :meth:`.BatchWait.wait`)."""
        self.waiting.wait(polling_interval)

    def check(self) -> bool:
        """Read the batch's state once; record it if it finished. Return whether it finished."""
        return self.waiting.check()

    def wait_for_links(self, seconds: float, step: float) -> bool:
        """Wait for a starting batch's links before deferring (see :meth:`.BatchWait.wait_for_links`)."""
        return self.waiting.wait_for_links(seconds, step)

    def record_final_state(self, state: str | None) -> None:
        """Record the terminal ``state`` a trigger saw (``None``: it saw none)."""
        self.waiting.record_final_state(state)

    def result(self) -> BatchRecord:
        """The finished batch's record, its log shown once; raises if the batch did not succeed."""
        return self.output.result()

    def app_id(self) -> str | None:
        """The Spark application id, reading the batch once if it is not known yet."""
        return self.output.app_id()

    @property
    def delivered_in_this_try(self) -> bool:
        """Whether this try already returned the batch's result."""
        return self._delivered

    def mark_delivered(self) -> None:
        """Record that this try returned the result, so a later try can tell a retry from a re-run."""
        self._delivered = True
        if self.tracked.durable and self.task is not None:
            self.tracked.save(self.tracked.current.delivered(self.task.try_number))

    # ---- Links and logs ------------------------------------------------------------------------

    def links(self) -> dict[str, str]:
        """The batch's links known so far: its page in Livy's UI, the Spark UI, the driver log."""
        return self.output.links()

    def publish_links(self) -> None:
        """Hand the links that are new or changed to ``publish_links``."""
        self.output.publish_links()

    def show_new_log_lines(self) -> None:
        """Show the lines of Livy's log not shown yet (one request)."""
        self.output.show_new_log_lines()

    def logs_shown(self) -> None:
        """The batch's log already reached the task log (the trigger sent it)."""
        self.output.logs_shown = True

    def record_seen(self, batch: Mapping[str, Any]) -> None:
        """Take what a trigger read of the batch (app id, app links); push the links if new."""
        self.output.record_seen(batch)

    def absorb_log_cursor(self, cursor: Any) -> None:
        """Take over how far a trigger showed the log (its event's ``log_cursor``)."""
        self.output.absorb_log_cursor(cursor)

    # ---- Killing -------------------------------------------------------------------------------

    def on_kill(self, *, timed_out: bool, executing: bool) -> None:
        """Airflow is killing this try: delete or keep the batch (see :meth:`.BatchKill.on_kill`)."""
        self.kill.on_kill(timed_out=timed_out, executing=executing)

    def delete(self, decision: KillDecision) -> KillOutcome:
        """Delete this try's own batch as ``decision`` says; return what became of it."""
        return self.kill.delete(decision)
