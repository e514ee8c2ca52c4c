"""
Crash recovery of LivyOperator under a real Airflow 3.3 scheduler, with real SIGKILLs; and a re-run.

Each test checks one scenario (see ``conftest.SCENARIOS``); the scenarios run concurrently against one
deployment, each with its own DAG run. A batch belongs to a run by its Spark conf
(``spark.airflow.run_id``). Livy's POST counter is global, so the exact number of POSTs of one run is
established in two steps: the stand-in saw exactly as many POSTs as it created batches (no POST
anywhere was rejected or lost), and this run owns N of those batches, so the run made N POSTs.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import pytest

from e2e.airflow_deployment import CLEARED_MESSAGE, RECONNECT_MESSAGE, CrashRun, alive

if TYPE_CHECKING:
    from e2e.conftest import CrashRuns

# Skipped by conftest.py unless Airflow >= 3.3 is installed (and /proc exists).
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),  # the first test also waits for the deployment to start
]

KILLED_BY_SIGKILL = "signal_name=SIGKILL"
"""What the supervisor logs into a try's log when its task process died of SIGKILL."""


def posts_of(runs: CrashRuns, run: CrashRun) -> int:
    """The POSTs this run made (see the module docstring); waits for every scenario to finish."""
    finished = runs.wait_all()
    stats = runs.deployment.livy_stats()
    every_batch = runs.deployment.livy_batches()
    assert stats["posts"] == stats["batches_created"] == len(every_batch), (
        f"the stand-in saw a POST that created no batch, or a batch of no run: {stats}"
    )
    assert sum(len(r.batches) for r in finished) == len(every_batch), every_batch
    deletes = stats["requests"]["DELETE /batches/{id}"] + stats["requests"]["DELETE /batches/{name}"]
    assert deletes == 0, f"a killed or orphaned try deleted a batch: {stats}"
    return len(run.batches)


def reconnect_line(run: CrashRun, try_number: int) -> str:
    """The mixin's "Reconnecting to existing job" line of a try; it shows the stored record."""
    lines = [line for line in run.log(try_number).splitlines() if RECONNECT_MESSAGE in line]
    assert len(lines) == 1, run.describe()
    return lines[0]


def check_succeeded_with(run: CrashRun, batch: dict) -> None:
    """The task succeeded on try 2 and returned ``batch``'s id, and pushed its application id."""
    assert run.error is None, run.describe()
    assert run.final_state == "success", run.describe()
    assert run.try_number == 2, run.describe()
    assert batch["state"] == "success", run.describe()
    assert isinstance(run.return_value, int), run.describe()
    assert run.return_value == batch["id"], run.describe()
    assert batch["appId"], run.describe()
    assert run.app_id == batch["appId"], run.describe()


@pytest.mark.crash_scenario("task_kill_durable")
def test_task_process_killed_mid_poll_reconnects(crash_runs: CrashRuns) -> None:
    run = crash_runs.get("task_kill_durable")

    assert "task" in run.killed_pids, run.describe()
    assert KILLED_BY_SIGKILL in run.log(1), run.describe()
    assert "Submitting Livy batch" not in run.log(2), run.describe()
    assert posts_of(crash_runs, run) == 1, run.describe()
    (batch,) = run.batches
    assert batch["name"].startswith("airflow-example_livy-spark_pi-"), batch
    # Try 1 had persisted the batch id; try 2 reconnected to it.
    assert f"'batch_id': {batch['id']}," in reconnect_line(run, 2), run.describe()
    check_succeeded_with(run, batch)


@pytest.mark.crash_scenario("task_kill_not_durable")
def test_not_durable_control_submits_a_duplicate(crash_runs: CrashRuns) -> None:
    run = crash_runs.get("task_kill_not_durable")

    assert KILLED_BY_SIGKILL in run.log(1), run.describe()
    assert RECONNECT_MESSAGE not in run.log(2), run.describe()
    assert "Submitting Livy batch" in run.log(2), run.describe()
    assert posts_of(crash_runs, run) == 2, run.describe()
    first, second = sorted(run.batches, key=lambda b: b["id"])
    assert first["conf"] == second["conf"], "the same Spark job, submitted twice"
    assert first["name"] is None, run.batches
    assert second["name"] is None, run.batches
    check_succeeded_with(run, second)


