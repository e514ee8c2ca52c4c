"""
Crash recovery of LivyOperator under a real Airflow 3.3+ scheduler, with real SIGKILLs; and a re-run.

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
from typing import TYPE_CHECKING

import pytest

from e2e.airflow_deployment import (
    AIRFLOW_3_4_PLUS,
    AIRFLOW_VERSION,
    HEARTBEAT_TIMEOUT,
    CrashRun,
    alive,
    batch_paths,
)
from e2e.checks import (
    TRY_1_FAILED,
    between,
    check_succeeded_with,
    check_try_1_killed,
    checked_posts,
    deletes_of,
    is_read_by_id,
    only_reads_by_id,
    polls_of,
)

if TYPE_CHECKING:
    from e2e.conftest import CrashRuns

# Skipped by conftest.py unless Airflow >= 3.3 is installed (and /proc exists).
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),  # the first test also waits for the deployment to start
]

NAMED = re.compile(r"airflow-example_livy-spark_pi-.+-t(\d+)-s(\d+)-([0-9a-f]{10})")
"""The durable operator's batch name: ``...-t<try>-s<submission>-<digest of the task instance>``."""
KILLED_BY_SIGKILL = "signal_name=SIGKILL"
"""What Airflow's supervisor (not the operator) logs into a try's log when its task process died of it."""
NO_DELETE = "a killed or orphaned try deleted a batch"


@pytest.mark.crash_scenario("task_kill_durable")
def test_task_process_killed_mid_poll_reconnects(crash_runs: CrashRuns) -> None:
    run = crash_runs.get("task_kill_durable")

    assert "task" in run.killed_pids, run.describe()
    killed_at = check_try_1_killed(run)
    (post,) = checked_posts(crash_runs, run)
    assert deletes_of(run) == [], f"{NO_DELETE}\n{run.describe()}"
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
    assert deletes_of(run) == [], f"{NO_DELETE}\n{run.describe()}"
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
    retry_after = run.try_start(2) - killed_at
    if not AIRFLOW_3_4_PLUS:
        # Only the heartbeat timeout (10 s after the last heartbeat, sent every 2 s) fails try 1;
        # after a task-process kill, try 2 runs within ~2 s.
        assert retry_after >= HEARTBEAT_TIMEOUT - 4, (
            f"try 2 started {retry_after:.1f} s after the kill\n{run.describe()}"
        )
    # Airflow 3.4's LocalExecutor sees its worker process (the supervisor) die and fails try 1 at once:
    # try 2 may start while the orphaned task process of try 1 still polls. Either way, what follows
    # must hold: one batch, no DELETE, try 2 on the same batch.
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
    assert deletes_of(run) == [], f"{NO_DELETE}\n{run.describe()}"
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
    assert deletes_of(run) == [], f"{NO_DELETE}\n{run.describe()}"
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
    """
    The task succeeded and is cleared as the UI does: the re-run submits a new batch and returns it.

    Airflow 3.3's clear keeps the task state store: the re-run finds try 1's delivered record, sees it
    is the first try since the clear and posts submission 2 (``-t2-s2-``). Airflow 3.4's clear
    discards it by default: the re-run finds no record and posts submission 1 of try 2 (``-t2-s1-``).
    """
    run = crash_runs.get("rerun_after_clear")
    assert run.clear is not None, run.describe()
    assert run.clear.keep_task_state is None, run.describe()
    kept = not AIRFLOW_3_4_PLUS
    check_rerun_after_clear(crash_runs, run, kept_state=kept, submission=2 if kept else 1)


@pytest.mark.skipif(
    not AIRFLOW_3_4_PLUS,
    reason=f"keep_task_state is new in Airflow 3.4 (installed: {AIRFLOW_VERSION}); before 3.4 every clear "
    "keeps the task state store, and test_rerun_after_a_clear_submits_a_new_batch covers this",
)
@pytest.mark.crash_scenario("rerun_after_clear_keeping_state")
def test_rerun_after_a_clear_keeping_the_task_state_submits_a_new_batch(crash_runs: CrashRuns) -> None:
    """
    Airflow 3.4, cleared with ``keep_task_state``: the re-run finds try 1's delivered record, as on 3.3,
    and must not return try 1's result: it posts submission 2 (``-t2-s2-``) and returns the new batch.
    """
    run = crash_runs.get("rerun_after_clear_keeping_state")
    assert run.clear is not None, run.describe()
    assert run.clear.keep_task_state is True, run.describe()
    check_rerun_after_clear(crash_runs, run, kept_state=True, submission=2)


