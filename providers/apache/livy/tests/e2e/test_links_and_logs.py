"""
LivyOperator's extra links and live Spark log in a real Airflow (LocalExecutor) with the stand-in.

* The links, as ``GET /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/links`` returns them,
  while the batch runs and after the task ended (the stand-in clears ``driverLogUrl`` at the end, as
  YARN does; the link keeps the URL seen while it ran).
* The live log of a job that writes 1,000 lines, polled every second from the worker and from the
  triggerer: every line the stand-in produced is in the task log once, in order.
* A reconnect: the task process is SIGKILLed mid-job; the retry goes on from the stored cursor.

The numbers measured (the links, lines shown / lines produced) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from e2e.airflow_deployment import Deployment, wait_until
from e2e.conftest import CrashRuns

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),  # the first test also waits for the deployment to start
]

TASK = "spark_pi"
JOB_LINES = 1000
JOB_SECONDS = "25"
"""40 lines a second, polled every second: well within Livy's 200-line ring between two polls."""
RING_LINES = 200
"""Livy's log buffer (``livy.cache-log.size``): all a retry can show again."""
LINE = re.compile(r"\bline (\d+) of batch (\d+)\b")
LINK_NAMES = ("Livy Batch", "Spark UI", "Spark Driver Log")


@dataclass
class LinkedRun:
    """One run: the links read while it ran and after it ended, and its task log per try."""

    dag_id: str
    run_id: str
    links_running: dict[str, str | None] = field(default_factory=dict)
    state_when_read: str | None = None
    links_finished: dict[str, str | None] = field(default_factory=dict)
    final_state: str | None = None
    logs: dict[int, str] = field(default_factory=dict)
    posts: int | None = None


def links(deployment: Deployment, dag_id: str, run_id: str) -> dict[str, str | None]:
    reply = deployment.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{TASK}/links")
    return reply["extra_links"]


def run_and_read_links(deployment: Deployment, dag_id: str, run_id: str) -> LinkedRun:
    run = LinkedRun(dag_id, run_id)
    deployment.wait_for_dag(dag_id)
    deployment.trigger(dag_id, run_id, conf={"duration": JOB_SECONDS})

    def links_while_running() -> dict[str, str | None] | None:
        current = links(deployment, dag_id, run_id)
        return current if current.get("Spark Driver Log") else None

    run.links_running = wait_until(f"{dag_id} links", links_while_running, timeout=120, interval=0.5)
    ti = deployment.task_instance(dag_id, run_id, TASK)
    run.state_when_read = None if ti is None else ti["state"]
    ended = deployment.wait_for_state(dag_id, run_id, TASK, {"success", "failed"}, timeout=180)
    run.final_state = ended["state"]
    run.links_finished = links(deployment, dag_id, run_id)
    run.logs = {1: wait_for_log(deployment, dag_id, run_id, 1)}
    return run


def wait_for_log(deployment: Deployment, dag_id: str, run_id: str, try_number: int) -> str:
    """The try's log once its last Spark line arrived (the triggerer's lines may come late)."""

    def complete() -> str | None:
        text = deployment.task_log(dag_id, run_id, TASK, try_number)
        return text if "did not succeed" in text or f"line {JOB_LINES} of batch" in text else None

    try:
        return wait_until(f"the log of {dag_id}/{run_id}", complete, timeout=60, interval=1)
    except Exception:
        return deployment.task_log(dag_id, run_id, TASK, try_number)


def spark_lines(text: str) -> list[int]:
    return [int(match[1]) for match in LINE.finditer(text)]


KILL_AFTER_LINES = 300


