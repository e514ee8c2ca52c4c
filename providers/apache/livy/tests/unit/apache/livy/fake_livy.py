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
A scripted Livy behind ``responses``: the operator's real ``requests`` client talks to it.

Each batch walks through a list of states, one step per ``GET``; names, 404s, id reuse and
duplicate-name rejections behave as Livy's do (see the stand-in for the full model).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
import responses

BASE_URL = "http://127.0.0.1:8998"
_BATCH_PATH = re.compile(r"^/batches/(?P<ref>[^/]+)(?P<tail>/state|/log)?$")


@dataclass
class FakeBatch:
    id: int
    name: str | None
    states: list[str]
    app_id: str | None = None
    log: list[str] = field(default_factory=lambda: ["stdout: ", "line 1", "line 2"])
    reads: int = 0
    app_info: list[dict[str, str | None]] | None = None
    """``appInfo`` per read, as ``states`` (the last one stays); ``None``: both URLs null."""
    logs: list[list[str]] | None = None
    """The whole log per read of the batch or its state, as ``states``; ``None``: :attr:`log`."""

    @property
    def state(self) -> str:
        return self.states[min(self.reads, len(self.states) - 1)]

    @property
    def current_log(self) -> list[str]:
        return self.log if self.logs is None else self.logs[min(self.reads, len(self.logs) - 1)]

    @property
    def current_app_info(self) -> dict[str, str | None]:
        if self.app_info is None:
            return {"driverLogUrl": None, "sparkUiUrl": None}
        return self.app_info[min(self.reads, len(self.app_info) - 1)]

    def as_json(self, echo_name: bool = True) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name if echo_name else None,
            "owner": None,
            "proxyUser": None,
            "state": self.state,
            "appId": self.app_id,
            "appInfo": self.current_app_info,
            "log": self.current_log[-10:],
        }


class FakeLivy:
    """Livy's batch API as ``responses`` callbacks, with a request journal shared with the store."""

    def __init__(self, mock: responses.RequestsMock, journal: list[tuple[str, ...]]) -> None:
        self.batches: dict[int, FakeBatch] = {}
        self.next_id = 0
        self.journal = journal
        self.posted: list[dict[str, Any]] = []
        self.states_for_new = ["starting", "running", "success"]
        self.post_failure: Callable[[dict[str, Any]], tuple[int, str] | Exception | None] | None = None
        self.override: dict[str, tuple[int, str]] = {}
        self.queued: dict[str, list[tuple[int, str]]] = {}  # one-off replies, used up in order
        self.prefix = ""  # a gateway path in front of /batches, as livy_endpoint_prefix sets it
        self.echo_names = True  # False: a Livy-compatible server that answers "name": null
        self.on_state_read: Callable[[dict[str, Any]], None] | None = None  # runs on each /state read
        for method in ("GET", "POST", "DELETE"):
            mock.add_callback(method, re.compile(re.escape(BASE_URL) + r"/.*"), callback=self._handle)

    def add(
        self, name: str | None, states: list[str], *, id: int | None = None, app_id: str | None = None
    ) -> FakeBatch:
        batch_id = self.next_id if id is None else id
        self.next_id = max(self.next_id, batch_id + 1)
        batch = FakeBatch(
            batch_id, name, states, app_id=app_id if app_id is not None else f"application_1_{batch_id:04d}"
        )
        self.batches[batch_id] = batch
        return batch

    def forget(self, batch_id: int) -> None:
        del self.batches[batch_id]

    @property
    def post_count(self) -> int:
        return sum(1 for entry in self.journal if entry[:2] == ("http", "POST"))

    def _find(self, ref: str) -> FakeBatch | None:
        if ref.isdigit():
            return self.batches.get(int(ref))
        if not self.echo_names:
            return None
        return next((b for b in self.batches.values() if b.name == ref), None)

    def _handle(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        path = request.path_url.split("?")[0]
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                return 404, {}, "no such gateway path"
            path = path.removeprefix(self.prefix)
        self.journal.append(("http", request.method or "", path))
        key = f"{request.method} {path}"
        if self.queued.get(key):
            status, body = self.queued[key].pop(0)
            return status, {}, body
        if key in self.override:
            status, body = self.override[key]
            return status, {}, body
        if request.method == "POST" and path == "/batches":
            return self._post(request)
        match = _BATCH_PATH.match(path)
        batch = self._find(match["ref"]) if match else None
        if batch is None:
            ref = match["ref"] if match else path
            return 404, {}, json.dumps({"msg": f"Session '{ref}' not found."})
        if request.method == "DELETE":
            self.forget(batch.id)
            return 200, {}, json.dumps({"msg": "deleted"})
        if match["tail"] == "/log":
            log = batch.current_log
            return 200, {}, json.dumps({"id": batch.id, "from": 0, "total": len(log), "log": log})
        body = (
            {"id": batch.id, "state": batch.state}
            if match["tail"] == "/state"
            else batch.as_json(self.echo_names)
        )
        if match["tail"] == "/state" and self.on_state_read is not None:
            self.on_state_read(body)
        batch.reads += 1
        return 200, {}, json.dumps(body)

    def _post(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body or "{}")
        self.posted.append({"body": body, "headers": dict(request.headers)})
        if self.post_failure is not None:
            failure = self.post_failure(body)
            if isinstance(failure, Exception):
                raise failure
            if failure is not None:
                return failure[0], {}, failure[1]
        name = body.get("name")
        if name is not None and any(b.name == name for b in self.batches.values()):
            new_id, self.next_id = self.next_id, self.next_id + 1
            message = f"Rejected, Reason: Duplicate session name: Some({name}) for session {new_id}"
            return 400, {}, json.dumps({"msg": message})
        batch = self.add(name, list(self.states_for_new))
        return 201, {"Location": f"/batches/{batch.id}"}, json.dumps(batch.as_json(self.echo_names))
