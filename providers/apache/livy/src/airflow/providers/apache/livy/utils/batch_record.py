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
The record a durable ``LivyOperator`` keeps in the task state store, and the batch names it uses.

The record is written *before* ``POST /batches`` (write-ahead), so a retry can always find the batch
its predecessor may have created: by id once Livy answered, by the unique name before that.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

from airflow.providers.apache.livy.hooks.livy import MAX_BATCH_ID, is_valid_batch_name

RECORD_FORMAT = "airflow-livy-batch/1"
"""Marks a stored value as written by this provider; anything else is not ours."""

MAX_SUBMISSIONS = 10_000
_MAX_APP_ID_CHARS = 255
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_PART_CHARS = {"dag": 48, "task": 48, "run": 48, "prefix": 120}


class NotOurRecord(ValueError):
    """The value stored under the operator's key was not written by this provider."""


@dataclasses.dataclass
class BatchRecord:
    """
    What one task instance knows about its current Livy submission.

    :param name: the unique batch name sent with the POST; ``None`` only for a value written by
        provider 4.6.4, which stored a bare batch id.
    :param submission: counts this task instance's submissions (1, 2, ...); part of the name.
    :param batch_id: Livy's id once the POST was answered (or the batch was found by name).
    :param app_id: the Spark application id, once Livy reported one.
    :param final_state: the terminal state, cached once seen, so it survives Livy forgetting the batch.
    :param delivered_try: the try that returned this batch's result; a later try is a re-run.
    """

    name: str | None
    submission: int = 1
    batch_id: int | None = None
    app_id: str | None = None
    final_state: str | None = None
    delivered_try: int | None = None

    @property
    def is_legacy(self) -> bool:
        """Written by provider 4.6.4: an id without a name, so its identity cannot be checked."""
        return self.name is None

    @property
    def awaits_creation(self) -> bool:
        """Written ahead of a POST whose batch was never seen: the next POST must reuse the name."""
        return (
            self.name is not None
            and self.batch_id is None
            and self.final_state is None
            and self.delivered_try is None
        )

    def same_submission(self, other: BatchRecord) -> bool:
        """Whether ``other`` describes the same submission (names are unique; legacy records: the id)."""
        if self.name is not None or other.name is not None:
            return self.name == other.name
        return self.batch_id == other.batch_id

    def describe(self) -> str:
        """Short text naming the batch, for logs and errors."""
        if self.name is None:
            return f"batch {self.batch_id}"
        if self.batch_id is None:
            return f"batch {self.name!r} (id not yet known)"
        return f"batch {self.batch_id} ({self.name!r})"

    def to_json(self) -> dict[str, Any]:
        """The JSON value stored in the task state store."""
        return {"format": RECORD_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_stored(cls, value: Any) -> BatchRecord:
        """
        Read a stored value: a record of ours, or the bare batch id provider 4.6.4 stored.

        :raises NotOurRecord: anything else (wrong type, unsafe name, id out of range, ...).
        """
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(name=None, batch_id=_checked_id(value))
        if not isinstance(value, dict) or value.get("format") != RECORD_FORMAT:
            raise NotOurRecord(f"a {type(value).__name__} that this provider did not write")
        name = value.get("name")
        if name is not None and not is_valid_batch_name(name):
            raise NotOurRecord("its batch name is not a URL-safe name this provider would give")
        return cls(
            name=name,
            submission=_checked_int(value.get("submission"), "submission", 1, MAX_SUBMISSIONS),
            batch_id=None if value.get("batch_id") is None else _checked_id(value.get("batch_id")),
            app_id=_checked_app_id(value.get("app_id")),
            final_state=_checked_state(value.get("final_state")),
            delivered_try=(
                None
                if value.get("delivered_try") is None
                else _checked_int(value.get("delivered_try"), "delivered_try", 0, 1_000_000)
            ),
        )


def _checked_int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise NotOurRecord(f"its {field} is not an integer in {low}..{high}")
    return value


def _checked_id(value: Any) -> int:
    return _checked_int(value, "batch id", 0, MAX_BATCH_ID)


def _checked_app_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_APP_ID_CHARS:
        raise NotOurRecord("its app id is not a short string")
    return value


def _checked_state(value: Any) -> str | None:
    if value is None:
        return None
    if value not in ("success", "dead", "killed", "error"):
        raise NotOurRecord("its final state is not a terminal Livy state")
    return value


def _name_part(text: str, limit: int) -> str:
    return _UNSAFE_NAME_CHARS.sub("_", text).strip("._-")[:limit]


def batch_name(
    *,
    dag_id: str,
    task_id: str,
    run_id: str,
    map_index: int,
    submission: int,
    first_try: int = 1,
    prefix: str | None = None,
) -> str:
    """
    Return the unique, URL-safe Livy batch name of one submission of one task instance.

    Without ``prefix``: ``airflow-<dag>-<task>-<run>[-m<map index>]-t<first try>-s<submission>-<digest>``,
    readable in the YARN UI. With ``prefix`` (the DAG's own ``name=``):
    ``<prefix>-t<first try>-s<submission>-<digest>``. ``first_try`` is the first try since the task
    was last cleared, so a re-run never shares a name with the run before it, even if the stored
    record was deleted. Unsafe characters become ``_``; the digest of the exact task instance keeps
    names distinct when sanitising or truncating makes two of them look alike. Never all digits,
    never contains ``/``.
    """
    identity = "\x00".join((dag_id, task_id, run_id, str(map_index), prefix or ""))
    digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
    readable_prefix = _name_part(prefix, _PART_CHARS["prefix"]) if prefix else ""
    if readable_prefix:
        head = readable_prefix
    else:
        parts = [
            "airflow",
            _name_part(dag_id, _PART_CHARS["dag"]),
            _name_part(task_id, _PART_CHARS["task"]),
            _name_part(run_id, _PART_CHARS["run"]),
        ]
        if map_index >= 0:
            parts.append(f"m{map_index}")
        head = "-".join(part for part in parts if part)
    return f"{head}-t{first_try}-s{submission}-{digest}"
