"""HTTP helpers for the stand-in tests (kept out of conftest so they can be imported)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

FAST = {"spark.standin.startingSeconds": "0", "spark.standin.durationSeconds": "0"}


class Client:
    """Thin requests wrapper bound to one server."""

    def __init__(self, url: str, session: requests.Session) -> None:
        self.url = url
        self.session = session

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=5, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.session.post(self.url + path, timeout=5, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.session.delete(self.url + path, timeout=5, **kw)

    def submit(self, name: str | None = None, file: str | None = "app.py", **conf: str) -> requests.Response:
        body: dict[str, Any] = {"conf": {f"spark.standin.{k}": v for k, v in conf.items()}}
        if file is not None:
            body["file"] = file
        if name is not None:
            body["name"] = name
        return self.post("/batches", json=body)

    def stats(self) -> dict[str, Any]:
        return self.get("/admin/stats").json()  # type: ignore[no-any-return]

    def admin_batches(self) -> list[dict[str, Any]]:
        return self.get("/admin/batches").json()  # type: ignore[no-any-return]


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.02) -> None:
    """Poll until predicate() is true, failing after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(step)
