"""
Crash recovery of LivyOperator under a real Airflow 3.3 scheduler, with real SIGKILLs; and a re-run.

Each test checks one scenario (see ``conftest.SCENARIOS``); the scenarios run concurrently against one
deployment, each with its own DAG run. A batch belongs to a run by its Spark conf
(``spark.airflow.run_id``).

The tests assert on data, never on the operator's log wording:

* the stand-in's request journal (``GET /admin/requests``: every Livy request with its arrival time,
  status, and for a POST the batch name and the id it created). A request belongs to a run when it
  names one of the run's batches by id or name, or created one of them;
* the times of the tries (the REST API's ``.../tries``: start and end of each) and of the harness's
  SIGKILL or clear, all wall-clock times on this machine. A try's start is stamped by its supervisor
  before the task process does anything, so every request after it belongs to that try (or to an
  orphan of an earlier one, which the supervisor scenario waits out);
* the batches the stand-in created, and the XComs the task pushed.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import pytest

from e2e.airflow_deployment import CrashRun, alive, batch_paths

if TYPE_CHECKING:
    from e2e.conftest import CrashRuns

# Skipped by conftest.py unless Airflow >= 3.3 is installed (and /proc exists).
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),  # the first test also waits for the deployment to start
]

KILLED_BY_SIGKILL = "signal_name=SIGKILL"
"""What Airflow's supervisor (not the operator) logs into a try's log when its task process died of it."""
TRY_1_FAILED = ("up_for_retry", "failed")
"""How the tries endpoint shows a try that failed and was retried."""

Request = dict[str, Any]


def checked_posts(runs: CrashRuns, run: CrashRun) -> list[Request]:
    """
    This run's POSTs in the journal, in arrival order; waits for every scenario to finish.

    First checks the whole journal: every POST anywhere created a batch (so none is left out of a
    run: a POST is the run's when it created one of the run's batches), each batch came from one
    POST, and nothing was deleted.
    """
    finished = runs.wait_all()
    journal = runs.deployment.livy_requests()
    every_batch = runs.deployment.livy_batches()
    posts = [e for e in journal if e["method"] == "POST"]
    assert all(e["status"] == 201 and e["created_id"] is not None for e in posts), posts
    assert sorted(e["created_id"] for e in posts) == sorted(b["id"] for b in every_batch), every_batch
    assert sum(len(r.batches) for r in finished) == len(every_batch), every_batch
    deletes = [e for e in journal if e["method"] == "DELETE"]
    assert deletes == [], "a killed or orphaned try deleted a batch"
    ids = {b["id"] for b in run.batches}
    run.requests = runs.deployment.livy_requests(run.batches)
    return [e for e in run.requests if e["method"] == "POST" and e["created_id"] in ids]


def between(run: CrashRun, start: float, end: float | None = None) -> list[Request]:
    """The run's requests that arrived at or after ``start`` and (if given) before ``end``."""
    return [e for e in run.requests if e["time"] >= start and (end is None or e["time"] < end)]


def polls_of(requests: list[Request], batch_id: int) -> list[Request]:
    """The answered polls of a batch by its id: ``GET /batches/{id}`` or ``GET /batches/{id}/state``."""
    paths = {f"/batches/{batch_id}", f"/batches/{batch_id}/state"}
    return [e for e in requests if e["method"] == "GET" and e["path"] in paths and e["status"] == 200]


def is_read_by_id(request: Request, batch_id: int) -> bool:
    """Whether ``request`` is a GET of the batch, its state or its log, by the batch's id."""
    return request["method"] == "GET" and request["path"] in batch_paths(batch_id)


def only_reads_by_id(requests: list[Request], batch_id: int) -> bool:
    """Whether every request read the batch by its id (no POST, no lookup by name, no other batch)."""
    return all(is_read_by_id(e, batch_id) for e in requests)


def check_try_1_killed(run: CrashRun) -> float:
    """The harness SIGKILLed try 1 while it ran, and try 2 started after try 1 ended; the kill time."""
    assert run.killed_at is not None, run.describe()
    assert run.get_try(1).state in TRY_1_FAILED, run.describe()
    assert run.try_start(1) < run.killed_at <= run.try_end(1) <= run.try_start(2), run.describe()
    return run.killed_at


