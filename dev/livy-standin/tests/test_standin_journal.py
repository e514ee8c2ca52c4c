"""The request journal: GET /admin/requests and LivyStandin.requests()."""

from __future__ import annotations

import time

import pytest
import requests
from standin_helpers import Client

from livy_standin import LivyStandin

ENTRY_KEYS = {
    "seq",
    "time",
    "monotonic",
    "method",
    "path",
    "query",
    "kind",
    "status",
    "name",
    "created_id",
    "fault",
}


def journal(http: Client) -> list[dict[str, object]]:
    reply = http.get("/admin/requests")
    assert reply.status_code == 200
    return reply.json()  # type: ignore[no-any-return]


def test_every_api_request_in_arrival_order_with_status(http: Client) -> None:
    before = time.time()
    http.submit("s1")
    http.get("/batches/0")
    http.get("/batches/s1/state")
    http.get("/batches/0/log?from=0&size=5")
    http.get("/batches/404")
    http.delete("/batches/s1")
    http.session.head(http.url + "/version", timeout=5)
    after = time.time()
    entries = journal(http)
    assert all(set(entry) == ENTRY_KEYS for entry in entries)
    assert [(e["method"], e["path"], e["query"], e["kind"], e["status"]) for e in entries] == [
        ("POST", "/batches", "", "POST /batches", 201),
        ("GET", "/batches/0", "", "GET /batches/{id}", 200),
        ("GET", "/batches/s1/state", "", "GET /batches/{name}/state", 200),
        ("GET", "/batches/0/log", "from=0&size=5", "GET /batches/{id}/log", 200),
        ("GET", "/batches/404", "", "GET /batches/{id}", 404),
        ("DELETE", "/batches/s1", "", "DELETE /batches/{name}", 200),
        ("HEAD", "/version", "", "GET /version", 200),
    ]
    assert [e["seq"] for e in entries] == list(range(7))
    times = [e["time"] for e in entries]
    assert isinstance(times[0], float)
    assert before <= times[0] and times == sorted(times) and times[-1] <= after
    monotonic = [e["monotonic"] for e in entries]
    assert monotonic == sorted(monotonic)
    # Only the POST carries a name and the id it created, though all ran on one kept-alive connection.
    assert [(e["name"], e["created_id"]) for e in entries] == [("s1", 0)] + [(None, None)] * 6


def test_admin_requests_are_not_journaled(http: Client) -> None:
    http.get("/admin/stats")
    http.get("/admin/batches")
    http.post("/admin/config", json={"gc_interval": 60})
    assert journal(http) == []


def test_posts_name_and_created_id_when_rejected(http: Client) -> None:
    http.submit("dup")
    assert http.submit("dup").status_code == 400  # duplicate name: uses an id, creates nothing
    assert http.submit("zombie", file=None).status_code == 400  # no file: registers a zombie
    assert http.post("/batches", data=b"{").status_code == 400  # unreadable: no name
    assert http.submit("bad", outcome="maybe").status_code == 400  # a test-setup error
    posts = [(e["name"], e["created_id"], e["status"]) for e in journal(http)]
    assert posts == [
        ("dup", 0, 201),
        ("dup", None, 400),
        ("zombie", None, 400),
        (None, None, 400),
        ("bad", None, 400),
    ]
    assert http.stats()["batches_created"] == 1


def test_dropped_reply_has_no_status_but_the_created_id(http: Client) -> None:
    with pytest.raises(requests.ConnectionError):
        http.submit("lost", dropReply="true")
    http.get("/batches/lost")
    entries = journal(http)
    assert [(e["path"], e["status"], e["name"], e["created_id"]) for e in entries] == [
        ("/batches", None, "lost", 0),
        ("/batches/lost", 200, None, None),
    ]


def test_csrf_blocked_post_is_journaled_without_name() -> None:
    with LivyStandin(csrf=True) as server, requests.Session() as s:
        s.post(server.url + "/batches", json={"file": "a.py", "name": "n"}, timeout=5)
        s.post(server.url + "/batches", json={"file": "a.py", "name": "n"}, headers={"X-Requested-By": "t"})
        entries = server.requests()
    assert [(e["status"], e["name"], e["created_id"]) for e in entries] == [(400, None, None), (201, "n", 0)]


def test_reset_stats_empties_the_journal_and_restart_keeps_it(http: Client, standin: LivyStandin) -> None:
    http.submit("a")
    http.post("/admin/restart", json={"recovery": True})
    http.get("/batches/a")
    assert [e["seq"] for e in journal(http)] == [0, 1]
    assert http.post("/admin/reset-stats").json() == {"msg": "reset"}
    assert journal(http) == []
    http.get("/batches/a")
    (entry,) = journal(http)
    assert entry["seq"] == 2, "numbering goes on across a reset"
    standin.reset_stats()
    assert standin.requests() == []


def test_in_process_method_matches_the_endpoint(http: Client, standin: LivyStandin) -> None:
    http.submit()
    http.get("/batches")
    assert standin.requests() == journal(http)
    assert standin.requests()[1]["kind"] == "GET /batches"


def test_outage_keeps_the_journal(standin: LivyStandin) -> None:
    with requests.Session() as s:
        s.get(standin.url + "/version", timeout=5)
    standin.stop()
    standin.start()
    with requests.Session() as s:
        s.get(standin.url + "/version", timeout=5)
    assert [e["seq"] for e in standin.requests()] == [0, 1]
