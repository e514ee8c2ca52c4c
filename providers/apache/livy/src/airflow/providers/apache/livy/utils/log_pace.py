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
When a poll reads a batch's log while it runs, and how: the pace of a live log.

A poll is one request. It reads the whole batch (``GET /batches/{id}``) instead of its state when the
log is due: the batch object carries the log's last :data:`~.log_stream.BATCH_LOG_LINES` lines, which
show what is new while a job logs a few lines a poll.
A quiet log is looked at less and less often (every 1, 2, 4, ... polls, up to
:attr:`LogPace.quiet_polls`; half as many polls on after new lines); a log that grows faster than
those lines show is read from the log endpoint (``GET /batches/{id}/log``, only its end), once per
several polls, as many as keep the unread lines under :attr:`LogPace.lag_lines` (Livy's ring holds
200) and the wait for them under :attr:`LogPace.lag_seconds`. The worker and the triggerer use the same pace.
"""

from __future__ import annotations

import dataclasses
import math

from airflow.providers.apache.livy.utils.log_stream import (
    ANCHOR_LINES,
    BATCH_LOG_LINES,
    LIVE_PAGE_SIZE,
    SECTION_MARKERS,
)

TAIL_CAPACITY = BATCH_LOG_LINES - ANCHOR_LINES - 1
"""New lines a batch object can show at most: its last lines less the shown ones it is found by and
the ``stderr:`` marker that ends a batch's log."""


@dataclasses.dataclass
class LogPace:
    """
    Which polls read the log, and whether from the batch object or the log endpoint.

    :param polling_interval: seconds between two polls.
    :param endpoint_only: read the log endpoint every poll (the polls do not read the whole batch).
    """

    polling_interval: float
    endpoint_only: bool = False
    quiet_polls: int = 8
    """Polls between two looks at a log that showed nothing new, at most."""
    lag_lines: int = 100
    """Unread lines a fast log may gather before it is read: half of Livy's default ring."""
    lag_seconds: float = 60.0
    """Seconds a line may wait before it is shown, at most (also bounds the quiet polls)."""
    _tail_in: int = 0
    _quiet_gap: int = 1
    _behind: bool = False
    _endpoint_in: int = 0
    _polls_since_read: int = 0
    _rate: float | None = None

    def tail_due(self) -> bool:
        """Whether this poll reads the whole batch for the last lines of its log."""
        return not self.endpoint_only and not self._behind and self._tail_in <= 0

    def endpoint_due(self) -> bool:
        """Whether this poll also reads the log endpoint: the batch object's lines fell behind."""
        return self.endpoint_only or (self._behind and self._endpoint_in <= 0)

    def endpoint_page_size(self) -> int:
        """How many last lines to ask the log endpoint for (all, while the log's pace is unknown)."""
        if self._rate is None:
            return LIVE_PAGE_SIZE
        expected = self._rate * max(1, self._polls_since_read)
        return math.ceil(expected * 1.5) + BATCH_LOG_LINES + len(SECTION_MARKERS)

    def polled(self) -> None:
        """One poll went by."""
        self._tail_in -= 1
        self._endpoint_in -= 1
        self._polls_since_read += 1

    def tail_read(self, shown: int | None) -> None:
        """The batch object's lines showed ``shown`` new lines; ``None``: they could not tell."""
        if shown is None:
            if not self._behind:  # more new lines than they hold, how many is unknown: read them now
                self._behind, self._endpoint_in = True, 0
            return
        self._behind = False
        self._measured(shown)
        # New lines: look again sooner (half as many polls on); none: twice as many, up to the cap.
        gap = self._quiet_gap // 2 if shown else 2 * self._quiet_gap
        self._quiet_gap = max(1, min(gap, self._max_polls(self.quiet_polls)))
        self._tail_in = self._quiet_gap

    def endpoint_read(self, shown: int) -> None:
        """The log endpoint showed ``shown`` new lines (the whole log was read if its end was not enough)."""
        self._measured(shown)
        self._behind = self._rate is not None and self._rate > TAIL_CAPACITY
        self._endpoint_in = self._polls_to_wait()
        self._quiet_gap, self._tail_in = 1, 1

    def _measured(self, shown: int) -> None:
        self._rate = shown / max(1, self._polls_since_read)
        self._polls_since_read = 0

    def _polls_to_wait(self) -> int:
        """Polls before the log endpoint is read: none while the log's pace is unknown."""
        if not self._rate:
            return 0
        unread = self._rate * self._polls_since_read
        return max(0, min(int((self.lag_lines - unread) // self._rate), self._max_polls(None)))

    def _max_polls(self, cap: int | None) -> int:
        by_time = int(self.lag_seconds // self.polling_interval) if self.polling_interval > 0 else None
        limits = [limit for limit in (cap, by_time) if limit is not None]
        return max(1, min(limits)) if limits else 1
