"""
Airflow 3.4 under a real scheduler: one Spark batch per task loop iteration, and no batch left running
unowned after a default clear (which discards the task state store) of a task whose worker died.

Each test checks one scenario of ``conftest.SCENARIOS`` run by ``e2e.airflow34_runs``, on data only: the
stand-in's batches (each tagged with its run, loop iteration and map index by its Spark conf), its
request journal, the task instances and their return values (XComs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from e2e.airflow_deployment import AIRFLOW_3_4_PLUS, AIRFLOW_VERSION, batch_paths

if TYPE_CHECKING:
    from e2e.airflow34_runs import Airflow34Run
    from e2e.conftest import CrashRuns

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        not AIRFLOW_3_4_PLUS,
        reason=f"task loops and the discarding clear are Airflow 3.4+ ({AIRFLOW_VERSION})",
    ),
]

LOOP_ITERATIONS = 3  # dags/airflow34/livy_loops.py
MAPPED_ARGS = 2
MAPPED_ITERATIONS = 2


def _posted_once_each(run: Airflow34Run, positions: list[tuple[int, int]]) -> None:
    """Each (iteration, map index) has exactly one batch, which it returned; names are all distinct."""
    assert run.error is None, run.describe()
    assert run.dag_run_state == "success", run.describe()
    for iteration, map_index in positions:
        batches = run.batches_of(iteration, map_index)
        assert len(batches) == 1, (iteration, map_index, run.describe())
        assert batches[0]["state"] == "success", run.describe()
        assert run.return_values[iteration, map_index] == batches[0]["id"], run.describe()
    assert len(run.requests_of("POST")) == len(positions) == len(run.batches), run.describe()
    assert len({b["name"] for b in run.batches}) == len(positions), run.describe()
    assert run.requests_of("DELETE") == [], run.describe()


@pytest.mark.crash_scenario("loop")
def test_each_loop_iteration_runs_its_own_batch(crash_runs: CrashRuns) -> None:
    run = crash_runs.get_airflow34("loop")
    _posted_once_each(run, [(i, -1) for i in range(LOOP_ITERATIONS)])
    assert sorted(ti["iteration"] for ti in run.instances) == list(range(LOOP_ITERATIONS))
    assert all(f"-i{b['conf']['spark.airflow.loop_index']}-t1-s1-" in b["name"] for b in run.batches)


@pytest.mark.crash_scenario("loop_mapped")
def test_each_mapped_instance_of_each_iteration_runs_its_own_batch(crash_runs: CrashRuns) -> None:
    run = crash_runs.get_airflow34("loop_mapped")
    _posted_once_each(run, [(i, m) for i in range(MAPPED_ITERATIONS) for m in range(MAPPED_ARGS)])


@pytest.mark.crash_scenario("loop_kill_iteration_2")
def test_a_worker_killed_in_iteration_2_reconnects_to_iteration_2s_batch(crash_runs: CrashRuns) -> None:
    run = crash_runs.get_airflow34("loop_kill_iteration_2")
    assert run.killed == (2, -1), run.describe()
    _posted_once_each(run, [(i, -1) for i in range(LOOP_ITERATIONS)])
    tries = {ti["iteration"]: ti["try_number"] for ti in run.instances}
    assert tries == {0: 1, 1: 1, 2: 2}, run.describe()
    # The retry read iteration 2's batch (reconnected) after the kill, and no other iteration's.
    batch_2 = run.batches_of(2)[0]["id"]
    reads_after_kill = {
        e["path"] for e in run.requests if e["method"] == "GET" and e["time"] > (run.killed_at or 0)
    }
    assert reads_after_kill & batch_paths(batch_2), run.describe()
    others = [b["id"] for b in run.batches if b["id"] != batch_2]
    assert not any(reads_after_kill & batch_paths(other) for other in others), run.describe()


@pytest.mark.crash_scenario("clear_after_dead_worker")
def test_the_rerun_after_a_default_clear_deletes_the_batch_the_dead_worker_left(
    crash_runs: CrashRuns,
) -> None:
    run = crash_runs.get_airflow34("clear_after_dead_worker")
    assert run.error is None, run.describe()
    assert run.dag_run_state == "success", run.describe()
    first, second = sorted(run.batches, key=lambda b: b["id"])
    assert (first["name"].split("-")[-3], second["name"].split("-")[-3]) == ("t1", "t2"), run.describe()
    assert first["state"] == "killed", run.describe()
    assert second["state"] == "success", run.describe()
    posts, deletes = run.requests_of("POST"), run.requests_of("DELETE")
    assert [p["created_id"] for p in posts] == [first["id"], second["id"]], run.describe()
    assert [d["path"] for d in deletes] == [f"/batches/{first['id']}"], run.describe()
    assert deletes[0]["time"] < posts[1]["time"], "the re-run deletes the old batch before it submits"
    assert run.return_values[-1, -1] == second["id"], run.describe()


@pytest.mark.crash_scenario("clear_after_dead_worker_keep_batch")
def test_the_rerun_after_a_default_clear_adopts_the_batch_with_keep_batch(crash_runs: CrashRuns) -> None:
    run = crash_runs.get_airflow34("clear_after_dead_worker_keep_batch")
    assert run.error is None, run.describe()
    assert run.dag_run_state == "success", run.describe()
    assert len(run.batches) == 1, run.describe()
    assert run.batches[0]["state"] == "success", run.describe()
    assert len(run.requests_of("POST")) == 1, run.describe()
    assert run.requests_of("DELETE") == [], run.describe()
    assert run.return_values[-1, -1] == run.batches[0]["id"], run.describe()
