"""
LivyOperator on a distributed Airflow: CeleryExecutor, a Redis broker, a PostgreSQL metadata database
(Debian's packages), several Celery workers; workers killed for real.

Each scenario's task goes to a Celery queue of its own, consumed by two workers of its own (see
``conftest.CELERY_WORKERS``): the harness ends the worker that runs try 1, and the retry runs on the
other one. Each worker records its own loopback address as the hostname of its tries, so the REST
API's tries say where each try ran. The tests assert on data: the stand-in's request journal and
batches, the tries, the XComs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from e2e.airflow_deployment import CrashRun, batch_paths
from e2e.checks import (
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
from e2e.conftest import CELERY_WORKERS, MAPPED_TASKS

if TYPE_CHECKING:
    from e2e.conftest import CrashRuns

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.celery,
    pytest.mark.timeout(900),  # the first test also waits for the deployment to start
]

ADDRESSES = {worker.name: worker.address for worker in CELERY_WORKERS}


def check_retry_on_the_other_worker(run: CrashRun, queue: str) -> None:
    """Try 1 ran on the worker the harness ended, try 2 on the other worker of the scenario's queue."""
    pair = {ADDRESSES[f"{queue}-a"], ADDRESSES[f"{queue}-b"]}
    first, second = run.get_try(1).hostname, run.get_try(2).hostname
    assert first == run.killed_worker, run.describe()
    assert {first, second} == pair, (
        f"tries ran on {first} and {second}, not on {sorted(pair)}\n{run.describe()}"
    )


def check_reconnected(runs: CrashRuns, run: CrashRun, queue: str) -> dict:
    """
    One POST, no DELETE; try 1 was ended while it polled; try 2, on the other worker, only read the
    same batch by id and returned it. Return the batch.
    """
    killed_at = check_try_1_killed(run)
    posts = checked_posts(runs, run)
    assert len(posts) == 1, f"expected 1 POST, got {len(posts)}\n{run.describe()}"
    (post,) = posts
    (batch,) = run.batches
    assert acted_while_polling(run, post, batch["id"]) == killed_at, run.describe()
    assert deletes_of(run) == [], f"ending the worker deleted the batch\n{run.describe()}"
    check_retry_on_the_other_worker(run, queue)
    try_2 = between(run, run.try_start(2))
    assert try_2, run.describe()
    assert is_read_by_id(try_2[0], batch["id"]), run.describe()
    assert polls_of(try_2, batch["id"]), run.describe()
    assert only_reads_by_id(try_2, batch["id"]), run.describe()
    check_succeeded_with(run, batch)
    return batch


@pytest.mark.celery_scenario("worker_sigkill")
def test_worker_sigkilled_mid_poll_the_retry_on_the_other_worker_reconnects(celery_runs: CrashRuns) -> None:
    """Every process of the worker SIGKILLed while the task polls (the machine died): 1 POST."""
    run = celery_runs.get("worker_sigkill")
    assert run.kill == "worker_sigkill", run.describe()
    assert "worker" in run.killed_pids, run.describe()
    check_reconnected(celery_runs, run, "sigkill")


@pytest.mark.celery_scenario("worker_sigkill_not_durable")
def test_not_durable_control_posts_a_second_batch(celery_runs: CrashRuns) -> None:
    """The control: ``durable=False`` (4.6.4's behaviour); the retry posts a second batch."""
    run = celery_runs.get("worker_sigkill_not_durable")
    killed_at = check_try_1_killed(run)
    posts = checked_posts(celery_runs, run)
    assert len(posts) == 2, f"expected 2 POSTs, got {len(posts)}\n{run.describe()}"
    assert posts[0]["time"] < killed_at <= run.try_start(2) <= posts[1]["time"], run.describe()
    check_retry_on_the_other_worker(run, "not_durable")
    second = next(b for b in run.batches if b["id"] == posts[1]["created_id"])
    check_succeeded_with(run, second)


@pytest.mark.celery_scenario("worker_graceful_stop")
def test_worker_graceful_stop_keeps_the_batch_for_the_retry(celery_runs: CrashRuns) -> None:
    """SIGTERM to every process of the worker, SIGKILL 10 s later: the batch is kept, 1 POST."""
    run = celery_runs.get("worker_graceful_stop")
    assert run.kill == "worker_graceful", run.describe()
    check_reconnected(celery_runs, run, "graceful")


@pytest.mark.celery_scenario("worker_cold_shutdown")
def test_worker_cold_shutdown_keeps_the_batch_for_the_retry(celery_runs: CrashRuns) -> None:
    """Celery's cold shutdown (SIGQUIT) of the worker, SIGKILL of what lives 10 s later: 1 POST."""
    run = celery_runs.get("worker_cold_shutdown")
    assert run.kill == "worker_cold", run.describe()
    check_reconnected(celery_runs, run, "cold")


