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
    LogCursorError,
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
        assert len(json.dumps(stream.cursor)) < 120

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
        ],
    )
    def test_a_cursor_not_ours_is_refused(self, cursor):
        with pytest.raises(LogCursorError):
            validate_cursor(cursor)


@pytest.mark.parametrize("page", [None, {}, {"log": "text"}, ["line"]])
def test_a_page_without_a_log_list_is_an_error(page):
    with pytest.raises(ValueError, match="'log' list"):
        page_lines(page)
