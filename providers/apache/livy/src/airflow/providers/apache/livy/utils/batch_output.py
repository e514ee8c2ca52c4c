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
What a task shows of its Livy batch besides the state: links, the live log, the final log, the app id.

Links (Livy's page, the Spark UI, the driver log) are handed to a callback as soon as they are
known, and again when they change; the log is followed with one :class:`~.LogFollower`, at the
pace of a :class:`~.LogPace` (from the last lines of the batch reads the polls make, or from the log
endpoint when those fall behind), and its cursor kept in the record so a later try, or a trigger,
goes on where this one stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowException

from airflow.providers.apache.livy.exceptions import LivyBatchNotFound, LivyBatchReplaced, LivyError
from airflow.providers.apache.livy.utils.log_pace import LogPace
from airflow.providers.apache.livy.utils.log_stream import (
    LIVE_PAGE_SIZE,
    LogCursorError,
    LogFollower,
    validate_cursor,
)

if TYPE_CHECKING:
    from airflow.providers.apache.livy.utils.batch_record import BatchRecord
    from airflow.providers.apache.livy.utils.tracked_batch import TrackedBatch

LinkPublisher = Callable[[dict[str, str]], None]


class BatchOutput:
    """
    The links, log and result of the tracked batch.

    :param tracked: the batch this try tracks.
    :param publish_links: called with the links that are new or changed; ``None``: no links.
    :param follow_log: show new lines of Livy's log in the task log while waiting.
    """

    def __init__(self, tracked: TrackedBatch, publish_links: LinkPublisher | None, follow_log: bool):
        self.tracked = tracked
        self.hook = tracked.hook
        self.log = tracked.log
        self._publish = publish_links
        self._published: dict[str, str] = {}
        self.follow_log = follow_log
        self._follower: LogFollower | None = None
        self.pace = LogPace(0.0)
        """When the polls read the log; :meth:`pace_log` sets it up for a wait."""
        self.logs_shown = False
        """Whether the batch's log already reached the task log (the end of it, or a trigger's)."""

    # ---- Links ---------------------------------------------------------------------------------

    def links(self) -> dict[str, str]:
        """The batch's links known so far: its page in Livy's UI, the Spark UI, the driver log."""
        record = self.tracked.record
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
    def links_wanted(self) -> bool:
        """Whether reading the whole batch may bring links to publish: none seen yet."""
        return self._publish is not None and not self.tracked.current.links

    def publish_links(self) -> None:
        """Hand the links that are new or changed since they were last handed over to the callback."""
        if self._publish is None:
            return
        links = self.links()
        changed = {name: url for name, url in links.items() if self._published.get(name) != url}
        if changed:
            self._publish(changed)
            self._published = links

    def record_seen(self, batch: Mapping[str, Any]) -> None:
        """Take what a trigger read of the batch (app id, app links); push the links if new."""
        self.tracked.update(self.tracked.current.seen(batch))
        self.publish_links()

    # ---- The log -------------------------------------------------------------------------------

    def pace_log(self, polling_interval: float, *, batch_reads: bool) -> None:
        """
        Follow the log at the pace of a wait polling every ``polling_interval`` seconds.

        :param batch_reads: whether polls may read the whole batch instead of its state (not when
            the hook's ``get_batch_state`` is a user's): else the log endpoint is read every poll.
        """
        self.pace = LogPace(polling_interval, endpoint_only=not batch_reads)

    def log_tail_due(self) -> bool:
        """Whether this poll should read the whole batch for the last lines of its log."""
        return self.follow_log and self.pace.tail_due()

    def polled(self) -> None:
        """One poll went by: the log may have grown since it was last read."""
        self.pace.polled()

    def show_log_tail(self, batch: Mapping[str, Any]) -> None:
        """Show what is new among the last lines of the log that a read of the whole batch carried."""
        if not self.follow_log or self.pace.endpoint_only:
            return
        if not isinstance(batch.get("log"), list):  # a server whose batch objects lack the log
            self.pace.endpoint_only = True
            return
        shown = self._log_follower().show_last_lines(batch["log"])
        self.pace.tail_read(shown)
        if shown is not None:
            self._note_log_cursor()

    def show_log_if_due(self) -> None:
        """Read the log endpoint when the batch reads' lines fell behind (or tell nothing)."""
        if self.follow_log and self.pace.endpoint_due():
            self.show_new_log_lines()

    def show_new_log_lines(self) -> None:
        """
        Read the log's end from Livy and write the lines not shown yet to the task log.

        One ``get_batch_logs`` request for as many last lines as the pace expects (all of them
        while it is unknown); a second one, for all, if those do not reach back to what was shown.
        The cursor is kept in the record (stored with its next write). A log that cannot be read is
        reported once, and the wait goes on without it.
        """
        if not self.follow_log:
            return
        follower = self._log_follower()
        batch_id = self.tracked.current_id
        size = self.pace.endpoint_page_size()
        try:
            shown = None
            if size != LIVE_PAGE_SIZE:
                shown = follower.show_page(self.hook.get_batch_logs(batch_id, -1, size))
            if shown is None:
                shown = follower.show_page(self.hook.get_batch_logs(batch_id, 0, LIVE_PAGE_SIZE))
        except (LivyError, ValueError, OSError) as error:
            self._stop_following(error)
            return
        self.pace.endpoint_read(shown or 0)
        self._note_log_cursor()

    def _log_follower(self) -> LogFollower:
        record = self.tracked.current
        self._follower = self._follower or LogFollower(record.log_cursor, self.log, record.describe())
        return self._follower

    def _note_log_cursor(self) -> None:
        if self._follower is not None:
            self.tracked.update(self.tracked.current.with_log_cursor(self._follower.cursor))

    def _stop_following(self, error: Exception) -> None:
        self.follow_log = False
        self.log.warning("Not following the log of %s: %s", self.tracked.current.describe(), error)

    def absorb_log_cursor(self, cursor: Any) -> None:
        """Take over how far a trigger showed the log (its event's ``log_cursor``)."""
        try:
            cursor = validate_cursor(cursor) if cursor else None
        except LogCursorError as error:
            self.log.warning("Ignoring the trigger's log cursor: %s", error)
            return
        if cursor:
            self._follower = None
            self.tracked.update(self.tracked.current.with_log_cursor(cursor))

    def _show_logs_once(self) -> None:
        """Show the log at the end: only what was not shown while waiting, else the whole of it."""
        if self.logs_shown:
            return
        self.logs_shown = True
        if self.follow_log and self.tracked.current.log_cursor:
            # Its end, once more: Livy reads the job's output on a thread of its own, so its last
            # lines may reach the buffer after the state ended.
            self.show_new_log_lines()
            return
        try:
            self.hook.dump_batch_logs(self.tracked.current_id)
        except LivyError as error:
            self.log.warning("The log of %s is not available: %s", self.tracked.current.describe(), error)

    # ---- The result ----------------------------------------------------------------------------

    def result(self) -> BatchRecord:
        """The finished batch's record, its log shown once; raises if the batch did not succeed."""
        record = self.tracked.current
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
        record = self.tracked.current
        if record.app_id is None:
            try:
                self.tracked.read_own_batch()
            except (LivyBatchNotFound, LivyBatchReplaced):
                if not record.is_finished:
                    raise
            self.publish_links()
        return self.tracked.current.app_id
