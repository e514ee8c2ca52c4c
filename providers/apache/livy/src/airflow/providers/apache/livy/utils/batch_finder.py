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
Finding a task instance's Livy batch, and telling it apart from any other batch Livy returns.

By id, checked by name (and app id, once known); by its unique name when the id is unknown (a lost
POST reply) or no longer ours (Livy restarted and reused it); and, after a clear that lost the
record (Airflow 3.4's default clear), by the names an earlier run gave its batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow.exceptions import AirflowException

from airflow.providers.apache.livy.exceptions import LivyBatchNotFound, LivyBatchReplaced
from airflow.providers.apache.livy.utils.batch_record import BatchRecord, Identity
from airflow.providers.apache.livy.utils.states import BatchOutcome, batch_outcome

if TYPE_CHECKING:
    import logging

    from airflow.providers.apache.livy.hooks.livy import LivyHook
    from airflow.providers.apache.livy.utils.task_run import TaskRun

MAX_EARLIER_RUNS = 10
"""How many earlier first tries are looked up, newest first: the runs before the last ten clears."""
MAX_SUBMISSIONS_PER_RUN = 10
"""How many submissions of one earlier run are looked up (each failed batch makes one more)."""


class BatchFinder:
    """
    Finds one task instance's batch in Livy, and checks that a batch Livy returns is that one.

    :param hook: the hook to Livy (``get_batch``, ``get_batch_by_name``).
    :param log: where what was found, and what was left alone, is reported.
    """

    def __init__(self, hook: LivyHook, log: logging.Logger | Any) -> None:
        self.hook = hook
        self.log = log
        self._warned_unnamed = False

    def is_ours(self, record: BatchRecord, batch: Mapping[str, Any]) -> bool:
        """Whether Livy's ``batch`` is the one ``record`` describes (:meth:`~.BatchRecord.identify`)."""
        identity = record.identify(batch)
        if identity is Identity.UNNAMED and not self._warned_unnamed:
            self._warned_unnamed = True
            self.log.warning(
                "Livy returns no name for %s: this server does not echo batch names, so its identity is "
                "checked by Spark application id only",
                record.describe(),
            )
        return identity is not Identity.OTHER

    def read_own(self, record: BatchRecord) -> dict[str, Any]:
        """
        Read the batch under the record's id and check it is ours.

        :raises LivyBatchReplaced: Livy now uses the id for another batch (it restarted and reused it).
        """
        if record.batch_id is None:
            raise AirflowException(f"{record.describe()} has no Livy id")
        batch = self.hook.get_batch(record.batch_id)
        if not self.is_ours(record, batch):
            raise LivyBatchReplaced(
                f"Livy batch {record.batch_id} is now {batch.get('name')!r}, not {record.describe()}: "
                "Livy restarted and reused the id, and our batch is lost"
            )
        return batch

    def by_name(self, name: str | None) -> dict[str, Any] | None:
        """The batch named ``name``, or ``None`` if Livy's own "not found" says there is none."""
        if name is None:
            return None
        try:
            return self.hook.get_batch_by_name(name)
        except LivyBatchNotFound:
            return None

    def locate(self, record: BatchRecord) -> tuple[BatchRecord, dict[str, Any]] | None:
        """
        Livy's batch for ``record``, checked to be ours (by id, else by name), with what it told.

        :return: the record updated with what the read told (its id if found by name, its app id),
            and the batch; ``None`` if Livy holds no batch of ours for it.
        """
        if record.batch_id is None:
            return self._found_by_name(record)
        try:
            batch = self.hook.get_batch(record.batch_id)
        except LivyBatchNotFound:
            self.log.warning("Livy no longer knows %s; looking it up by name", record.describe())
            return self._found_by_name(record)
        if self.is_ours(record, batch):
            return record.seen(batch), batch
        self.log.warning(
            "Livy's batch %s is now %r, not %s: Livy restarted and reused the id. Leaving it alone.",
            record.batch_id,
            batch.get("name"),
            record.describe(),
        )
        return self._found_by_name(record)

    def _found_by_name(self, record: BatchRecord) -> tuple[BatchRecord, dict[str, Any]] | None:
        batch = self.by_name(record.name)
        if batch is None:
            return None
        self.log.info("Found batch %r under id %s", record.name, batch.get("id"))
        return record.found(batch), batch

    def earlier_run_batches(self, task: TaskRun, prefix: str | None) -> list[BatchRecord]:
        """
        Records of the batches of the newest earlier run of ``task`` that Livy still holds active.

        That is a run before the last clear: its names carry an earlier first try. The names are
        looked up (``GET /batches/{name}``), newest run first, up to the first run Livy holds any
        batch of. Only Livy's own "not found" means a name is free; any other error propagates, so
        a lookup that failed is never read as "no batch".
        """
        for first_try in task.earlier_first_tries(MAX_EARLIER_RUNS):
            found = list(self._batches_of_run(task, prefix, first_try))
            if found:
                return [record for record, batch in found if _is_active(record, batch)]
        return []

    def _batches_of_run(
        self, task: TaskRun, prefix: str | None, first_try: int
    ) -> Iterator[tuple[BatchRecord, dict[str, Any]]]:
        """The batches of the run whose first try was ``first_try``, up to the first name Livy lacks."""
        for submission in range(1, MAX_SUBMISSIONS_PER_RUN + 1):
            name = task.batch_name(submission, prefix, first_try=first_try)
            batch = self.by_name(name)
            if batch is None:
                return
            yield BatchRecord.ahead_of_post(name, submission).found(batch), batch


def _is_active(record: BatchRecord, batch: dict[str, Any]) -> bool:
    """Whether ``batch`` is still active; a reply without a state is an error that names the batch."""
    state = batch.get("state")
    if not isinstance(state, str):
        raise AirflowException(f"Livy's reply for {record.describe()} has no state: {str(batch)[:200]}")
    return batch_outcome(state) is BatchOutcome.ACTIVE
