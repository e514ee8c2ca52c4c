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
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow.providers.apache.livy.version_compat import AIRFLOW_V_3_3_PLUS
from faults.worker import RETRIES

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

    @property
    def killed(self) -> bool:
        return self.exitcode == -signal.SIGKILL


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


@pytest.fixture
def run_try(livy, tmp_path, fork_server):
    """Run one try in its own process; the task state store and XComs persist in ``tmp_path``."""

    def run(try_number: int, kill_at: str | None = None, max_tries: int = RETRIES, **conf: str) -> Try:
        argv = ["--state", str(tmp_path), "--try", str(try_number), "--max-tries", str(max_tries)]
        argv += ["--livy-port", str(livy.port), "--conf", json.dumps({**JOB, **conf})]
        if kill_at:
            argv += ["--kill-at", kill_at]
        fork_server.stdin.write(json.dumps(argv) + "\n")
        fork_server.stdin.flush()
        reply = fork_server.stdout.readline()
        assert reply, "the fork server died"
        return Try(**json.loads(reply))

    return run


def killed(attempt: Try) -> bool:
    return attempt.killed


def result_of(attempt: Try) -> dict[str, Any]:
    assert attempt.exitcode == 0, attempt.output[-4000:]
    line = next(line for line in attempt.output.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def ours(livy) -> list[dict[str, Any]]:
    return [batch for batch in livy.batches() if (batch["name"] or "").startswith("airflow-faults-")]


def assert_one_batch_and_its_result(livy, result: dict[str, Any]) -> None:
    batches = ours(livy)
    assert len(batches) == 1, f"expected exactly one Spark batch, Livy created {batches}"
    assert batches[0]["state"] == "success"
    assert result["return_value"] == batches[0]["id"]
    assert result["xcoms"] == {"app_id": batches[0]["appId"]}
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
    assert result["xcoms"] == {"app_id": mine[0]["appId"]}
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
    assert second["xcoms"] == {"app_id": batches[1]["appId"]}
