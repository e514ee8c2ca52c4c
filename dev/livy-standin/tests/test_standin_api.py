"""The batch REST API against dev/livy-standin/LIVY_REST.md §1-§2b, §6 (CSRF), through a real HTTP client."""

from __future__ import annotations

import json
import socket

import pytest
import requests
from standin_helpers import FAST, Client

from livy_standin import LivyStandin

FAST_CONF = {k.removeprefix("spark.standin."): v for k, v in FAST.items()}
BATCH_KEYS = ["id", "name", "owner", "proxyUser", "state", "appId", "appInfo", "log"]


def test_post_201_location_and_batch_object(http: Client) -> None:
    resp = http.submit("job-a")
    assert resp.status_code == 201
    assert resp.headers["Location"] == "/batches/0"
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert list(body) == BATCH_KEYS
    assert list(body["appInfo"]) == ["driverLogUrl", "sparkUiUrl", "executorLogUrls"]
    assert body["id"] == 0 and body["name"] == "job-a" and body["state"] == "starting"
    assert body["owner"] is None and body["proxyUser"] is None and body["appId"] is None
    assert body["log"] == ["stdout: ", "\nstderr: "]
    assert http.submit().headers["Location"] == "/batches/1"


def test_proxy_user_is_ignored_without_impersonation(http: Client) -> None:
    body = http.post("/batches", json={"file": "a.py", "proxyUser": "alice"}).json()
    assert body["proxyUser"] is None


def test_get_by_id_and_by_name_and_state(http: Client) -> None:
    http.submit("by-name")
    by_id, by_name = http.get("/batches/0").json(), http.get("/batches/by-name").json()
    assert by_id["id"] == by_name["id"] == 0
    assert list(by_id) == BATCH_KEYS
    assert http.get("/batches/by-name/state").json() == {"id": 0, "state": "starting"}
    assert http.get("/batches/000/state").json()["id"] == 0  # leading zeros still parse as an id


def test_name_with_url_escapes_resolves(http: Client) -> None:
    http.submit("my job")
    assert http.get("/batches/my%20job").json()["name"] == "my job"


@pytest.mark.parametrize("segment", ["7", "nope", "-1"])
def test_unknown_segment_is_404_with_livy_message(http: Client, segment: str) -> None:
    for path in (f"/batches/{segment}", f"/batches/{segment}/state", f"/batches/{segment}/log"):
        resp = http.get(path)
        assert resp.status_code == 404
        assert resp.json() == {"msg": f"Session '{segment}' not found."}
    resp = http.delete(f"/batches/{segment}")
    assert (resp.status_code, resp.json()) == (404, {"msg": f"Session '{segment}' not found."})


def test_id_overflowing_int_is_400(http: Client) -> None:
    resp = http.get("/batches/99999999999")
    assert resp.status_code == 400
    assert resp.json() == {"msg": 'For input string: "99999999999"'}


@pytest.mark.parametrize("query", ["from=abc", "size=abc", "from=1.5", "size="])
def test_non_int_from_or_size_is_400(http: Client, query: str) -> None:
    http.submit()
    value = query.split("=", 1)[1]
    for path in ("/batches", "/batches/0/log"):
        resp = http.get(f"{path}?{query}")
        assert resp.status_code == 400
        assert resp.json() == {"msg": f'For input string: "{value}"'}


def test_unknown_field_is_400_bare_string_and_uses_no_id(http: Client) -> None:
    resp = http.post("/batches", json={"file": "a.py", "ttl": "1h"})
    assert resp.status_code == 400
    body = resp.json()
    assert isinstance(body, str)
    assert body.startswith('Unrecognized field "ttl"')
    assert http.submit().json()["id"] == 0


