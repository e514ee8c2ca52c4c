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
The record of one task instance's Livy batch in Airflow's task state store, and the ownership fence.

The record (:class:`~.BatchRecord`) has a key of its own; the mixin keeps the batch id under
another (its ``external_id_key``), which this module only reads. Every write checks first that no
later try has taken the batch over (:meth:`RecordStore.fence`), so a stale try never overwrites a
newer try's record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from airflow.providers.apache.livy.exceptions import LivyBatchTakenOver
from airflow.providers.apache.livy.utils.batch_record import BatchRecord, NotOurRecord

if TYPE_CHECKING:
    import logging


class TaskStateStore(Protocol):
    """The part of Airflow 3.3's ``task_state_store`` this provider uses."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


class RecordStore:
    """
    The record of one task instance's batch, as its tries share it through the task state store.

    :param store: Airflow's task state store of the task instance.
    :param key: the record's key (the operator's ``record_key``).
    :param id_key: the key under which the mixin keeps the batch id (``external_id_key``), if any.
    :param try_number: the running try; ``None`` for a batch watched outside a task run (no fence).
    :param log: where a value that is not ours, or a fenced write, is reported.
    """

    def __init__(
        self,
        store: TaskStateStore,
        key: str,
        *,
        id_key: str | None,
        try_number: int | None,
        log: logging.Logger | Any,
    ) -> None:
        self.store = store
        self.key = key
        self.id_key = id_key
        self.try_number = try_number
        self.log = log

    def read(self) -> BatchRecord | None:
        """The stored record, or ``None`` if there is none or it is not ours (logged)."""
        return self.parse(self.store.get(self.key))

    def parse(self, value: Any) -> BatchRecord | None:
        """Read a stored value; one that is not ours is logged and treated as nothing stored."""
        return parse_stored(value, self.key, self.log)

    def mixin_decided(self) -> bool:
        """
        Whether the mixin holds a batch id: it asked ``get_job_status`` about it before submitting.

        The mixin submits when it holds no id (nothing stored, or batch 0: it tests truthiness), or
        when ``get_job_status`` said the batch is neither active nor succeeded (whoever implements
        that method).
        """
        return self.id_key is not None and bool(self.store.get(self.id_key))

    def legacy_zero(self) -> BatchRecord | None:
        """Batch 0 stored as the id (the mixin skips a stored ``0``, the first id after every Livy start)."""
        stored = None if self.id_key is None else self.store.get(self.id_key)
        return BatchRecord.of_batch(0) if stored == 0 and not isinstance(stored, bool) else None

    def fence(self) -> None:
        """Raise :class:`~.LivyBatchTakenOver` if a later try owns the batch: this try is stale."""
        if self.try_number is None:
            return
        try:
            stored = self.read()
        except Exception as error:  # the record cannot be read: nothing says a later try took over
            self.log.warning("Could not read the record to check who owns the batch: %s", error)
            return
        if stored is not None and stored.is_owned_by_a_try_after(self.try_number):
            raise LivyBatchTakenOver(
                f"try {self.try_number} no longer owns Livy {stored.describe()}: try "
                f"{stored.owner_try} took it over, so this try stops and leaves the batch alone"
            )

    def write(self, record: BatchRecord) -> None:
        """Store the whole ``record``, unless a later try owns the batch now (then raise)."""
        self.fence()
        self.store.set(self.key, record.to_json())


def parse_stored(value: Any, key: str, log: logging.Logger | Any) -> BatchRecord | None:
    """Read a value stored under ``key``; one that is not ours is logged and treated as nothing stored."""
    if value is None:
        return None
    try:
        return BatchRecord.from_stored(value)
    except NotOurRecord as reason:
        log.warning("Ignoring the value stored under %r (%s); treating it as nothing stored", key, reason)
        return None
