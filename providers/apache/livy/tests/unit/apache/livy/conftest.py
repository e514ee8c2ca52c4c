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
Fixtures shared by the unit tests of the Livy provider (hooks, sensor, trigger, operator).

* ``livy_conn`` (autouse): the ``livy_default`` connection, as an environment variable, pointing at
  ``LIVY_BASE_URL`` (loopback; nothing listens there: every request must be mocked).
* ``make_livy_conn``: define another connection (or redefine ``livy_default``) with login, password,
  schema or extra.
* ``mocked_responses``: a ``responses.RequestsMock`` for the sync hook's ``requests`` client; a
  request nobody registered fails with ``ConnectionError`` instead of leaving the machine.
* ``livy_server``: a scripted Livy, a real ``aiohttp.web`` server on 127.0.0.1 (a free port), for
  the async hook and the trigger; ``livy_default`` then points at it. (``aioresponses`` 0.7.x cannot
  build responses for aiohttp 3.14, which the provider requires; a real server also exercises the
  real client end to end.) Register replies with ``livy_server.reply(...)``, read what was sent in
  ``livy_server.requests``; an unscripted request answers 599 and fails the test.
* ``livy``, ``store``, ``journal``: a scripted Livy behind ``responses`` for the operator and the
  durable component, an in-memory task state store, and the one journal both write to.
* ``livy_logs``: everything the provider logged during the test, whether it went through the
  standard ``logging`` module (captured with ``caplog``; Airflow 2) or through structlog
  (Airflow 3's ``LoggingMixin.log`` does not reach ``caplog``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import nullcontext
from typing import Any

import pytest
import responses
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from unit.apache.livy.fake_livy import FakeLivy
from unit.apache.livy.task_context import MemoryTaskStateStore

LIVY_HOST = "127.0.0.1"
LIVY_PORT = 8998
LIVY_BASE_URL = f"http://{LIVY_HOST}:{LIVY_PORT}"
LIVY_CONN_ID = "livy_default"


@pytest.fixture
def livy_base_url() -> str:
    """Base URL of the ``livy_default`` connection the ``livy_conn`` fixture defines."""
    return LIVY_BASE_URL


@pytest.fixture
def make_livy_conn(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """
    Return ``make(conn_id="livy_default", *, host, port, schema, login, password, extra) -> conn_id``.

    The connection is an ``AIRFLOW_CONN_<ID>`` environment variable in Airflow's JSON form (read the
    same way by Airflow 2.11, 3.2 and 3.3), removed again after the test.
    """

    def make(
        conn_id: str = LIVY_CONN_ID,
        *,
        host: str = LIVY_HOST,
        port: int | None = LIVY_PORT,
        schema: str | None = None,
        login: str | None = None,
        password: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        fields: dict[str, Any] = {"conn_type": "livy", "host": host, "port": port}
        for key, value in (("schema", schema), ("login", login), ("password", password)):
            if value is not None:
                fields[key] = value
        if extra is not None:
            fields["extra"] = json.dumps(extra)
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))
        return conn_id

    return make


@pytest.fixture(autouse=True)
def livy_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    """Define ``livy_default`` as ``livy://127.0.0.1:8998`` (URI form) and return its id."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{LIVY_CONN_ID.upper()}", f"livy://{LIVY_HOST}:{LIVY_PORT}")
    return LIVY_CONN_ID


@pytest.fixture
def mocked_responses() -> Iterator[responses.RequestsMock]:
    """Mock ``requests``: register Livy's replies on it; unregistered requests raise ConnectionError."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@dataclasses.dataclass
class RecordedRequest:
    """One request the scripted Livy received."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: str


@dataclasses.dataclass
class _Reply:
    status: int
    body: str
    content_type: str
    delay: float


class ScriptedLivy:
    """
    Answers each request with the replies registered for its method and path, in order.

    The last reply registered for a route repeats. A reply registered with ``query`` only answers a
    request with exactly that query string; one without ``query`` answers any query.
    """

    def __init__(self, make_livy_conn: Callable[..., str]) -> None:
        self.requests: list[RecordedRequest] = []
        self.unexpected: list[RecordedRequest] = []
        self._routes: dict[tuple[str, str, tuple[tuple[str, str], ...] | None], list[_Reply]] = {}
        self._make_livy_conn = make_livy_conn
        self.port = 0
        self.base_url = ""

    def connection(self, conn_id: str = LIVY_CONN_ID, **fields: Any) -> str:
        """Define connection ``conn_id`` (login, password, extra, ...) pointing at this server."""
        return self._make_livy_conn(conn_id, port=self.port, **fields)

    def reply(
        self,
        method: str,
        path: str,
        *,
        status: int = 200,
        json_body: Any = None,
        body: str | None = None,
        content_type: str | None = None,
        query: dict[str, Any] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Script the next reply to ``method path`` (``json_body`` or raw ``body``)."""
        text = body if body is not None else json.dumps(json_body)
        kind = content_type or ("text/plain" if body is not None else "application/json")
        key = (method.upper(), path, _query_key(query) if query is not None else None)
        self._routes.setdefault(key, []).append(_Reply(status, text, kind, delay))

    def paths(self) -> list[str]:
        """The paths requested, in order."""
        return [request.path for request in self.requests]

    async def _handle(self, request: web.Request) -> web.Response:
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=CIMultiDict(request.headers),
            body=await request.text(),
        )
        self.requests.append(recorded)
        replies = self._routes.get((request.method, request.path, _query_key(request.query))) or (
            self._routes.get((request.method, request.path, None))
        )
        if not replies:
            self.unexpected.append(recorded)
            return web.Response(status=599, text=f"unscripted request {request.method} {request.path_qs}")
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, text=reply.body, content_type=reply.content_type)