@pytest.mark.parametrize(
    ("raw", "start"),
    [
        (b"{not json", "Unexpected character"),
        (b"", "No content to map"),
        (b'["a.py"]', "Cannot deserialize value of type `org.apache.livy"),
        (b'{"file": ["a.py"]}', "Cannot deserialize value of type `java.lang.String`"),
        (b'{"file": "a.py", "driverCores": "many"}', "Cannot deserialize value of type `int`"),
        (b'{"file": "a.py", "args": "x"}', "Cannot deserialize value of type `scala.collection"),
    ],
)
def test_unreadable_body_is_400_bare_string(http: Client, raw: bytes, start: str) -> None:
    resp = http.post("/batches", data=raw)
    assert resp.status_code == 400
    assert resp.json().startswith(start)
    assert http.get("/batches").json()["total"] == 0


def test_body_is_json_whatever_the_content_type(http: Client) -> None:
    resp = http.post("/batches", data=json.dumps({"file": "a.py"}), headers={"Content-Type": "text/plain"})
    assert resp.status_code == 201


def test_scalars_are_coerced_like_jackson(http: Client) -> None:
    body = {"file": "a.py", "driverCores": "2", "args": [1, True], "conf": {"spark.x": 3}}
    assert http.post("/batches", json=body).status_code == 201


def test_missing_file_leaves_a_zombie_holding_its_name(http: Client, standin: LivyStandin) -> None:
    resp = http.submit("zed", file=None)
    assert resp.status_code == 400
    assert resp.json() == {"msg": "Rejected, Reason: requirement failed: File is required."}
    listed = http.get("/batches").json()["sessions"]
    assert [(b["id"], b["name"], b["state"], b["appId"]) for b in listed] == [(0, "zed", "starting", None)]
    dup = http.submit("zed")
    assert dup.json() == {"msg": "Rejected, Reason: Duplicate session name: Some(zed) for session 1"}
    standin.configure(retain_seconds=0.0, gc_interval=0.05)
    standin.registry.collect_garbage()
    assert http.get("/batches/zed/state").json()["state"] == "starting"  # never GC'd
    assert http.delete("/batches/zed").json() == {"msg": "deleted"}
    assert http.submit("zed").status_code == 201


@pytest.mark.parametrize("name", ["123", ""])
def test_invalid_name_is_rejected_and_uses_an_id(http: Client, name: str) -> None:
    resp = http.submit(name)
    assert resp.status_code == 400
    assert resp.json() == {"msg": f"Rejected, Reason: Invalid session name: {name}"}
    assert http.get("/batches").json()["total"] == 0
    assert http.submit().json()["id"] == 1


def test_duplicate_name_of_a_finished_batch_uses_an_id_and_leaves_no_zombie(http: Client) -> None:
    http.submit("dup", **{"startingSeconds": "0", "durationSeconds": "0"})
    assert http.get("/batches/dup/state").json()["state"] == "success"
    resp = http.submit("dup")
    assert resp.status_code == 400
    assert resp.json() == {"msg": "Rejected, Reason: Duplicate session name: Some(dup) for session 1"}
    assert http.get("/batches").json()["total"] == 1
    assert http.submit("other").json()["id"] == 2


def test_list_total_counts_all_and_slice_is_clamped(http: Client) -> None:
    for i in range(5):
        http.submit(f"n{i}")
    page = http.get("/batches?from=1&size=2").json()
    assert list(page) == ["from", "total", "sessions"]
    assert (page["from"], page["total"], [b["id"] for b in page["sessions"]]) == (1, 5, [1, 2])
    assert [b["id"] for b in http.get("/batches").json()["sessions"]] == [0, 1, 2, 3, 4]
    past = http.get("/batches?from=9").json()
    assert (past["from"], past["sessions"]) == (9, [])
    scala = http.get("/batches?from=-2&size=4").json()  # Scala view(-2, 2): clamped to [0, 2)
    assert (scala["from"], [b["id"] for b in scala["sessions"]]) == (-2, [0, 1])
    assert http.get("/batches?size=-1").json()["sessions"] == []


def test_delete_returns_deleted_then_404(http: Client) -> None:
    http.submit("gone", durationSeconds="30")
    resp = http.delete("/batches/0")
    assert (resp.status_code, resp.json()) == (200, {"msg": "deleted"})
    assert http.get("/batches/0").status_code == 404
    assert http.get("/batches/gone").status_code == 404
    assert http.get("/batches").json()["total"] == 0
    assert http.admin_batches()[0]["state"] == "killed"
    assert http.submit("gone").status_code == 201  # the name is free again


