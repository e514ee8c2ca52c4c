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
The fault matrix: a real process running ``LivyOperator`` is SIGKILLed at each point a worker can
die, against the Livy stand-in; the next try must leave exactly one Spark batch and return the same
result as an uninterrupted run. (The real-Airflow e2e suite repeats the key points under a real
scheduler; this suite covers every point in seconds.)

Then what Livy's front may answer instead of Livy (scripted faults: 429, 403, a gateway's HTML 404),
and Airflow stopping a try for real: SIGTERM (``on_kill`` from the signal handler, as the task
runner calls it) while polling or while the POST is in flight, with the task instance ``running``
(the worker goes away) or marked ``failed``; ``execution_timeout``; and a stale try that was frozen
while a later try took the batch over. Every test asserts on data: the stand-in's request journal,
its batches, the stored record, the try's exit and exception type, and the result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow.providers.apache.livy.version_compat import AIRFLOW_V_3_3_PLUS
from faults.worker import RETRIES, TI_STATE_FILE, TI_STATE_QUERIES_FILE

pytestmark = [
    pytest.mark.faults,
    pytest.mark.airflow33,
    pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="durable execution needs Airflow 3.3+"),
]

WORKER = Path(__file__).with_name("worker.py")
JOB = {"spark.standin.startingSeconds": "0.3", "spark.standin.durationSeconds": "1.5"}


@pytest.fixture
def livy():
    from livy_standin import LivyStandin

    with LivyStandin(port=0) as standin:
        yield standin


@dataclass
class Try:
    exitcode: int
    output: str
    hung: bool = False
    """The test SIGKILLed it because it did not end in time."""

    @property
    def killed(self) -> bool:
        return self.exitcode == -signal.SIGKILL and not self.hung

    @property
    def exception(self) -> str | None:
        """The type of the exception that ended the try (printed by the worker), or ``None``."""
        for line in self.output.splitlines():
            if line.startswith("EXCEPTION "):
                return json.loads(line.removeprefix("EXCEPTION "))["type"]
        return None


