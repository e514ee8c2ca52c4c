"""
One live batch, alive exactly as long as Airflow means the task to run: ``on_kill`` under a real Airflow.

``LivyOperator(on_kill_action="auto")`` (the default) with ``durable=True`` deletes the Livy batch when
Airflow means the task to stop (marked failed, cleared, ``execution_timeout``; a deferred task marked
failed: ``LivyTrigger.on_kill``), and keeps it when only the worker goes away and a retry follows (a
graceful stop; a triggerer crash). An older try that is still alive (a frozen worker) never deletes the
batch nor writes the record: the try that reconnected owns it.

Each test checks one scenario of ``conftest.SCENARIOS``; they run concurrently with the crash scenarios
against the same deployment. Like ``test_crash_recovery.py``, the tests assert on data only: the
stand-in's request journal (which POSTs and DELETEs, when, for which batch), the task instance and its
tries through the REST API, the task state store entry and the XComs; never on log wording. Each test
first checks that its scenario ran as designed (the harness acted while try 1 polled a running batch),
then what the provider did.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from e2e.airflow_deployment import (
    AIRFLOW_3_4_PLUS,
    AIRFLOW_VERSION,
    GRACEFUL_STOP_GRACE,
    HEARTBEAT_PURGE_CRASHES_THE_SCHEDULER,
    batch_paths,
)
from e2e.checks import (
    TRY_1_FAILED,
    acted_while_polling,
    between,
    check_one_delete_of,
    check_only_try_1_failed,
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

EXECUTION_TIMEOUT_SECONDS = 8
"""``execution_timeout`` of the ``livy_execution_timeout`` DAG (tests/e2e/dags)."""
ON_KILL_SLACK_SECONDS = 10
"""Time ``on_kill`` may take on a loaded 2-core machine (a read of the batch, then its DELETE)."""
NAMED = re.compile(r"airflow-(?P<dag>.+)-spark_pi-.+-t(?P<try>\d+)-s(?P<submission>\d+)-[0-9a-f]{10}")
"""The unique batch name the durable operator gives: ``...-t<try>-s<submission>-<digest>``."""


@pytest.mark.crash_scenario("graceful_stop_durable")
def test_graceful_stop_keeps_the_batch_for_the_retry(crash_runs: CrashRuns) -> None:
    """
    SIGTERM to the worker (the TI still ``running``), a retry left: keep the batch for the retry.

    Airflow 3.3's supervisor forwards the SIGTERM: the task ends the try at once, keeping the batch.
    Airflow 3.4's supervisor does not (a warm shutdown: it waits for its task): the task polls on until
    the grace period ends in a SIGKILL. Either way the retry reconnects to the one batch.
    """
    run = crash_runs.get("graceful_stop_durable")

    assert run.kill == "sigterm", run.describe()
    assert set(run.killed_pids) == {"task", "supervisor"}, run.describe()
    killed_at = check_try_1_killed(run)
    posts = checked_posts(crash_runs, run)
    assert posts, run.describe()
    post = posts[0]
    batch = next(b for b in run.batches if b["id"] == post["created_id"])
    assert acted_while_polling(run, post, batch["id"]) == killed_at, run.describe()
    # The worker went away, Airflow did not mean the task to stop: the batch is kept, not resubmitted.
    assert deletes_of(run) == [], f"the graceful stop deleted the batch\n{run.describe()}"
    assert len(posts) == 1, f"expected 1 POST, got {len(posts)}\n{run.describe()}"
    assert len(run.batches) == 1, run.describe()
    if AIRFLOW_3_4_PLUS:
        # The SIGTERM did not reach the task: it polled the batch on through the grace period and was
        # SIGKILLed (no on_kill ran).
        sigkilled = run.marks.get("sigkilled")
        assert sigkilled is not None, f"try 1 ended within the grace\n{run.describe()}"
        assert "task_exited" not in run.marks, run.describe()
        assert sigkilled >= killed_at + GRACEFUL_STOP_GRACE, run.describe()
        assert polls_of(between(run, killed_at, sigkilled), batch["id"]), run.describe()
        assert sigkilled <= run.try_end(1), run.describe()
    else:
        # The try ended at once, within the grace period (no SIGKILL was needed).
        assert "task_exited" in run.marks, (
            f"try 1 outlived the {GRACEFUL_STOP_GRACE:.0f} s grace\n{run.describe()}"
        )
        assert "sigkilled" not in run.marks, run.describe()
    # From the SIGTERM until try 2 began, try 1 only read the batch by id.
    assert only_reads_by_id(between(run, killed_at, run.try_start(2)), batch["id"]), run.describe()
    # Try 2 reconnected: its first request addressed the same batch by id; it posted nothing.
    try_2 = between(run, run.try_start(2))
    assert try_2, run.describe()
    assert is_read_by_id(try_2[0], batch["id"]), run.describe()
    assert polls_of(try_2, batch["id"]), run.describe()
    assert only_reads_by_id(try_2, batch["id"]), run.describe()
    check_succeeded_with(run, batch)


@pytest.mark.crash_scenario("mark_failed_running")
def test_mark_failed_while_running_deletes_the_batch(crash_runs: CrashRuns) -> None:
    """Marked failed through the REST API while polling: the supervisor's SIGTERM ends in a DELETE."""
    run = crash_runs.get("mark_failed_running")

    assert run.kill == "mark_failed", run.describe()
    assert run.action_reply is not None, run.describe()
    assert (run.action_reply["state"], run.action_reply["try_number"]) == ("failed", 1), run.describe()
    posts = checked_posts(crash_runs, run)
    assert len(posts) == 1, f"expected 1 POST (no second submission), got {len(posts)}\n{run.describe()}"
    (post,) = posts
    (batch,) = run.batches
    acted_at = acted_while_polling(run, post, batch["id"])
    check_only_try_1_failed(run)
    check_one_delete_of(run, batch, after=acted_at)
    assert batch["forgotten_reason"] == "delete", run.describe()