def run_and_kill_mid_log(deployment: Deployment, dag_id: str, run_id: str) -> LinkedRun:
    """SIGKILL try 1's task process once its log shows ``KILL_AFTER_LINES`` lines; the retry reconnects."""
    run = LinkedRun(dag_id, run_id)
    deployment.wait_for_dag(dag_id)
    deployment.trigger(dag_id, run_id, conf={"duration": JOB_SECONDS})

    def enough_shown() -> dict[str, Any] | None:
        if len(spark_lines(deployment.task_log(dag_id, run_id, TASK, 1))) < KILL_AFTER_LINES:
            return None
        return deployment.task_instance(dag_id, run_id, TASK)

    ti = wait_until(f"{KILL_AFTER_LINES} lines in the log of {run_id}", enough_shown, timeout=120)
    task_pid, _ = deployment.worker_processes(ti["id"])
    deployment.sigkill(task_pid)
    ended = deployment.wait_for_state(dag_id, run_id, TASK, {"success", "failed"}, timeout=180)
    run.final_state = ended["state"]
    run.logs = {
        1: deployment.task_log(dag_id, run_id, TASK, 1),
        2: wait_for_log(deployment, dag_id, run_id, 2),
    }
    run.posts = len(deployment.livy_batches(run_id))
    return run


@pytest.fixture(scope="module")
def runs(airflow_deployment: Deployment, crash_runs: CrashRuns) -> dict[str, Any]:
    """
    The three runs of this file, concurrently: polling, deferrable, and polling with a crash; while the
    crash scenarios of the session run (``crash_runs`` starts them; conftest runs this module first).
    """
    stamp = time.strftime("%Y%m%dT%H%M%S")
    with ThreadPoolExecutor(max_workers=3) as pool:
        polling = pool.submit(run_and_read_links, airflow_deployment, "livy_live_log", f"links-poll-{stamp}")
        deferred = pool.submit(
            run_and_read_links, airflow_deployment, "livy_live_log_deferrable", f"links-defer-{stamp}"
        )
        crashed = pool.submit(
            run_and_kill_mid_log, airflow_deployment, "livy_live_log", f"links-crash-{stamp}"
        )
        return {"polling": polling.result(), "deferrable": deferred.result(), "crash": crashed.result()}


@pytest.mark.parametrize("mode", ["polling", "deferrable"])
def test_the_links_work_while_the_batch_runs_and_after(runs, airflow_deployment, mode):
    run: LinkedRun = runs[mode]
    print(f"\n[{mode}] links while {run.state_when_read}: {run.links_running}")
    print(f"[{mode}] links once {run.final_state}: {run.links_finished}")
    assert run.final_state == "success"
    assert run.state_when_read in ("running", "deferred", "queued", "scheduled")
    assert set(LINK_NAMES) <= set(run.links_running)
    livy = airflow_deployment.livy_url
    assert re.fullmatch(re.escape(livy) + r"/ui/batch/\d+/log", run.links_running["Livy Batch"] or "")
    assert (run.links_running["Spark UI"] or "").startswith(f"{livy}/fake-cluster/application_")
    assert (run.links_running["Spark Driver Log"] or "").endswith("/driver-log")
    assert run.links_finished == run.links_running  # the driver log URL is kept after YARN cleared it


@pytest.mark.parametrize("mode", ["polling", "deferrable"])
def test_every_line_of_a_1000_line_job_reaches_the_task_log_once_in_order(runs, mode):
    run: LinkedRun = runs[mode]
    shown = spark_lines(run.logs[1])
    print(f"\n[{mode}] lines shown / produced: {len(shown)} / {JOB_LINES}; distinct {len(set(shown))}")
    assert shown == list(range(1, JOB_LINES + 1))
    assert "were lost" not in run.logs[1]


def test_a_retry_goes_on_from_the_stored_cursor_and_loses_no_line(runs):
    """
    The cursor is stored with the task's few writes (and every ``checkpoint_seconds`` of a long
    wait), not on every poll: the retry of a try killed between two of them shows again, in its own
    log, the lines since the last one (at most Livy's ring), each once, and then the rest.
    """
    run: LinkedRun = runs["crash"]
    assert run.final_state == "success"
    assert run.posts == 1
    first, second = spark_lines(run.logs[1]), spark_lines(run.logs[2])
    again = sorted(set(first) & set(second))
    print(
        f"\n[crash] try 1 showed {len(first)}, try 2 showed {len(second)} ({len(again)} of them shown by "
        f"try 1 too), of {JOB_LINES}"
    )
    assert len(first) >= KILL_AFTER_LINES
    assert first == list(range(1, len(first) + 1))
    assert second == list(range(second[0], JOB_LINES + 1))  # each line once, in order, to the end
    assert second[0] <= len(first) + 1  # nothing lost between the tries
    assert len(again) <= RING_LINES