def check_succeeded_with(run: CrashRun, batch: dict) -> None:
    """The task succeeded on try 2 and returned ``batch``'s id, and pushed its application id."""
    assert run.error is None, run.describe()
    assert run.final_state == "success", run.describe()
    assert run.try_number == 2, run.describe()
    assert run.get_try(2).state == "success", run.describe()
    assert batch["state"] == "success", run.describe()
    assert isinstance(run.return_value, int), run.describe()
    assert run.return_value == batch["id"], run.describe()
    assert batch["appId"], run.describe()
    assert run.app_id == batch["appId"], run.describe()


@pytest.mark.crash_scenario("task_kill_durable")
def test_task_process_killed_mid_poll_reconnects(crash_runs: CrashRuns) -> None:
    run = crash_runs.get("task_kill_durable")

    assert "task" in run.killed_pids, run.describe()
    killed_at = check_try_1_killed(run)
    (post,) = checked_posts(crash_runs, run)
    (batch,) = run.batches
    assert batch["name"].startswith("airflow-example_livy-spark_pi-"), batch
    assert (post["name"], post["created_id"]) == (batch["name"], batch["id"]), run.describe()
    # Try 1 posted, then polled the batch by id (so it had persisted the id) until the kill.
    assert run.try_start(1) <= post["time"] < killed_at, run.describe()
    assert polls_of(between(run, post["time"], killed_at), batch["id"]), run.describe()
    # Try 2 read the stored id: it polled the batch by id, and posted nothing nor looked up a name.
    try_2 = between(run, run.try_start(2))
    assert try_2, run.describe()
    # Its first request already named the id: it had it from the store, not from Livy.
    assert is_read_by_id(try_2[0], batch["id"]), run.describe()
    assert polls_of(try_2, batch["id"]), run.describe()
    assert only_reads_by_id(try_2, batch["id"]), run.describe()
    check_succeeded_with(run, batch)


@pytest.mark.crash_scenario("task_kill_not_durable")
def test_not_durable_control_submits_a_duplicate(crash_runs: CrashRuns) -> None:
    run = crash_runs.get("task_kill_not_durable")

    killed_at = check_try_1_killed(run)
    posts = checked_posts(crash_runs, run)
    assert len(posts) == 2, run.describe()
    first, second = sorted(run.batches, key=lambda b: b["id"])
    assert first["conf"] == second["conf"], "the same Spark job, submitted twice"
    assert first["name"] is None, run.batches
    assert second["name"] is None, run.batches
    # One POST per try: try 1's before the kill, try 2's after it started.
    assert [p["created_id"] for p in posts] == [first["id"], second["id"]], run.describe()
    assert [p["name"] for p in posts] == [None, None], run.describe()
    assert run.try_start(1) <= posts[0]["time"] < killed_at, run.describe()
    assert polls_of(between(run, posts[0]["time"], killed_at), first["id"]), run.describe()
    try_2 = between(run, run.try_start(2))
    assert try_2[0] == posts[1], f"try 2 did not begin with its POST\n{run.describe()}"
    # Try 2 never looked at try 1's batch again; it waited for its own.
    assert not any(e["path"] in batch_paths(first["id"]) for e in try_2), run.describe()
    assert polls_of(try_2, second["id"]), run.describe()
    check_succeeded_with(run, second)


