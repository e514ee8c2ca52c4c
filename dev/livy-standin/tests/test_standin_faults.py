"""Scripted error replies: POST|GET|DELETE /admin/faults and LivyStandin.add_fault()."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from standin_helpers import Client

from livy_standin import ApiError, LivyStandin

GATEWAY_404 = "<html><body><h1>404 Not Found</h1>nginx</body></html>"


def add(http: Client, **spec: Any) -> dict[str, Any]:
    reply = http.post("/admin/faults", json=spec)
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def test_a_fault_answers_the_next_matching_request_once_then_livy_does(http: Client) -> None:
    http.submit("n1")
    fault = add(
        http,
        method="GET",
        kind="GET /batches/{name}",
        status=429,
        body='{"message": "slow down"}',
        content_type="application/json",
        headers={"Retry-After": "1"},
    )
    assert fault == {
        "id": 0,
        "kind": "GET /batches/{name}",
        "method": "GET",
        "path": None,
        "status": 429,
        "body": '{"message": "slow down"}',
        "content_type": "application/json",
        "headers": {"Retry-After": "1"},
        "times": 1,
        "served": 0,
    }
    first = http.get("/batches/n1")
    assert (first.status_code, first.text) == (429, '{"message": "slow down"}')
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["Retry-After"] == "1"
    second = http.get("/batches/n1")
    assert second.status_code == 200 and second.json()["name"] == "n1"
    assert http.get("/admin/faults").json() == []
    entries = http.get("/admin/requests").json()
    assert [(e["kind"], e["status"], e["fault"]) for e in entries] == [
        ("POST /batches", 201, None),
        ("GET /batches/{name}", 429, 0),
        ("GET /batches/{name}", 200, None),
    ]
    assert http.stats()["requests"]["GET /batches/{name}"] == 2


def test_livy_never_sees_a_faulted_request(http: Client) -> None:
    add(http, kind="POST /batches", status=502, body="<html>Bad Gateway</html>", content_type="text/html")
    add(http, kind="DELETE /batches/{id}", status=403, body={"error": "forbidden"})
    refused = http.submit("p1")
    assert (refused.status_code, refused.text) == (502, "<html>Bad Gateway</html>")
    assert refused.headers["Content-Type"] == "text/html"
    assert http.stats()["batches_created"] == 0
    created = http.submit("p1")  # the name is free and no id was used
    assert (created.status_code, created.json()["id"]) == (201, 0)
    forbidden = http.delete("/batches/0")
    assert forbidden.status_code == 403 and forbidden.json() == {"error": "forbidden"}
    assert forbidden.headers["Content-Type"] == "application/json;charset=utf-8"
    assert http.get("/batches/0").json()["state"] in ("starting", "running")
    entries = http.get("/admin/requests").json()
    assert [(e["method"], e["status"], e["name"], e["created_id"], e["fault"]) for e in entries] == [
        ("POST", 502, None, None, 0),
        ("POST", 201, "p1", 0, None),
        ("DELETE", 403, None, None, 1),
        ("GET", 200, None, None, None),
    ]


def test_faults_match_kind_method_and_path_in_the_order_added(http: Client) -> None:
    http.submit("m1")
    add(http, kind="GET /batches/{id}", status=404, body=GATEWAY_404, path="/batches/7", times=2)
    add(http, kind="GET /batches/{id}", status=503, method="HEAD")
    add(http, kind="GET /batches/{id}", status=500)
    add(http, kind="GET /batches/{id}", status=501)
    assert http.get("/batches/0/state").status_code == 200  # another kind
    assert http.get("/batches/m1").status_code == 200  # by name: another kind
    assert http.session.head(http.url + "/batches/0", timeout=5).status_code == 503
    assert http.get("/batches/0").status_code == 500  # the first one for GET /batches/0
    gateway = http.get("/batches/7")
    assert (gateway.status_code, gateway.text) == (404, GATEWAY_404)
    assert gateway.headers["Content-Type"] == "text/plain;charset=utf-8"
    pending = http.get("/admin/faults").json()
    assert [(f["id"], f["times"], f["served"]) for f in pending] == [(0, 1, 1), (3, 1, 0)]
    assert http.get("/batches/7").status_code == 404
    assert http.get("/batches/7").status_code == 501  # used up: the next one matches
    assert http.get("/batches/7").json() == {"msg": "Session '7' not found."}  # Livy's own, again
    assert http.get("/batches/0").status_code == 200


def test_other_kind_never_touches_the_admin_endpoints(http: Client) -> None:
    add(http, kind="other", status=500, times=5)
    assert http.get("/admin/stats").status_code == 200
    assert http.get("/nope").status_code == 500
    assert http.get("/admin/faults").json()[0]["times"] == 4


def test_a_fault_answers_before_the_csrf_filter() -> None:
    with LivyStandin(csrf=True) as server, requests.Session() as session:
        server.add_fault("POST /batches", 429)
        reply = session.post(server.url + "/batches", json={"file": "a.py"}, timeout=5)
        assert (reply.status_code, reply.text) == (429, "")
        assert session.post(server.url + "/batches", json={"file": "a.py"}, timeout=5).status_code == 400


def test_reset_and_delete_drop_the_faults_a_restart_keeps_them(http: Client, standin: LivyStandin) -> None:
    add(http, kind="GET /version", status=500, times=3)
    http.post("/admin/restart", json={})
    assert len(http.get("/admin/faults").json()) == 1
    assert http.post("/admin/reset-stats").status_code == 200
    assert http.get("/admin/faults").json() == []
    add(http, kind="GET /version", status=500)
    add(http, kind="GET /version", status=501)
    assert http.delete("/admin/faults").json() == {"msg": "cleared", "dropped": 2}
    assert http.get("/version").status_code == 200
    standin.add_fault("GET /version", 500)
    standin.reset_stats()
    assert standin.faults() == []


def test_in_process_methods_match_the_endpoints(http: Client, standin: LivyStandin) -> None:
    made = standin.add_fault("GET /batches/{name}", 403, {"msg": "no"}, method="get", times=2)
    assert made["method"] == "GET" and made["content_type"] == "application/json;charset=utf-8"
    assert standin.faults() == http.get("/admin/faults").json() == [made]
    assert standin.clear_faults() == {"msg": "cleared", "dropped": 1}
    assert standin.faults() == []


@pytest.mark.parametrize(
    "spec",
    [
        {"status": 500},
        {"kind": "GET /batches/{nom}", "status": 500},
        {"kind": "GET /version"},
        {"kind": "GET /version", "status": 99},
        {"kind": "GET /version", "status": "500"},
        {"kind": "GET /version", "status": True},
        {"kind": "GET /version", "status": 500, "times": 0},
        {"kind": "GET /version", "status": 500, "times": 1.5},
        {"kind": "GET /version", "status": 500, "method": "POST"},
        {"kind": "DELETE /batches/{id}", "status": 500, "method": "HEAD"},
        {"kind": "GET /version", "status": 500, "method": "G E T"},
        {"kind": "GET /version", "status": 500, "path": "version"},
        {"kind": "GET /version", "status": 500, "headers": {"Content-Type": "text/html"}},
        {"kind": "GET /version", "status": 500, "headers": {"X-A": 1}},
        {"kind": "GET /version", "status": 500, "content_type": ""},
        {"kind": "GET /version", "status": 204, "body": "x"},
        {"kind": "GET /version", "status": 500, "delay": 1},
    ],
)
def test_a_bad_fault_is_refused(http: Client, standin: LivyStandin, spec: dict[str, Any]) -> None:
    reply = http.post("/admin/faults", json=spec)
    assert reply.status_code == 400
    assert reply.json()["msg"].startswith("admin: ")
    assert http.get("/admin/faults").json() == []
    with pytest.raises(ApiError) as refused:
        standin.registry.add_fault(spec)
    assert refused.value.status == 400