def test_version(http: Client) -> None:
    assert http.get("/version").json()["version"] == "0.9.0-incubating"


def test_unknown_route_and_wrong_method(http: Client) -> None:
    assert http.get("/sessions").status_code == 404
    assert http.session.put(http.url + "/batches", timeout=5).status_code == 405
    assert http.get("/batches").status_code == 200


def test_csrf_on_rejects_unsafe_methods_without_header() -> None:
    with LivyStandin(csrf=True) as server, requests.Session() as s:
        resp = s.post(server.url + "/batches", json={"file": "a.py"}, timeout=5)
        assert resp.status_code == 400
        assert "Missing Required Header for CSRF protection." in resp.text
        assert resp.headers["Content-Type"].startswith("text/html")
        with pytest.raises(ValueError):
            resp.json()
        assert s.get(server.url + "/batches", timeout=5).json()["total"] == 0
        ok = s.post(
            server.url + "/batches", json={"file": "a.py"}, headers={"X-Requested-By": "x"}, timeout=5
        )
        assert ok.status_code == 201
        assert s.delete(server.url + "/batches/0", timeout=5).status_code == 400
        assert s.post(server.url + "/admin/reset-stats", timeout=5).status_code == 200  # admin is exempt
        assert s.delete(server.url + "/batches/0", headers={"X-Requested-By": "x"}, timeout=5).ok


def test_csrf_off_accepts_without_header(http: Client) -> None:
    assert http.submit().status_code == 201
    assert http.delete("/batches/0").status_code == 200


def test_drop_reply_creates_batch_but_sends_nothing(http: Client) -> None:
    with pytest.raises(requests.ConnectionError):
        http.submit("lost", dropReply="true")
    assert http.get("/batches/lost").json()["id"] == 0
    again = http.submit("lost", dropReply="true")
    assert again.status_code == 400
    assert again.json() == {"msg": "Rejected, Reason: Duplicate session name: Some(lost) for session 1"}
    stats = http.stats()
    assert (stats["posts"], stats["batches_created"]) == (2, 1)


def test_drop_reply_only_first_post_of_a_name_and_always_without_name(http: Client) -> None:
    with pytest.raises(requests.ConnectionError):
        http.submit("once", dropReply="true", **FAST_CONF)
    http.delete("/batches/once")
    assert http.submit("once", dropReply="true").status_code == 201
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            http.submit(dropReply="true")
    assert http.get("/batches").json()["total"] == 3


def test_reply_delay_causes_client_read_timeout(http: Client) -> None:
    with pytest.raises(requests.ReadTimeout):
        http.session.post(
            http.url + "/batches",
            json={"file": "a.py", "name": "slow", "conf": {"spark.standin.replyDelaySeconds": "0.6"}},
            timeout=(2, 0.2),
        )
    assert http.get("/batches/slow").status_code == 200


def test_bad_standin_conf_is_400_and_uses_no_id(http: Client) -> None:
    resp = http.submit(outcome="exploded")
    assert resp.status_code == 400
    assert "spark.standin.outcome" in resp.json()["msg"]
    assert http.submit(typoKey="1").status_code == 400
    assert http.submit().json()["id"] == 0


def test_garbage_on_the_wire_does_not_kill_the_server(standin: LivyStandin, http: Client) -> None:
    with socket.create_connection(("127.0.0.1", standin.port), timeout=2) as sock:
        sock.sendall(b"\x00\x01garbage\r\n\r\n")
        sock.recv(1024)
    with socket.create_connection(("127.0.0.1", standin.port), timeout=2) as sock:
        sock.sendall(b"POST /batches HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
    assert http.get("/version").status_code == 200


def test_non_loopback_host_is_refused() -> None:
    for host in ("0.0.0.0", "10.1.2.3", "example.com", "::1"):
        with pytest.raises(ValueError, match="loopback"):
            LivyStandin(host=host)