@pytest.mark.crash_scenario("supervisor_kill_durable")
def test_supervisor_killed_heartbeat_timeout_reconnects(crash_runs: CrashRuns) -> None:
    run = crash_runs.get("supervisor_kill_durable")

    assert "supervisor" in run.killed_pids, run.describe()
    killed_at = check_try_1_killed(run)
    # Only the heartbeat timeout (10 s after the last heartbeat, sent every 2 s) fails try 1; after a
    # task-process kill, try 2 runs within ~2 s.
    retry_after = run.try_start(2) - killed_at
    assert retry_after >= 6, f"try 2 started {retry_after:.1f} s after the kill\n{run.describe()}"
    # The orphaned task process of try 1 may poll the same batch meanwhile (here it dies at its next
    # log line: its supervisor's socket is gone). Once it is gone, there is still one batch.
    orphan = run.killed_pids["task"]
    deadline = time.monotonic() + 60
    while alive(orphan) and time.monotonic() < deadline:
        time.sleep(1)
    assert not alive(orphan), run.describe()
    orphan_gone = run.marks.get("orphan_exited")
    assert orphan_gone is not None, f"the orphaned task process outlived the run\n{run.describe()}"
    run.batches = crash_runs.deployment.livy_batches(run.run_id)
    (post,) = checked_posts(crash_runs, run)
    (batch,) = run.batches
    assert (post["name"], post["created_id"]) == (batch["name"], batch["id"]), run.describe()
    assert run.try_start(1) <= post["time"] < killed_at, run.describe()
    # After the kill, the orphan and try 2 only read the batch by id; once the orphan was gone, try 2
    # alone went on polling the same id.
    assert only_reads_by_id(between(run, killed_at), batch["id"]), run.describe()
    try_2 = between(run, max(run.try_start(2), orphan_gone))
    assert try_2, run.describe()
    assert is_read_by_id(try_2[0], batch["id"]), run.describe()
    assert polls_of(try_2, batch["id"]), run.describe()
    check_succeeded_with(run, batch)


@pytest.mark.crash_scenario("kill_after_post_durable")
def test_killed_between_post_and_persisting_the_id_finds_the_batch_by_name(crash_runs: CrashRuns) -> None:
    run = crash_runs.get("kill_after_post_durable")

    assert run.killed_pids == {}, "the task killed itself; the harness killed nothing"
    # The only evidence of how try 1 ended is Airflow's own supervisor line (not the operator's).
    assert KILLED_BY_SIGKILL in run.log(1), run.describe()
    assert run.get_try(1).state in TRY_1_FAILED, run.describe()
    (post,) = checked_posts(crash_runs, run)
    (batch,) = run.batches
    assert batch["name"].startswith("airflow-livy_crash_after_post-spark_pi-"), batch
    assert (post["name"], post["created_id"]) == (batch["name"], batch["id"]), run.describe()
    assert run.try_start(1) <= post["time"] <= run.try_end(1) <= run.try_start(2), run.describe()
    # Try 1 died as the POST returned: no request of it followed, so the id never reached the store.
    assert between(run, post["time"], run.try_start(2)) == [post], run.describe()
    # Try 2 had only the write-ahead record (the name): it looked the batch up by name, then polled
    # the id it found; it posted nothing.
    try_2 = between(run, run.try_start(2))
    by_name = [e for e in try_2 if e["path"] == f"/batches/{batch['name']}"]
    assert by_name, run.describe()
    assert try_2[0] == by_name[0], run.describe()
    assert (by_name[0]["method"], by_name[0]["status"]) == ("GET", 200), run.describe()
    by_id = [e for e in try_2 if e not in by_name]
    assert polls_of(by_id, batch["id"]), run.describe()
    assert only_reads_by_id(by_id, batch["id"]), run.describe()
    assert max(e["seq"] for e in by_name) < min(e["seq"] for e in by_id), run.describe()
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

    posts = checked_posts(crash_runs, run)
    assert len(posts) == 2, run.describe()
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
    # One POST per run of the task: try 1's before the clear; try 2's, named -t2-s2-, after it.
    assert run.get_try(1).state == "success", run.describe()
    assert [(p["name"], p["created_id"]) for p in posts] == [
        (first["name"], first["id"]),
        (second["name"], second["id"]),
    ], run.describe()
    assert run.try_start(1) <= posts[0]["time"] < cleared.at <= run.try_start(2) <= posts[1]["time"], (
        run.describe()
    )
    # Try 2 read the record of try 1's delivered result (it posted submission 2) and left try 1's
    # batch alone: it began with its POST and then only polled the new batch.
    requests_2 = between(run, run.try_start(2))
    assert requests_2[0] == posts[1], run.describe()
    assert polls_of(requests_2, second["id"]), run.describe()
    assert only_reads_by_id(requests_2[1:], second["id"]), run.describe()
    check_succeeded_with(run, second)
    assert run.app_id != cleared.app_id, run.describe()
