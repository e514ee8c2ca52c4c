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
Waiting for a try's Livy batch to finish: polls, their identity checks, and the final state.

Each poll is one request: ``/batches/{id}/state``, or the whole batch when :class:`~.IdentityChecks`
says it is due (the state changed, every so often: to check it is still ours), when its
application's links are awaited, or when the log's :class:`~.LogPace` wants its last lines. The log
endpoint is read besides only when those lines fell behind. A terminal state is confirmed by a
whole read before it is recorded.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.providers.apache.livy.exceptions import LivyBatchNotFound
from airflow.providers.apache.livy.utils.batch_record import IdentityChecks
from airflow.providers.apache.livy.utils.states import BatchOutcome, BatchState, batch_outcome

if TYPE_CHECKING:
    from airflow.providers.apache.livy.utils.batch_kill import BatchKill
    from airflow.providers.apache.livy.utils.batch_output import BatchOutput
    from airflow.providers.apache.livy.utils.tracked_batch import TrackedBatch

STARTING = frozenset({BatchState.NOT_STARTED.value, BatchState.STARTING.value})
"""States in which Livy may not know the application's URLs yet."""


class BatchWait:
    """
    Polls the tracked batch until it finishes, acting on a kill request between two sleeps.

    :param retry_args: passed to ``get_batch_state``, as the released operator did.
    :param state_from_batch: whether a poll that reads the whole batch takes its state from it. Not
        when the hook's ``get_batch_state`` is a user's (overridden or mocked): that is called on
        every poll, as provider 4.6.4 did.
    """

    sleep_slice = 0.5
    """A wait sleeps in slices this long, so a kill request is acted on within it."""

    def __init__(
        self,
        tracked: TrackedBatch,
        output: BatchOutput,
        kill: BatchKill,
        retry_args: dict[str, Any] | None = None,
        *,
        state_from_batch: bool = True,
    ) -> None:
        self.tracked = tracked
        self.output = output
        self.kill = kill
        self.hook = tracked.hook
        self.log = tracked.log
        self.retry_args = retry_args
        self.state_from_batch = state_from_batch
        self.last_state: str | None = None

    def wait(self, polling_interval: float) -> None:
        """Poll until the batch finishes; check it is still ours as :class:`~.IdentityChecks` schedules."""
        self.log.info(
            "Waiting for %s to finish, polling every %s s", self.tracked.current.describe(), polling_interval
        )
        checks = IdentityChecks(verified=self.tracked.verified)
        output = self.output
        output.pace_log(polling_interval, batch_reads=self.state_from_batch)
        links_read = False
        while True:
            links_due = not links_read and self._links_due()
            links_read = links_read or links_due
            identity_due = checks.full_read_due() or links_due
            state, batch = self._poll(full_read=identity_due or output.log_tail_due(), fence=identity_due)
            checks.polled(state, full_read=batch is not None)
            output.publish_links()
            if self._recorded_if_finished(state, batch, checks):
                return
            self.log.info("%s is %s", self.tracked.current.describe(), state)
            output.show_log_if_due()
            self.tracked.checkpoint()
            self.sleep(polling_interval)
            output.polled()

    def _links_due(self) -> bool:
        """
        Whether this poll reads the whole batch for its links: the first one past starting without them.

        Livy reports the application's URLs from then on, and the state may never change again
        before the end (when YARN drops the driver log URL). Not without a store: there the reads
        are 4.6.4's (one whole read, at the end), which its users' mocks expect.
        """
        return self.tracked.durable and self.output.links_wanted and self.last_state not in (None, *STARTING)

    def check(self) -> bool:
        """Read the batch's state once; record it if it finished. Return whether it finished."""
        state, batch = self._poll(full_read=not self.tracked.verified)
        finished = self._recorded_if_finished(state, batch)
        self.output.publish_links()
        self.kill.honour_request()
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
        while (
            self.output.links_wanted
            and (first or self.last_state in STARTING)
            and time.monotonic() < deadline
        ):
            first = False
            self.sleep(step)
            state, batch = self._poll(full_read=True)
            self.output.publish_links()
            if self._recorded_if_finished(state, batch):
                return True
            self.output.show_log_if_due()
            self.output.polled()
        return False

    def sleep(self, seconds: float) -> None:
        """Sleep in slices, acting on a kill request (made by ``on_kill``) between them."""
        deadline = time.monotonic() + seconds
        while True:
            self.kill.honour_request()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(remaining, self.sleep_slice))

    def record_final_state(self, state: str | None) -> None:
        """Record the terminal ``state`` a trigger saw (``None``: it saw none)."""
        if state is not None and batch_outcome(state) is not BatchOutcome.ACTIVE:
            self._record_finished(state, None)

    def _poll(self, *, full_read: bool, fence: bool = True) -> tuple[str, dict[str, Any] | None]:
        """
        One poll: the state, and the whole batch if this poll read it (then checked to be ours).

        ``fence``: a whole read also checks that no later try took the batch over (a store read).
        """
        state, batch = self._read(full_read, fence)
        self.last_state = state
        if batch is not None:
            self.output.show_log_tail(batch)
        return state, batch

    def _read(self, full_read: bool, fence: bool = True) -> tuple[str, dict[str, Any] | None]:
        tracked = self.tracked
        self.kill.raise_if_deleted()
        try:
            readable = tracked.current.is_identifiable or self.output.links_wanted or self.output.follow_log
            batch = tracked.read_own_batch() if full_read and readable else None
            if batch is not None:
                if fence:
                    tracked.fence()
                if self.state_from_batch and isinstance(batch.get("state"), str):
                    return batch["state"], batch
            retried = self._retried_reads()
            state = self.hook.get_batch_state(tracked.current_id, retry_args=self.retry_args)
            if batch is None and tracked.current.is_identifiable and self._retried_reads() != retried:
                # Livy failed for a moment: it may have restarted and given the id to another batch,
                # whose state (and log) must not be taken for ours. Read the whole batch to check.
                return self._read(full_read=True)
            return state.value, batch
        except LivyBatchNotFound:
            self.kill.raise_if_deleted()
            raise

    def _retried_reads(self) -> int:
        return int(getattr(self.hook, "retried_reads", 0) or 0)

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
        tracked = self.tracked
        if batch is None and tracked.current.is_identifiable:
            batch = tracked.read_own_batch()
            self.output.show_log_tail(batch)
            state = batch["state"] if isinstance(batch.get("state"), str) else state
            if checks is not None:
                checks.polled(state, full_read=True)
            if batch_outcome(state) is BatchOutcome.ACTIVE:
                return False
        self.log.info("%s finished in state %s", tracked.current.describe(), state)
        self._record_finished(state, batch)
        return True

    def _record_finished(self, state: str, batch: dict[str, Any] | None) -> None:
        """Store the final state: a retry needs no Livy to know it (Livy forgets a finished batch)."""
        self.tracked.keep(self.tracked.current.finished(state, batch))
