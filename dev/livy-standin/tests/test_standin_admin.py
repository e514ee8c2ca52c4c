"""The /admin test controls: counters, batch history, forget, config."""

from __future__ import annotations

import pytest
import requests
from standin_helpers import Client

from livy_standin import ApiError, LivyStandin


def test_stats_count_requests_by_kind(http: Client) -> None:
    http.submit("s1")
    http.get("/batches/0")
    http.get("/batches/s1")
    http.get("/batches/s1")
    http.get("/batches/0/state")
    http.get("/batches/s1/log")
    http.get("/batches")
    http.get("/batches/404")
    http.delete("/batches/0")
    http.get("/admin/batches")  # admin requests are not counted
    stats = http.stats()
    assert stats["posts"] == 1 and stats["batches_created"] == 1
    req = stats["requests"]
    assert req["POST /batches"] == 1
    assert req["GET /batches/{id}"] == 2
    assert req["GET /batches/{name}"] == 2
    assert req["GET /batches/{id}/state"] == 1
    assert req["GET /batches/{name}/log"] == 1
    assert req["GET /batches"] == 1
    assert req["DELETE /batches/{id}"] == 1


def test_stats_count_rejected_posts_but_not_as_created(http: Client) -> None:
    http.submit("x")
    http.submit("x")
    http.submit(file=None)
    http.post("/batches", data=b"{")
    stats = http.stats()
    assert (stats["posts"], stats["batches_created"]) == (4, 1)


def test_stats_survive_restart_and_reset_zeroes_them(http: Client) -> None:
    http.submit()
    http.post("/admin/restart", json={"recovery": False})
    assert http.stats()["posts"] == 1
    assert http.post("/admin/reset-stats").json() == {"msg": "reset"}
    stats = http.stats()
    assert stats["posts"] == 0 and stats["batches_created"] == 0
    assert set(stats["requests"].values()) == {0}


def test_admin_batches_lists_every_batch_ever(http: Client) -> None:
    http.post(
        "/batches", json={"file": "a.py", "name": "keep", "conf": {"spark.app.name": "demo"}, "queue": "etl"}
    )
    http.submit("drop")
    http.delete("/batches/drop")
    entries = http.admin_batches()
    assert [e["name"] for e in entries] == ["keep", "drop"]
    keep, dropped = entries
    assert set(keep) >= {"id", "name", "state", "appId", "conf", "created_at", "forgotten", "epoch"}
    assert keep["conf"] == {"spark.app.name": "demo"}
    assert (keep["queue"], dropped["queue"]) == ("etl", None)  # the YARN queue the POST named
    assert (keep["forgotten"], dropped["forgotten"], dropped["forgotten_reason"]) == (False, True, "delete")
    assert isinstance(keep["created_at"], float) and keep["epoch"] == 0


def test_forget_one_batch(http: Client, standin: LivyStandin) -> None:
    http.submit("f")
    assert http.post("/admin/forget/0").json() == {"msg": "forgotten", "id": 0}
    assert http.get("/batches/f").status_code == 404
    assert http.post("/admin/forget/0").status_code == 404
    try:
        standin.forget(0)
    except ApiError as err:
        assert err.status == 404
    else:
        raise AssertionError("expected ApiError")


def test_config_changes_at_runtime(http: Client) -> None:
    resp = http.post("/admin/config", json={"retain_seconds": 0.2, "gc_interval": 0.05})
    assert resp.json() == {"retain_seconds": 0.2, "gc_interval": 0.05}
    assert http.get("/admin/config").json()["retain_seconds"] == 0.2
    assert http.post("/admin/config", json={"gc_interval": -1}).status_code == 400
    assert http.post("/admin/config", data=b"{").status_code == 400
    assert http.post("/admin/nope").status_code == 404
    assert http.post("/admin/restart", json={"recovery": "yes"}).status_code == 400


def test_python_api_mirrors_admin(standin: LivyStandin, http: Client) -> None:
    http.submit("p")
    assert standin.stats()["posts"] == 1
    assert standin.batches()[0]["name"] == "p"
    assert standin.restart(recovery=True, recovering_seconds=5)["next_id"] == 1
    assert http.get("/batches/p/state").json()["state"] == "recovering"
    assert standin.url == f"http://127.0.0.1:{standin.port}"


def test_stop_cuts_kept_alive_connections_and_start_resumes_same_port() -> None:
    server = LivyStandin().start()
    try:
        with requests.Session() as session:
            assert session.post(server.url + "/batches", json={"file": "a.py", "name": "o"}, timeout=5).ok
            port = server.port
            server.stop()
            with pytest.raises(requests.ConnectionError):
                session.get(server_url(port) + "/batches/o", timeout=5)
            server.start()
            assert server.port == port
            assert session.get(server.url + "/batches/o", timeout=5).json()["id"] == 0
    finally:
        server.stop()


def server_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"
