"""
Fixtures of the end-to-end tests: real Airflow 3.3+ deployments, each shared by the tests of its kind.

* ``airflow_deployment``: LocalExecutor on PostgreSQL (``test_crash_recovery.py``, ``test_on_kill.py``);
  scenarios in :data:`SCENARIOS`, tests marked ``crash_scenario(name)``, fixture ``crash_runs``.
* ``celery_deployment``: CeleryExecutor with :data:`CELERY_WORKERS` on PostgreSQL and Redis from Debian's
  packages (``test_distributed.py``); scenarios in :data:`CELERY_SCENARIOS`, tests marked
  ``celery_scenario(name)``, fixture ``celery_runs``. Each scenario's task goes to a Celery queue of its
  own, consumed by two workers of its own: the harness kills the one that runs try 1, and the retry
  runs on the other, without touching another scenario.

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
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

import pytest

from e2e.airflow34_runs import Airflow34Run, run_clear_after_dead_worker, run_loop_scenario
from e2e.airflow_deployment import (
    AIRFLOW_3_4_PLUS,
    CeleryWorker,
    CrashRun,
    Deployment,
    Event,
    run_crash_scenario,
)
from e2e.mapped_run import MappedRun, run_mapped_scenario
from e2e.services import PostgresServer, scratch_dir

TESTS = Path(__file__).resolve().parents[1]
EXAMPLE_DAG = TESTS / "system" / "apache" / "livy" / "example_livy.py"
TEST_DAGS = sorted((TESTS / "e2e" / "dags").glob("*.py"))
CELERY_DAGS = [
    TESTS / "e2e" / "dags" / "livy_e2e_dag.py",
    TESTS / "e2e" / "dags" / "celery" / "livy_celery.py",
]
DAG_IDS = (
    "example_livy",
    "example_livy_not_durable",
    "livy_crash_after_post",
    "livy_deferrable",
    "livy_execution_timeout",
)
AIRFLOW_34_DAGS = sorted((TESTS / "e2e" / "dags" / "airflow34").glob("*.py"))
"""Task loops and the 3.4 clear (``test_airflow34.py``): loaded by a 3.4 deployment only."""
AIRFLOW_34_DAG_IDS = (
    "livy_loop",
    "livy_loop_mapped",
    "livy_clear_dead_worker",
    "livy_clear_dead_worker_keep",
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
    ``mapped_victim``: a mapped task; the Celery worker to kill once every instance polls (see
    ``e2e.mapped_run``).
    ``airflow34``: a scenario of ``e2e.airflow34_runs``: ``"loop"`` (``kill_iteration``: the loop
    iteration whose task process is SIGKILLed while it polls, or None) or ``"clear_dead_worker"``;
    ``task_id``: the task those runs watch.
    """

    dag_id: str
    kill: str | None
    job_seconds: int
    while_deferred: bool = False
    clear_after_success: bool = False
    keep_task_state: bool | None = None
    mapped_victim: str | None = None
    airflow34: str | None = None
    kill_iteration: int | None = None
    task_id: str = "spark_pi"


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
    # Airflow 3.4+ (test_airflow34.py): a batch per loop iteration; a clear after the worker died.
    "loop": Scenario("livy_loop", kill=None, job_seconds=4, airflow34="loop", task_id="body.spark_pi"),
    "loop_mapped": Scenario(
        "livy_loop_mapped", kill=None, job_seconds=4, airflow34="loop", task_id="mapped_body.spark_pi"
    ),
    # Iteration 2's job must outlive the kill and the retry (~4 s on 3.4).
    "loop_kill_iteration_2": Scenario(
        "livy_loop", kill=None, job_seconds=20, airflow34="loop", kill_iteration=2, task_id="body.spark_pi"
    ),
    # The job outlives the kill, the clear and the re-run's start; the re-run's own batch is as long.
    "clear_after_dead_worker": Scenario(
        "livy_clear_dead_worker", kill=None, job_seconds=30, airflow34="clear_dead_worker"
    ),
    "clear_after_dead_worker_keep_batch": Scenario(
        "livy_clear_dead_worker_keep", kill=None, job_seconds=30, airflow34="clear_dead_worker"
    ),
}
SPARE_SLOTS = 3
"""Executor slots beyond one per scenario: a frozen or killed try holds its slot while try 2 runs."""

