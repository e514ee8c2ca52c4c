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

import json

import pytest

from airflow.providers.apache.livy.utils.log_stream import (
    BATCH_LOG_LINES,
    LogCursorError,
    LogFollower,
    LogStream,
    page_lines,
    split_sections,
    validate_cursor,
)

RING = 200
OUT, ERR = "stdout: ", "\nstderr: "


def livy_log(stdout: list[str], stderr: list[str] = (), ring: int = RING) -> list[str]:  # type: ignore[assignment]
    """The log as Livy serves it: each stream's last ``ring`` lines behind its marker."""
    return [OUT, *stdout[-ring:], ERR, *list(stderr)[-ring:]]


def job_lines(count: int, start: int = 1) -> list[str]:
    return [f"line {i}" for i in range(start, start + count)]


def follow(stream: LogStream, logs: list[list[str]]) -> list[str]:
    shown: list[str] = []
    for log in logs:
        shown.extend(stream.update(log).lines)
    return shown


class TestWhileTheRingFills:
    def test_every_line_once_in_order(self):
        lines = job_lines(150)
        shown = follow(LogStream(), [livy_log(lines[:n]) for n in (0, 10, 10, 75, 150)])
        assert shown == [OUT, ERR, *lines]

    def test_a_page_with_nothing_new_shows_nothing(self):
        stream = LogStream()
        stream.update(livy_log(job_lines(5)))
        assert stream.update(livy_log(job_lines(5))).lines == []


class TestOnceTheRingShifts:
    def test_1000_lines_polled_every_150_lines_are_each_shown_once(self):
        lines = job_lines(1000)
        logs = [livy_log(lines[:n]) for n in range(0, 1001, 150)] + [livy_log(lines)]
        assert follow(LogStream(), logs) == [OUT, ERR, *lines]

    def test_lines_the_ring_dropped_between_polls_are_reported_lost(self):
        lines = job_lines(1000)
        stream = LogStream()
        stream.update(livy_log(lines[:100]))
        update = stream.update(livy_log(lines[:700]))  # 600 new lines: the first 400 are gone
        assert update.lost == ["stdout"]
        assert update.lines == [OUT, *lines[500:700]]

    def test_repeated_identical_lines_are_never_shown_twice(self):
        lines = ["tick"] * 250 + job_lines(3)
        stream = LogStream()
        stream.update(livy_log(lines[:250]))
        assert stream.update(livy_log(lines[:250])).lines == []
        assert stream.update(livy_log(lines)).lines == job_lines(3)

    def test_identical_lines_appended_while_the_ring_is_not_full_all_show(self):
        stream = LogStream()
        stream.update(livy_log(["tick"] * 9))
        assert stream.update(livy_log(["tick"] * 12)).lines == ["tick"] * 3


class TestSections:
    def test_stdout_and_stderr_are_followed_separately(self):
        stream = LogStream()
        stream.update(livy_log(["out 1"], ["err 1"]))
        update = stream.update(livy_log(["out 1", "out 2"], ["err 1", "err 2", "err 3"]))
        assert update.lines == ["out 2", "err 2", "err 3"]

    def test_yarn_diagnostics_is_a_section_of_its_own(self):
        log = [*livy_log(["a"], ["b"]), "\nYARN Diagnostics: ", "diag"]
        assert [name for name, _ in split_sections(log)] == ["stdout", "stderr", "yarn"]

    def test_a_log_without_markers_is_one_section(self):
        stream = LogStream()
        stream.update(["a", "b"])
        assert stream.update(["a", "b", "c"]).lines == ["c"]
        assert list(stream.cursor) == ["log"]

    def test_an_empty_log_after_a_restart_changes_nothing(self):
        stream = LogStream()
        stream.update(livy_log(job_lines(3)))
        cursor = stream.cursor
        assert stream.update([]).lines == []
        assert stream.cursor == cursor


class TestReconnect:
    def test_a_new_stream_from_the_cursor_shows_only_the_rest(self):
        lines = job_lines(600)
        first = LogStream()
        first.update(livy_log(lines[:350]))
        stored = json.loads(json.dumps(first.cursor))  # through the task state store
        second = LogStream(stored)
        assert second.update(livy_log(lines[:420])).lines == lines[350:420]
        assert second.lines_shown == 2 + RING + 70  # the markers, the ring at first sight, the rest

    def test_the_cursor_is_small(self):
        stream = LogStream()
        stream.update(livy_log(job_lines(1000), job_lines(1000)))
        assert len(json.dumps(stream.cursor)) < 160

    @pytest.mark.parametrize(
        "cursor",
        [
            [1, 2],
            {"stdin": [1, 1, "x"]},
            {"stdout": [1, 9, "x"]},
            {"stdout": [-1, 0, ""]},
            {"stdout": [True, 0, ""]},
            {"stdout": [1, 1, "x" * 40]},
            {"stdout": "1"},
            {"stdout": [1, ["short"]]},
            {"stdout": [1, ["0123abcd", "0123abcd"]]},
            {"stdout": [9, "0123abcd"]},
        ],
    )
    def test_a_cursor_not_ours_is_refused(self, cursor):
        with pytest.raises(LogCursorError):
            validate_cursor(cursor)