@pytest.mark.crash_scenario("clear_running")
def test_clear_while_running_deletes_the_batch_and_the_rerun_submits_anew(crash_runs: CrashRuns) -> None:
    """Cleared while polling: try 1's batch is deleted; the re-run submits a new one and succeeds."""
    run = crash_runs.get("clear_running")

    assert run.kill == "clear", run.describe()
    assert run.action_reply is not None, run.describe()
    assert run.action_reply["try_number"] == 1, run.describe()
    assert run.action_reply["state"] == "restarting", run.describe()
    posts = checked_posts(crash_runs, run)
    first_post = posts[0] if posts else None
    assert first_post is not None, run.describe()
    first = next(b for b in run.batches if b["id"] == first_post["created_id"])
    acted_at = acted_while_polling(run, first_post, first["id"])
    # Try 1 deleted its batch (the clear stamps try 1's end at once; its task process ends after the
    # supervisor's next heartbeat), and only then did the re-run (try 2) start.
    delete = check_one_delete_of(run, first, after=acted_at)
    assert delete["time"] <= run.try_start(2), run.describe()
    assert len(posts) == 2, f"expected 2 POSTs (the re-run's own), got {len(posts)}\n{run.describe()}"
    second = next(b for b in run.batches if b["id"] == posts[1]["created_id"])
    assert second["id"] != first["id"], run.describe()
    assert second["conf"] == first["conf"], "the same Spark job, run again"
    first_name, second_name = NAMED.fullmatch(first["name"] or ""), NAMED.fullmatch(second["name"] or "")
    assert first_name is not None, run.batches
    assert second_name is not None, run.batches
    assert first_name.group("try") == "1", run.batches
    assert int(second_name.group("try")) >= 2, run.batches
    # The re-run wrote nothing but its POST: before it, it at most read the deleted batch (by id, then
    # by name: gone); after it, it only read its own batch.
    requests_2 = between(run, run.try_start(2))
    assert posts[1] in requests_2, run.describe()
    before_post = requests_2[: requests_2.index(posts[1])]
    old_paths = batch_paths(first["id"]) | {f"/batches/{first['name']}"}
    assert all(e["method"] == "GET" and e["path"] in old_paths for e in before_post), run.describe()
    assert only_reads_by_id(requests_2[requests_2.index(posts[1]) + 1 :], second["id"]), run.describe()
    check_succeeded_with(run, second)


