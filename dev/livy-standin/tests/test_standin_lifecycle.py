"""Simulated jobs, logs (§3), states (§4), retention GC, ids and restarts (§5)."""

from __future__ import annotations

import pytest
from standin_helpers import Client, wait_for

from livy_standin import LivyStandin


def state(http: Client, ref: object) -> str:
    return str(http.get(f"/batches/{ref}/state").json()["state"])


def test_states_follow_the_clock_and_app_id_appears_when_running(http: Client) -> None:
    http.submit("clock", startingSeconds="0.3", durationSeconds="0.4")
    first = http.get("/batches/clock").json()
    assert (first["state"], first["appId"]) == ("starting", None)
    wait_for(lambda: state(http, "clock") != "starting")
    running = http.get("/batches/clock").json()
    assert running["state"] == "running"
    assert running["appId"] == "application_1700000000000_0000"
    assert running["appInfo"]["sparkUiUrl"].startswith("http://127.0.0.1:")
    wait_for(lambda: state(http, "clock") == "success")


@pytest.mark.parametrize("outcome", ["success", "dead", "killed"])
def test_outcome_is_configurable(http: Client, outcome: str) -> None:
    http.submit(outcome=outcome, startingSeconds="0", durationSeconds="0")
    assert http.get("/batches/0").json()["state"] == outcome


def test_log_lines_appear_progressively_between_markers(http: Client) -> None:
    http.submit(startingSeconds="0", durationSeconds="0.6", logLines="6")
    wait_for(lambda: 0 < http.get("/batches/0/log").json()["total"] - 2 < 6, step=0.01)
    wait_for(lambda: state(http, 0) == "success")
    log = http.get("/batches/0/log").json()
    assert list(log) == ["id", "from", "total", "log"]
    expected = ["stdout: ", *[f"line {i} of batch 0" for i in range(1, 7)], "\nstderr: "]
    assert (log["id"], log["from"], log["total"], log["log"]) == (0, 0, 8, expected)


def test_batch_object_log_is_last_ten_lines(http: Client) -> None:
    http.submit(startingSeconds="0", durationSeconds="0", logLines="30")
    assert http.get("/batches/0").json()["log"] == [
        *[f"line {i} of batch 0" for i in range(22, 31)],
        "\nstderr: ",
    ]


def test_log_ring_keeps_200_lines_plus_markers(http: Client) -> None:
    http.submit(startingSeconds="0", durationSeconds="0", logLines="250")
    whole = http.get("/batches/0/log?size=-1").json()
    assert whole["total"] == 202
    assert whole["from"] == 0
    assert whole["log"][0] == "stdout: " and whole["log"][-1] == "\nstderr: "
    assert whole["log"][1] == "line 51 of batch 0" and whole["log"][-2] == "line 250 of batch 0"


def test_log_from_size_semantics(http: Client) -> None:
    http.submit(startingSeconds="0", durationSeconds="0", logLines="150")  # 152 lines with markers

    def page(query: str) -> tuple[int, int, list[str]]:
        body = http.get(f"/batches/0/log?{query}").json()
        return body["from"], body["total"], body["log"]

    frm, total, lines = page("")  # no from: the tail of the default size 100
    assert (frm, total, len(lines)) == (52, 152, 100)
    assert page("from=-5&size=3") == (149, 152, ["line 149 of batch 0", "line 150 of batch 0", "\nstderr: "])
    assert page("from=1&size=2") == (1, 152, ["line 1 of batch 0", "line 2 of batch 0"])
    assert page("from=500&size=5") == (500, 152, [])
    assert page("from=150&size=10")[2] == ["line 150 of batch 0", "\nstderr: "]
    assert page("from=10&size=0")[2] == []
    assert page("from=1&size=2147483647")[2] == []  # from + size overflows int, as in Livy


def test_finished_batch_is_gcd_after_retention_and_frees_its_name(http: Client, standin: LivyStandin) -> None:
    standin.configure(retain_seconds=0.3, gc_interval=0.1)
    http.submit("short", startingSeconds="0", durationSeconds="0")
    http.submit("long", startingSeconds="0", durationSeconds="30")
    assert state(http, "short") == "success"
    assert http.submit("short").status_code == 400  # still in memory
    wait_for(lambda: http.get("/batches/short").status_code == 404)
    assert state(http, "long") == "running"  # active batches are never GC'd
    assert http.submit("short").status_code == 201
    forgotten = [b for b in http.admin_batches() if b["name"] == "short" and b["forgotten"]]
    assert forgotten and forgotten[0]["forgotten_reason"] == "gc"


def test_gc_waits_for_the_retain_period(http: Client, standin: LivyStandin) -> None:
    standin.configure(retain_seconds=30, gc_interval=0.05)
    http.submit("kept", startingSeconds="0", durationSeconds="0")
    assert standin.registry.collect_garbage() == []
    assert http.get("/batches/kept").status_code == 200


def test_restart_without_recovery_forgets_and_reuses_ids(http: Client) -> None:
    http.submit("a", startingSeconds="30")
    http.submit("b", startingSeconds="30")
    resp = http.post("/admin/restart", json={"recovery": False})
    assert resp.json()["next_id"] == 0
    assert http.get("/batches").json()["total"] == 0
    assert http.get("/batches/a").status_code == 404
    again = http.submit("c", startingSeconds="0").json()
    assert again["id"] == 0
    assert again["appId"] == "application_1700000000001_0000"  # unlike the old batch 0's app
    olds = [b for b in http.admin_batches() if b["epoch"] == 0]
    assert [(b["name"], b["forgotten"], b["state"]) for b in olds] == [
        ("a", True, "starting"),
        ("b", True, "starting"),
    ]


def test_restart_with_recovery_keeps_ids_names_and_shows_recovering(http: Client) -> None:
    http.submit("active", startingSeconds="0", durationSeconds="0.8", logLines="3")
    http.submit("ok", startingSeconds="0", durationSeconds="0")
    http.submit("failed", startingSeconds="0", durationSeconds="0", outcome="dead")
    http.submit("zombie", file=None)
    http.post("/admin/restart", json={"recovery": True, "recoveringSeconds": 0.3})
    assert state(http, "active") == "recovering"
    assert state(http, "ok") == "recovering"
    assert http.get("/batches/active/log").json()["log"] == []  # logs are lost
    assert http.get("/batches/failed").status_code == 404  # dead/killed are deleted from the store
    assert http.get("/batches/zombie").status_code == 404  # never saved to the store
    assert http.submit("active").status_code == 400  # the name is registered again
    assert http.submit("fresh").json()["id"] == 5  # ids are not reused
    wait_for(lambda: state(http, "ok") == "success")
    assert state(http, "active") in ("running", "success")
    wait_for(lambda: state(http, "active") == "success")


def test_restart_with_recovery_keep_finished(http: Client) -> None:
    http.submit("failed", startingSeconds="0", durationSeconds="0", outcome="dead")
    http.post("/admin/restart", json={"recovery": True, "recoveringSeconds": 5, "keepFinished": True})
    assert state(http, "failed") == "dead"


def test_graceful_restart_kills_active_jobs(http: Client) -> None:
    http.submit("g", startingSeconds="0", durationSeconds="30")
    http.post("/admin/restart", json={"graceful": True})
    assert http.admin_batches()[0]["state"] == "killed"
