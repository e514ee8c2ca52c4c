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
The fixtures and markers the released provider's unit tests use, written for this project.

Also marks the tests listed in ``deliberate-changes.txt`` (beside this package) as expected to
fail, strictly: a listed test that passes fails the run, so the list stays exact.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DELIBERATE_CHANGES = Path(__file__).resolve().parents[1] / "deliberate-changes.txt"


def deliberate_changes(path: Path = DELIBERATE_CHANGES) -> dict[str, str]:
    """``test id -> reason`` from the list: ``<test id> | <one-line reason>`` per line, ``#`` comments."""
    changes = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            test_id, _, reason = line.partition(" | ")
            changes[test_id.strip()] = reason.strip()
    return changes


DEFAULT_CONNECTIONS = {"LIVY_DEFAULT": "livy://livy:8998"}
"""Airflow's default ``livy_default`` connection, which its test database holds."""


def pytest_configure(config: pytest.Config) -> None:
    for marker in ("db_test: needs Airflow's metadata database", "backend(name): a database backend"):
        config.addinivalue_line("markers", marker)


@pytest.fixture(autouse=True)
def default_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default connections Airflow's test database holds, as environment variables."""
    for conn_id, uri in DEFAULT_CONNECTIONS.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id}", uri)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    changes = deliberate_changes()
    for item in items:
        test_id = item.nodeid.split("tests/unit/", 1)[-1]
        if test_id in changes:
            item.add_marker(pytest.mark.xfail(reason=changes[test_id], strict=True))


@pytest.fixture
def create_connection_without_db(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], None]:
    """Make a connection findable by its id, through an ``AIRFLOW_CONN_<ID>`` variable (JSON)."""

    def create(connection: Any) -> None:
        monkeypatch.setenv(f"AIRFLOW_CONN_{connection.conn_id.upper()}", connection.as_json())

    return create


@pytest.fixture
def create_task_instance_of_operator() -> Callable[..., Any]:
    """A task of ``operator_class`` in a DAG of its own, whose templates ``render_templates`` renders."""

    def create(operator_class: type, *, dag_id: str, **kwargs: Any) -> _RenderingTaskInstance:
        from airflow.sdk import DAG

        with DAG(dag_id=dag_id, schedule=None):
            task = operator_class(**kwargs)
        return _RenderingTaskInstance(task)

    return create


class _RenderingTaskInstance:
    def __init__(self, task: Any) -> None:
        self.task = task

    def render_templates(self, context: Any = None) -> Any:
        self.task.render_template_fields(context or {})
        return self.task


@pytest.fixture
def session() -> Any:
    """The metadata database session the ``db_test`` tests add to; nothing is stored here."""
    return _NoSession()


class _NoSession:
    def add(self, obj: Any) -> None: ...

    def commit(self) -> None: ...
