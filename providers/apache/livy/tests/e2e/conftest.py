"""
Fixtures of the end-to-end tests: one real Airflow 3.3+ deployment per session, shared by every test.

The same tests run on Airflow 3.3 and 3.4 (``dev/test.sh`` runs both); where Airflow's own behaviour
differs, a test's expectation about Airflow depends on ``airflow_deployment.AIRFLOW_3_4_PLUS``, never
what the provider must do (which POSTs and DELETEs, which batch, the final state, the result).

The crash scenarios the selected tests need are started together, as soon as the deployment is up,
and run concurrently (``[core] parallelism`` is one slot per scenario, plus spares for the scenarios
in which two tries of one task hold a slot each); each test then waits for its own scenario. The
terminal summary lists, per scenario, the POSTs and DELETEs Livy saw, the end, and the timings.

``LIVY_E2E_AIRFLOW_HOME=<dir>`` reuses (and keeps) an ``AIRFLOW_HOME``: a warm start skips most of
the migration and the first parse. Otherwise a scratch home is made in the temp dir and removed
after a session without failures; after a failure its path (with every process log) is printed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest

from e2e.airflow_deployment import CrashRun, Deployment, Event, run_crash_scenario

TESTS = Path(__file__).resolve().parents[1]
EXAMPLE_DAG = TESTS / "system" / "apache" / "livy" / "example_livy.py"
TEST_DAGS = sorted((TESTS / "e2e" / "dags").glob("*.py"))
DAG_IDS = (
    "example_livy",
    "example_livy_not_durable",
    "livy_crash_after_post",
    "livy_deferrable",
    "livy_execution_timeout",
)


def _airflow_version() -> tuple[int, ...]:
    try:
        text = version("apache-airflow")
    except PackageNotFoundError:
        return ()
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


HAS_AIRFLOW_33 = _airflow_version() >= (3, 3)
SKIP_REASON = (
    "the e2e tests run a real Airflow >= 3.3 deployment (task_state_store, ResumableJobMixin); "
    f"installed: apache-airflow {'.'.join(map(str, _airflow_version())) or 'not installed'}"
    if not HAS_AIRFLOW_33
    else "the e2e tests find worker processes in /proc (Linux only)"
)
CAN_RUN = HAS_AIRFLOW_33 and sys.platform.startswith("linux")


@dataclass(frozen=True)
class Scenario:
    """
    One scenario: the DAG to trigger, what to do to try 1 (``airflow_deployment.KILLS``), and the
    simulated job's length.

    ``while_deferred``: act once try 1 is deferred (and its trigger polls), not while it runs.
    ``clear_after_success``: clear the task once it succeeded, so that it runs again.
    ``keep_task_state``: sent with that clear (Airflow 3.4+; None: the version's default).
    """

    dag_id: str
    kill: str | None
    job_seconds: int
    while_deferred: bool = False
    clear_after_success: bool = False
    keep_task_state: bool | None = None


SCENARIOS = {
    # The job must outlive kill -> retry, else try 2 takes the "already succeeded" path.
    "task_kill_durable": Scenario("example_livy", kill="task", job_seconds=20),
    "task_kill_not_durable": Scenario("example_livy_not_durable", kill="task", job_seconds=20),
    # The heartbeat timeout (10 s) + detection + retry take ~13 s after the kill (Airflow 3.3; 3.4's
    # LocalExecutor fails the try at once).
    "supervisor_kill_durable": Scenario("example_livy", kill="supervisor", job_seconds=30),
    # The DAG's task kills itself right after POST /batches returned.
    "kill_after_post_durable": Scenario("livy_crash_after_post", kill=None, job_seconds=20),
    # No crash: the task succeeds, is cleared (a re-run), and runs again. Airflow 3.3 keeps the task
    # state store across the clear; 3.4 discards it by default.
    "rerun_after_clear": Scenario("example_livy", kill=None, job_seconds=3, clear_after_success=True),
    # Airflow 3.4+ only: the same clear with keep_task_state, so the re-run finds try 1's record, as on
    # 3.3 (and as after a DAG-run clear on 3.4, which always keeps it).
    "rerun_after_clear_keeping_state": Scenario(
        "example_livy", kill=None, job_seconds=3, clear_after_success=True, keep_task_state=True
    ),
    # on_kill: one live batch, alive exactly as long as Airflow means the task to run
    # (test_on_kill.py). A graceful stop of the worker (SIGTERM, SIGKILL after 10 s): the retry
    # must still find the batch running (on Airflow 3.4 try 1 runs on until the SIGKILL).
    "graceful_stop_durable": Scenario("example_livy", kill="sigterm", job_seconds=35),
    # Ends at the mark-failed / the timeout: the job only has to outlive it.
    "mark_failed_running": Scenario("example_livy", kill="mark_failed", job_seconds=60),
    "execution_timeout": Scenario("livy_execution_timeout", kill=None, job_seconds=60),
    # The clear's DELETE, then a re-run with a job of the same length.
    "clear_running": Scenario("example_livy", kill="clear", job_seconds=20),
    "deferred_mark_failed": Scenario(
        "livy_deferrable", kill="mark_failed", job_seconds=60, while_deferred=True
    ),
    # The kill waits for the other deferred scenario's action (the triggerer lock); then the new
    # triggerer starts (~10 s) and adopts the trigger after the health threshold (5 s).
    "triggerer_restart": Scenario("livy_deferrable", kill="triggerer", job_seconds=30),
    # The heartbeat timeout (10 s) fails the frozen try 1; try 2 runs ~13 s after the SIGSTOP and
    # must still find the batch running after try 1 is continued. (Skipped on Airflow 3.4.0b2, whose
    # heartbeat-timeout purge crashes the scheduler: see HEARTBEAT_PURGE_CRASHES_THE_SCHEDULER.)
    "frozen_worker": Scenario("example_livy", kill="freeze", job_seconds=35),
}
SPARE_SLOTS = 3
"""Executor slots beyond one per scenario: a frozen or killed try holds its slot while try 2 runs."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "crash_scenario(name): the test checks the result of that scenario (see e2e/conftest.py)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CAN_RUN:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


MAX_CONCURRENT_SCENARIOS = int(os.environ.get("LIVY_E2E_CONCURRENCY", "5"))
"""Scenarios running at once: more starve the single api-server (SQLite) on 2 cores when cold."""


class CrashRuns:
    """The scenarios of the selected tests, running concurrently against the shared deployment."""

    def __init__(self, deployment: Deployment, names: list[str]) -> None:
        self.deployment = deployment
        self._closing = threading.Event()
        workers = max(1, min(len(names), MAX_CONCURRENT_SCENARIOS))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scenario")
        stamp = time.strftime("%Y%m%dT%H%M%S")
        self._futures: dict[str, Future[CrashRun]] = {
            name: self._pool.submit(self._run, name, f"e2e-{name}-{stamp}") for name in names
        }

    def _run(self, name: str, run_id: str) -> CrashRun:
        scenario = SCENARIOS[name]

        def show(event: Event) -> None:
            print(f"[{name}] {event.seconds:6.1f}s  {event.text}", flush=True)

        return run_crash_scenario(
            self.deployment,
            scenario.dag_id,
            run_id,
            kill=scenario.kill,
            while_deferred=scenario.while_deferred,
            clear_after_success=scenario.clear_after_success,
            keep_task_state=scenario.keep_task_state,
            conf={"duration": str(scenario.job_seconds)},
            on_event=show,
            cancelled=self._closing.is_set,
        )

    def get(self, name: str) -> CrashRun:
        """The finished run of scenario ``name``."""
        if name not in self._futures:
            raise KeyError(f"scenario {name!r} was not started: mark the test with crash_scenario({name!r})")
        return self._futures[name].result(timeout=600)

    def wait_all(self) -> list[CrashRun]:
        """Every started scenario, finished."""
        return [self.get(name) for name in self._futures]

    def close(self) -> None:
        """Stop waiting for unfinished scenarios (after ``-x``, or an interrupt)."""
        self._closing.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def summaries(self) -> list[str]:
        """One line per finished scenario: what Livy saw, how the task ended, the timings."""
        lines = []
        for name, future in sorted(self._futures.items()):
            if future.done() and not future.cancelled() and future.exception() is None:
                lines.append(f"{name}: {future.result().summary()}")
        return lines


@pytest.fixture(scope="session")
def airflow_deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """A started deployment (stand-in, api-server, scheduler, dag-processor) with the DAGs parsed."""
    if not CAN_RUN:
        pytest.skip(SKIP_REASON)
    reuse = os.environ.get("LIVY_E2E_AIRFLOW_HOME")
    home = Path(reuse) if reuse else Path(tempfile.mkdtemp(prefix="livy-e2e-"))
    began = time.monotonic()

    def progress(line: str) -> None:
        print(f"[deployment {time.monotonic() - began:5.1f}s] {line}", flush=True)

    # One slot per scenario: none waits for another's task to end.
    deployment = Deployment(
        home,
        [EXAMPLE_DAG, *TEST_DAGS],
        parallelism=len(SCENARIOS) + SPARE_SLOTS,
        triggerer=True,
        log=progress,
    )
    try:
        deployment.start(DAG_IDS)
        yield deployment
    finally:
        deployment.stop()
        failed = request.session.testsfailed > 0
        if failed or reuse:
            request.config.stash[_KEPT_HOME] = str(home)
        else:
            shutil.rmtree(home, ignore_errors=True)


_KEPT_HOME = pytest.StashKey[str]()
_SUMMARIES = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    summaries = config.stash.get(_SUMMARIES, [])
    if summaries:
        terminalreporter.section("e2e scenarios (Livy journal, task instance, timings)")
        for line in summaries:
            terminalreporter.write_line(line)
    home = config.stash.get(_KEPT_HOME, None)
    if home:
        terminalreporter.write_line(
            f"e2e AIRFLOW_HOME kept: {home} (process logs in {home}/process-logs, task logs in {home}/logs)"
        )


def _skipped(item: pytest.Item) -> bool:
    """Whether the test is skipped by a marker (its scenario is then not started)."""
    return any(
        marker.name == "skip" or (marker.name == "skipif" and any(marker.args))
        for marker in item.iter_markers()
        if marker.name in ("skip", "skipif")
    )


@pytest.fixture(scope="session")
def crash_runs(request: pytest.FixtureRequest, airflow_deployment: Deployment) -> Iterator[CrashRuns]:
    """Starts, at once, the scenario of every selected test marked ``crash_scenario(name)``."""
    names = sorted(
        {
            marker.args[0]
            for item in request.session.items
            if not _skipped(item)
            for marker in item.iter_markers("crash_scenario")
        }
    )
    runs = CrashRuns(airflow_deployment, names)
    try:
        yield runs
    finally:
        runs.close()
        request.config.stash[_SUMMARIES] = runs.summaries()
