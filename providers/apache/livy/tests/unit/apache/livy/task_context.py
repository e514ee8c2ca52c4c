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
Test doubles for what the task runner puts in the context: the task state store and the TI.

Shared by the unit tests and the benchmarks (which put ``providers/apache/livy/tests`` on the path).
Standard library only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class MemoryTaskStateStore:
    """``task_state_store`` as Airflow 3.3 gives it: JSON values, ``None`` refused; writes journaled."""

    def __init__(self, journal: list[tuple[str, ...]]) -> None:
        self.values: dict[str, str] = {}
        self.journal = journal

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    def set(self, key: str, value: Any, retention: Any = None) -> None:
        if value is None:
            raise ValueError("None values are refused")
        self.values[key] = json.dumps(value)
        self.journal.append(("store", key, self.values[key]))

    def delete(self, key: str) -> None:
        self.values.pop(key, None)
        self.journal.append(("store-delete", key))

    def clear(self) -> None:
        self.values.clear()
        self.journal.append(("store-delete", "*"))

    @property
    def writes(self) -> int:
        """How many ``set`` calls the journal holds."""
        return sum(1 for entry in self.journal if entry[0] == "store")

    @property
    def deletes(self) -> int:
        """How many ``delete`` and ``clear`` calls the journal holds."""
        return sum(1 for entry in self.journal if entry[0] == "store-delete")


@dataclass
class FakeTaskInstance:
    dag_id: str = "etl"
    task_id: str = "spark_job"
    run_id: str = "manual__2026-11-23T22:00:00+00:00"
    map_index: int = -1
    try_number: int = 1
    max_tries: int = 0
    stats_tags: dict[str, str] = field(default_factory=dict)
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value