def check_rerun_after_clear(
    crash_runs: CrashRuns, run: CrashRun, *, kept_state: bool, submission: int
) -> None:
    """
    Try 1 succeeded and delivered batch 1; after the clear, try 2 posted a new batch, named
    ``-t2-s<submission>-``, and returned it. ``kept_state``: the task state store still held try 1's
    record right after the clear.
    """
    cleared = run.clear
    assert cleared is not None, run.describe()
    # Try 1 succeeded with one batch and delivered it.
    assert cleared.ti_before == {"state": "success", "try_number": 1, "max_tries": 1}, run.describe()
    (first,) = cleared.batches
    assert first["state"] == "success", run.describe()
    assert cleared.return_value == first["id"], run.describe()
    assert first["appId"], run.describe()
    assert cleared.app_id == first["appId"], run.describe()
    # What the operator's "first try since the clear" rests on: max_tries = the try before the clear
    # + retries. Airflow 3.3 reports the cleared try (1, incremented when it runs again); 3.4 has
    # already created the next one (2).
    cleared_try = 2 if AIRFLOW_3_4_PLUS else 1
    assert cleared.ti_cleared == {"state": None, "try_number": cleared_try, "max_tries": 2}, run.describe()
    assert cleared.dag_run_state in ("queued", "running"), run.describe()
    # The scenario ran as designed: the record of try 1's delivered batch survived the clear, or not.
    if kept_state:
        assert isinstance(cleared.store_after, dict), run.describe()
        assert (cleared.store_after.get("batch_id"), cleared.store_after.get("delivered_try")) == (
            first["id"],
            1,
        ), run.describe()
    else:
        assert cleared.store_after is None, run.describe()

    posts = checked_posts(crash_runs, run)
    assert deletes_of(run) == [], f"{NO_DELETE}\n{run.describe()}"
    assert len(posts) == 2, run.describe()
    earlier, second = sorted(run.batches, key=lambda b: b["id"])
    assert (earlier["id"], earlier["name"]) == (first["id"], first["name"]), run.describe()
    assert second["conf"] == first["conf"], "the same Spark job, run again"
    first_name, second_name = NAMED.fullmatch(first["name"]), NAMED.fullmatch(second["name"] or "")
    assert first_name is not None, first
    assert second_name is not None, second
    # Try 2's batch, of the same task instance (same digest): submission 2 after the record of try 1
    # (the first try since the clear), submission 1 when the clear discarded it.
    assert first_name.groups() == ("1", "1", second_name.group(3)), run.batches
    assert second_name.groups()[:2] == ("2", str(submission)), run.batches
    # One POST per run of the task: try 1's before the clear; try 2's after it.
    assert run.get_try(1).state == "success", run.describe()
    assert [(p["name"], p["created_id"]) for p in posts] == [
        (first["name"], first["id"]),
        (second["name"], second["id"]),
    ], run.describe()
    assert run.try_start(1) <= posts[0]["time"] < cleared.at <= run.try_start(2) <= posts[1]["time"], (
        run.describe()
    )
    # Try 2 left try 1's batch alone (it decided from the record, or from its absence, without asking
    # Livy): it began with its POST and then only polled the new batch.
    # Without a record (3.4's discarding clear) it first looked up the earlier run's batch by its name:
    # a read that found it finished, so it was left alone.
    requests_2 = between(run, run.try_start(2))
    post_at = requests_2.index(posts[1])
    looked_up = [] if kept_state else [("GET", f"/batches/{first['name']}")]
    assert [(e["method"], e["path"]) for e in requests_2[:post_at]] == looked_up, run.describe()
    assert polls_of(requests_2, second["id"]), run.describe()
    assert only_reads_by_id(requests_2[post_at + 1 :], second["id"]), run.describe()
    check_succeeded_with(run, second)
    assert run.app_id != cleared.app_id, run.describe()
