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
The Livy batch of one task instance, kept across its tries: the lifecycle behind ``LivyOperator``.

:class:`DurableBatch` owns the record in the task state store and every rule about which batch a
try uses: write-ahead submission, identity, re-run detection and the kill. The operator is glue
that calls it; the hook does the HTTP. Without a task state store (``durable=False``, Airflow < 3.3)
the same code runs with nothing kept, as the released provider did.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.exceptions import AirflowException

from airflow.providers.apache.livy.exceptions import (
    LivyBatchNotCreated,
    LivyBatchNotFound,
    LivyBatchRejected,
    LivyBatchReplaced,
    LivyBatchTakenOver,
    LivyError,
    LivyTaskStopped,
)
from airflow.providers.apache.livy.utils.batch_finder import BatchFinder
from airflow.providers.apache.livy.utils.batch_record import (
    BatchRecord,
    IdentityChecks,
    LoopPosition,
    batch_name,
)
from airflow.providers.apache.livy.utils.kill_policy import (
    RUNNING,
    EarlierRunAction,
    KillDecision,
    KillOutcome,
    KillPolicy,
    KillReason,
)
from airflow.providers.apache.livy.utils.log_stream import (
    LIVE_PAGE_SIZE,
    LogCursorError,
    LogFollower,
    validate_cursor,
)
from airflow.providers.apache.livy.utils.record_store import RecordStore, TaskStateStore, parse_stored
from airflow.providers.apache.livy.utils.states import BatchOutcome, BatchState, batch_outcome

if TYPE_CHECKING:
    import logging

    from airflow.providers.apache.livy.hooks.livy import LivyHook


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


_STARTING = frozenset({BatchState.NOT_STARTED.value, BatchState.STARTING.value})
"""States in which Livy may not know the application's URLs yet."""

_DECISION_FOR = {
    BatchOutcome.ACTIVE: ResumeDecision.RECONNECT,
    BatchOutcome.SUCCEEDED: ResumeDecision.RETURN_RESULT,
    BatchOutcome.FAILED: ResumeDecision.SUBMIT,
}