@pytest.fixture(scope="module")
def fork_server():
    """One process that imported Airflow, forking a fresh child for every try."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [sys.executable, str(WORKER), "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    yield server
    server.stdin.close()
    try:
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()


class Tries:
    """Starts tries in their own processes (several may run at once) and waits for them to end."""

    def __init__(self, livy, state: Path, server: subprocess.Popen) -> None:
        self.livy, self.state, self.server = livy, state, server
        self.running: set[int] = set()

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        reply = self.server.stdout.readline()
        assert reply, "the fork server died"
        return json.loads(reply)

    def start(
        self,
        try_number: int,
        kill_at: str | None = None,
        max_tries: int = RETRIES,
        *,
        retries: int = RETRIES,
        execution_timeout: float | None = None,
        timeout_after_polls: int | None = None,
        **conf: str,
    ) -> int:
        """Start a try; return its pid (the task process a test may signal)."""
        argv = ["--state", str(self.state), "--try", str(try_number), "--max-tries", str(max_tries)]
        argv += ["--retries", str(retries), "--livy-port", str(self.livy.port)]
        argv += ["--conf", json.dumps({**JOB, **conf})]
        if kill_at:
            argv += ["--kill-at", kill_at]
        if execution_timeout:
            argv += ["--execution-timeout", str(execution_timeout)]
        if timeout_after_polls:
            argv += ["--timeout-after-polls", str(timeout_after_polls)]
        pid = self._ask({"start": argv})["pid"]
        self.running.add(pid)
        return pid

    def wait(self, pid: int, timeout: float = 30.0) -> Try:
        """Wait for try ``pid`` to end (it is SIGKILLed after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        hung = _alive(pid)
        if hung:
            os.kill(pid, signal.SIGKILL)
        self.running.discard(pid)
        return Try(**self._ask({"wait": pid}), hung=hung)

    def run(
        self, try_number: int, kill_at: str | None = None, max_tries: int = RETRIES, **options: Any
    ) -> Try:
        """Run one try to its end."""
        return self.wait(self.start(try_number, kill_at, max_tries, **options))

    def stop_all(self) -> None:
        """End the tries this test started and did not wait for (only those, by pid)."""
        for pid in list(self.running):
            for sig in (signal.SIGCONT, signal.SIGKILL):
                os.kill(pid, sig)
            self.wait(pid)


def _alive(pid: int) -> bool:
    """Whether child ``pid`` of the fork server still runs (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def tries(livy, tmp_path, fork_server):
    """Tries of one task instance; the task state store and XComs persist in ``tmp_path``."""
    started = Tries(livy, tmp_path, fork_server)
    yield started
    started.stop_all()


@pytest.fixture
def run_try(tries):
    """Run one try in its own process, to its end."""
    return tries.run


def killed(attempt: Try) -> bool:
    return attempt.killed


def result_of(attempt: Try) -> dict[str, Any]:
    assert attempt.exitcode == 0, attempt.output[-4000:]
    line = next(line for line in attempt.output.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def ours(livy) -> list[dict[str, Any]]:
    return [batch for batch in livy.batches() if (batch["name"] or "").startswith("airflow-faults-")]


def without_links(xcoms: dict[str, Any]) -> dict[str, Any]:
    """The XComs but the extra links' (``_link_...``, pushed while the batch runs)."""
    return {key: value for key, value in xcoms.items() if not key.startswith("_link_")}


def assert_one_batch_and_its_result(livy, result: dict[str, Any]) -> None:
    batches = ours(livy)
    assert len(batches) == 1, f"expected exactly one Spark batch, Livy created {batches}"
    assert batches[0]["state"] == "success"
    assert result["return_value"] == batches[0]["id"]
    assert without_links(result["xcoms"]) == {"app_id": batches[0]["appId"]}
    assert batches[0]["appId"]


def test_uninterrupted_run(livy, run_try):
    assert_one_batch_and_its_result(livy, result_of(run_try(1)))


@pytest.mark.parametrize(
    "point",
    [
        "before_post",
        "after_post",
        "mid_poll",
        "after_success_before_log_dump",
        "during_log_dump",
        "during_xcom_push",
        "after_delivery",
    ],
)
def test_worker_killed_then_retried(livy, run_try, point):
    first = run_try(1, kill_at=point)
    assert killed(first), first.output[-3000:]
    assert_one_batch_and_its_result(livy, result_of(run_try(2)))


def test_post_reply_lost_is_resolved_in_the_same_try(livy, run_try):
    result = result_of(run_try(1, **{"spark.standin.dropReply": "true"}))
    assert livy.stats()["posts"] == 1
    assert_one_batch_and_its_result(livy, result)


def test_post_reply_lost_then_worker_killed(livy, run_try):
    first = run_try(1, kill_at="after_lost_reply", **{"spark.standin.dropReply": "true"})
    assert killed(first)
    assert_one_batch_and_its_result(livy, result_of(run_try(2, **{"spark.standin.dropReply": "true"})))


def test_livy_restart_reuses_the_id_for_another_teams_batch(livy, run_try):
    assert killed(run_try(1, kill_at="mid_poll"))
    our_first = ours(livy)[0]
    livy.restart(recovery=False)
    other = requests.post(
        f"{livy.url}/batches",
        json={"file": "other.py", "name": "another-team", "conf": {"spark.standin.durationSeconds": "30"}},
        timeout=10,
    ).json()
    assert other["id"] == our_first["id"], "the stand-in should reuse ids after a restart"

    result = result_of(run_try(2))

    mine = [batch for batch in ours(livy) if not batch["forgotten"]]
    assert len(mine) == 1
    assert mine[0]["name"] != our_first["name"]  # resubmitted, as a new submission
    assert result["return_value"] == mine[0]["id"]
    assert mine[0]["id"] != other["id"]
    assert without_links(result["xcoms"]) == {"app_id": mine[0]["appId"]}
    assert requests.get(f"{livy.url}/batches/{other['id']}", timeout=10).json()["state"] == "running"
    requests_seen = livy.stats()["requests"]
    assert requests_seen["DELETE /batches/{id}"] == requests_seen["DELETE /batches/{name}"] == 0


def test_livy_forgot_the_finished_batch(livy, run_try):
    assert killed(run_try(1, kill_at="after_success_before_log_dump"))
    livy.forget(ours(livy)[0]["id"])
    result = result_of(run_try(2))
    batches = ours(livy)
    assert len(batches) == 1
    assert (result["return_value"], result["xcoms"]["app_id"]) == (batches[0]["id"], batches[0]["appId"])


def test_recovering_after_a_livy_restart_is_waited_for(livy, run_try):
    assert killed(run_try(1, kill_at="mid_poll"))
    livy.restart(recovery=True, recovering_seconds=1.0)
    assert ours(livy)[0]["state"] == "recovering"
    assert_one_batch_and_its_result(livy, result_of(run_try(2)))


def test_rerun_after_success_submits_a_new_batch(livy, run_try):
    first = result_of(run_try(1))
    second = result_of(run_try(2, max_tries=1 + RETRIES))  # the task was cleared after it succeeded
    batches = ours(livy)
    assert len(batches) == 2
    assert first["return_value"] == batches[0]["id"]
    assert second["return_value"] == batches[1]["id"]
    assert without_links(second["xcoms"]) == {"app_id": batches[1]["appId"]}


# ---- What Livy's front answers instead of Livy ----------------------------------------------------

GATEWAY_404 = (
    "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
    "<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
LOST_REPLY = {"spark.standin.dropReply": "true"}


def posts(livy) -> list[dict[str, Any]]:
    return [entry for entry in livy.requests() if entry["kind"] == "POST /batches"]


def deletes(livy) -> list[dict[str, Any]]:
    return [entry for entry in livy.requests() if entry["method"] == "DELETE"]


def stored(state: Path) -> dict[str, Any]:
    """The record in the task state store."""
    return json.loads((state / "task_state_store.json").read_text())["livy_batch_record"]


@pytest.mark.parametrize(
    ("status", "body", "content_type", "error"),
    [
        (429, '{"message": "Too Many Requests"}', "application/json", "LivyHttpError"),
        (403, "<html><body><h1>403 Forbidden</h1></body></html>", "text/html", "LivyAuthError"),
        (404, GATEWAY_404, "text/html", "LivyHttpError"),
    ],
    ids=["429", "403", "html-404"],
)
def test_lookup_error_after_a_lost_post_reply_fails_the_try_and_the_next_finds_the_batch(
    livy, tries, tmp_path, status, body, content_type, error
):
    livy.add_fault("GET /batches/{name}", status, body, method="GET", content_type=content_type)
    first = tries.run(1, **LOST_REPLY)
    assert first.exitcode == 1, first.output[-3000:]
    assert first.exception == error
    (post,) = posts(livy)
    assert post["status"] is None  # the reply was lost...
    assert post["created_id"] is not None  # ...after Livy created the batch
    lookups = [e for e in livy.requests() if e["kind"] == "GET /batches/{name}"]
    assert [(e["path"], e["status"], e["fault"]) for e in lookups] == [
        (f"/batches/{post['name']}", status, 0)
    ]
    record = stored(tmp_path)
    assert record["name"] == post["name"]
    assert (record["batch_id"], record["final_state"]) == (None, None), "the record still awaits creation"

    result = result_of(tries.run(2, **LOST_REPLY))

    assert len(posts(livy)) == 1
    assert deletes(livy) == []
    assert_one_batch_and_its_result(livy, result)
    assert ours(livy)[0]["name"] == post["name"]
    assert stored(tmp_path)["delivered_try"] == 2


def test_gateway_404_on_the_batch_when_reconnecting_is_an_error_not_a_lost_batch(livy, tries, tmp_path):
    retried = {"max_tries": 2, "retries": 2}
    assert killed(tries.run(1, kill_at="mid_poll", **retried))
    (batch,) = ours(livy)
    left = stored(tmp_path)
    seen = len(livy.requests())
    livy.add_fault(
        "GET /batches/{id}", 404, GATEWAY_404, path=f"/batches/{batch['id']}", content_type="text/html"
    )

    second = tries.run(2, **retried)

    assert second.exitcode == 1, second.output[-3000:]
    assert second.exception == "LivyHttpError"
    assert [(e["kind"], e["status"], e["fault"]) for e in livy.requests()[seen:]] == [
        ("GET /batches/{id}", 404, 0)  # no lookup by name, no POST
    ]
    assert stored(tmp_path) == left

    result = result_of(tries.run(3, **retried))

    assert len(posts(livy)) == 1
    assert deletes(livy) == []
    assert_one_batch_and_its_result(livy, result)


def test_gateway_404_while_polling_fails_the_try_without_touching_the_batch(livy, tries, tmp_path):
    livy.add_fault("GET /batches/{id}/state", 404, GATEWAY_404, content_type="text/html")

    first = tries.run(1)

    assert first.exitcode == 1, first.output[-3000:]
    assert first.exception == "LivyHttpError"
    (post,) = posts(livy)
    kinds = [(e["kind"], e["status"], e["fault"]) for e in livy.requests()]
    assert kinds == [("POST /batches", 201, None), ("GET /batches/{id}/state", 404, 0)]
    record = stored(tmp_path)
    assert (record["batch_id"], record["final_state"]) == (post["created_id"], None)

    result = result_of(tries.run(2))

    assert len(posts(livy)) == 1
    assert deletes(livy) == []
    assert_one_batch_and_its_result(livy, result)


# ---- Airflow stops a try: SIGTERM, execution_timeout, a stale try -------------------------------


def wait_until(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
    return value


def polled_batch(livy) -> dict[str, Any]:
    """Wait until our batch's state was polled (the try is in its wait) while it is active; return it."""

    def polled() -> dict[str, Any] | None:
        batches = ours(livy)
        if not batches:
            return None
        state_path = f"/batches/{batches[0]['id']}/state"
        polls = [e for e in livy.requests() if e["path"] == state_path and e["status"] == 200]
        return batches[0] if polls else None

    batch = wait_until(polled)
    assert batch["state"] in ("starting", "running")
    return batch


def set_ti_state(state: Path, ti_state: str | None) -> None:
    """What the API server now holds for this task instance (e.g. a user marked it failed)."""
    (state / TI_STATE_FILE).write_text(json.dumps({"state": ti_state}))


def ti_state_queries(state: Path) -> list[dict[str, Any]]:
    path = state / TI_STATE_QUERIES_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


THIS_TI = {"dag_id": "faults", "map_index": None, "task_ids": ["spark_job"], "run_ids": ["manual__1"]}


def assert_deleted_by_this_try(livy, state: Path) -> dict[str, Any]:
    """
    One DELETE, of our one batch while it was active, after its one POST; the result never delivered.

    The record keeps the deleted batch as ``killed``, so no later try adopts it or re-posts its name.
    """
    (post,) = posts(livy)
    (batch,) = ours(livy)
    (delete,) = deletes(livy)
    assert (delete["path"], delete["status"]) == (f"/batches/{batch['id']}", 200)
    assert delete["seq"] > post["seq"]
    assert (batch["forgotten_reason"], batch["state"]) == ("delete", "killed")
    record = stored(state)
    assert record["name"] == batch["name"] == post["name"]
    assert (record["batch_id"], record["final_state"], record["delivered_try"]) == (
        batch["id"],
        "killed",
        None,
    )
    return batch


def test_sigterm_while_polling_with_the_task_still_running_keeps_the_batch_for_the_retry(
    livy, tries, tmp_path
):
    pid = tries.start(1)
    polled_batch(livy)
    os.kill(pid, signal.SIGTERM)  # the worker goes away: the API server still holds the try running

    first = tries.wait(pid)

    assert first.exitcode == 1, first.output[-3000:]
    assert first.exception == "LivyTaskStopped"
    assert ti_state_queries(tmp_path) == [{"try": 1, **THIS_TI}]
    assert deletes(livy) == []
    assert not ours(livy)[0]["forgotten"]
    record = stored(tmp_path)
    assert (record["owner_try"], record["final_state"], record["delivered_try"]) == (1, None, None)

    result = result_of(tries.run(2))

    assert len(posts(livy)) == 1
    assert deletes(livy) == []
    assert_one_batch_and_its_result(livy, result)


@pytest.mark.parametrize(
    ("held", "try_number", "deleted"),
    [
        ({"state": "failed"}, 1, True),  # marked failed: the supervisor sends SIGTERM
        ({"state": "success"}, 1, True),  # marked success
        ({"state": "restarting"}, 1, True),  # cleared while running
        ({"state": None}, 1, True),  # cleared
        ({}, 1, True),  # the task instance or its dag run was deleted
        ({"state": "running"}, 1 + RETRIES, True),  # the worker goes away on the last try
        ({"error": "the supervisor's channel is closed"}, 1, False),  # Airflow cannot be asked
    ],
    ids=["failed", "success", "restarting", "cleared", "deleted", "running-last-try", "cannot-ask"],
)
def test_sigterm_while_polling_deletes_the_batch_only_when_airflow_means_the_task_to_stop(
    livy, tries, tmp_path, held, try_number, deleted
):
    pid = tries.start(try_number)
    polled_batch(livy)
    (tmp_path / TI_STATE_FILE).write_text(json.dumps(held))
    os.kill(pid, signal.SIGTERM)

    first = tries.wait(pid)

    assert first.exitcode == 1, first.output[-3000:]
    assert first.exception == "LivyTaskStopped"
    assert ti_state_queries(tmp_path) == [{"try": try_number, **THIS_TI}]
    assert without_links(json.loads((tmp_path / "xcom.json").read_text())) == {}
    if deleted:
        assert_deleted_by_this_try(livy, tmp_path)
    else:
        assert deletes(livy) == []
        assert not ours(livy)[0]["forgotten"]
        assert stored(tmp_path)["owner_try"] == try_number


def test_sigterm_during_the_post_with_the_task_marked_failed_deletes_the_batch_once_posted(
    livy, tries, tmp_path
):
    delay = 1.0
    pid = tries.start(1, **{"spark.standin.replyDelaySeconds": str(delay)})
    wait_until(lambda: ours(livy))  # Livy registered the batch and holds its reply back
    set_ti_state(tmp_path, "failed")
    signalled = time.time()
    os.kill(pid, signal.SIGTERM)

    first = tries.wait(pid)

    assert first.exitcode == 1, first.output[-3000:]
    assert first.exception == "LivyTaskStopped"
    (post,) = posts(livy)
    assert post["status"] == 201
    assert signalled < post["time"] + delay, "the SIGTERM came after Livy answered the POST"
    assert ti_state_queries(tmp_path) == [{"try": 1, **THIS_TI}]
    assert_deleted_by_this_try(livy, tmp_path)


def test_execution_timeout_while_polling_deletes_the_batch(livy, tries, tmp_path):
    first = tries.run(1, timeout_after_polls=3)

    assert first.exitcode == 1, first.output[-3000:]
    assert first.exception == "AirflowTaskTimeout"
    assert ti_state_queries(tmp_path) == [], "a timeout is Airflow's own decision: nothing to ask"
    assert_deleted_by_this_try(livy, tmp_path)


def test_execution_timeout_before_livy_answered_the_post_deletes_the_batch_found_by_name(
    livy, tries, tmp_path
):
    delay = 3.0
    first = tries.run(1, execution_timeout=1.0, **{"spark.standin.replyDelaySeconds": str(delay)})

    assert first.exitcode == 1, first.output[-3000:]
    assert first.exception == "AirflowTaskTimeout"
    (post,) = wait_until(lambda: posts(livy))  # journaled once its delayed reply went out
    lookups = [e for e in livy.requests() if e["kind"] == "GET /batches/{name}"]
    assert [(e["path"], e["status"]) for e in lookups] == [(f"/batches/{post['name']}", 200)]
    batch = assert_deleted_by_this_try(livy, tmp_path)
    (delete,) = deletes(livy)
    assert delete["time"] < post["time"] + delay, "the DELETE waited for Livy's answer to the POST"
    assert stored(tmp_path)["batch_id"] == post["created_id"]  # found by name, then recorded killed
    assert batch["id"] == post["created_id"]


@pytest.mark.parametrize("stale_ends_by", ["resuming", "execution_timeout"])
def test_stale_try_leaves_the_batch_and_the_record_to_the_try_that_took_it_over(
    livy, tries, tmp_path, stale_ends_by
):
    alarm = 5.0  # the stale try's execution_timeout expires while it is frozen: on_kill() as it resumes
    started = time.monotonic()
    stale = tries.start(1, execution_timeout=alarm if stale_ends_by == "execution_timeout" else None)
    polled_batch(livy)
    os.kill(stale, signal.SIGSTOP)  # a frozen worker; Airflow gave up on it and retried
    # Its alarm was armed after `started` and before it polled: it expires in [started, frozen_at] + alarm,
    # so after the freeze (with a second to spare, a cold start included) and by frozen_at + alarm.
    frozen_at = time.monotonic()
    assert frozen_at - started < alarm - 1, "too slow to freeze the stale try before its timeout"

    result = result_of(tries.run(2))

    assert_one_batch_and_its_result(livy, result)
    record = stored(tmp_path)
    assert (record["owner_try"], record["delivered_try"]) == (2, 2)
    store, xcoms = tmp_path / "task_state_store.json", tmp_path / "xcom.json"
    written = [(path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns) for path in (store, xcoms)]
    seen = len(livy.requests())
    time.sleep(
        max(0.0, frozen_at + alarm + 0.2 - time.monotonic()) if stale_ends_by == "execution_timeout" else 0
    )
    os.kill(stale, signal.SIGCONT)

    first = tries.wait(stale)

    assert first.exitcode == 1, first.output[-3000:]
    if stale_ends_by == "execution_timeout":
        assert first.exception == "AirflowTaskTimeout"
        # It may finish the poll it was frozen in (a read); it never deletes, posts or looks it up.
        touched = [
            (e["method"], e["kind"]) for e in livy.requests()[seen:] if e["kind"] != "GET /batches/{id}/state"
        ]
        assert touched == [], "the stale try's on_kill() touched a batch it lost"
    else:
        assert first.exception == "LivyBatchTakenOver"
    after = [(path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns) for path in (store, xcoms)]
    assert after == written, "the stale try wrote the task state store or the XComs"
    assert len(posts(livy)) == 1
    assert deletes(livy) == []
    assert_one_batch_and_its_result(livy, result)