@pytest.mark.celery_scenario("mark_failed")
def test_mark_failed_on_a_celery_worker_deletes_the_batch(celery_runs: CrashRuns) -> None:
    """Marked failed through the REST API while a Celery worker polls: one DELETE, no retry."""
    run = celery_runs.get("mark_failed")
    assert run.kill == "mark_failed", run.describe()
    posts = checked_posts(celery_runs, run)
    assert len(posts) == 1, run.describe()
    (post,) = posts
    (batch,) = run.batches
    acted_at = acted_while_polling(run, post, batch["id"])
    check_only_try_1_failed(run)
    check_one_delete_of(run, batch, after=acted_at)
    assert batch["forgotten_reason"] == "delete", run.describe()
    assert run.get_try(1).hostname == ADDRESSES["default"], run.describe()


@pytest.mark.celery_scenario("triggerer_restart")
def test_deferrable_task_survives_a_triggerer_crash(celery_runs: CrashRuns) -> None:
    """Deferred, the triggerer SIGKILLed and restarted: the new one adopts the batch; 1 POST."""
    run = celery_runs.get("triggerer_restart")
    assert (run.kill, run.while_deferred) == ("triggerer", True), run.describe()
    posts = checked_posts(celery_runs, run)
    assert len(posts) == 1, run.describe()
    (post,) = posts
    (batch,) = run.batches
    killed_at = acted_while_polling(run, post, batch["id"])
    started = run.marks["triggerer_started"]
    assert killed_at <= started <= run.marks["triggerer_polled"], run.describe()
    assert polls_of(between(run, started), batch["id"]), run.describe()
    assert deletes_of(run) == [], run.describe()
    assert [(t.number, t.state) for t in run.tries] == [(1, "success")], run.describe()
    check_succeeded_with(run, batch, try_number=1)


@pytest.mark.parametrize(
    ("scenario", "yarn_queue"),
    [
        pytest.param(
            "routed", "etl", id="executor_queue-and-yarn_queue", marks=pytest.mark.celery_scenario("routed")
        ),
        pytest.param(
            "routed_by_default_args",
            "etl",
            id="default_args-queue-and-yarn_queue",
            marks=pytest.mark.celery_scenario("routed_by_default_args"),
        ),
        # 4.6.4's meaning kept: a default_args queue routes the task and is also the YARN queue.
        pytest.param(
            "legacy_queue",
            "spark_workers",
            id="default_args-queue-alone-as-in-4.6.4",
            marks=pytest.mark.celery_scenario("legacy_queue"),
        ),
    ],
)
def test_the_task_runs_on_its_executor_queue_and_the_batch_on_its_yarn_queue(
    celery_runs: CrashRuns, scenario: str, yarn_queue: str
) -> None:
    """The only worker of ``spark_workers`` ran the task; Livy got the YARN queue."""
    run = celery_runs.get(scenario)
    assert len(checked_posts(celery_runs, run)) == 1, run.describe()
    (batch,) = run.batches
    assert [t.hostname for t in run.tries] == [ADDRESSES["spark"]], run.describe()
    assert batch["queue"] == yarn_queue, run.describe()
    check_succeeded_with(run, batch, try_number=1)


@pytest.mark.celery_scenario("mapped_worker_sigkill")
def test_mapped_tasks_over_two_workers_one_killed_each_retry_reconnects_to_its_own(
    celery_runs: CrashRuns,
) -> None:
    """
    20 mapped task instances over two workers, one worker SIGKILLed while every batch runs: 20 POSTs,
    20 batches; each instance of the killed worker retried on the other one and returned its own batch.
    """
    run = celery_runs.get_mapped("mapped_worker_sigkill")
    assert run.error is None, run.describe()
    killed, survivor = ADDRESSES["mapped-a"], ADDRESSES["mapped-b"]
    assert run.killed_worker == killed, run.describe()
    moved = run.moved()
    assert 0 < len(moved) < MAPPED_TASKS, run.describe()
    # The whole journal: one POST per instance, every POST created a batch, no DELETE.
    checked_posts(celery_runs, run)
    posts = [e for e in run.requests if e["method"] == "POST"]
    assert len(posts) == MAPPED_TASKS == len(run.batches), run.describe()
    assert [e for e in run.requests if e["method"] == "DELETE"] == [], run.describe()
    for index in range(MAPPED_TASKS):
        (batch,) = run.batch_of(index)
        tries = run.tries[index]
        assert run.states[index] == "success", run.describe()
        assert run.return_values[index] == batch["id"], f"[{index}] returned another batch\n{run.describe()}"
        assert run.app_ids[index] == batch["appId"], run.describe()
        assert batch["state"] == "success", run.describe()
        if index in moved:
            assert [(t.number, t.hostname) for t in tries] == [(1, killed), (2, survivor)], run.describe()
            start = tries[1].start
            assert start is not None, run.describe()
            # The retry only read its own batch, by id: it reconnected, and posted nothing.
            retry = [e for e in run.requests if e["time"] >= start and e["path"] in batch_paths(batch["id"])]
            assert retry, run.describe()
            assert all(e["method"] == "GET" for e in retry), run.describe()
        else:
            assert [(t.number, t.hostname) for t in tries] == [(1, survivor)], run.describe()