def _query_key(query: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(key), str(value)) for key, value in query.items()))


@pytest.fixture
async def livy_server(make_livy_conn: Callable[..., str]) -> AsyncIterator[ScriptedLivy]:
    """Start a scripted Livy on 127.0.0.1 and point ``livy_default`` at it."""
    livy = ScriptedLivy(make_livy_conn)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", livy._handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    livy.port = server.port
    livy.base_url = f"http://127.0.0.1:{server.port}"
    livy.connection()
    try:
        yield livy
    finally:
        await server.close()
    assert not livy.unexpected, f"unscripted requests: {livy.unexpected}"


class LogCapture:
    """What the provider logged during one test, whichever logging system carried it."""

    def __init__(self, caplog: pytest.LogCaptureFixture, structlog_entries: list[dict[str, Any]]) -> None:
        self._caplog = caplog
        self._structlog_entries = structlog_entries

    @property
    def messages(self) -> list[str]:
        """Each logged message, formatted (arguments substituted)."""
        from_logging = [record.getMessage() for record in self._caplog.records]
        from_structlog = [_structlog_message(entry) for entry in self._structlog_entries]
        return from_logging + from_structlog

    @property
    def text(self) -> str:
        """Every message plus every structured field of every entry, to search for leaked values."""
        parts = self.messages
        parts += [repr(record.__dict__) for record in self._caplog.records]
        parts += [repr(entry) for entry in self._structlog_entries]
        return "\n".join(parts)

    def warnings(self) -> list[str]:
        """The messages logged at WARNING level or above."""
        from_logging = [
            record.getMessage() for record in self._caplog.records if record.levelno >= logging.WARNING
        ]
        from_structlog = [
            _structlog_message(entry)
            for entry in self._structlog_entries
            if entry.get("log_level") in ("warning", "error", "critical", "exception")
        ]
        return from_logging + from_structlog


def _structlog_message(entry: dict[str, Any]) -> str:
    message = str(entry.get("event", ""))
    args = entry.get("positional_args")
    if args:
        try:
            message = message % tuple(args)
        except (TypeError, ValueError):
            message = f"{message} {args!r}"
    return message


@pytest.fixture
def livy_logs(caplog: pytest.LogCaptureFixture) -> Iterator[LogCapture]:
    """Capture the provider's logs (stdlib ``logging`` and, on Airflow 3, structlog) at DEBUG level."""
    caplog.set_level(logging.DEBUG)
    try:
        from structlog.testing import capture_logs
    except ImportError:  # Airflow 2.11 does not ship structlog
        capture: Any = nullcontext([])
    else:
        capture = capture_logs()
    with capture as structlog_entries:
        yield LogCapture(caplog, structlog_entries)


@pytest.fixture
def journal() -> list[tuple[str, ...]]:
    """One ordered journal of the task state store's writes and the scripted Livy's requests."""
    return []


@pytest.fixture
def livy(journal: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLivy]:
    """A scripted Livy behind ``responses`` (see ``fake_livy.py``); ``livy_default`` points at it."""
    monkeypatch.setenv("AIRFLOW_CONN_LIVY_DEFAULT", "livy://127.0.0.1:8998")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeLivy(mock, journal)


@pytest.fixture
def store(journal: list[tuple[str, ...]]) -> MemoryTaskStateStore:
    """An in-memory ``task_state_store`` whose writes go to the journal."""
    return MemoryTaskStateStore(journal)


@pytest.fixture(autouse=True)
def links_go_to_the_task_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Route the links the operator stores to the test's task instance (``ti.xcom_push``).

    In a real task Airflow 3 keeps them in its metadata database through the task runner
    (``links.livy.write_link_xcom``), which these tests do not run; ``links/test_livy.py`` tests
    that path itself.
    """
    from airflow.providers.apache.livy.links import livy as links

    monkeypatch.setattr(links, "write_link_xcom", lambda ti, key, url: ti.xcom_push(key=key, value=url))
