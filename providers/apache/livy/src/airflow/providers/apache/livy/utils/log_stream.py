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
(a short hash of each), so each line is shown once, in order, while Livy still holds it.

It takes the whole log (``GET /batches/{id}/log``) or only its last lines: the ten that Livy puts in
every batch object (``GET /batches/{id}``), or a tail page. Last lines are used only when they reach
back to what was already shown and the log has no earlier section that could have grown unseen;
otherwise :meth:`LogStream.update_tail` says so, and the caller reads the gap. Its
:attr:`~LogStream.cursor` is small JSON, kept in the task state store so that a retry does not show
again what an earlier try showed. The worker and the triggerer use the same class.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

SECTION_MARKERS = {"stdout: ": "stdout", "\nstderr: ": "stderr", "\nYARN Diagnostics: ": "yarn"}
"""The lines Livy puts in front of each part of a batch's log, and the part's name, in Livy's order."""
SECTION_ORDER = tuple(SECTION_MARKERS.values())
UNMARKED = "log"
"""The name of lines before any marker (a server or gateway that sends no markers)."""
ANCHOR_LINES = 4
"""How many of the last shown lines of a section identify (by a short hash each) where it continues."""
LIVE_PAGE_SIZE = -1
"""``size`` of a log request for everything Livy buffers (its rings bound it)."""
BATCH_LOG_LINES = 10
"""How many last lines of its log Livy puts in a batch object."""
_MAX_SECTIONS = 8
_HASH_CHARS = 8


class LogCursorError(ValueError):
    """A stored log cursor is not one this module writes."""


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclasses.dataclass(frozen=True)
class SectionCursor:
    """Where one section of the log stands: lines shown, and a short hash of each of the last of them."""

    shown: int = 0
    anchors: tuple[str, ...] = ()

    def to_json(self) -> list[Any]:
        """The compact stored form ``[shown, [hash, ...]]``."""
        return [self.shown, list(self.anchors)]

    @classmethod
    def from_json(cls, value: Any) -> SectionCursor:
        """
        Read ``[shown, [hash, ...]]``; raise :class:`LogCursorError` on anything else.

        The form of earlier releases of this provider, ``[shown, tail, digest]``, is read as the count
        alone (the log then continues where the count says).
        """
        if not isinstance(value, list | tuple) or len(value) not in (2, 3) or not _is_count(value[0]):
            raise LogCursorError("a section cursor is a [shown, [hash, ...]] list")
        if len(value) == 3:
            shown, tail, digest = value
            if not _is_count(tail) or tail > min(shown, 8) or not isinstance(digest, str) or len(digest) > 16:
                raise LogCursorError("a section cursor's tail is out of range")
            return cls(shown)
        shown, anchors = value
        if (
            not isinstance(anchors, list | tuple)
            or len(anchors) > min(shown, ANCHOR_LINES)
            or not all(isinstance(anchor, str) and len(anchor) == _HASH_CHARS for anchor in anchors)
        ):
            raise LogCursorError("a section cursor's hashes are out of range")
        return cls(shown, tuple(anchors))


@dataclasses.dataclass(frozen=True)
class LogUpdate:
    """What one page added: the lines to show, in order, and the sections whose earlier lines were lost."""

    lines: list[str]
    lost: list[str]


def validate_cursor(value: Any) -> dict[str, list[Any]]:
    """Return ``value`` as a stored cursor (``{section: [shown, [hash, ...]]}``), or raise."""
    if not isinstance(value, Mapping) or len(value) > _MAX_SECTIONS:
        raise LogCursorError("a log cursor is a small mapping of section names")
    known = {UNMARKED, *SECTION_ORDER}
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


def _line_hash(line: str) -> str:
    return hashlib.sha256(line.encode(errors="replace")).hexdigest()[:_HASH_CHARS]


class _Hashes:
    """The short hashes of ``lines``, each computed once, when first asked for."""

    def __init__(self, lines: Sequence[str]) -> None:
        self._lines = lines
        self._known: dict[int, str] = {}

    def __getitem__(self, index: int) -> str:
        known = self._known.get(index)
        if known is None:
            known = self._known[index] = _line_hash(self._lines[index])
        return known

    def end_at(self, end: int, anchors: Sequence[str]) -> bool:
        """Whether the lines before ``end`` are the ``anchors`` (compared from the last one back)."""
        if end < len(anchors):
            return False
        return all(self[end - 1 - back] == anchor for back, anchor in enumerate(reversed(anchors)))


def _continues_at(lines: Sequence[str], cursor: SectionCursor) -> int | None:
    """
    Where a whole section's ``lines`` continue after what ``cursor`` showed; ``None``: they no longer hold it.

    The position the count gives is tried first (exact while the ring is not full); after a shift,
    the nearest earlier match wins, so a line is never shown twice (a run of identical lines may
    then be shown shorter than it was).
    """
    if cursor.shown == 0:
        return 0
    if not cursor.anchors:
        return min(cursor.shown, len(lines))
    hashes = _Hashes(lines)
    counted = min(cursor.shown, len(lines))
    for end in range(counted, len(cursor.anchors) - 1, -1):
        if hashes.end_at(end, cursor.anchors):
            return end
    # Past the count: fewer lines were counted than shown (repeated lines made a tail match early).
    return next(
        (end for end in range(counted + 1, len(lines) + 1) if hashes.end_at(end, cursor.anchors)), None
    )


