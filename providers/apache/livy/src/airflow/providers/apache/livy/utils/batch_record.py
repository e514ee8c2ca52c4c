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
What a durable ``LivyOperator`` stores, the batch names it gives, and how it tells its batch apart.

The record is written *before* ``POST /batches`` (write-ahead), so a retry can always find the batch
its predecessor may have created: by id once Livy answered, by the unique name before that. Records
are immutable; each change is a checked transition that returns a new record, and every record is
validated when it is made, so no write can store a record that the next try would reject.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

from airflow.providers.apache.livy.utils.log_stream import LogCursorError, validate_cursor
from airflow.providers.apache.livy.utils.states import TERMINAL_STATE_VALUES, BatchState

RECORD_FORMAT = "airflow-livy-batch/1"
"""Marks a stored value as written by this provider; anything else is not ours."""

MAX_BATCH_ID = 2**31 - 1
"""Livy numbers batches with a 32-bit signed counter."""
MAX_SUBMISSIONS = 10_000
MAX_TRY_NUMBER = 1_000_000
_MAX_APP_ID_CHARS = 255
_MAX_URL_CHARS = 2048
APP_LINKS = {"sparkUiUrl": "spark_ui", "driverLogUrl": "driver_log"}
"""The URLs of Livy's ``appInfo`` kept in the record, and the names they are kept under."""
_OPTIONAL_FIELDS = ("links", "log_cursor")
_BATCH_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_PART_CHARS = {"dag": 48, "task": 48, "run": 48, "prefix": 120}
_REJECTED = BatchState.ERROR.value


class NotOurRecord(ValueError):
    """A stored value (or a record being made) is not one this provider writes."""


def validate_batch_id(session_id: Any) -> int:
    """
    Return ``session_id`` as a Livy batch id, or raise.

    :raises TypeError: it is not an integer (or a string of digits).
    :raises ValueError: it is outside Livy's id range ``0 .. 2**31 - 1``.
    """
    if isinstance(session_id, bool) or not isinstance(session_id, int | str):
        raise TypeError(f"'session_id' must be an integer, got {type(session_id).__name__}")
    if isinstance(session_id, str):
        if not session_id.isascii() or not session_id.isdigit():
            raise TypeError(f"'session_id' must be an integer, got {session_id[:40]!r}")
        session_id = int(session_id)
    if not 0 <= session_id <= MAX_BATCH_ID:
        raise ValueError(f"'session_id' {session_id} is outside Livy's batch id range 0..{MAX_BATCH_ID}")
    return session_id


def is_valid_batch_name(name: object) -> bool:
    """Whether ``name`` is a batch name safe to put in a URL: ``[A-Za-z0-9._-]``, not all digits."""
    return isinstance(name, str) and _BATCH_NAME_PATTERN.fullmatch(name) is not None and not name.isdigit()


def app_id_of(batch: Mapping[str, Any]) -> str | None:
    """The Spark application id in Livy's batch object, or ``None`` while Livy does not know it."""
    app_id = batch.get("appId")
    return app_id if isinstance(app_id, str) and app_id else None


def app_links_of(batch: Mapping[str, Any]) -> dict[str, str]:
    """The Spark UI and driver log URLs in Livy's batch object (``appInfo``), those that are set."""
    info = batch.get("appInfo")
    if not isinstance(info, Mapping):
        return {}
    return {
        name: url
        for key, name in APP_LINKS.items()
        if isinstance(url := info.get(key), str) and url and len(url) <= _MAX_URL_CHARS
    }


class Identity(Enum):
    """Whether a batch Livy returned is the one a record describes."""

    OURS = "ours"
    OTHER = "other"
    UNNAMED = "unnamed"
    """The server does not echo batch names (Livy < 0.6, some gateways); the app id did not object."""


