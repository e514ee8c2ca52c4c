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
What one try knows about its Livy batch: the record, how it is saved, and reads that check it is ours.

The parts of the durable core (:mod:`.batch_resume`, :mod:`.batch_submit`, :mod:`.batch_wait`,
:mod:`.batch_output`, :mod:`.batch_kill`) share one :class:`TrackedBatch`; it is the only place the
record changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowException

from airflow.providers.apache.livy.exceptions import LivyBatchTakenOver
from airflow.providers.apache.livy.utils.batch_finder import BatchFinder
from airflow.providers.apache.livy.utils.batch_record import BatchRecord
from airflow.providers.apache.livy.utils.record_store import RecordStore, parse_stored

if TYPE_CHECKING:
    import logging

    from airflow.providers.apache.livy.hooks.livy import LivyHook


class TrackedBatch:
    """
    The record of this try's batch, and the store it is kept in.

    :param hook: the hook to Livy.
    :param records: the record's store, or ``None`` to keep nothing (``durable=False``, Airflow < 3.3).
    :param key: the store key of the record, to name it in messages.
    :param log: the operator's logger.
    """

    checkpoint_seconds = 600.0
    """A record changed only in memory (a log cursor, an app id) is stored at most this often."""

    def __init__(self, hook: LivyHook, records: RecordStore | None, key: str, log: logging.Logger | Any):
        self.hook = hook
        self.records = records
        self.key = key
        self.log = log
        self.finder = BatchFinder(hook, log)
        self.record: BatchRecord | None = None
        self.verified = False
        """Whether this try has checked that the batch under the record's id is ours."""
        self._warned_unstored = False
        self._unstored = False
        self._last_write = time.monotonic()
        self.on_write_failed: Callable[[Exception], None] = _no_reaction
        """Called when a write is refused, before the error is raised (the kill uses it)."""

    @property
    def durable(self) -> bool:
        """Whether the record is kept across tries."""
        return self.records is not None

    @property
    def current(self) -> BatchRecord:
        """The record; raises if no batch was submitted or resumed yet."""
        if self.record is None:
            raise AirflowException("No Livy batch has been submitted or resumed yet")
        return self.record

    @property
    def current_id(self) -> int:
        """Livy's id of the batch; raises if Livy has not given one yet."""
        batch_id = self.current.batch_id
        if batch_id is None:
            raise AirflowException(f"{self.current.describe()} has no Livy id")
        return batch_id

    def stored(self) -> BatchRecord | None:
        """The stored record (``None`` without a store, or if the value is not ours)."""
        return None if self.records is None else self.records.read()

    def parse(self, value: Any) -> BatchRecord | None:
        """Read a value the mixin handed over; one that is not ours is logged and taken as nothing."""
        return parse_stored(value, self.key, self.log)

    def save(self, record: BatchRecord) -> None:
        """
        Store ``record`` (the whole record), or raise: a write the next try, or the fence, relies on.

        That is the record written ahead of the POST, a try taking the batch over, a refusal and the
        delivered result. Raises :class:`~.LivyBatchTakenOver` if a later try owns the batch now.
        """
        self._write(record, required=True)

    def keep(self, record: BatchRecord) -> None:
        """
        Store ``record`` if the store takes it: a write a retry can do without.

        That is an id or a final state: Livy, or the next write, has them. A write that fails while
        Airflow still runs the try is logged (once) and does not fail it: the record stays current
        in memory, and the next write stores it whole.
        """
        self._write(record, required=False)

    def update(self, record: BatchRecord) -> None:
        """
        Take ``record`` as current (a log cursor, an app id, links): the next write stores it.

        Nothing is written now, so a task writes the store a few times whatever its log or its
        length; :meth:`checkpoint` writes it when it waited long.
        """
        if record != self.record:
            self.record = record
            self._unstored = self.records is not None

    def checkpoint(self) -> None:
        """Store the record if it changed and nothing was written for :attr:`checkpoint_seconds`."""
        if self._unstored and time.monotonic() - self._last_write >= self.checkpoint_seconds:
            self.keep(self.current)

    def _write(self, record: BatchRecord, *, required: bool) -> None:
        if self.records is not None:
            self._last_write = time.monotonic()
            try:
                self.records.write(record)
            except LivyBatchTakenOver:
                raise
            except Exception as error:
                self.on_write_failed(error)  # raises if Airflow stopped this try
                if required:
                    raise
                self._report_unstored(record, error)
                self._unstored = True
                self.record = record
                return
        self._unstored = False
        self.record = record

    def _report_unstored(self, record: BatchRecord, error: Exception) -> None:
        if not self._warned_unstored:
            self._warned_unstored = True
            self.log.warning(
                "Could not store the record of %s (%s); going on: the next write stores it whole",
                record.describe(),
                error,
            )

    def fence(self) -> None:
        """Raise :class:`~.LivyBatchTakenOver` if a later try has taken the batch over."""
        if self.records is not None:
            self.records.fence()

    def read_own_batch(self) -> dict[str, Any]:
        """Read the batch and check it still is ours; raise if Livy reused its id."""
        batch = self.finder.read_own(self.current)
        self.verified = True
        self.update(self.current.seen(batch))
        return batch

    def locate(self, record: BatchRecord) -> dict[str, Any] | None:
        """Livy's batch for ``record``, checked to be ours (by id, else by name), or ``None``."""
        located = self.finder.locate(record)
        if located is None:
            return None
        known, batch = located
        self.verified = True
        self.update(known)
        return batch


def _no_reaction(error: Exception) -> None:
    """A refused write is only raised."""
