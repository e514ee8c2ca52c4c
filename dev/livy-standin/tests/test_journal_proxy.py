"""The journaling proxy (``livy_standin.journal_proxy``), here in front of the stand-in as its Livy."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests

from livy_standin import LivyStandin
from livy_standin.journal_proxy import JournalingProxy

FAST_CONF = {"spark.standin.startingSeconds": "0", "spark.standin.durationSeconds": "30"}


@pytest.fixture
def upstream() -> Iterator[LivyStandin]:
    with LivyStandin(host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
def proxy(upstream: LivyStandin) -> Iterator[str]:
    server = JournalingProxy(("127.0.0.1", 0), upstream.url)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def post(url: str, name: str, **conf: str) -> requests.Response:
    body = {"file": "app.py", "name": name, "conf": {**FAST_CONF, **conf}}
    return requests.post(f"{url}/batches", json=body, timeout=10)


def test_requests_reach_livy_and_are_journaled(proxy: str, upstream: LivyStandin) -> None:
    created = post(proxy, "etl-a")
    assert (created.status_code, created.headers["Location"]) == (201, "/batches/0")
    assert requests.get(f"{proxy}/batches/etl-a/state", timeout=10).json()["id"] == 0
    assert requests.get(f"{proxy}/batches/9", timeout=10).status_code == 404
    journal = requests.get(f"{proxy}/admin/requests", timeout=10).json()
    assert [(e["kind"], e["status"], e["name"], e["created_id"]) for e in journal] == [
        ("POST /batches", 201, "etl-a", 0),
        ("GET /batches/{name}/state", 200, None, None),
        ("GET /batches/{id}", 404, None, None),
    ]
    assert [e["kind"] for e in upstream.requests()] == [e["kind"] for e in journal], "Livy saw the same"
    stats = requests.get(f"{proxy}/admin/stats", timeout=10).json()
    assert (stats["posts"], stats["batches_created"]) == (1, 1)


def test_batches_keep_their_posted_conf_and_show_when_livy_forgot_them(
    proxy: str, upstream: LivyStandin
) -> None:
    post(proxy, "etl-b", **{"spark.airflow.run_id": "run-1"})
    (batch,) = requests.get(f"{proxy}/admin/batches", timeout=10).json()
    assert (batch["name"], batch["conf"]["spark.airflow.run_id"], batch["forgotten"]) == (
        "etl-b",
        "run-1",
        False,
    )
    upstream.restart(recovery=False)
    post(proxy, "someone-else")  # takes id 0 again
    batches = requests.get(f"{proxy}/admin/batches", timeout=10).json()
    assert [(b["name"], b["forgotten"]) for b in batches] == [("etl-b", True), ("someone-else", False)]


def test_drop_reply_reaches_livy_but_the_client_gets_no_answer(proxy: str, upstream: LivyStandin) -> None:
    with pytest.raises(requests.ConnectionError):
        post(proxy, "lost", **{"spark.standin.dropReply": "true"})
    assert upstream.batches()[0]["name"] == "lost"
    (entry,) = requests.get(f"{proxy}/admin/requests", timeout=10).json()
    assert (entry["status"], entry["created_id"]) == (None, 0)
    again = post(proxy, "lost", **{"spark.standin.dropReply": "true"})
    assert again.status_code == 400, "once per name: the retry's duplicate reaches the client"


def test_livy_down_drops_the_connection_and_is_journaled(proxy: str, upstream: LivyStandin) -> None:
    upstream.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{proxy}/batches/0/state", timeout=10)
    (entry,) = requests.get(f"{proxy}/admin/requests", timeout=10).json()
    assert (entry["kind"], entry["status"]) == ("GET /batches/{id}/state", None)