def _tail_continues_at(lines: Sequence[str], cursor: SectionCursor) -> int | None:
    """
    Where the last lines of a section continue after what ``cursor`` showed; ``None`` if unsure.

    ``lines`` lack the section's start, so the count says nothing: the last shown lines are found by
    their hashes, all of them (up to :data:`ANCHOR_LINES`) inside ``lines``, and only a single match
    is taken. A match that only begins in ``lines`` could continue before them (repeated lines):
    that is no match.
    """
    if cursor.shown == 0 or not cursor.anchors:
        return None
    hashes = _Hashes(lines)
    ends = [end for end in range(len(cursor.anchors), len(lines) + 1) if hashes.end_at(end, cursor.anchors)]
    return ends[0] if len(ends) == 1 else None


def _advanced(cursor: SectionCursor, lines: Sequence[str], start: int) -> SectionCursor:
    """The cursor once ``lines[start:]`` were shown after ``lines[:start]`` (the end of what was)."""
    shown = cursor.shown + len(lines) - start
    keep = min(ANCHOR_LINES, shown)
    recent = [_line_hash(line) for line in lines[max(0, len(lines) - keep) :]]
    earlier = cursor.anchors[: max(0, len(cursor.anchors) - start)] if len(recent) < keep else ()
    anchors = (*earlier, *recent)
    return SectionCursor(shown, anchors[len(anchors) - min(keep, len(anchors)) :])


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
        """The JSON to store: per section, lines shown and a short hash of each of the last of them."""
        return {name: section.to_json() for name, section in self._sections.items()}

    @property
    def lines_shown(self) -> int:
        """How many lines were shown, all sections together."""
        return sum(section.shown for section in self._sections.values())

    def update(self, lines: Sequence[str]) -> LogUpdate:
        """Take the whole log as Livy holds it now; return what is new and what was lost."""
        advanced, update = self._whole_sections(split_sections(lines))
        self._sections.update(advanced)
        return update

    def _whole_sections(
        self, sections: list[tuple[str, list[str]]]
    ) -> tuple[dict[str, SectionCursor], LogUpdate]:
        """What is new in whole sections (each from its marker on), and the cursors after them."""
        advanced: dict[str, SectionCursor] = {}
        update = LogUpdate([], [])
        for name, section in sections:
            cursor = self._sections.get(name, SectionCursor())
            start = _continues_at(section, cursor)
            if start is None:
                update.lost.append(name)
                start = 0
            update.lines.extend(section[start:])
            advanced[name] = _advanced(cursor, section, start)
        return advanced, update

    def update_tail(self, lines: Sequence[str]) -> LogUpdate | None:
        """
        Take the last lines of the log; return what is new, or ``None`` if they cannot tell.

        They tell when they start at the log's first marker (they are the whole log), or when they
        start inside the log's first section and hold the last lines shown of it: every later section
        then starts in them, whole. Otherwise (more new lines than they hold, a section before them
        that may have grown) nothing changes and the caller reads the log itself.
        """
        if not lines or lines[0] == next(iter(SECTION_MARKERS)):
            return self.update(lines)
        sections = split_sections(lines)
        if sections[0][0] != UNMARKED:
            return None  # they start at a later section's marker: the first section is out of sight
        head_name = self._head_section(sections)
        if head_name not in (UNMARKED, SECTION_ORDER[0]):
            return None
        head = sections[0][1]
        cursor = self._sections.get(head_name, SectionCursor())
        start = _tail_continues_at(head, cursor)
        if start is None:
            return None
        advanced, rest = self._whole_sections(sections[1:])
        self._sections.update({head_name: _advanced(cursor, head, start), **advanced})
        return LogUpdate([*head[start:], *rest.lines], rest.lost)

    def _head_section(self, sections: list[tuple[str, list[str]]]) -> str:
        """The section the lines before the first marker belong to: the one before that marker."""
        if len(sections) > 1:
            index = SECTION_ORDER.index(sections[1][0])
            return SECTION_ORDER[index - 1] if index > 0 else UNMARKED
        known = [name for name in SECTION_ORDER if name in self._sections]
        return known[-1] if known else UNMARKED


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
        Show the lines of ``page`` (one ``GET /batches/{id}/log`` reply of the whole log) not shown yet.

        :return: whether any were.
        :raises ValueError: ``page`` is not a log page.
        """
        return self._shown(self._stream.update(page_lines(page))) > 0

    def show_page(self, page: Any) -> int | None:
        """
        Show what is new in a log page, whole or a tail (``from`` > 0): the number of lines shown.

        ``None`` if a tail page does not reach back to what was shown (nothing changes then).

        :raises ValueError: ``page`` is not a log page.
        """
        lines = page_lines(page)
        if page.get("from") == 0:
            return self._shown(self._stream.update(lines))
        return self.show_last_lines(lines)

    def show_last_lines(self, lines: Any) -> int | None:
        """
        Show what is new among the last lines of the log (a batch object's ``log``): how many lines.

        ``None`` if they cannot tell (see :meth:`LogStream.update_tail`); nothing changes then.

        :raises ValueError: ``lines`` is not a list.
        """
        if not isinstance(lines, list):
            raise ValueError(f"a Livy batch's 'log' is a list, not {type(lines).__name__}")
        update = self._stream.update_tail([str(line) for line in lines])
        return None if update is None else self._shown(update)

    def _shown(self, update: LogUpdate) -> int:
        for section in update.lost:
            self._log.warning(
                "Some %s lines of %s were lost: Livy's log buffer moved on before they were shown",
                section,
                self._describe,
            )
        for line in update.lines:
            self._log.info(line)
        return len(update.lines)