class IdentityChecks:
    """
    When a waiter reads the whole batch, to check it is still ours, instead of only its state.

    Polls read the small ``/state`` reply; the whole batch is read on the first poll after
    (re)connecting, on the poll after the state changed, at the end, and at least every
    :attr:`interval` seconds. The worker and the triggerer follow the same schedule.
    """

    interval = 300.0

    def __init__(self, *, verified: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._due = not verified
        self._last_state: str | None = None
        self._last_full_read = clock()

    def full_read_due(self) -> bool:
        """Whether the next poll must read the whole batch."""
        return self._due or self._clock() - self._last_full_read >= self.interval

    def polled(self, state: str, *, full_read: bool) -> None:
        """Take note of one poll: the state it saw and whether it read the whole batch."""
        if full_read:
            self._due = False
            self._last_full_read = self._clock()
        elif self._last_state is not None and state != self._last_state:
            self._due = True
        self._last_state = state


@dataclasses.dataclass(frozen=True)
class BatchRecord:
    """
    What one task instance knows about its current Livy submission.

    Make one with :meth:`ahead_of_post` (durable), :meth:`of_batch` (a known id) or
    :meth:`from_stored`; change it only through the transitions, each of which returns a new record.

    :param name: the unique batch name sent with the POST; ``None`` for a batch posted without one
        of ours (``durable=False``) and for the bare id provider 4.6.4 stored.
    :param submission: counts this task instance's submissions (1, 2, ...); part of the name.
    :param batch_id: Livy's id once the POST was answered (or the batch was found by name).
    :param app_id: the Spark application id, once Livy reported one.
    :param final_state: the terminal state, kept once seen, so it survives Livy forgetting the
        batch; ``error`` without a ``batch_id`` means Livy refused the POST.
    :param delivered_try: the try that returned this batch's result.
    :param owner_try: the try that owns the batch: the last one that submitted or reconnected. An
        older try that is still alive (a frozen worker, a partition) never deletes the batch and
        never writes the record.
    :param links: the application's URLs Livy reported (``spark_ui``, ``driver_log``), kept once
        seen: YARN clears the driver log URL when the application ends.
    :param log_cursor: how far the batch's log was shown in the task log
        (:class:`~airflow.providers.apache.livy.utils.log_stream.LogStream`), so a retry shows only
        the rest.
    """

    name: str | None
    submission: int = 1
    batch_id: int | None = None
    app_id: str | None = None
    final_state: str | None = None
    delivered_try: int | None = None
    owner_try: int | None = None
    links: dict[str, str] | None = None
    log_cursor: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.name is not None and not is_valid_batch_name(self.name):
            raise NotOurRecord("its batch name is not a URL-safe name this provider would give")
        _check_int(self.submission, "submission", 1, MAX_SUBMISSIONS)
        if self.batch_id is not None:
            _check_int(self.batch_id, "batch id", 0, MAX_BATCH_ID)
        elif self.name is None:
            raise NotOurRecord("it has neither a batch name nor a batch id")
        if self.app_id is not None and (
            not isinstance(self.app_id, str) or len(self.app_id) > _MAX_APP_ID_CHARS
        ):
            raise NotOurRecord("its app id is not a short string")
        if self.final_state is not None and self.final_state not in TERMINAL_STATE_VALUES:
            raise NotOurRecord("its final state is not a terminal Livy state")
        if self.batch_id is None and self.final_state not in (None, _REJECTED):
            raise NotOurRecord("it has a final state but no batch id")
        if self.owner_try is not None:
            _check_int(self.owner_try, "owner try", 0, MAX_TRY_NUMBER)
        if self.delivered_try is not None:
            _check_int(self.delivered_try, "delivered try", 0, MAX_TRY_NUMBER)
            if self.batch_id is None or self.final_state not in (None, BatchState.SUCCESS.value):
                raise NotOurRecord("it delivered the result of a batch that did not succeed")
        if self.links is not None and (
            not isinstance(self.links, dict) or app_links_of({"appInfo": self._app_info()}) != self.links
        ):
            raise NotOurRecord("its links are not the application URLs Livy reports")
        if self.log_cursor is not None:
            try:
                validate_cursor(self.log_cursor)
            except LogCursorError as error:
                raise NotOurRecord(f"its log cursor is not valid: {error}") from None

    def _app_info(self) -> dict[str, Any]:
        links = self.links or {}
        return {key: links.get(name) for key, name in APP_LINKS.items()}

    # ---- Making records ------------------------------------------------------------------------

    @classmethod
    def ahead_of_post(cls, name: str, submission: int) -> BatchRecord:
        """The write-ahead record of a submission about to be posted under ``name``."""
        return cls(name=name, submission=submission)

    @classmethod
    def of_batch(cls, batch_id: Any) -> BatchRecord:
        """A record of a batch known only by its id (``durable=False``, a deferral, 4.6.4's value)."""
        return cls(name=None, batch_id=validate_batch_id(batch_id))

    @classmethod
    def from_stored(cls, value: Any) -> BatchRecord:
        """
        Read a stored value: a record of ours, or the bare batch id provider 4.6.4 stored.

        :raises NotOurRecord: anything else (wrong type, unsafe name, id out of range, ...).
        """
        if isinstance(value, int) and not isinstance(value, bool):
            _check_int(value, "batch id", 0, MAX_BATCH_ID)
            return cls(name=None, batch_id=value)
        if not isinstance(value, dict) or value.get("format") != RECORD_FORMAT:
            raise NotOurRecord(f"a {type(value).__name__} that this provider did not write")
        fields: dict[str, Any] = {field.name: value.get(field.name) for field in dataclasses.fields(cls)}
        fields["submission"] = value.get("submission", 1)
        return cls(**fields)

    def to_json(self) -> dict[str, Any]:
        """The JSON value stored in the task state store (optional fields only once set)."""
        fields = dataclasses.asdict(self)
        for name in _OPTIONAL_FIELDS:
            if fields[name] is None:
                del fields[name]
        return {"format": RECORD_FORMAT, **fields}

    # ---- Transitions ---------------------------------------------------------------------------

    def created(self, batch_id: int) -> BatchRecord:
        """Livy answered the POST (or the batch was found by name) with ``batch_id``."""
        self._require(self.awaits_creation, "created")
        return dataclasses.replace(self, batch_id=batch_id)

    def found(self, batch: Mapping[str, Any]) -> BatchRecord:
        """The batch was found by its name; take its id and app id."""
        self._require(self.name is not None and self.final_state is None, "found")
        return dataclasses.replace(self, batch_id=validate_batch_id(batch.get("id"))).seen(batch)

    def seen(self, batch: Mapping[str, Any]) -> BatchRecord:
        """Livy's batch was read and is ours: keep its app id and app links once it has them."""
        app_id = app_id_of(batch) or self.app_id
        links = {**(self.links or {}), **app_links_of(batch)} or None
        if app_id == self.app_id and links == self.links:
            return self
        return dataclasses.replace(self, app_id=app_id, links=links)

    def with_log_cursor(self, cursor: dict[str, Any]) -> BatchRecord:
        """The batch's log was shown up to ``cursor``."""
        return self if cursor == self.log_cursor else dataclasses.replace(self, log_cursor=cursor)

    def finished(self, state: str, batch: Mapping[str, Any] | None = None) -> BatchRecord:
        """The batch reached terminal ``state``."""
        self._require(self.batch_id is not None and self.final_state in (None, state), "finished")
        seen = self.seen(batch) if batch is not None else self
        return dataclasses.replace(seen, final_state=state)

    def rejected(self) -> BatchRecord:
        """Livy refused the POST; the next submission needs a new name."""
        self._require(self.awaits_creation, "rejected")
        return dataclasses.replace(self, final_state=_REJECTED)

    def delivered(self, try_number: int) -> BatchRecord:
        """Try ``try_number`` returned this batch's result."""
        self._require(self.batch_id is not None, "delivered")
        return dataclasses.replace(self, delivered_try=try_number)

    def owned_by(self, try_number: int) -> BatchRecord:
        """Try ``try_number`` takes the batch over (it submitted it, or reconnected to it)."""
        return self if self.owner_try == try_number else dataclasses.replace(self, owner_try=try_number)

    def is_owned_by_a_try_after(self, try_number: int) -> bool:
        """Whether a later try than ``try_number`` has taken the batch over."""
        return self.owner_try is not None and self.owner_try > try_number

    def _require(self, allowed: bool, transition: str) -> None:
        if not allowed:
            raise ValueError(f"{self.describe()} cannot be marked {transition}: {self}")

    # ---- Reading records -----------------------------------------------------------------------

    @property
    def is_legacy(self) -> bool:
        """No name of ours: an id whose identity can only be checked by app id."""
        return self.name is None

    @property
    def is_identifiable(self) -> bool:
        """Whether a batch read by id can be checked against this record (by name or app id)."""
        return self.name is not None or self.app_id is not None

    @property
    def awaits_creation(self) -> bool:
        """Written ahead of a POST whose batch was never seen: the next POST must reuse the name."""
        return self.batch_id is None and self.final_state is None

    @property
    def is_finished(self) -> bool:
        """Whether the batch's terminal state is known (or Livy refused the POST)."""
        return self.final_state is not None

    @property
    def succeeded(self) -> bool:
        """Whether the batch finished in ``success``."""
        return self.final_state == BatchState.SUCCESS.value

    def same_submission(self, other: BatchRecord) -> bool:
        """Whether ``other`` describes the same submission (names are unique; otherwise the id)."""
        if self.name is not None or other.name is not None:
            return self.name == other.name
        return self.batch_id == other.batch_id

    def identify(self, batch: Mapping[str, Any]) -> Identity:
        """
        Whether Livy's ``batch`` is the one this record describes.

        The name decides where the server echoes it; the app id, once both sides know it, must agree
        too. A server that echoes no name leaves only the app id to check (:attr:`Identity.UNNAMED`).
        """
        their_app_id = app_id_of(batch)
        if self.app_id and their_app_id and their_app_id != self.app_id:
            return Identity.OTHER
        if self.name is None:
            return Identity.OURS
        their_name = batch.get("name")
        if their_name is None:
            return Identity.UNNAMED
        return Identity.OURS if their_name == self.name else Identity.OTHER

    def describe(self) -> str:
        """Short text naming the batch, for logs and errors."""
        if self.name is None:
            return f"batch {self.batch_id}"
        if self.batch_id is None:
            return f"batch {self.name!r} (id not yet known)"
        return f"batch {self.batch_id} ({self.name!r})"


def _check_int(value: Any, field: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise NotOurRecord(f"its {field} is not an integer in {low}..{high}")


def _name_part(text: str, limit: int) -> str:
    return _UNSAFE_NAME_CHARS.sub("_", text).strip("._-")[:limit]


@dataclasses.dataclass(frozen=True)
class LoopPosition:
    """
    Where a task instance runs inside an Airflow 3.4+ task loop (``@task_group(...).loop(...)``).

    Every iteration runs the loop's tasks again, as task instances with the same dag, task and run ids
    (and map indexes) told apart by Airflow's region (``region_id``, ``region_index``).

    :param iteration: the loop iteration (``context["loop"].index``), shown in batch names.
    :param region: Airflow's region of the task instance, ``"<region_id>/<region_index>"``: the same
        across the retries of one iteration, different for every other iteration, mapped instance and
        re-created (cleared) loop.
    """

    iteration: int
    region: str

    @classmethod
    def of(cls, ti: Any, loop: Any) -> LoopPosition | None:
        """The position of task instance ``ti`` given the context's ``loop``; ``None`` outside loops."""
        iteration = getattr(loop, "index", None)
        if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
            return None
        region_id, region_index = getattr(ti, "region_id", None), getattr(ti, "region_index", None)
        return cls(iteration=iteration, region=f"{region_id}/{region_index}")


def batch_name(
    *,
    dag_id: str,
    task_id: str,
    run_id: str,
    map_index: int,
    submission: int,
    first_try: int = 1,
    prefix: str | None = None,
    loop: LoopPosition | None = None,
) -> str:
    """
    Return the unique, URL-safe Livy batch name of one submission of one task instance.

    Without ``prefix``:
    ``airflow-<dag>-<task>-<run>[-m<map index>][-i<iteration>]-t<first try>-s<submission>-<digest>``,
    readable in the YARN UI. With ``prefix`` (the DAG's own ``name=``):
    ``<prefix>[-i<iteration>]-t<first try>-s<submission>-<digest>``. ``first_try`` is the first try
    since the task was last cleared, so a re-run never shares a name with the run before it, even if
    the stored record was deleted. Inside a task loop (``loop``) the iteration is shown and the digest
    covers the loop region, so no two iterations share a name; outside loops names are what they were
    before loops existed. Unsafe characters become ``_``; the digest of the exact task instance keeps
    names distinct when sanitising or truncating makes two of them look alike. Never all digits,
    never contains ``/``.
    """
    identity = [dag_id, task_id, run_id, str(map_index), prefix or ""]
    if loop is not None:
        identity.append(loop.region)
    digest = hashlib.sha256("\x00".join(identity).encode()).hexdigest()[:10]
    head = _name_part(prefix, _PART_CHARS["prefix"]) if prefix else ""
    if not head:
        parts = [
            "airflow",
            _name_part(dag_id, _PART_CHARS["dag"]),
            _name_part(task_id, _PART_CHARS["task"]),
            _name_part(run_id, _PART_CHARS["run"]),
        ]
        if map_index >= 0:
            parts.append(f"m{map_index}")
        head = "-".join(part for part in parts if part)
    if loop is not None:
        head = f"{head}-i{loop.iteration}"
    return f"{head}-t{first_try}-s{submission}-{digest}"
