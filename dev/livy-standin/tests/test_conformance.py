"""
One conformance suite, two servers: the stand-in (``--spark``) and real Apache Livy.

Every test sends the same requests to both and asserts the same facts about the answers: status
codes, JSON shapes and messages, name lookup, duplicate names, the log endpoint, ``appInfo``, the
states of a batch that succeeds, fails or is deleted (and what becomes of its ``spark-submit``), and a
restart without recovery. Where real Livy and the stand-in differ on purpose, the test says so and
``dev/livy-standin/LIVY_REST.md`` gives the reason.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conformance_servers import (
    KINDS,
    LIVY_VERSION,
    PI_APP,
    Server,
    apache_livy,
    require,
    running_server,
)

pytestmark = [pytest.mark.livy, pytest.mark.timeout(300)]

TERMINAL = ("success", "dead", "killed", "error")


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A server shared by the module's tests (each uses names of its own)."""
    yield from running_server(request.param)


@pytest.fixture(params=KINDS)
def fresh_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A server of its own, for a test that restarts it."""
    yield from running_server(request.param)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pi(name: str | None, *args: str) -> dict[str, Any]:
    body: dict[str, Any] = {"file": str(PI_APP), "args": list(args or ("1", "0"))}
    if name is not None:
        body["name"] = name
    return body


def wait_for_state(server: Server, batch_id: int, states: tuple[str, ...], seconds: float = 150) -> list[str]:
    """Poll ``/state`` until the batch is in one of ``states``; return every state seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = server.get(f"/batches/{batch_id}/state").json()["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        if state in states:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"{server.kind}: batch {batch_id} never reached {states}; seen {seen}")


def wait_until(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        time.sleep(0.2)


class TestCreating:
    def test_the_reply_to_the_post(self, server: Server) -> None:
        name = unique("reply")
        reply = server.post("/batches", pi(name))
        assert reply.status_code == 201, reply.text
        batch = reply.json()
        assert set(batch) == {"id", "name", "owner", "proxyUser", "state", "appId", "appInfo", "log"}
        assert isinstance(batch["id"], int)
        assert (batch["name"], batch["owner"], batch["proxyUser"], batch["appId"]) == (name, None, None, None)
        assert batch["appInfo"] == {"driverLogUrl": None, "sparkUiUrl": None}
        # Local mode: running as soon as spark-submit started. Livy learns that on a thread of its own
        # (SparkProcApp's listener), so on a busy machine its reply can still say starting.
        assert batch["state"] in ("starting", "running")
        assert reply.headers["Location"] == f"/batches/{batch['id']}"

    def test_a_duplicate_name_is_refused_while_the_first_batch_is_known(self, server: Server) -> None:
        name = unique("duplicate")
        first = server.post("/batches", pi(name)).json()
        again = server.post("/batches", pi(name))
        assert again.status_code == 400
        assert re.fullmatch(rf"Duplicate session name: Some\({name}\) for session \d+", again.json()["msg"])
        wait_for_state(server, first["id"], TERMINAL)
        after_the_end = server.post("/batches", pi(name))
        assert after_the_end.status_code == 400, "a finished batch keeps its name until Livy forgets it"

    @pytest.mark.parametrize("name", ["123", ""])
    def test_an_invalid_name_is_refused(self, server: Server, name: str) -> None:
        reply = server.post("/batches", pi(name))
        assert (reply.status_code, reply.json()) == (400, {"msg": f"Invalid session name: {name}"})

    def test_a_post_without_a_file_leaves_a_zombie_under_its_name(self, server: Server) -> None:
        name = unique("zombie")
        reply = server.post("/batches", {"name": name})
        assert (reply.status_code, reply.json()) == (400, {"msg": "requirement failed: File is required."})
        zombie = server.get(f"/batches/{name}").json()
        assert (zombie["state"], zombie["appId"], zombie["log"]) == ("starting", None, [])
        assert server.delete(f"/batches/{name}").json() == {"msg": "deleted"}

    def test_the_version(self, server: Server) -> None:
        assert server.get("/version").json()["version"] == LIVY_VERSION


class TestReading:
    def test_by_id_by_name_and_state(self, server: Server) -> None:
        name = unique("lookup")
        created = server.post("/batches", pi(name)).json()
        by_id = server.get(f"/batches/{created['id']}").json()
        by_name = server.get(f"/batches/{name}").json()
        assert by_id["id"] == by_name["id"] == created["id"]
        assert by_name["name"] == name
        state = server.get(f"/batches/{created['id']}/state").json()
        assert set(state) == {"id", "state"}
        assert state["id"] == created["id"]

    @pytest.mark.parametrize("ref", ["987654", "no-such-batch"])
    def test_an_unknown_batch_is_404_with_livys_message(self, server: Server, ref: str) -> None:
        reply = server.get(f"/batches/{ref}")
        assert reply.status_code == 404
        assert reply.json() == {"msg": f"Session '{ref}' not found."}
        assert server.get(f"/batches/{ref}/state").status_code == 404

    def test_the_list(self, server: Server) -> None:
        listing = server.get("/batches").json()
        assert set(listing) == {"from", "total", "sessions"}
        assert listing["from"] == 0 and listing["total"] == len(listing["sessions"])


class TestLifecycle:
    def test_a_batch_that_succeeds(self, server: Server) -> None:
        created = server.post("/batches", pi(unique("succeeds"), "2", "1")).json()
        seen = wait_for_state(server, created["id"], TERMINAL)
        assert seen[-1] == "success"
        assert set(seen) <= {"starting", "running", "success"}
        page = server.get(f"/batches/{created['id']}/log?from=0&size=1000").json()
        assert set(page) == {"id", "from", "total", "log"}
        log = page["log"]
        assert log[0] == "stdout: " and "\nstderr: " in log
        assert any(line.startswith("Pi is roughly 3.1") for line in log)
        assert page["total"] == len(log)
        batch = server.get(f"/batches/{created['id']}").json()
        assert batch["appId"] is None and batch["appInfo"] == {"driverLogUrl": None, "sparkUiUrl": None}

    def test_a_log_page(self, server: Server) -> None:
        created = server.post("/batches", pi(unique("paged"))).json()
        wait_for_state(server, created["id"], TERMINAL)
        whole = server.get(f"/batches/{created['id']}/log?from=0&size=1000").json()
        page = server.get(f"/batches/{created['id']}/log?from=2&size=3").json()
        assert (page["from"], page["total"], page["log"]) == (2, whole["total"], whole["log"][2:5])

    def test_a_batch_that_fails_is_dead(self, server: Server) -> None:
        created = server.post("/batches", pi(unique("fails"), "not-a-number")).json()
        seen = wait_for_state(server, created["id"], TERMINAL)
        assert seen[-1] == "dead"
        log = server.get(f"/batches/{created['id']}/log?from=0&size=1000").json()["log"]
        assert any("ValueError" in line for line in log)

    def test_delete_kills_the_running_spark_submit(self, server: Server) -> None:
        created = server.post("/batches", pi(unique("deleted"), "20", "5")).json()
        wait_until(lambda: server.submit_of(created) is not None, 60, "spark-submit started")
        submit = server.submit_of(created)
        reply = server.delete(f"/batches/{created['id']}")
        assert (reply.status_code, reply.json()) == (200, {"msg": "deleted"})
        assert server.get(f"/batches/{created['id']}").status_code == 404
        wait_until(lambda: submit not in server.live_submits(), 30, "spark-submit gone")
        assert server.delete(f"/batches/{created['id']}").status_code == 404


class TestRestart:
    def test_a_restart_without_recovery_forgets_every_batch_and_reuses_ids(
        self, fresh_server: Server
    ) -> None:
        server = fresh_server
        first = server.post("/batches", pi(unique("before"), "30", "5")).json()
        wait_until(lambda: server.live_submits(), 60, "spark-submit started")
        orphans = server.live_submits()
        server.restart()
        assert server.get(f"/batches/{first['id']}").status_code == 404
        assert server.get("/batches").json()["total"] == 0
        second = server.post("/batches", pi(unique("after"))).json()
        assert second["id"] == first["id"] == 0, "ids start again at 0: the old id now names another batch"
        assert orphans & _alive(orphans), "the crashed server's spark-submit runs on, owned by nobody"
        wait_for_state(server, second["id"], TERMINAL)


def test_recovery_in_local_mode(tmp_path: Any) -> None:
    """Real Livy refuses session recovery unless its master is YARN; the stand-in simulates YARN's."""
    require("apache-livy")
    livy = apache_livy(tmp_path, recovery=True)
    with pytest.raises(RuntimeError, match="Session recovery requires YARN"):
        livy.start()
    livy.stop()


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.add(pid)
    return alive