MAPPED_TASKS = 20
"""Mapped instances of ``livy_celery_mapped`` (``dags/celery/livy_celery.py``)."""


def _pair(queue: str, first_address: int) -> tuple[CeleryWorker, CeleryWorker]:
    """Two one-slot workers of one queue: try 1 runs on one, the retry on the other once it is killed."""
    return (
        CeleryWorker(f"{queue}-a", f"127.0.0.{first_address}", (queue,), concurrency=1),
        CeleryWorker(f"{queue}-b", f"127.0.0.{first_address + 1}", (queue,), concurrency=1),
    )


CELERY_WORKERS = (
    *_pair("sigkill", 11),
    *_pair("not_durable", 13),
    *_pair("graceful", 15),
    *_pair("cold", 17),
    # At most 8 of the 20 instances fit on mapped-a: both workers run some, and mapped-b has room for
    # every retry once mapped-a is killed.
    CeleryWorker("mapped-a", "127.0.0.19", ("mapped",), concurrency=8),
    CeleryWorker("mapped-b", "127.0.0.20", ("mapped",), concurrency=MAPPED_TASKS),
    CeleryWorker("default", "127.0.0.21", ("default",), concurrency=4),
    CeleryWorker("spark", "127.0.0.22", ("spark_workers",), concurrency=3),
)
"""The distributed deployment's workers: its own loopback address each (the tries' hostname)."""

CELERY_SCENARIOS = {
    # The heartbeat timeout (10 s) fails the try of a SIGKILLed worker; the retry runs ~12 s later.
    "worker_sigkill": Scenario("livy_celery_sigkill", kill="worker_sigkill", job_seconds=30),
    "worker_sigkill_not_durable": Scenario("livy_celery_not_durable", kill="worker_sigkill", job_seconds=30),
    "worker_graceful_stop": Scenario("livy_celery_graceful", kill="worker_graceful", job_seconds=40),
    # Orphaned processes may heartbeat until the SIGKILL 10 s later; then the timeout: ~25 s.
    "worker_cold_shutdown": Scenario("livy_celery_cold", kill="worker_cold", job_seconds=50),
    "mark_failed": Scenario("livy_celery_mark_failed", kill="mark_failed", job_seconds=60),
    "triggerer_restart": Scenario("livy_celery_deferrable", kill="triggerer", job_seconds=30),
    "routed": Scenario("livy_celery_routed", kill=None, job_seconds=3),
    "legacy_queue": Scenario("livy_celery_legacy_queue", kill=None, job_seconds=3),
    "routed_by_default_args": Scenario("livy_celery_routed_by_default_args", kill=None, job_seconds=3),
    "mapped_worker_sigkill": Scenario(
        "livy_celery_mapped", kill=None, job_seconds=45, mapped_victim="mapped-a"
    ),
}
CELERY_DAG_IDS = tuple(sorted({scenario.dag_id for scenario in CELERY_SCENARIOS.values()}))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "crash_scenario(name): the test checks the result of that scenario (see e2e/conftest.py)"
    )
    config.addinivalue_line(
        "markers", "celery_scenario(name): the test checks that scenario of the distributed deployment"
    )


