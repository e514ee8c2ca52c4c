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
"""The try of a task instance that runs now, as naming its batches and detecting a re-run need it."""

from __future__ import annotations

import dataclasses
from typing import Any

from airflow.providers.apache.livy.utils.batch_record import LoopPosition, batch_name


@dataclasses.dataclass(frozen=True)
class TaskRun:
    """
    The try of a task instance that runs now, as far as naming and re-run detection need it.

    :param first_try: the first try since the task was last cleared (``1`` if it never was):
        clearing sets ``max_tries = try_number + retries``, so it is ``max_tries - retries + 1``, as
        Airflow's task runner computes it; ``None`` where ``max_tries`` is unknown.
    :param loop: where the task instance runs inside a task loop (Airflow 3.4+), ``None`` outside one.
    """

    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    try_number: int
    first_try: int | None
    loop: LoopPosition | None = None

    @classmethod
    def of(cls, ti: Any, retries: int | None, loop: Any = None) -> TaskRun | None:
        """
        The run of task instance ``ti`` of a task with ``retries``; ``loop`` is the context's ``loop``.

        ``None`` if ``ti`` does not identify a task instance (ids that are not strings, numbers that
        are not integers: a test double).
        """
        dag_id, task_id, run_id = (getattr(ti, name, None) for name in ("dag_id", "task_id", "run_id"))
        map_index = getattr(ti, "map_index", None)
        map_index = -1 if map_index is None else map_index
        try_number = getattr(ti, "try_number", None) or 1
        if not (isinstance(dag_id, str) and isinstance(task_id, str) and isinstance(run_id, str)):
            return None
        if not _are_ints(map_index, try_number):
            return None
        max_tries = getattr(ti, "max_tries", None)
        first_try = max(1, max_tries - (retries or 0) + 1) if isinstance(max_tries, int) else None
        return cls(
            dag_id=dag_id,
            task_id=task_id,
            run_id=run_id,
            map_index=map_index,
            try_number=try_number,
            first_try=first_try,
            loop=LoopPosition.of(ti, loop),
        )

    def batch_name(self, submission: int, prefix: str | None, *, first_try: int | None = None) -> str:
        """
        The unique name of this task instance's ``submission``-th batch.

        :param first_try: the first try of the run that submits it; default: this run's.
        """
        return batch_name(
            dag_id=self.dag_id,
            task_id=self.task_id,
            run_id=self.run_id,
            map_index=self.map_index,
            submission=submission,
            first_try=first_try or self.first_try or self.try_number,
            prefix=prefix,
            loop=self.loop,
        )

    def earlier_first_tries(self, limit: int) -> range:
        """The first tries that runs before the last clear may have had, newest first, ``limit`` at most."""
        if self.first_try is None:
            return range(0)
        return range(self.first_try - 1, max(0, self.first_try - 1 - limit), -1)

    def cleared_since(self, delivered_try: int) -> bool:
        """Whether the task was cleared after try ``delivered_try`` returned a result (a re-run)."""
        return self.first_try is None or delivered_try < self.first_try


def _are_ints(*values: Any) -> bool:
    return all(isinstance(value, int) and not isinstance(value, bool) for value in values)
