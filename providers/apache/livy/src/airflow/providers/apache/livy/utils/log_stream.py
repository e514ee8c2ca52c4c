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
Following a Livy batch's log while it runs: which lines of a log page are new.

Livy buffers a batch's log in rings (``livy.cache-log.size``, 200 lines each) and serves it as one
list: the line ``stdout:``, the stdout ring, the line ``stderr:``, the stderr ring (and, on YARN,
``YARN Diagnostics:`` and its lines; each marker after the first starts with a newline). Once a
ring is full its lines shift, so positions alone cannot tell new lines from old. :class:`LogStream`
splits each page at those markers and aligns every section with the last lines it already showed
(a hash of them), so each line is shown once, in order, while Livy still holds it. Its
:attr:`~LogStream.cursor` is small JSON, kept in the task state store so that a retry does not show
again what an earlier try showed. The worker and the triggerer use the same class.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

SECTION_MARKERS = {"stdout: ": "stdout", "\nstderr: ": "stderr", "\nYARN Diagnostics: ": "yarn"}
"""The lines Livy puts in front of each part of a batch's log, and the part's name."""
UNMARKED = "log"
"""The name of lines before any marker (a server or gateway that sends no markers)."""
TAIL_LINES = 8
"""How many of the last shown lines of a section identify where it continues."""
LIVE_PAGE_SIZE = -1
"""``size`` of the one log request per poll: everything Livy buffers (its rings bound it)."""
_MAX_SECTIONS = 8
_HASH_CHARS = 16


class LogCursorError(ValueError):
    """A stored log cursor is not one this module writes."""


@dataclasses.dataclass(frozen=True)
class SectionCursor:
    """Where one section of the log stands: lines shown, and a hash of the last ``tail`` of them."""

    shown: int = 0
    tail: int = 0
    digest: str = ""

    def to_json(self) -> list[Any]:
        """The compact stored form ``[shown, tail, digest]``."""
        return [self.shown, self.tail, self.digest]

    @classmethod
    def from_json(cls, value: Any) -> SectionCursor:
        """Read ``[shown, tail, digest]``; raise :class:`LogCursorError` on anything else."""
        if not isinstance(value, list | tuple) or len(value) != 3:
            raise LogCursorError("a section cursor is a [shown, tail, digest] list")
        shown, tail, digest = value
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (shown, tail)):
            raise LogCursorError("a section cursor counts lines with non-negative integers")
        if tail > min(shown, TAIL_LINES) or not isinstance(digest, str) or len(digest) > _HASH_CHARS:
            raise LogCursorError("a section cursor's tail is out of range")
        return cls(shown, tail, digest)


@dataclasses.dataclass(frozen=True)
class LogUpdate:
    """What one page added: the lines to show, in order, and the sections whose earlier lines were lost."""

    lines: list[str]
    lost: list[str]


def validate_cursor(value: Any) -> dict[str, list[Any]]:
    """Return ``value`` as a stored cursor (``{section: [shown, tail, digest]}``), or raise."""
    if not isinstance(value, Mapping) or len(value) > _MAX_SECTIONS:
        raise LogCursorError("a log cursor is a small mapping of section names")
    known = {UNMARKED, *SECTION_MARKERS.values()}
    if not set(value) <= known:
        raise LogCursorError("a log cursor names an unknown section")
    return {name: SectionCursor.from_json(entry).to_json() for name, entry in value.items()}


def page_lines(page: Any) -> list[str]:
    """The lines of one ``GET /batches/{id}/log`` reply; raise ``ValueError`` if it has none."""
    lines = page.get("log") if isinstance(page, Mapping) else None
    if not isinstance(lines, list):
        raise ValueError(f"a Livy log page has a 'log' list, not {type(lines).__name__}")
    return [str(line) for line in lines]


def split_sections(lines: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Split a whole log into its sections, each with its marker as the first line."""
    sections: list[tuple[str, list[str]]] = []
    for line in lines:
        name = SECTION_MARKERS.get(line)
        if name is not None or not sections:
            sections.append((name or UNMARKED, []))
        sections[-1][1].append(line)
    return sections


def _digest(lines: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode(errors="replace")).hexdigest()[:_HASH_CHARS]


def _continues_at(lines: Sequence[str], cursor: SectionCursor) -> int | None:
    """
    Where ``lines`` continue after what ``cursor`` showed, or ``None`` if they no longer hold it.

    The position the count gives is tried first (exact while the ring is not full); after a shift,
    the nearest earlier match wins, so a line is never shown twice (a run of identical lines may
    then be shown shorter than it was).
    """
    if cursor.shown == 0:
        return 0
    for end in range(min(cursor.shown, len(lines)), cursor.tail - 1, -1):
        if _digest(lines[end - cursor.tail : end]) == cursor.digest:
            return end
    return None


def _advanced(cursor: SectionCursor, lines: Sequence[str], new: int) -> SectionCursor:
    shown = cursor.shown + new
    tail = min(TAIL_LINES, shown, len(lines))
    return SectionCursor(shown, tail, _digest(lines[len(lines) - tail :]))


class LogStream:
    """
    The lines of a batch's log not shown yet, page after page.

    :param cursor: a stored :attr:`cursor` (from an earlier try or the trigger), or ``None``.
    """

    def __init__(self, cursor: Mapping[str, Any] | None = None) -> None:
        stored = validate_cursor(cursor) if cursor else {}
        self._sections = {name: SectionCursor.from_json(entry) for name, entry in stored.items()}

    @property
    def cursor(self) -> dict[str, list[Any]]:
        """The JSON to store: per section, lines shown and a hash of the last of them."""
        return {name: section.to_json() for name, section in self._sections.items()}

    @property
    def lines_shown(self) -> int:
        """How many lines were shown, all sections together."""
        return sum(section.shown for section in self._sections.values())

    def update(self, lines: Sequence[str]) -> LogUpdate:
        """Take the whole log as Livy holds it now; return what is new and what was lost."""
        new_lines: list[str] = []
        lost: list[str] = []
        for name, section in split_sections(lines):
            cursor = self._sections.get(name, SectionCursor())
            start = _continues_at(section, cursor)
            if start is None:
                lost.append(name)
                start = 0
            new_lines.extend(section[start:])
            self._sections[name] = _advanced(cursor, section, len(section) - start)
        return LogUpdate(new_lines, lost)


class LogFollower:
    """
    Shows the new lines of each log page of one batch in a log (the task's, or the trigger's).

    The one follower of the worker and the triggerer: a :class:`LogStream` says which lines are new,
    and what Livy's ring dropped before it was read is reported once per page.

    :param cursor: how far an earlier reader showed the log (:attr:`LogStream.cursor`), if any.
    :param log: where the lines go.
    :param describe: names the batch in the warnings.
    """

    def __init__(self, cursor: Mapping[str, Any] | None, log: Any, describe: str) -> None:
        self._stream = LogStream(cursor)
        self._log = log
        self._describe = describe

    @property
    def cursor(self) -> dict[str, list[Any]]:
        """How far the log has been shown."""
        return self._stream.cursor

    def show(self, page: Any) -> bool:
        """
        Show the lines of ``page`` (one ``GET /batches/{id}/log`` reply) not shown yet.

        :return: whether any were.
        :raises ValueError: ``page`` is not a log page.
        """
        update = self._stream.update(page_lines(page))
        for section in update.lost:
            self._log.warning(
                "Some %s lines of %s were lost: Livy's log buffer moved on before they were shown",
                section,
                self._describe,
            )
        for line in update.lines:
            self._log.info(line)
        return bool(update.lines)
