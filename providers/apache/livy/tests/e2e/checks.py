"""
Checks shared by the e2e test modules: on the stand-in's request journal, the tries and the XComs.

A request belongs to a run when it names one of the run's batches by id or name, or created one of
them (see ``airflow_deployment.concerns``). Times are wall-clock unix times on this machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from e2e.airflow_deployment import RUN_ID_CONF_KEY, CrashRun, batch_paths, concerns

if TYPE_CHECKING:
    from e2e.conftest import CrashRuns
    from e2e.mapped_run import MappedRun

TRY_1_FAILED = ("up_for_retry", "failed")
"""How the tries endpoint shows a try that failed and was retried."""

Request = dict[str, Any]


def of_scenarios(batch: dict[str, Any]) -> bool:
    """Whether ``batch`` belongs to a scenario run (run id ``e2e-...``), not to a test's own run."""
    return str((batch.get("conf") or {}).get(RUN_ID_CONF_KEY, "")).startswith("e2e-")


def checked_posts(runs: CrashRuns, run: CrashRun | MappedRun) -> list[Request]:
    """
    This run's POSTs in the journal, in arrival order; waits for every scenario to finish.

    First checks the whole journal (but the requests about batches of the tests' own runs, such as
    ``test_links_and_logs.py``'s): every POST anywhere created a batch (so none is left out of a
    run: a POST is the run's when it created one of the run's batches), each batch came from one
    POST, and every DELETE addressed a batch of one of the runs (so each test sees every DELETE of its
    batches, and none went elsewhere). Refreshes ``run.requests``.
    """
    finished = runs.wait_all()
    batches = runs.deployment.livy_batches()
    every_batch = [batch for batch in batches if of_scenarios(batch)]
    others = [batch for batch in batches if not of_scenarios(batch)]  # the tests' own runs
    journal = [e for e in runs.deployment.livy_requests() if not (others and concerns(e, others))]
    posts = [e for e in journal if e["method"] == "POST"]
    assert all(e["status"] == 201 and e["created_id"] is not None for e in posts), posts
    assert sorted(e["created_id"] for e in posts) == sorted(b["id"] for b in every_batch), every_batch
    assert sum(len(r.batches) for r in finished) == len(every_batch), every_batch
    deletes = [e for e in journal if e["method"] == "DELETE"]
    strays = [e for e in deletes if not any(concerns(e, r.batches) for r in finished)]
    assert strays == [], f"DELETEs of no run's batch: {strays}"
    ids = {b["id"] for b in run.batches}
    run.requests = runs.deployment.livy_requests(run.batches)
    return [e for e in run.requests if e["method"] == "POST" and e["created_id"] in ids]


def deletes_of(run: CrashRun) -> list[Request]:
    """The run's DELETEs, in arrival order (call :func:`checked_posts` first)."""
    return [e for e in run.requests if e["method"] == "DELETE"]


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
    """The harness signalled try 1 while it ran, and try 2 started after try 1 ended; the signal's time."""
    assert run.killed_at is not None, run.describe()
    assert run.get_try(1).state in TRY_1_FAILED, run.describe()
    assert run.try_start(1) < run.killed_at <= run.try_end(1) <= run.try_start(2), run.describe()
    return run.killed_at


def check_succeeded_with(run: CrashRun, batch: dict, try_number: int = 2) -> None:
    """The task succeeded on ``try_number``, returned ``batch``'s id, and pushed its application id."""
    assert run.error is None, run.describe()
    assert run.final_state == "success", run.describe()
    assert run.try_number == try_number, run.describe()
    assert run.get_try(try_number).state == "success", run.describe()
    assert batch["state"] == "success", run.describe()
    assert isinstance(run.return_value, int), run.describe()
    assert run.return_value == batch["id"], run.describe()
    assert batch["appId"], run.describe()
    assert run.app_id == batch["appId"], run.describe()


def acted_while_polling(run: CrashRun, post: Request, batch_id: int) -> float:
    """
    The harness acted on try 1 after it posted the batch and polled it by id; return the action's time.

    (The harness acts only once the journal shows a poll of the running batch; this re-checks it on
    the final journal.)
    """
    acted_at = run.acted_at
    assert acted_at is not None, f"the harness did not act\n{run.describe()}"
    assert run.try_start(1) <= post["time"] < acted_at, run.describe()
    assert polls_of(between(run, post["time"], acted_at), batch_id), run.describe()
    return acted_at


def check_one_delete_of(run: CrashRun, batch: dict, after: float) -> Request:
    """Exactly one DELETE of the run's batches: of ``batch`` by id, answered 200, after ``after``."""
    deletes = deletes_of(run)
    assert [e["path"] for e in deletes] == [f"/batches/{batch['id']}"], (
        f"expected one DELETE of batch {batch['id']}, got {[e['path'] for e in deletes]}\n{run.describe()}"
    )
    (delete,) = deletes
    assert delete["status"] == 200, run.describe()
    assert delete["time"] >= after, run.describe()
    return delete


def check_only_try_1_failed(run: CrashRun) -> None:
    """The task instance ended failed on try 1: no retry ran (Airflow meant the task to stop)."""
    assert run.final_state == "failed", run.describe()
    assert run.try_number == 1, run.describe()
    assert [(t.number, t.state) for t in run.tries] == [(1, "failed")], run.describe()