RUN_FIRST = "test_links_and_logs.py"
"""Its runs wait on their own jobs while the crash scenarios (started by its fixture) run beside them."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    if not CAN_RUN:
        for item in items:
            if here in Path(item.path).parents:
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))
        return
    # Among the e2e tests only (stable: the others keep their order and places).
    places = [i for i, item in enumerate(items) if here in Path(item.path).parents]
    ordered = sorted((items[i] for i in places), key=lambda item: Path(item.path).name != RUN_FIRST)
    for place, item in zip(places, ordered, strict=True):
        items[place] = item


MAX_CONCURRENT_SCENARIOS = int(os.environ.get("LIVY_E2E_CONCURRENCY", "5"))
"""Scenarios running at once: more starve the single api-server on 2 cores when cold."""


RunT = TypeVar("RunT", CrashRun, MappedRun, Airflow34Run)


class CrashRuns:
    """The scenarios of the selected tests, running concurrently against the shared deployment."""

    def __init__(
        self, deployment: Deployment, names: list[str], scenarios: dict[str, Scenario], concurrency: int
    ) -> None:
        self.deployment = deployment
        self.scenarios = scenarios
        self._closing = threading.Event()
        workers = max(1, min(len(names), concurrency))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scenario")
        stamp = time.strftime("%Y%m%dT%H%M%S")
        self._futures: dict[str, Future[CrashRun]] = {
            name: self._pool.submit(self._run, name, f"e2e-{name}-{stamp}") for name in names
        }

    def _run(self, name: str, run_id: str) -> CrashRun | MappedRun | Airflow34Run:
        scenario = self.scenarios[name]

        def show(event: Event) -> None:
            print(f"[{name}] {event.seconds:6.1f}s  {event.text}", flush=True)

        conf = {"duration": str(scenario.job_seconds)}
        common: dict[str, Any] = {"on_event": show, "cancelled": self._closing.is_set, "conf": conf}
        if scenario.airflow34 == "loop":
            return run_loop_scenario(
                self.deployment,
                scenario.dag_id,
                run_id,
                task_id=scenario.task_id,
                kill_iteration=scenario.kill_iteration,
                **common,
            )
        if scenario.airflow34 == "clear_dead_worker":
            return run_clear_after_dead_worker(self.deployment, scenario.dag_id, run_id, **common)
        if scenario.mapped_victim is not None:
            return run_mapped_scenario(
                self.deployment,
                scenario.dag_id,
                run_id,
                count=MAPPED_TASKS,
                victim=scenario.mapped_victim,
                **common,
            )
        return run_crash_scenario(
            self.deployment,
            scenario.dag_id,
            run_id,
            kill=scenario.kill,
            while_deferred=scenario.while_deferred,
            clear_after_success=scenario.clear_after_success,
            keep_task_state=scenario.keep_task_state,
            **common,
        )

    def get(self, name: str) -> CrashRun:
        """The finished run of scenario ``name``."""
        return self._result_of(name, CrashRun)

    def get_mapped(self, name: str) -> MappedRun:
        """The finished run of the mapped scenario ``name``."""
        return self._result_of(name, MappedRun)

    def get_airflow34(self, name: str) -> Airflow34Run:
        """The finished run of the Airflow 3.4 scenario ``name`` (``e2e.airflow34_runs``)."""
        return self._result_of(name, Airflow34Run)

    def _result_of(self, name: str, kind: type[RunT]) -> RunT:
        run = self._result(name)
        assert isinstance(run, kind), run
        return run

    def _result(self, name: str) -> CrashRun | MappedRun | Airflow34Run:
        if name not in self._futures:
            raise KeyError(f"scenario {name!r} was not started: mark its test with the scenario's marker")
        return self._futures[name].result(timeout=600)

    def wait_all(self) -> list[CrashRun | MappedRun | Airflow34Run]:
        """Every started scenario, finished."""
        return [self._result(name) for name in self._futures]

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


def _progress(kind: str) -> Callable[[str], None]:
    began = time.monotonic()

    def progress(line: str) -> None:
        print(f"[{kind} {time.monotonic() - began:5.1f}s] {line}", flush=True)

    return progress


def _keep_or_remove(request: pytest.FixtureRequest, home: Path, keep: bool) -> None:
    """Keep ``home`` (listed at the end of the session) after a failure or when asked; else remove it."""
    if keep or request.session.testsfailed > 0:
        request.config.stash.setdefault(_KEPT_HOMES, []).append(str(home))
    else:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """A started LocalExecutor deployment (stand-in, api-server, scheduler, dag-processor, triggerer)."""
    if not CAN_RUN:
        pytest.skip(SKIP_REASON)
    reuse = os.environ.get("LIVY_E2E_AIRFLOW_HOME")
    home = Path(reuse) if reuse else Path(tempfile.mkdtemp(prefix="livy-e2e-"))
    # The metadata database is PostgreSQL (Debian's packages), as in production.
    postgres = PostgresServer(scratch_dir("livy-e2e-postgres-") / "postgres")
    airflow34 = AIRFLOW_3_4_PLUS
    deployment = Deployment(
        home,
        [EXAMPLE_DAG, *TEST_DAGS, *(AIRFLOW_34_DAGS if airflow34 else [])],
        # One slot per scenario: none waits for another's task to end. Loop iterations run one after
        # another; a mapped body runs its instances at once.
        parallelism=len(SCENARIOS) + SPARE_SLOTS + 2,
        triggerer=True,
        log=_progress("deployment"),
        postgres=postgres,
    )
    with postgres:
        try:
            deployment.start(DAG_IDS + (AIRFLOW_34_DAG_IDS if airflow34 else ()))
            yield deployment
        finally:
            deployment.stop()  # before PostgreSQL stops
    shutil.rmtree(postgres.scratch.parent, ignore_errors=True)
    _keep_or_remove(request, home, keep=bool(reuse))


@pytest.fixture(scope="session")
def celery_deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """
    A started CeleryExecutor deployment: a PostgreSQL server and a Redis broker of its own (from
    Debian's packages), api-server, scheduler, dag-processor, triggerer and :data:`CELERY_WORKERS`.
    """
    if not CAN_RUN:
        pytest.skip(SKIP_REASON)
    scratch = scratch_dir("livy-e2e-celery-")
    postgres = PostgresServer(scratch / "postgres")
    deployment = Deployment(
        scratch / "airflow",
        CELERY_DAGS,
        # Every scenario's tries, the 20 mapped instances, and the retries of the killed workers.
        parallelism=2 * (len(CELERY_SCENARIOS) + MAPPED_TASKS),
        triggerer=True,
        log=_progress("celery deployment"),
        postgres=postgres,
        workers=CELERY_WORKERS,
    )
    with postgres:
        try:
            deployment.start(CELERY_DAG_IDS)
            deployment.wait_for_workers()
            yield deployment
        finally:
            deployment.stop()  # before PostgreSQL stops
    _keep_or_remove(request, scratch, keep=False)


_KEPT_HOMES = pytest.StashKey[list[str]]()
_SUMMARIES = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    summaries = config.stash.get(_SUMMARIES, [])
    if summaries:
        terminalreporter.section("e2e scenarios (Livy journal, task instance, timings)")
        for line in summaries:
            terminalreporter.write_line(line)
    for home in config.stash.get(_KEPT_HOMES, []):
        terminalreporter.write_line(f"e2e deployment kept: {home} (process logs and task logs inside)")


def _skipped(item: pytest.Item) -> bool:
    """Whether the test is skipped by a marker (its scenario is then not started)."""
    return any(
        marker.name == "skip" or (marker.name == "skipif" and any(marker.args))
        for marker in item.iter_markers()
        if marker.name in ("skip", "skipif")
    )


def _start_marked(
    request: pytest.FixtureRequest,
    marker: str,
    deployment: Deployment,
    scenarios: dict[str, Scenario],
    concurrency: int,
) -> Iterator[CrashRuns]:
    """Start, at once, the scenario of every selected test marked ``marker(name)``; yield them."""
    names = sorted(
        {
            mark.args[0]
            for item in request.session.items
            if not _skipped(item)
            for mark in item.iter_markers(marker)
        }
    )
    runs = CrashRuns(deployment, names, scenarios, concurrency)
    try:
        yield runs
    finally:
        runs.close()
        request.config.stash.setdefault(_SUMMARIES, []).extend(runs.summaries())


@pytest.fixture(scope="session")
def crash_runs(request: pytest.FixtureRequest, airflow_deployment: Deployment) -> Iterator[CrashRuns]:
    """The LocalExecutor scenarios of the selected tests (marked ``crash_scenario(name)``)."""
    yield from _start_marked(
        request, "crash_scenario", airflow_deployment, SCENARIOS, MAX_CONCURRENT_SCENARIOS
    )


@pytest.fixture(scope="session")
def celery_runs(request: pytest.FixtureRequest, celery_deployment: Deployment) -> Iterator[CrashRuns]:
    """
    The distributed scenarios of the selected tests (marked ``celery_scenario(name)``), all at once:
    their workers are their own, and PostgreSQL takes concurrent writers.
    """
    yield from _start_marked(
        request, "celery_scenario", celery_deployment, CELERY_SCENARIOS, len(CELERY_SCENARIOS)
    )
