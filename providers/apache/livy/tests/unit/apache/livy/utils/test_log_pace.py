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
from __future__ import annotations

import itertools

from airflow.providers.apache.livy.utils.log_pace import TAIL_CAPACITY, LogPace
from airflow.providers.apache.livy.utils.log_stream import LIVE_PAGE_SIZE, LogStream


def reads(pace: LogPace, lines_per_poll: list[int], ring: int = 200) -> tuple[list[str], list[str]]:
    """
    Run ``pace`` over a job that logs ``lines_per_poll[i]`` lines before poll ``i``.

    Returns the kind of each poll's requests (``state``, ``batch``, ``+log``) and the lines shown,
    with those the end of the wait reads.
    """
    stream, everything, shown, kinds = LogStream(), [], [], []
    for count in lines_per_poll:
        start = len(everything)
        everything.extend(f"line {start + i}" for i in range(count))
        log = ["stdout: ", *everything[-ring:], "\nstderr: "]
        kind = "batch" if pace.tail_due() else "state"
        if kind == "batch":
            update = stream.update_tail(log[-10:])
            pace.tail_read(None if update is None else len(update.lines))
            shown.extend(update.lines if update else [])
        if pace.endpoint_due():
            size = pace.endpoint_page_size()
            update = stream.update_tail(log[-size:]) if size != LIVE_PAGE_SIZE else None
            update = update or stream.update(log)
            pace.endpoint_read(len(update.lines))
            shown.extend(update.lines)
            kind += "+log"
        kinds.append(kind)
        pace.polled()
    shown.extend(stream.update(log).lines)
    return kinds, [line for line in shown if line.startswith("line")]


class TestQuietLogs:
    def test_a_log_that_shows_nothing_new_is_looked_at_less_and_less_often(self):
        kinds, _ = reads(LogPace(1.0), [0] * 40)
        batch_polls = [i for i, kind in enumerate(kinds) if kind == "batch"]
        assert batch_polls[:5] == [0, 1, 3, 7, 15]
        assert max(b - a for a, b in itertools.pairwise(batch_polls)) == 8  # quiet_polls

    def test_the_wait_for_a_line_is_bounded_in_seconds_too(self):
        kinds, _ = reads(LogPace(20.0), [0] * 20)
        batch_polls = [i for i, kind in enumerate(kinds) if kind == "batch"]
        assert max(b - a for a, b in itertools.pairwise(batch_polls)) == 3  # 60 s at 20 s a poll

    def test_a_few_lines_a_poll_come_with_every_poll_and_never_from_the_log_endpoint(self):
        kinds, shown = reads(LogPace(10.0), [1, *[TAIL_CAPACITY] * 30])
        assert kinds[1:] == ["batch"] * 30
        assert shown == [f"line {i}" for i in range(1 + 30 * TAIL_CAPACITY)]


class TestFastLogs:
    def test_a_fast_log_is_read_from_the_endpoint_every_few_polls_each_line_once(self):
        kinds, shown = reads(LogPace(1.0), [5, *[17] * 60])
        assert shown == [f"line {i}" for i in range(5 + 60 * 17)]
        endpoint_reads = sum(kind.endswith("+log") for kind in kinds)
        assert endpoint_reads <= 60 / 5  # 100 lines at 17 a poll: every 5 or 6 polls
        assert all(kind == "state" for kind in kinds[3:] if not kind.endswith("+log"))

    def test_a_log_faster_than_the_lag_allows_is_read_every_poll(self):
        kinds, shown = reads(LogPace(1.0), [5, *[150] * 10])
        assert shown == [f"line {i}" for i in range(5 + 10 * 150)]
        assert all(kind.endswith("+log") for kind in kinds[1:])

    def test_the_end_of_the_log_is_asked_for_with_room_to_spare_once_its_pace_is_known(self):
        pace = LogPace(1.0)
        assert pace.endpoint_page_size() == LIVE_PAGE_SIZE
        pace.tail_read(None)
        pace.endpoint_read(40)
        pace.polled()
        pace.polled()
        assert pace.endpoint_page_size() >= 2 * 40

    def test_a_burst_then_quiet_goes_back_to_the_batch_objects(self):
        kinds, shown = reads(LogPace(1.0), [5, 120, 0, 0, 0, 0, 2, 2, 2, 2, 2])
        assert shown == [f"line {i}" for i in range(5 + 120 + 10)]
        assert kinds[1:3] == ["batch+log", "state+log"]  # the burst, then the pace it measured
        # Quiet again: batch reads, and the endpoint once, when a quiet spell let more lines gather.
        assert "".join(kinds[3:]).count("+log") <= 1
        assert kinds[-1] == "batch"


def test_with_a_users_get_batch_state_the_log_endpoint_is_read_every_poll():
    pace = LogPace(1.0, endpoint_only=True)
    assert (pace.tail_due(), pace.endpoint_due()) == (False, True)