@pytest.mark.crash_scenario("execution_timeout")
def test_execution_timeout_deletes_the_batch(crash_runs: CrashRuns) -> None:
    """``execution_timeout`` (8 s) hit while polling a 60 s job, no retry: one DELETE, failed."""
    run = crash_runs.get("execution_timeout")

    assert run.kill is None, run.describe()
    posts = checked_posts(crash_runs, run)
    assert len(posts) == 1, f"expected 1 POST, got {len(posts)}\n{run.describe()}"
    (post,) = posts
    (batch,) = run.batches
    assert run.try_start(1) <= post["time"], run.describe()
    check_only_try_1_failed(run)
    # The timeout fired while the task polled the running batch (the job runs 60 s). It counts from
    # execute(), which starts after the try (its start is stamped first) and before the POST.
    delete = check_one_delete_of(run, batch, after=run.try_start(1) + EXECUTION_TIMEOUT_SECONDS)
    assert delete["time"] < post["time"] + EXECUTION_TIMEOUT_SECONDS + ON_KILL_SLACK_SECONDS, run.describe()
    assert polls_of(between(run, post["time"], delete["time"]), batch["id"]), run.describe()
    assert delete["time"] <= run.try_end(1), run.describe()


@pytest.mark.crash_scenario("deferred_mark_failed")
def test_deferred_task_marked_failed_deletes_the_batch_from_the_triggerer(crash_runs: CrashRuns) -> None:
    """
    Marked failed while deferred: Airflow cancels the trigger as a user action and calls
    ``LivyTrigger.on_kill``, which deletes the batch. No worker runs the task any more (it is failed,
    and no retry follows), so the DELETE comes from the triggerer.
    """
    run = crash_runs.get("deferred_mark_failed")

    assert (run.kill, run.while_deferred) == ("mark_failed", True), run.describe()
    assert run.action_reply is not None, run.describe()
    assert (run.action_reply["state"], run.action_reply["try_number"]) == ("failed", 1), run.describe()
    posts = checked_posts(crash_runs, run)
    assert len(posts) == 1, f"expected 1 POST, got {len(posts)}\n{run.describe()}"
    (post,) = posts
    (batch,) = run.batches
    acted_at = acted_while_polling(run, post, batch["id"])
    check_only_try_1_failed(run)
    check_one_delete_of(run, batch, after=acted_at)
    assert batch["forgotten_reason"] == "delete", run.describe()


@pytest.mark.crash_scenario("triggerer_restart")
def test_triggerer_crash_keeps_the_batch_and_the_new_triggerer_adopts_it(crash_runs: CrashRuns) -> None:
    """SIGKILL the triggerer while it polls, start a new one: no DELETE, no POST, the task succeeds."""
    run = crash_runs.get("triggerer_restart")

    assert (run.kill, run.while_deferred) == ("triggerer", True), run.describe()
    assert "triggerer" in run.killed_pids, run.describe()
    posts = checked_posts(crash_runs, run)
    assert len(posts) == 1, f"expected 1 POST, got {len(posts)}\n{run.describe()}"
    (post,) = posts
    (batch,) = run.batches
    killed_at = acted_while_polling(run, post, batch["id"])
    # The new triggerer polled the same batch by id (the trigger was handed over, not re-created).
    started = run.marks["triggerer_started"]
    assert killed_at <= started <= run.marks["triggerer_polled"], run.describe()
    assert polls_of(between(run, started), batch["id"]), run.describe()
    assert deletes_of(run) == [], f"the triggerer's crash deleted the batch\n{run.describe()}"
    assert only_reads_by_id(between(run, killed_at), batch["id"]), run.describe()
    # The task resumed on its try (a deferral is not a retry) and delivered the batch.
    assert [(t.number, t.state) for t in run.tries] == [(1, "success")], run.describe()
    check_succeeded_with(run, batch, try_number=1)