@pytest.mark.crash_scenario("supervisor_kill_durable")
def test_supervisor_killed_heartbeat_timeout_reconnects(crash_runs: CrashRuns) -> None:
    run = crash_runs.get("supervisor_kill_durable")

    assert "supervisor" in run.killed_pids, run.describe()
    kill_at = next(e.seconds for e in run.events if e.text.startswith("SIGKILL supervisor"))
    retry_at = next(e.seconds for e in run.events if e.text == "try 2: running")
    # Only the heartbeat timeout (10 s after the last heartbeat, sent every 2 s) fails try 1; after a
    # task-process kill, try 2 runs within ~2 s.
    assert retry_at - kill_at >= 6, f"try 2 started before the heartbeat timeout\n{run.describe()}"
    assert "Submitting Livy batch" not in run.log(2), run.describe()
    # The orphaned task process of try 1 may poll the same batch meanwhile (here it dies at its next
    # log line: its supervisor's socket is gone). Once it is gone, there is still one batch.
    orphan = run.killed_pids["task"]
    deadline = time.monotonic() + 60
    while alive(orphan) and time.monotonic() < deadline:
        time.sleep(1)
    run.batches = crash_runs.deployment.livy_batches(run.run_id)
    assert posts_of(crash_runs, run) == 1, run.describe()
    (batch,) = run.batches
    assert f"'batch_id': {batch['id']}," in reconnect_line(run, 2), run.describe()
    check_succeeded_with(run, batch)


@pytest.mark.crash_scenario("kill_after_post_durable")
def test_killed_between_post_and_persisting_the_id_finds_the_batch_by_name(crash_runs: CrashRuns) -> None:
    run = crash_runs.get("kill_after_post_durable")

    assert run.killed_pids == {}, "the task killed itself; the harness killed nothing"
    assert KILLED_BY_SIGKILL in run.log(1), run.describe()
    assert "Submitting Livy batch" not in run.log(2), run.describe()
    # Only the write-ahead record (the name, no id) had reached the store when try 1 died.
    assert "'batch_id': None," in reconnect_line(run, 2), run.describe()
    assert posts_of(crash_runs, run) == 1, run.describe()
    (batch,) = run.batches
    assert batch["name"].startswith("airflow-livy_crash_after_post-spark_pi-"), batch
    assert f"'name': '{batch['name']}'" in reconnect_line(run, 2), run.describe()
    assert f"Found batch '{batch['name']}' under id {batch['id']}" in run.log(2), run.describe()
    check_succeeded_with(run, batch)


@pytest.mark.crash_scenario("rerun_after_clear")
def test_rerun_after_a_clear_submits_a_new_batch(crash_runs: CrashRuns) -> None:
    run = crash_runs.get("rerun_after_clear")
    cleared = run.clear

    assert cleared is not None, run.describe()
    # Try 1 succeeded with one batch and delivered it.
    assert cleared.ti_before == {"state": "success", "try_number": 1, "max_tries": 1}, run.describe()
    (first,) = cleared.batches
    assert first["state"] == "success", run.describe()
    assert cleared.return_value == first["id"], run.describe()
    assert first["appId"], run.describe()
    assert cleared.app_id == first["appId"], run.describe()
    # What the operator's "first try since the clear" rests on: max_tries = try_number + retries.
    assert cleared.ti_cleared == {"state": None, "try_number": 1, "max_tries": 2}, run.describe()
    assert cleared.dag_run_state in ("queued", "running"), run.describe()

    # Try 2 found the record of try 1's delivered result and submitted a new batch.
    delivered = f"batch {first['id']} ({first['name']!r}) delivered its result in try 1, {CLEARED_MESSAGE}"
    assert delivered in run.log(2), run.describe()
    assert RECONNECT_MESSAGE not in run.log(2), run.describe()
    assert posts_of(crash_runs, run) == 2, run.describe()
    earlier, second = sorted(run.batches, key=lambda b: b["id"])
    assert (earlier["id"], earlier["name"]) == (first["id"], first["name"]), run.describe()
    assert second["conf"] == first["conf"], "the same Spark job, run again"
    named = re.compile(r"airflow-example_livy-spark_pi-.+-t(\d+)-s(\d+)-([0-9a-f]{10})")
    first_name, second_name = named.fullmatch(first["name"]), named.fullmatch(second["name"] or "")
    assert first_name is not None, first
    assert second_name is not None, second
    # Submission 2 of the task instance (same digest), by try 2: the first try since the clear.
    assert first_name.groups() == ("1", "1", second_name.group(3)), run.batches
    assert second_name.groups()[:2] == ("2", "2"), run.batches
    submitted = [line for line in run.log(2).splitlines() if "Submitting Livy batch" in line]
    assert len(submitted) == 1, run.describe()
    assert f"name={second['name']!r}" in submitted[0], run.describe()
    check_succeeded_with(run, second)
    assert run.app_id != cleared.app_id, run.describe()