@dataclasses.dataclass(frozen=True)
class TaskRun:
    """
    The try of a task instance that runs now, as far as naming and re-run detection need it.

    :param first_try: the first try since the task was last cleared (``1`` if it never was):
        clearing sets ``max_tries = try_number + retries``, so it is ``max_tries - retries + 1``, as
        Airflow's task runner computes it; ``None`` where ``max_tries`` is unknown.
    :param loop: where the task instance runs inside a task loop (Airflow 3.4+), ``None`` outside one.
    """

    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    try_number: int
    first_try: int | None
    loop: LoopPosition | None = None

    @classmethod
    def of(cls, ti: Any, retries: int | None, loop: Any = None) -> TaskRun | None:
        """
        The run of task instance ``ti`` of a task with ``retries``; ``loop`` is the context's ``loop``.

        ``None`` if ``ti`` does not identify a task instance (ids that are not strings, numbers that
        are not integers: a test double).
        """
        dag_id, task_id, run_id = (getattr(ti, name, None) for name in ("dag_id", "task_id", "run_id"))
        map_index = getattr(ti, "map_index", None)
        map_index = -1 if map_index is None else map_index
        try_number = getattr(ti, "try_number", None) or 1
        if not (isinstance(dag_id, str) and isinstance(task_id, str) and isinstance(run_id, str)):
            return None
        if not _are_ints(map_index, try_number):
            return None
        max_tries = getattr(ti, "max_tries", None)
        first_try = max(1, max_tries - (retries or 0) + 1) if isinstance(max_tries, int) else None
        return cls(
            dag_id=dag_id,
            task_id=task_id,
            run_id=run_id,
            map_index=map_index,
            try_number=try_number,
            first_try=first_try,
            loop=LoopPosition.of(ti, loop),
        )

    def batch_name(self, submission: int, prefix: str | None, *, first_try: int | None = None) -> str:
        """
        The unique name of this task instance's ``submission``-th batch.

        :param first_try: the first try of the run that submits it; default: this run's.
        """
        return batch_name(
            dag_id=self.dag_id,
            task_id=self.task_id,
            run_id=self.run_id,
            map_index=self.map_index,
            submission=submission,
            first_try=first_try or self.first_try or self.try_number,
            prefix=prefix,
            loop=self.loop,
        )

    def earlier_first_tries(self, limit: int) -> range:
        """The first tries that runs before the last clear may have had, newest first, ``limit`` at most."""
        if self.first_try is None:
            return range(0)
        return range(self.first_try - 1, max(0, self.first_try - 1 - limit), -1)

    def cleared_since(self, delivered_try: int) -> bool:
        """Whether the task was cleared after try ``delivered_try`` returned a result (a re-run)."""
        return self.first_try is None or delivered_try < self.first_try


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
    """

    sleep_slice = 0.5
    """A wait sleeps in slices this long, so a kill request is acted on within it."""

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
        publish_links: Callable[[dict[str, str]], None] | None = None,
        follow_log: bool = False,
    ) -> None:
        self.hook = hook
        self.store = store
        self.key = key
        self.task = task
        self.finder = BatchFinder(hook, log)
        self.records = (
            None
            if store is None
            else RecordStore(
                store, key, id_key=id_key, try_number=None if task is None else task.try_number, log=log
            )
        )
        self.log = log
        self.retry_args = retry_args
        self.kill_policy = kill_policy or KillPolicy()
        self.record: BatchRecord | None = None
        self._verified = False
        self._logs_shown = False
        self._delivered = False
        self._kill_requested: str | None = None
        self._deleted_because: KillDecision | None = None
        self._publish_links = publish_links
        self._published_links: dict[str, str] = {}
        self._follow_log = follow_log
        self._log_follower: LogFollower | None = None
        self._last_state: str | None = None

    # ---- Resuming what an earlier try left -----------------------------------------------------

    def resume(self, stored: Any) -> str:
        """
        What became of the batch an earlier try left: the status ``get_job_status`` reports.

        ``stored`` is what the mixin read (the batch id; 4.6.4 stored it too). The record, written
        ahead of every POST, is at least as recent, so it is the one followed when there is one.
        The status is Livy's state, remembered or checked against Livy (by id, else by name), or a
        :class:`PriorStatus`. A try that goes on with the batch (it is active or succeeded) takes it
        over.
        """
        record = self._stored_record() or self._parse(stored)
        if record is None:
            return PriorStatus.GONE
        self.record = record
        status = self._status_of(record)
        if ResumeDecision.of(status) is not ResumeDecision.SUBMIT:
            if self.task is not None:
                self._save(self._current.owned_by(self.task.try_number))
            self.publish_links()
        return status

    def _status_of(self, record: BatchRecord) -> str:
        if record.delivered_try is not None:
            return self._status_of_delivered(record)
        if record.is_finished:
            self.log.info("%s finished in state %s (remembered)", record.describe(), record.final_state)
            return str(record.final_state)
        if not record.is_identifiable:  # nothing to check it against: its state, as 4.6.4 read it
            return self._state_by_id(record)
        batch = self._locate(record)
        if batch is None:
            self.log.warning("Livy does not know %s any more; submitting a new batch", record.describe())
            return PriorStatus.GONE
        state = _state_of(batch, record)
        if batch_outcome(state) is not BatchOutcome.ACTIVE:
            self._save(self._current.finished(state, batch))
        self.log.info("%s is %s", self._current.describe(), state)
        return state

    def _state_by_id(self, record: BatchRecord) -> str:
        """The state of a batch known only by its id (``get_batch_state``, as provider 4.6.4 read it)."""
        try:
            state = self.hook.get_batch_state(self._current_id, retry_args=self.retry_args)
        except LivyBatchNotFound:
            self.log.warning("Livy does not know %s any more; submitting a new batch", record.describe())
            return PriorStatus.GONE
        return str(getattr(state, "value", state))

    def _status_of_delivered(self, record: BatchRecord) -> str:
        assert record.delivered_try is not None
        if self.task is None or self.task.cleared_since(record.delivered_try):
            self.log.info(
                "%s delivered its result in try %s and the task was cleared since: submitting a new batch",
                record.describe(),
                record.delivered_try,
            )
            return PriorStatus.RERUN
        self.log.info(
            "%s delivered its result in try %s, which ended before Airflow recorded it: returning it again",
            record.describe(),
            record.delivered_try,
        )
        return BatchState.SUCCESS.value

    def follow(self, external_id: Any) -> BatchRecord:
        """
        The record of the batch the mixin hands back (its id), once per try.

        What this try already knows (it resumed or submitted the batch, and may since have found it
        under another id) wins; otherwise the stored record if it describes that batch, else a
        record of the bare id.
        """
        if self.record is None:
            stored = self._stored_record()
            bare = BatchRecord.from_stored(external_id)
            self.record = stored if stored is not None and stored.batch_id == bare.batch_id else bare
        return self._current

    def follow_deferred(self, batch_id: Any) -> BatchRecord:
        """The record of the batch a trigger reported on: the stored one if it names that batch."""
        self.record = None
        self._verified = True  # the trigger checked the batch's identity while it waited
        return self.follow(batch_id)

    def external_id(self) -> int | None:
        """What the mixin stores and hands back: the batch's id, as provider 4.6.4 stored it."""
        return self._current.batch_id

    def _stored_record(self) -> BatchRecord | None:
        """The record stored under :attr:`key` (``None`` without a store, or if it is not ours)."""
        return None if self.records is None else self.records.read()

    @property
    def batch_id(self) -> int | None:
        """Livy's id of the batch, once known."""
        return self._current.batch_id

    # ---- Submitting ----------------------------------------------------------------------------

    def submit(self, batch_kwargs: Mapping[str, Any]) -> BatchRecord:
        """
        Submit the batch and return its record.

        With a store, the record with the batch's unique name is stored *before* the POST, so a later
        try finds the batch by name whatever happens to this worker or to the POST's reply; a
        submission whose batch was never seen is posted again under the same name.
        """
        records = self.records
        if records is None or self.task is None:
            self.record = _record_of_posted(self.hook.post_batch(**batch_kwargs))
        else:
            previous = records.read() or records.legacy_zero()
            if previous is not None and not records.mixin_decided() and self._resumed(previous):
                return self._current
            if previous is None and self._adopted_earlier_run_batch(batch_kwargs.get("name")):
                return self._current
            record = self._next_submission(previous, batch_kwargs.get("name"))
            self._save(record)
            self._save(record.created(self._create(record, batch_kwargs)))
        self._verified = True
        self.publish_links()
        self._honour_kill_request()
        return self._current

    def _adopted_earlier_run_batch(self, prefix: str | None) -> bool:
        """
        Deal with a batch an earlier run left running, if nothing is stored: delete or adopt it.

        A cleared task whose record was discarded (Airflow 3.4's default clear) after its worker died
        may have left its batch running, owned by nobody. The policy's :class:`~.EarlierRunAction`
        says what becomes of it; return whether this try adopted it (then it submits nothing).
        """
        assert self.task is not None, "a durable submission needs the task run"
        action = self.kill_policy.action.on_earlier_run_batch
        for record in self.finder.earlier_run_batches(self.task, prefix):
            if action is EarlierRunAction.ADOPT:
                self.log.warning(
                    "An earlier run of this task left Livy %s running; adopting it (on_kill_action=%r)",
                    record.describe(),
                    self.kill_policy.action.value,
                )
                self._save(record.owned_by(self.task.try_number))
                self._verified = True
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
        self._save(record.rejected())
        try:
            zombie = self.finder.by_name(record.name)
            if zombie is not None:
                self.log.warning(
                    "Deleting batch %s that Livy left behind after refusing it", zombie.get("id")
                )
                self.hook.delete_batch(zombie["id"])
        except LivyError as error:
            self.log.warning("Could not check for a batch Livy left behind under %r: %s", record.name, error)

    def _resumed(self, previous: BatchRecord) -> bool:
        """
        Go on with ``previous`` instead of submitting if it is still ours to go on with.

        That is a batch submitted (or written ahead, then found by its name) by a try whose id the
        mixin never stored: a worker that died around the POST or before the mixin's write, or batch 0.
        """
        return ResumeDecision.of(self.resume(previous.to_json())) is not ResumeDecision.SUBMIT

    # ---- Waiting -------------------------------------------------------------------------------

    def wait(self, polling_interval: float) -> None:
        """Poll until the batch finishes; check it is still ours as :class:`~.IdentityChecks` schedules."""
        record = self._current
        self.log.info("Waiting for %s to finish, polling every %s s", record.describe(), polling_interval)
        checks = IdentityChecks(verified=self._verified)
        links_read = False
        while True:
            # The first poll that finds the batch past starting without its links reads the whole
            # batch once: Livy reports the application's URLs from then on, and the state may never
            # change again before the end (when YARN drops the driver log URL). Not without a store:
            # there the reads are 4.6.4's (one whole read, at the end), which its users' mocks expect.
            links_due = (
                not links_read
                and self.store is not None
                and self._links_wanted
                and self._last_state not in (None, *_STARTING)
            )
            links_read = links_read or links_due
            state, batch = self._poll(full_read=checks.full_read_due() or links_due)
            self._last_state = state
            checks.polled(state, full_read=batch is not None)
            self.publish_links()
            if self._recorded_if_finished(state, batch, checks):
                return
            self.log.info("%s is %s", self._current.describe(), state)
            self.show_new_log_lines()
            self._sleep(polling_interval)

    def check(self) -> bool:
        """Read the batch's state once; record it if it finished. Return whether it finished."""
        state, batch = self._poll(full_read=not self._verified)
        self._last_state = state
        finished = self._recorded_if_finished(state, batch)
        self.publish_links()
        self._honour_kill_request()
        return finished

    def wait_for_links(self, seconds: float, step: float) -> bool:
        """
        Wait for the links of a starting batch, ``seconds`` at most; return whether it finished meanwhile.

        Reads the whole batch every ``step`` seconds while it starts and its links are unknown, and at
        least once if they are unknown (a batch already running has them): a task about to defer, so
        that one trigger follows the log.
        """
        deadline = time.monotonic() + seconds
        first = True
        while self._links_wanted and (first or self._last_state in _STARTING) and time.monotonic() < deadline:
            first = False
            self._sleep(step)
            state, batch = self._poll(full_read=True)
            self._last_state = state
            self.publish_links()
            if self._recorded_if_finished(state, batch):
                return True
            self.show_new_log_lines()
        return False

    def _sleep(self, seconds: float) -> None:
        """Sleep in slices, acting on a kill request (made by ``on_kill``) between them."""
        deadline = time.monotonic() + seconds
        while True:
            self._honour_kill_request()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(remaining, self.sleep_slice))

    def record_final_state(self, state: str | None) -> None:
        """Record the terminal ``state`` a trigger saw (``None``: it saw none)."""
        if state is not None and batch_outcome(state) is not BatchOutcome.ACTIVE:
            self._save(self._current.finished(state))

    def _poll(self, *, full_read: bool) -> tuple[str, dict[str, Any] | None]:
        """
        One poll: the state, and the whole batch if this poll read it (then checked to be ours).

        A batch known by its id alone (no name, no app id) has nothing to check: only its state is read.
        """
        self._raise_if_deleted_by_kill()
        try:
            readable = self._current.is_identifiable or self._links_wanted
            batch = self._read_own_batch() if full_read and readable else None
            if batch is not None:
                self._fence()
                if isinstance(batch.get("state"), str):
                    return batch["state"], batch
            return self.hook.get_batch_state(self._current_id, retry_args=self.retry_args).value, batch
        except LivyBatchNotFound:
            self._raise_if_deleted_by_kill()
            raise

    def _recorded_if_finished(
        self, state: str, batch: dict[str, Any] | None, checks: IdentityChecks | None = None
    ) -> bool:
        """
        Record a terminal ``state`` and return ``True``; ``False`` while the batch is active.

        A terminal state seen by a ``/state`` read is confirmed by reading the whole batch (ours? its
        app id?); if that read shows the batch active again (Livy restarted and is recovering it),
        the wait goes on.
        """
        if batch_outcome(state) is BatchOutcome.ACTIVE:
            return False
        if batch is None and self._current.is_identifiable:
            batch = self._read_own_batch()
            state = batch["state"] if isinstance(batch.get("state"), str) else state
            if checks is not None:
                checks.polled(state, full_read=True)
            if batch_outcome(state) is BatchOutcome.ACTIVE:
                return False
        self.log.info("%s finished in state %s", self._current.describe(), state)
        self._save(self._current.finished(state, batch))
        return True

    # ---- Results -------------------------------------------------------------------------------

    def result(self) -> BatchRecord:
        """The finished batch's record, its log shown once; raises if the batch did not succeed."""
        record = self._current
        self.publish_links()
        if record.is_finished:
            self._show_logs_once()
            if not record.succeeded:
                raise AirflowException(
                    f"Livy {record.describe()} did not succeed: it ended {record.final_state}"
                )
        return record

    def app_id(self) -> str | None:
        """
        The Spark application id, reading the batch once if it is not known yet.

        For a finished batch that Livy has forgotten (or whose id it reused) it stays unknown.
        """
        record = self._current
        if record.app_id is None:
            try:
                self._read_own_batch()
            except (LivyBatchNotFound, LivyBatchReplaced):
                if not record.is_finished:
                    raise
            self.publish_links()
        return self._current.app_id

    @property
    def delivered_in_this_try(self) -> bool:
        """Whether this try already returned the batch's result."""
        return self._delivered

    def mark_delivered(self) -> None:
        """Record that this try returned the result, so a later try can tell a retry from a re-run."""
        self._delivered = True
        if self.store is not None and self.task is not None:
            self._save(self._current.delivered(self.task.try_number))

    def logs_shown(self) -> None:
        """The batch's log already reached the task log (the trigger sent it)."""
        self._logs_shown = True

    def _show_logs_once(self) -> None:
        """Show the log at the end: only what was not shown while waiting, else the whole of it."""
        if self._logs_shown:
            return
        self._logs_shown = True
        if self._follow_log and self._current.log_cursor:
            self.show_new_log_lines()
            return
        try:
            self.hook.dump_batch_logs(self._current_id)
        except LivyError as error:
            self.log.warning("The log of %s is not available: %s", self._current.describe(), error)

    # ---- Links and the live log ----------------------------------------------------------------

    def links(self) -> dict[str, str]:
        """The batch's links known so far: its page in Livy's UI, the Spark UI, the driver log."""
        record = self.record
        if record is None or record.batch_id is None:
            return {}
        return {**self._livy_page(record.batch_id), **(record.links or {})}

    def _livy_page(self, batch_id: int) -> dict[str, str]:
        try:
            url = self.hook.batch_ui_url(batch_id)
        except Exception as error:  # a link is not worth failing the task: e.g. a mocked hook
            self.log.debug("No link to Livy's UI for batch %s: %s", batch_id, error)
            return {}
        return {"livy_batch": url} if isinstance(url, str) else {}

    @property
    def _links_wanted(self) -> bool:
        """Whether reading the whole batch may bring links to publish: none seen yet."""
        return self._publish_links is not None and not self._current.links

    def publish_links(self) -> None:
        """Hand the links that are new or changed since they were last handed over to ``publish_links``."""
        if self._publish_links is None:
            return
        links = self.links()
        changed = {name: url for name, url in links.items() if self._published_links.get(name) != url}
        if changed:
            self._publish_links(changed)
            self._published_links = links

    def show_new_log_lines(self) -> None:
        """
        Read Livy's log once and write the lines not shown yet to the task log; remember how far.

        One ``get_batch_logs`` request; the cursor is stored only when new lines were shown. A log
        that cannot be read is reported once, and the wait goes on without it.
        """
        if not self._follow_log:
            return
        record = self._current
        follower = self._log_follower or LogFollower(record.log_cursor, self.log, record.describe())
        self._log_follower = follower
        try:
            shown = follower.show(self.hook.get_batch_logs(self._current_id, 0, LIVE_PAGE_SIZE))
        except (LivyError, ValueError, OSError) as error:
            self._follow_log = False
            self.log.warning("Not following the log of %s: %s", record.describe(), error)
            return
        if shown:
            self._update(self._current.with_log_cursor(follower.cursor))

    def record_seen(self, batch: Mapping[str, Any]) -> None:
        """Take what a trigger read of the batch (app id, app links); push the links if new."""
        self._update(self._current.seen(batch))
        self.publish_links()

    def absorb_log_cursor(self, cursor: Any) -> None:
        """Take over how far a trigger showed the log (its event's ``log_cursor``)."""
        try:
            cursor = validate_cursor(cursor) if cursor else None
        except LogCursorError as error:
            self.log.warning("Ignoring the trigger's log cursor: %s", error)
            return
        if cursor:
            self._log_follower = None
            self._update(self._current.with_log_cursor(cursor))

    # ---- Killing -------------------------------------------------------------------------------

    def on_kill(self, *, timed_out: bool, executing: bool) -> None:
        """
        Airflow is killing this try: delete the batch or keep it, as the :class:`~.KillPolicy` says.

        While the task's code runs (``executing``), this is the task runner's SIGTERM handler, where
        the task's channel to the API server must not be used (the interrupted code may hold it):
        a durable try only notes the request, and the waiting code acts on it within
        :attr:`sleep_slice`. Once the code has stopped (after ``execution_timeout``), it acts at once.
        """
        if self.record is None:
            return
        if self.store is None:
            self.delete(KillDecision(True, KillReason.NOT_DURABLE))
        elif executing:
            self._kill_requested = "timeout" if timed_out else "sigterm"
        else:
            self._act(self._kill_decision(timed_out))

    def _kill_decision(self, timed_out: bool) -> KillDecision:
        return self.kill_policy.on_timeout() if timed_out else self.kill_policy.on_sigterm()

    def _honour_kill_request(self) -> None:
        """Act on a kill request ``on_kill`` made; the try then stops with an error that says why."""
        if self._kill_requested is None:
            return
        timed_out, self._kill_requested = self._kill_requested == "timeout", None
        self._stop("The task was killed", self._kill_decision(timed_out))

    def _stop(self, what: str, decision: KillDecision, cause: Exception | None = None) -> NoReturn:
        """Act on ``decision`` and stop the try with an error that says what became of the batch."""
        outcome = self._act(decision)
        message = f"{what} and Livy {self._current.describe()} {outcome.value} ({decision})"
        raise LivyTaskStopped(message, decision=decision, outcome=outcome) from cause

    def _act(self, decision: KillDecision) -> KillOutcome:
        """Delete or keep the batch as decided; return what became of it."""
        if not decision.delete:
            self.log.warning("Keeping Livy %s: %s", self._current.describe(), decision)
            return KillOutcome.KEPT
        try:
            return self.delete(decision)
        except LivyError as error:
            self.log.error("Could not delete Livy %s (%s): %s", self._current.describe(), decision, error)
            return KillOutcome.NOT_DELETED

    def delete(self, decision: KillDecision) -> KillOutcome:
        """
        Delete the batch as ``decision`` says; only this try's own batch (by name), and only if it owns it.

        Before Livy answered the POST the batch is found by the name written ahead.
        """
        record = self.record
        if record is None:
            return KillOutcome.NEVER_CREATED
        try:
            self._fence()
        except LivyBatchTakenOver as taken_over:
            self.log.warning("Not deleting Livy %s: %s", record.describe(), taken_over)
            return KillOutcome.TAKEN_OVER
        batch_id = record.batch_id
        if batch_id is None:
            found = self.finder.by_name(record.name)
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
        if record.is_finished or self.records is None:
            return
        killed = (record if record.batch_id is not None else record.created(batch_id)).finished("killed")
        self.record = killed
        try:
            self.records.store.set(self.key, killed.to_json())
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
        if not self.finder.is_ours(record, batch):
            self.log.warning(
                "Not deleting Livy batch %s: it is now %r, not ours", record.batch_id, batch.get("name")
            )
            return KillOutcome.NOT_OURS
        return None

    def _raise_if_deleted_by_kill(self) -> None:
        if self._deleted_because is not None:
            describe, why = self._current.describe(), self._deleted_because
            raise LivyTaskStopped(
                f"Livy {describe} was deleted by this task's on_kill ({why})",
                decision=self._deleted_because,
                outcome=KillOutcome.DELETED,
            )

    def _fence(self) -> None:
        """Raise if a later try has taken the batch over: this try is stale and must not touch it."""
        if self.records is not None:
            self.records.fence()

    # ---- Identity ------------------------------------------------------------------------------

    def _read_own_batch(self) -> dict[str, Any]:
        """Read the batch and check it still is ours; raise if Livy reused its id."""
        batch = self.finder.read_own(self._current)
        self._verified = True
        self._update(self._current.seen(batch))
        return batch

    def _locate(self, record: BatchRecord) -> dict[str, Any] | None:
        """Livy's batch for ``record``, checked to be ours (by id, else by name), or ``None``."""
        located = self.finder.locate(record)
        if located is None:
            return None
        known, batch = located
        self._verified = True
        self._update(known)
        return batch

    # ---- The record ----------------------------------------------------------------------------

    @property
    def _current(self) -> BatchRecord:
        if self.record is None:
            raise AirflowException("No Livy batch has been submitted or resumed yet")
        return self.record

    @property
    def _current_id(self) -> int:
        batch_id = self._current.batch_id
        if batch_id is None:
            raise AirflowException(f"{self._current.describe()} has no Livy id")
        return batch_id

    def _save(self, record: BatchRecord) -> None:
        """Store ``record`` (the whole record), unless a later try owns the batch now."""
        if self.records is not None:
            try:
                self.records.write(record)
            except LivyBatchTakenOver:
                raise
            except Exception as error:
                self._stop_if_airflow_stopped_this_try(error)
                raise
        self.record = record

    def _stop_if_airflow_stopped_this_try(self, error: Exception) -> None:
        """
        A write failed: if that is because Airflow no longer runs this try, act as ``on_kill`` would.

        A try cleared or marked failed between two heartbeats learns it here first: its writes are
        refused before the supervisor's SIGTERM arrives.
        """
        state = self.kill_policy.airflow_state()
        if state is None or state == RUNNING:
            return
        self._stop("Airflow stopped this try", self.kill_policy.on_sigterm(), cause=error)

    def _update(self, record: BatchRecord) -> None:
        """Save ``record`` if it differs from the current one."""
        if record != self.record:
            self._save(record)

    def _parse(self, value: Any) -> BatchRecord | None:
        """Read a value the mixin handed over; one that is not ours is logged and taken as nothing."""
        return parse_stored(value, self.key, self.log)


def _are_ints(*values: Any) -> bool:
    return all(isinstance(value, int) and not isinstance(value, bool) for value in values)


def _record_of_posted(batch_id: Any) -> BatchRecord:
    """The record of a batch ``post_batch`` returned the id of; anything but an id is a clear error."""
    try:
        return BatchRecord.of_batch(batch_id)
    except (TypeError, ValueError) as error:
        raise AirflowException(
            f"LivyHook.post_batch returned {batch_id!r}, not a Livy batch id: {error}"
        ) from None


def _state_of(batch: Mapping[str, Any], record: BatchRecord) -> str:
    """The batch's state; a reply without one is an error that names the batch."""
    state = batch.get("state")
    if not isinstance(state, str):
        raise AirflowException(f"Livy's reply for {record.describe()} has no state: {str(batch)[:200]}")
    return state