@pytest.mark.skipif(
    HEARTBEAT_PURGE_CRASHES_THE_SCHEDULER,
    reason=f"upstream bug of Airflow {AIRFLOW_VERSION}: only the scheduler's heartbeat timeout can fail the "
    "frozen try 1, and that purge crashes the scheduler (SchedulerJobRunner."
    "_purge_task_instances_without_heartbeats -> TaskInstance.handle_failure -> prepare_db_for_next_try: "
    "UNIQUE constraint failed: task_instance...working_set on SQLite), ending every other scenario; "
    "see e2e.airflow_deployment.HEARTBEAT_PURGE_CRASHES_THE_SCHEDULER",
)
@pytest.mark.crash_scenario("frozen_worker")
def test_frozen_try_continued_after_the_retry_reconnected_touches_nothing(crash_runs: CrashRuns) -> None:
    """
    Two tries alive at once: try 1 frozen (SIGSTOP) until the heartbeat timeout failed it and try 2
    reconnected to the batch, then continued (SIGCONT). Try 2 owns the batch: try 1 deletes nothing,
    writes neither to Livy nor to the record, and stops; try 2 succeeds with the same batch.
    """
    run = crash_runs.get("frozen_worker")

    assert run.kill == "freeze", run.describe()
    assert set(run.killed_pids) == {"task", "supervisor"}, run.describe()
    stopped_at = run.killed_at
    assert stopped_at is not None, run.describe()
    resumed_at = run.marks.get("resumed")
    assert resumed_at is not None, run.describe()
    # The heartbeat timeout failed the frozen try 1; try 2 started and polled before the SIGCONT.
    assert run.get_try(1).state in TRY_1_FAILED, run.describe()
    assert run.try_start(1) < stopped_at <= run.try_start(2), run.describe()
    assert run.try_start(2) <= run.marks["retry_polled"] <= resumed_at, run.describe()
    # Then try 1 ran again next to try 2, and ended.
    stale_exited = run.marks.get("stale_exited")
    assert stale_exited is not None, f"try 1's task process did not exit\n{run.describe()}"
    assert resumed_at <= stale_exited, run.describe()
    posts = checked_posts(crash_runs, run)
    assert posts, run.describe()
    post = posts[0]
    batch = next(b for b in run.batches if b["id"] == post["created_id"])
    acted_while_polling(run, post, batch["id"])
    # The stale try touched nothing: no DELETE, no POST; after the SIGCONT only reads by id.
    assert deletes_of(run) == [], f"the stale try 1 deleted the batch try 2 owns\n{run.describe()}"
    assert len(posts) == 1, f"expected 1 POST, got {len(posts)}\n{run.describe()}"
    assert only_reads_by_id(between(run, resumed_at), batch["id"]), run.describe()
    # Try 1 stopped waiting while the batch, now try 2's, still ran.
    assert stale_exited <= run.try_end(2), run.describe()
    # Try 2 reconnected: while try 1 was frozen, its requests (the only ones) read the batch by id.
    try_2_alone = between(run, run.try_start(2), resumed_at)
    assert try_2_alone, run.describe()
    assert is_read_by_id(try_2_alone[0], batch["id"]), run.describe()
    assert only_reads_by_id(try_2_alone, batch["id"]), run.describe()
    # The record named try 2 as the owner before the SIGCONT, and nobody wrote it until try 1 was gone.
    before = run.store.get("before_resume")
    assert before is not None, run.describe()
    assert isinstance(before["value"], dict), run.describe()
    assert before["value"].get("owner_try") == 2, run.describe()
    assert before["value"].get("batch_id") == batch["id"], run.describe()
    assert run.store.get("stale_exited") == before, (
        f"the record was written after the SIGCONT\n{run.describe()}"
    )
    check_succeeded_with(run, batch)