def test_a_cursor_of_an_earlier_release_is_read_as_its_count():
    stream = LogStream({"stdout": [3, 2, "0123456789abcdef"]})
    assert stream.update(livy_log(job_lines(5))).lines == ["line 3", "line 4", "line 5", ERR]


def batch_tail(log: list[str]) -> list[str]:
    """The ``log`` of Livy's batch object: the last ten lines."""
    return log[-BATCH_LOG_LINES:]


class TestLastLines:
    def test_a_few_new_lines_a_poll_are_each_shown_once_from_the_batch_objects(self):
        lines = job_lines(400)
        stream = LogStream()
        shown = stream.update(livy_log(lines[:20])).lines
        for count in range(25, 400, 5):  # past the ring's 200 lines too
            update = stream.update_tail(batch_tail(livy_log(lines[:count])))
            assert update is not None
            shown.extend(update.lines)
        assert shown == [OUT, *lines[:20], ERR, *lines[20:395]]

    def test_more_new_lines_than_they_hold_cannot_tell_and_change_nothing(self):
        lines = job_lines(100)
        stream = LogStream()
        stream.update(livy_log(lines[:20]))
        cursor = stream.cursor
        assert stream.update_tail(batch_tail(livy_log(lines[:30]))) is None
        assert stream.cursor == cursor
        assert stream.update(livy_log(lines[:30])).lines == lines[20:30]

    def test_a_short_whole_log_starts_at_its_first_marker(self):
        assert LogStream().update_tail(batch_tail(livy_log(job_lines(3)))).lines == [OUT, *job_lines(3), ERR]

    def test_nothing_shown_yet_and_a_partial_view_cannot_tell(self):
        assert LogStream().update_tail(batch_tail(livy_log(job_lines(30)))) is None

    def test_yarn_diagnostics_after_the_job_lines_are_a_whole_section(self):
        lines = job_lines(40)
        stream = LogStream()
        stream.update([*livy_log(lines[:30]), "\nYARN Diagnostics: ", "queued"])
        update = stream.update_tail(
            batch_tail([*livy_log(lines[:32]), "\nYARN Diagnostics: ", "queued", "ran"])
        )
        assert update is not None
        assert update.lines == [*lines[30:32], "ran"]

    def test_last_lines_inside_a_later_section_cannot_tell_about_the_first(self):
        stream = LogStream()
        diagnostics = [f"diag {i}" for i in range(12)]
        stream.update([*livy_log(job_lines(5)), "\nYARN Diagnostics: ", *diagnostics[:11]])
        assert (
            stream.update_tail(batch_tail([*livy_log(job_lines(6)), "\nYARN Diagnostics: ", *diagnostics]))
            is None
        )

    def test_repeated_lines_that_match_twice_cannot_tell(self):
        stream = LogStream()
        stream.update(livy_log(["tick"] * 20))
        assert stream.update_tail(batch_tail(livy_log(["tick"] * 23))) is None

    @pytest.mark.parametrize(
        ("before", "after"),
        [
            (["waiting"] * 4, ["waiting", "waiting", *[f"y{i}" for i in range(7)]]),
            (["a", "", "=========="], ["b", "", "==========", *[f"y{i}" for i in range(8)]]),
        ],
    )
    def test_repeated_lines_that_only_begin_in_them_cannot_tell(self, before, after):
        stream = LogStream()
        stream.update(livy_log(before))
        assert stream.update_tail(batch_tail(livy_log([*before, *after]))) is None
        assert stream.update(livy_log([*before, *after])).lines == after  # the whole log: each once

    def test_a_count_lower_than_what_was_shown_finds_the_lines_further_on(self):
        stream = LogStream({"stdout": [3, []]})  # an earlier release's cursor: the count alone
        stream.update(livy_log(job_lines(5)))  # shows from line 3 on: anchors end at line 5
        lines = job_lines(9)
        low = LogStream({"stdout": [4, stream.cursor["stdout"][1]]})  # counted 4, shown up to 5 (6)
        assert low.update(livy_log(lines)).lines == [*lines[5:], ERR]

    def test_a_tail_page_of_the_log_endpoint_is_followed_like_the_batch_objects_lines(self):
        logged: list[str] = []
        lines = job_lines(300)
        follower = LogFollower(
            None, type("Log", (), {"info": logged.append, "warning": logged.append})(), "b"
        )
        follower.show({"from": 0, "total": 102, "log": livy_log(lines[:100])})
        log = livy_log(lines[:160])
        assert follower.show_page({"from": len(log) - 70, "total": len(log), "log": log[-70:]}) == 60
        assert logged[-60:] == lines[100:160]

    def test_last_lines_that_are_not_a_list_are_an_error(self):
        follower = LogFollower(None, None, "b")
        with pytest.raises(ValueError, match="'log' is a list"):
            follower.show_last_lines("text")


@pytest.mark.parametrize("page", [None, {}, {"log": "text"}, ["line"]])
def test_a_page_without_a_log_list_is_an_error(page):
    with pytest.raises(ValueError, match="'log' list"):
        page_lines(page)
