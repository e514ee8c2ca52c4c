"""
A real Airflow 3.3+ deployment on the loopback interface, with the Livy stand-in, for end-to-end tests.

It runs the Airflow installed next to this interpreter (3.3 or 3.4); :data:`AIRFLOW_VERSION` and
:data:`AIRFLOW_3_4_PLUS` say which, for the expectations where Airflow's own behaviour differs.

Used by the e2e tests (``conftest.py``) and by ``dev/demo.py``; this is the only copy.

* :class:`Deployment` makes a scratch ``AIRFLOW_HOME``, copies DAG files into its dags folder, runs
  ``airflow db migrate`` and starts the Livy stand-in, ``airflow api-server``, ``airflow scheduler``,
  ``airflow dag-processor`` and optionally ``airflow triggerer``, each in its own process group, all
  bound to 127.0.0.1. Two executors, one code path: LocalExecutor on SQLite (the default) or on
  PostgreSQL (given a server; what the e2e tests' shared deployment does), or
  CeleryExecutor (given :class:`CeleryWorker` s) on PostgreSQL (a database of its own on a shared
  :class:`~e2e.services.PostgresServer`) with a Redis broker of its own and ``airflow celery worker``
  processes, each recording its own loopback address as the hostname of the tries it runs. It talks
  to the public REST API (no token: the simple auth manager makes everyone admin) and to the
  stand-in's ``/admin`` endpoints, finds worker processes in ``/proc`` and signals them (SIGKILL,
  SIGTERM, SIGSTOP/SIGCONT), ends Celery workers, and kills and restarts the triggerer.
  :meth:`Deployment.stop` ends every process it started, by pid, including task processes (each in
  a process group of its own) and the ones a killed supervisor orphaned.
* :func:`run_crash_scenario` triggers one run, acts on try 1 at the chosen point (see :data:`KILLS`:
  a signal to the worker, a mark-failed or clear through the REST API, a triggerer crash; or, once
  the task succeeded, a clear so that it runs again), waits for the end and collects what Livy and
  Airflow saw, with a timeline.

Nothing here reads the operator's log wording: when to kill and what happened come from data, the
stand-in's request journal (``GET /admin/requests``) and batches, and Airflow's REST API (task
instance, tries, XComs). Every time compared across processes is wall-clock time (``time.time()``).

No state-changing request leaves 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import requests
from packaging.version import Version

from e2e.services import LOOPBACK, PostgresServer, RedisServer, free_port


def _installed_airflow() -> Version | None:
    try:
        return Version(version("apache-airflow"))
    except PackageNotFoundError:
        return None


AIRFLOW_VERSION = _installed_airflow()
"""The installed ``apache-airflow`` (what the deployment runs), or None."""
AIRFLOW_3_4_PLUS = AIRFLOW_VERSION is not None and AIRFLOW_VERSION.release[:2] >= (3, 4)
"""Airflow 3.4 or later, pre-releases included (``3.4.0b2``). Where 3.4 behaves differently: its
LocalExecutor reports a worker that died as failed at once (3.3 waits for the heartbeat timeout); its
supervisor keeps running its task on SIGTERM (a warm shutdown; 3.3 forwards the SIGTERM); a clear
creates the next try at once and, through ``clearTaskInstances``, discards the task state store
unless ``keep_task_state`` is set (3.3 keeps it)."""
HEARTBEAT_PURGE_CRASHES_THE_SCHEDULER = AIRFLOW_VERSION in (Version("3.4.0b2"),)
"""An upstream bug of Airflow 3.4.0b2 (checked on that exact release, so that a fixed one runs everything):
when the scheduler's heartbeat timeout fails a task instance
(``SchedulerJobRunner._purge_task_instances_without_heartbeats``: ``handle_failure`` for a ``running``
one, ``complete_restart`` for a cleared ``restarting`` one, scheduler_job_runner.py:4152-4154), the
successor try's INSERT (``TaskInstance.prepare_db_for_next_try``, taskinstance.py:1741) fails with
``UNIQUE constraint failed: task_instance.dag_id, ..., task_instance.working_set`` on SQLite: the
attempt it replaces is still in the working set. The scheduler loop dies with it. After a SIGKILL of the
worker, 3.4's LocalExecutor fails the try before the heartbeat timeout (no purge); see
:data:`KILLED_TASK_CLEANUP_TIME` for a clear. A frozen worker can only be failed by the purge."""

HEARTBEAT_TIMEOUT = 45 if HEARTBEAT_PURGE_CRASHES_THE_SCHEDULER else 10
"""``[scheduler] task_instance_heartbeat_timeout`` (heartbeats every 2 s): how long after its last
heartbeat the scheduler fails a running try whose supervisor went silent (a SIGKILLed supervisor on
3.3, a frozen worker). 45 s where that purge would crash the scheduler: there no scenario needs it (the
frozen worker's test is skipped; 3.4's LocalExecutor reports a killed supervisor itself), a cleared
try's supervisor, silent for ~7 s (:data:`KILLED_TASK_CLEANUP_TIME`), stays far from it, and so does
a try whose start waits out :data:`SQLITE_BUSY_TIMEOUT` (once, on a loaded 2-core machine, 3.4.0b2's
api-server held SQLite's write lock for the full 30 s, and a try whose ``PATCH .../run`` waited behind it
was purged as silent)."""

TERMINAL_TI_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
RUN_ID_CONF_KEY = "spark.airflow.run_id"
"""The Spark conf key the example DAG sets to the run id: how a batch is traced back to its run."""

_SUPERVISOR_TITLE = "airflow worker -- LocalExecutor"
_CELERY_TITLE = "[celeryd: "
"""How Celery titles its worker processes (``[celeryd: w1@127.0.0.1:MainProcess] ...``,
``...:ForkPoolWorker-1]``); it rewrites ``/proc/<pid>/cmdline`` and ``environ``."""
_CELERY_SUPERVISOR_TITLE = "airflow supervisor: "
"""A task's supervisor under a Celery pool process (``airflow supervisor: <ti id>``)."""
TRIGGERER_HEALTH_CHECK_THRESHOLD = 5
"""Seconds without a heartbeat (sent every second) after which a restarted triggerer adopts the triggers
of the one it replaces (Airflow's default: 30)."""
GRACEFUL_STOP_GRACE = 10.0
"""Seconds between the SIGTERM of a graceful stop and the SIGKILL, as Kubernetes'
``terminationGracePeriodSeconds`` (there 30 by default)."""
KILLED_TASK_CLEANUP_TIME = 5
"""``[core] killed_task_cleanup_time``: how long a supervisor that SIGTERMed its task (marked failed,
cleared) waits before it escalates to SIGKILL. Airflow 3.3's supervisor does not read it (its
escalation delay is a fixed 5 s); 3.4's does, with a default of 60 s. Set to 3.3's 5 s so that both
versions give ``on_kill`` the same time, and because on 3.4.0b2 the supervisor then sits out the whole
delay in ``selector.select()`` even after the task process exited (``ActivitySubprocess.kill``):
with 60 s the scheduler's heartbeat timeout purges the cleared ``restarting`` task instance meanwhile,
which crashes the scheduler (:data:`HEARTBEAT_PURGE_CRASHES_THE_SCHEDULER`). With 5 s the supervisor
reports back ~7 s after its last heartbeat."""
SQLITE_BUSY_TIMEOUT = 30
"""Seconds an Airflow process waits for SQLite's write lock (``sqlite3.connect(timeout=...)``; Python's
default, 5 s, has ended a restarted triggerer at startup with "database is locked" while every
scenario ran at once on a loaded 2-core machine)."""
EXECUTION_API_TIMEOUT = 30
"""``[workers] execution_api_timeout``: seconds a task process waits for one answer of the API server."""
API_SERVER_DB_POOL = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "20",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "40",
}
"""The api-server's metadata database connections. Its default pool (5, plus 10 overflow) ran dry when
every scenario's task started at once (20 mapped instances and 10 scenarios on Celery): requests
waited SQLAlchemy's whole ``pool_timeout`` (30 s) for a connection, the api-server answered nothing
meanwhile, and tries were failed as silent (on SQLite files and PostgreSQL alike)."""
SQLITE_LOCKED = "database is locked"
TRIGGERER_STARTUP_SECONDS = 60.0
"""A triggerer that exits this soon after its start with :data:`SQLITE_LOCKED` in its log is started
again (at most :data:`TRIGGERER_REVIVALS` times), as a process supervisor would; any other exit of a
server process fails the scenarios."""
TRIGGERER_REVIVALS = 3
_LOG_KEYS_NOT_SHOWN = frozenset(
    {"event", "level", "timestamp", "logger", "sources", "filename", "lineno"}
    | {"dag_id", "run_id", "task_id", "map_index", "try_number", "ti_id"}
)


class DeploymentError(RuntimeError):
    """The deployment could not start or did not behave in time; the message says what and where."""


class ApiError(DeploymentError):
    """The REST API answered with an unexpected status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def wait_until(
    what: str, probe: Callable[[], Any], timeout: float, interval: float = 0.5, diagnose: str = ""
) -> Any:
    """
    Call ``probe`` until it returns something truthy; raise DeploymentError after ``timeout`` s.

    A connection error counts as "not yet"; a DeploymentError from ``probe`` ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
        except requests.RequestException as error:
            result, last_error = None, error
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise DeploymentError(f"timed out after {timeout:.0f} s waiting for {what}{detail}{diagnose}")
        time.sleep(interval)


# ---- /proc -------------------------------------------------------------------------------------------


def _read_proc(pid: int, entry: str) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/{entry}").read_bytes()
    except OSError:  # gone, or not ours
        return None


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name; None if gone or a zombie."""
    stat = _read_proc(pid, "stat")
    if stat is None:
        return None
    fields = stat.rsplit(b")", 1)[1].split()  # the command name may hold spaces and parentheses
    return None if fields[0] == b"Z" else fields


def parent_of(pid: int) -> int | None:
    """The parent pid of a live process."""
    fields = _stat(pid)
    return None if fields is None else int(fields[1])


def session_of(pid: int) -> int | None:
    """The session id of a live process (inherited from the session leader, kept by orphans)."""
    fields = _stat(pid)
    return None if fields is None else int(fields[3])


def cmdline(pid: int) -> str:
    """The command line (after ``setproctitle``, the process title); "" if the process is gone."""
    raw = _read_proc(pid, "cmdline") or b""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def descendants(root: int) -> list[int]:
    """Every live descendant of ``root``, parents before children."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        ppid = parent_of(pid)
        if ppid is not None:
            children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    return parent_of(pid) is not None


# ---- The deployment ----------------------------------------------------------------------------------


@dataclass
class Component:
    """One server process started by the deployment, leader of its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_start: int = 0
    """Where this process's output begins in ``log_path`` (a process started again appends to it)."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 15) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self.log_start)
                text = log.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


@dataclass(frozen=True)
class CeleryWorker:
    """
    One ``airflow celery worker`` of a CeleryExecutor deployment.

    :param name: its Celery node name is ``<name>@127.0.0.1``; its process log ``celery-<name>.log``.
    :param address: the loopback address its tries record as their hostname (the REST API's
        ``hostname``): which worker ran a try.
    :param queues: the executor queues it consumes.
    :param concurrency: task slots (prefork pool processes).
    """

    name: str
    address: str
    queues: tuple[str, ...] = ("default",)
    concurrency: int = 2

    @property
    def component(self) -> str:
        return f"celery-{self.name}"


WORKER_STOPS: dict[str, str] = {
    "sigkill": "SIGKILL every process of the worker (the machine died)",
    "graceful": (
        "SIGTERM every process of the worker (systemd's or Kubernetes' stop); SIGKILL what still lives "
        "after GRACEFUL_STOP_GRACE s"
    ),
    "cold": (
        "SIGQUIT the Celery worker (Celery's cold shutdown: it ends its pool at once); SIGKILL what still "
        "lives after GRACEFUL_STOP_GRACE s"
    ),
}
"""How the harness can end a Celery worker (:meth:`Deployment.stop_worker`)."""


class Deployment:
    """
    Airflow 3.3+ (api-server, scheduler, dag-processor, optionally triggerer) plus the Livy stand-in,
    with LocalExecutor on SQLite or PostgreSQL, or with CeleryExecutor on PostgreSQL and Redis.

    :param home: the ``AIRFLOW_HOME`` to use; created if missing. Reusing a home keeps its migrated
        database (a warm start; SQLite only).
    :param dag_files: DAG files copied into ``<home>/dags``.
    :param parallelism: ``[core] parallelism``: how many tasks may run at once.
    :param triggerer: also run ``airflow triggerer`` (for deferrable tasks).
    :param log: called with one line of progress at a time (default: nothing).
    :param postgres: the server that holds this deployment's metadata database (required with
        ``workers``; the deployment gets a database of its own on it).
    :param workers: CeleryExecutor with these workers (and a Redis broker of the deployment's own);
        none: LocalExecutor.
    :param standin_args: more options for the Livy stand-in, e.g. ``--spark`` (real Spark applications).
    :param livy_upstream: a real Livy's URL: run ``livy_standin.journal_proxy`` in front of it instead
        of the stand-in (the same journal and admin reads; ``standin_args`` are not used).
    """

    def __init__(
        self,
        home: Path,
        dag_files: Sequence[Path],
        *,
        parallelism: int = 4,
        triggerer: bool = False,
        log: Callable[[str], None] | None = None,
        postgres: PostgresServer | None = None,
        workers: Sequence[CeleryWorker] = (),
        standin_args: Sequence[str] = (),
        livy_upstream: str | None = None,
    ) -> None:
        if workers and postgres is None:
            raise ValueError("a CeleryExecutor deployment needs a PostgreSQL server (postgres=...)")
        self.home = Path(home).resolve()
        self.dag_files = [Path(p) for p in dag_files]
        self.parallelism = parallelism
        self.with_triggerer = triggerer
        self._log = log or (lambda line: None)
        self.postgres = postgres
        self.workers = {worker.name: worker for worker in workers}
        self.standin_args = list(standin_args)
        self.livy_upstream = livy_upstream
        self.redis = RedisServer(self.home / "redis") if workers else None
        self.database_url = f"sqlite:///{self.home}/airflow.db"
        self.marker = uuid.uuid4().hex
        self.components: dict[str, Component] = {}
        self.api_port = 0
        self.livy_port = 0
        self.env: dict[str, str] = {}
        self.extra_pids: set[int] = set()  # task processes and orphans seen; ended by pid in stop()
        self.http = requests.Session()
        self.http.trust_env = False  # never through a proxy: everything is on 127.0.0.1
        # SQLite takes one writer at a time: five triggers sent at once have blocked each other for
        # SQLite's 5 s busy timeout, and three failed with HTTP 500 (an INSERT failed). The
        # scenarios' threads send their state-changing requests one by one.
        self._writes = threading.Lock()
        self.started_at = time.monotonic()
        self.retired: list[Component] = []  # components replaced by a restart (killed, reaped)
        self.triggerer_started_at = 0.0
        """Unix time the current triggerer was started."""
        self._triggerer_swap = threading.RLock()
        """Held while the triggerer is replaced (a harness restart, or a revival after startup)."""
        self.triggerer_revivals = 0
        self.triggerer_lock = threading.Lock()
        """Held by a scenario while it needs the triggerer as it is: the one that kills it, and one that
        acts on a deferred task (whose trigger's ``on_kill`` runs in the triggerer)."""

    # ---- lifecycle -----------------------------------------------------------------------------

    @property
    def process_log_dir(self) -> Path:
        return self.home / "process-logs"

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"

    @property
    def livy_url(self) -> str:
        return f"http://{LOOPBACK}:{self.livy_port}"

    def __enter__(self) -> Deployment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, dag_ids: Iterable[str] = ()) -> None:
        """Migrate, start every process and wait until the API answers and ``dag_ids`` are parsed."""
        self.started_at = time.monotonic()
        dags = self.home / "dags"
        dags.mkdir(parents=True, exist_ok=True)
        self.process_log_dir.mkdir(parents=True, exist_ok=True)
        for dag_file in self.dag_files:
            shutil.copy2(dag_file, dags / dag_file.name)
        self.api_port = free_port()
        self._start_standin()
        if self.redis is not None:
            self.redis.start()
        if self.postgres is not None:
            name = f"airflow_{self.marker[:16]}"
            self.database_url = self.postgres.create_database(name, self._migrate_template)
        self.env = self._airflow_env()
        if self.postgres is None:
            self._migrate()
        api_args = ("--workers", "1", "--host", LOOPBACK, "--port", str(self.api_port))
        self._spawn("api-server", self._airflow("api-server", *api_args), {**self.env, **API_SERVER_DB_POOL})
        self._start_airflow("scheduler", "--skip-serve-logs")
        self._start_airflow("dag-processor")
        if self.with_triggerer:
            self._start_triggerer()
        for worker in self.workers.values():
            self._start_worker(worker)
        wait_until("the Airflow API to answer", self._api_healthy, 120, diagnose=self._where())
        self._log(f"Airflow API ready at {self.api_url} ({self.elapsed():.0f} s)")
        for dag_id in dag_ids:
            self.wait_for_dag(dag_id)

    def stop(self, grace: float = 10.0) -> None:
        """
        End every process this deployment started, by pid; idempotent.

        SIGTERM to each process group, SIGKILL to the groups still alive after ``grace`` s, then
        SIGKILL to any remaining process of this deployment (task processes run in process groups of
        their own, and a killed supervisor leaves its task process orphaned). See :meth:`_is_ours`
        for what counts as ours.
        """
        ours = set(self.extra_pids)
        for component in self.components.values():
            ours.update(descendants(component.pid))
        ours.update(self._marked_pids())
        for component in self.components.values():
            if component.process.poll() is None:
                _signal_group(component.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for component in self.components.values():
            try:
                component.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(component.pid, signal.SIGKILL)
                component.process.wait(timeout=10)
        ours.update(self._marked_pids())
        for pid in ours:
            if self._is_ours(pid):
                _signal_pid(pid, signal.SIGKILL)
        wait_until("the deployment's processes to exit", lambda: not self.leftover_pids(), 15)
        if self.redis is not None:
            self.redis.stop()
        self.http.close()

    def leftover_pids(self) -> list[int]:
        """Processes of this deployment still alive (should be empty after :meth:`stop`)."""
        alive_components = [c.pid for c in self.components.values() if c.process.poll() is None]
        return sorted(set(alive_components) | set(self._marked_pids()))

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    @property
    def celery(self) -> bool:
        """Whether this deployment runs CeleryExecutor (else LocalExecutor)."""
        return bool(self.workers)

    def _marked_pids(self) -> list[int]:
        return [pid for pid in _all_pids() if pid != os.getpid() and self._is_ours(pid)]

    def _is_ours(self, pid: int) -> bool:
        """
        Whether ``pid`` is a live process of this deployment.

        Its environment carries this deployment's marker; or, as ``setproctitle`` may overwrite
        ``/proc/<pid>/environ``, it titles itself ``airflow ...`` and belongs to the session of one
        of our components (each leads a session of its own; descendants stay in it, orphans included:
        task processes change only their process group).
        """
        if not alive(pid):
            return False
        environ = _read_proc(pid, "environ") or b""
        if f"LIVY_E2E_DEPLOYMENT={self.marker}".encode() in environ.split(b"\0"):
            return True
        sessions = {c.pid for c in [*self.components.values(), *self.retired]}
        return session_of(pid) in sessions and cmdline(pid).startswith(("airflow", _CELERY_TITLE))

    def _base_env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("AIRFLOW") and key.lower() not in ("http_proxy", "https_proxy", "all_proxy")
        }
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        env["LIVY_E2E_DEPLOYMENT"] = self.marker
        env["PYTHONUNBUFFERED"] = "1"
        if env.pop("PYTHONDONTWRITEBYTECODE", None):
            # Each server would compile Airflow from source again (~3 s apiece): keep the bytecode,
            # in the virtualenv rather than next to the sources.
            env.setdefault("PYTHONPYCACHEPREFIX", str(Path(sys.prefix) / "pycache"))
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def _airflow_env(self) -> dict[str, str]:
        home = str(self.home)
        # Task instances record this "hostname", which the api-server asks for served logs: a loopback
        # address (a Celery worker's own, from its environment).
        helpers = self.home / "python"
        helpers.mkdir(exist_ok=True)
        (helpers / "livy_e2e_loopback.py").write_text(
            f'"""Airflow settings of the e2e deployment: a loopback hostname, SQLite connect args."""\n\n'
            f"import os\n\nSQLITE_CONNECT_ARGS = {{'timeout': {SQLITE_BUSY_TIMEOUT}}}\n\n\n"
            f"def hostname():\n    return os.environ.get('LIVY_E2E_HOSTNAME', {LOOPBACK!r})\n"
        )
        base = self._base_env()
        python_path = os.pathsep.join(p for p in (str(helpers), base.get("PYTHONPATH", "")) if p)
        conn = {"conn_type": "livy", "host": LOOPBACK, "port": self.livy_port, "schema": "http"}
        return {
            **base,
            "PYTHONPATH": python_path,
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "livy_e2e_loopback.hostname",
            "AIRFLOW__CORE__DAGS_FOLDER": f"{home}/dags",
            **self._executor_env(),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__KILLED_TASK_CLEANUP_TIME": str(KILLED_TASK_CLEANUP_TIME),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": LOOPBACK,
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),  # >= 64 bytes for HS512
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "1",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
            # Airflow waits 5 s for the API server by default; a busy 2-core CI machine can take longer
            # to answer a task's store write or XCom push, which must not turn load into a failed try.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": str(EXECUTION_API_TIMEOUT),
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_CHECK_THRESHOLD),
            "AIRFLOW_CONN_LIVY_DEFAULT": json.dumps(conn),
        }

    def _executor_env(self) -> dict[str, str]:
        """The metadata database and the executor (with its broker)."""
        if self.postgres is None:
            return {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "livy_e2e_loopback.SQLITE_CONNECT_ARGS",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            }
        if self.redis is None:
            return {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            }
        return {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": self.redis.url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.database_url.replace("+psycopg2", ""),
            # Poll the broker and the results often: a scenario waits on each hand-over.
            "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        }

    def _start_standin(self) -> None:
        port_file = self.home / "livy-standin.port"
        port_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "livy_standin", "--host", LOOPBACK, "--port", "0", *self.standin_args]
        if self.livy_upstream is not None:
            argv = [sys.executable, "-m", "livy_standin.journal_proxy", "--host", LOOPBACK, "--port", "0"]
            argv += ["--upstream", self.livy_upstream]
        argv += ["--port-file", str(port_file)]
        self._spawn("livy-standin", argv, self._base_env())
        component = self.components["livy-standin"]

        def bound() -> bool:
            if component.process.poll() is not None:
                raise DeploymentError(f"the Livy stand-in exited:\n{component.tail()}")
            return port_file.exists()

        wait_until("the Livy stand-in to bind", bound, 30)
        self.livy_port = int(port_file.read_text().strip())
        what = "Livy stand-in" if self.livy_upstream is None else f"Journaling proxy to {self.livy_upstream}"
        self._log(f"{what} listening at {self.livy_url}")

    def _airflow(self, *args: str) -> list[str]:
        binary = Path(sys.executable).parent / "airflow"
        return [str(binary), *args] if binary.exists() else [sys.executable, "-m", "airflow", *args]

    def _migrate_template(self, url: str) -> None:
        """``airflow db migrate`` into the PostgreSQL template database (see ``create_database``)."""
        self._migrate({**self._airflow_env(), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url})

    def _migrate(self, env: dict[str, str] | None = None) -> None:
        log_path = self.process_log_dir / "db-migrate.log"
        began = time.monotonic()
        with log_path.open("ab") as out:
            result = subprocess.run(
                self._airflow("db", "migrate"),
                env=env or self.env,
                cwd=self.home,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=300,
                check=False,
            )
        if result.returncode != 0:
            raise DeploymentError(f"`airflow db migrate` failed (exit {result.returncode}); see {log_path}")
        self._log(f"airflow db migrate: {time.monotonic() - began:.0f} s")

    def _start_airflow(self, command: str, *args: str) -> None:
        self._spawn(command, self._airflow(command, *args), self.env)

    def _start_triggerer(self) -> None:
        # --skip-serve-logs: no log server (it would listen on every interface).
        self.triggerer_started_at = time.time()
        self._start_airflow("triggerer", "--skip-serve-logs")

    def _start_worker(self, worker: CeleryWorker) -> None:
        # --skip-serve-logs: two workers would collide on one log port (and it listens on every
        # interface); the api-server reads the task logs from the shared AIRFLOW_HOME.
        argv = ["celery", "worker", "--celery-hostname", f"{worker.name}@{LOOPBACK}", "--skip-serve-logs"]
        argv += ["--queues", ",".join(worker.queues), "--concurrency", str(worker.concurrency)]
        env = {**self.env, "LIVY_E2E_HOSTNAME": worker.address}
        self._spawn(worker.component, self._airflow(*argv), env)

    def restart_worker(self, worker: CeleryWorker) -> None:
        """Start a worker the harness stopped again (the machine came back); wait until it is ready."""
        if self.components[worker.component].process.poll() is None:
            raise DeploymentError(f"worker {worker.name} still runs")
        self._start_worker(worker)
        self.wait_for_workers()

    def wait_for_workers(self, timeout: float = 120) -> None:
        """Wait until every Celery worker consumes its queues (its log says ``ready``)."""
        if not self.workers:
            return
        for worker in self.workers.values():
            component = self.components[worker.component]

            def ready(component: Component = component, node: str = f"{worker.name}@{LOOPBACK}") -> bool:
                self.check_components()
                return f"{node} ready." in component.tail(200)

            wait_until(f"Celery worker {worker.name} to be ready", ready, timeout, diagnose=self._where())
        self._log(f"Celery workers ready: {sorted(self.workers)} ({self.elapsed():.0f} s)")

    def worker_running(self, ti_id: str) -> CeleryWorker:
        """The Celery worker whose processes run task instance ``ti_id``."""
        task_pid, _ = self.worker_processes(ti_id)
        for worker in self.workers.values():
            if self.components[worker.component].pid in _ancestors(task_pid):
                return worker
        raise DeploymentError(f"task process {task_pid} of {ti_id} is under no Celery worker")

    def stop_worker(self, worker: CeleryWorker, how: str) -> tuple[list[int], float, float]:
        """
        End a Celery worker as :data:`WORKER_STOPS` says; return its processes (the main one first),
        the unix time just before the first signal, and when the last of them was gone.

        The worker is retired (:meth:`check_components` no longer expects it); none replaces it.
        """
        if how not in WORKER_STOPS:
            raise ValueError(f"unknown worker stop {how!r}; one of {sorted(WORKER_STOPS)}")
        component = self.components[worker.component]
        tree = [component.pid, *descendants(component.pid)]
        self.extra_pids.update(tree)
        self.retired.append(component)
        sent_at = time.time()
        if how == "sigkill":
            for pid in tree:
                self.signal_if_ours(pid, signal.SIGKILL)
        elif how == "graceful":
            for pid in tree:
                self.signal_if_ours(pid, signal.SIGTERM)
        else:
            self.signal_if_ours(component.pid, signal.SIGQUIT)
        grace_ends = sent_at + (0 if how == "sigkill" else GRACEFUL_STOP_GRACE)
        while time.time() < grace_ends and any(alive(pid) for pid in tree):
            time.sleep(0.1)
        for pid in tree:
            self.signal_if_ours(pid, signal.SIGKILL)
        wait_until(f"worker {worker.name}'s processes to exit", lambda: not any(alive(p) for p in tree), 15)
        with contextlib.suppress(subprocess.TimeoutExpired):
            component.process.wait(timeout=5)
        return tree, sent_at, time.time()

    def restart_triggerer(self) -> tuple[list[int], float]:
        """
        SIGKILL the triggerer and every process under it (a crash: no shutdown, no cleanup), then start
        a new one, as a process supervisor would. Return the killed pids and the unix time of the kill.

        The new triggerer adopts the old one's triggers once the old heartbeat is older than
        :data:`TRIGGERER_HEALTH_CHECK_THRESHOLD`.
        """
        with self._triggerer_swap:
            old = self.components["triggerer"]
            tree = [old.pid, *descendants(old.pid)]
            self.extra_pids.update(tree)
            self.retired.append(old)  # before the kill: check_components() must not take it for a crash
            killed_at = time.time()
            for pid in tree:
                if self._is_ours(pid):
                    _signal_pid(pid, signal.SIGKILL)
            old.process.wait(timeout=10)

            def gone() -> bool:
                return not any(alive(pid) for pid in tree)

            wait_until("the killed triggerer's processes to exit", gone, 10)
            self._start_triggerer()
        return tree, killed_at

    def _revive_triggerer(self, dead: Component) -> bool:
        """
        Start the triggerer again if ``dead`` (the current one) exited at startup on a locked SQLite
        database (see :data:`TRIGGERER_STARTUP_SECONDS`); whether the triggerer runs (again).
        """
        with self._triggerer_swap:
            if self.components.get("triggerer") is not dead:
                return True  # another thread revived it meanwhile
            if (
                self.triggerer_revivals >= TRIGGERER_REVIVALS
                or time.time() - self.triggerer_started_at > TRIGGERER_STARTUP_SECONDS
                or SQLITE_LOCKED not in dead.tail(40)
            ):
                return False
            self.triggerer_revivals += 1
            self.retired.append(dead)
            self._log(f"the triggerer exited at startup ({SQLITE_LOCKED}); starting it again")
            self._start_triggerer()
            return True

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log_path = self.process_log_dir / f"{name}.log"
        with log_path.open("ab") as out:
            log_start = out.tell()
            process = subprocess.Popen(
                argv,
                env=env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, ended by its pid in stop()
            )
        self.components[name] = Component(name, process, log_path, log_start)

    def _where(self) -> str:
        return f"; process logs in {self.process_log_dir}"

    def check_components(self) -> None:
        """
        Raise DeploymentError if a server process exited (one the harness retired is not checked; a
        triggerer that died at startup on a locked database is started again).
        """
        for component in list(self.components.values()):
            if any(component is retired for retired in self.retired):
                continue  # a triggerer being restarted
            if component.process.poll() is None:
                continue
            if component.name == "triggerer" and self._revive_triggerer(component):
                continue
            raise DeploymentError(
                f"{component.name} exited with {component.process.returncode}; last lines of "
                f"{component.log_path}:\n{component.tail()}"
            )

    def _api_healthy(self) -> bool:
        self.check_components()
        reply = self.http.get(f"{self.api_url}/api/v2/monitor/health", timeout=5)
        return reply.status_code == 200

    # ---- Airflow REST API ----------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, ok: Sequence[int] = (200,)) -> Any:
        """Call the public REST API (``/api/v2`` + ``path``); raise DeploymentError on another status."""
        reply = self.http.request(method, f"{self.api_url}/api/v2{path}", json=body, timeout=90)
        if reply.status_code not in ok:
            raise ApiError(
                f"{method} /api/v2{path} -> {reply.status_code}: {reply.text[:500]}", reply.status_code
            )
        return reply.json() if reply.content else None

    def change(
        self, method: str, path: str, body: Any, took_effect: Callable[[], bool], attempts: int = 4
    ) -> Any:
        """
        A state-changing REST call, one at a time (see ``_writes``), retried after a 5xx unless
        ``took_effect()`` says it was applied. SQLite takes one writer at a time: the api-server has
        answered 500 "Database error" when its action log's INSERT (committed before the endpoint runs)
        waited out SQLite's busy timeout.
        """
        for attempt in range(1, attempts + 1):
            try:
                with self._writes:
                    return self.api(method, path, body)
            except ApiError as error:
                if error.status < 500 or attempt == attempts:
                    raise
                if took_effect():
                    raise DeploymentError(f"{error}; yet it took effect: its reply is lost") from error
                self._log(f"retrying after: {error}")
                time.sleep(1)
        raise AssertionError("unreachable")

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        """Wait until the dag-processor has parsed ``dag_id``; fail at once on an import error."""

        def parsed() -> bool:
            self.check_components()
            errors = self.api("GET", "/importErrors")["import_errors"]
            if errors:
                raise DeploymentError(
                    "DAG import errors:\n" + "\n".join(f"{e['filename']}: {e['stack_trace']}" for e in errors)
                )
            reply = self.http.get(f"{self.api_url}/api/v2/dags/{dag_id}", timeout=10)
            return reply.status_code == 200 and not reply.json().get("is_paused")

        wait_until(f"DAG {dag_id!r} to be parsed", parsed, timeout, interval=1, diagnose=self._where())
        self._log(f"DAG {dag_id} parsed ({self.elapsed():.0f} s)")

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
        """Trigger a manual run of ``dag_id`` now."""
        body = {"logical_date": None, "dag_run_id": run_id, "conf": conf or {}}

        def exists() -> bool:
            reply = self.http.get(f"{self.api_url}/api/v2/dags/{dag_id}/dagRuns/{run_id}", timeout=90)
            return reply.status_code == 200

        return self.change("POST", f"/dags/{dag_id}/dagRuns", body, took_effect=exists)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """The DAG run (``state``, ...)."""
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def clear_task(
        self, dag_id: str, run_id: str, task_id: str, keep_task_state: bool | None = None
    ) -> list[dict[str, Any]]:
        """
        Clear one task instance of a run, whatever its state, as the UI's "Clear" does.

        Returns the cleared task instances as the API reports them. ``reset_dag_runs`` puts a finished
        run back to ``queued``, so the scheduler runs the task again. ``keep_task_state`` (Airflow 3.4+,
        whose clear discards the task state store by default; 3.3 always keeps it) is sent only if
        given.
        """
        body: dict[str, Any] = {
            "dag_run_id": run_id,
            "task_ids": [task_id],
            "only_failed": False,
            "dry_run": False,
            "reset_dag_runs": True,
        }
        if keep_task_state is not None:
            if not AIRFLOW_3_4_PLUS:
                raise ValueError(f"keep_task_state needs Airflow 3.4+; installed: {AIRFLOW_VERSION}")
            body["keep_task_state"] = keep_task_state
        before = self.task_instance(dag_id, run_id, task_id)

        def cleared() -> bool:
            now = self.task_instance(dag_id, run_id, task_id)
            return (
                before is None or now is None or (now["id"], now["state"]) != (before["id"], before["state"])
            )

        reply = self.change("POST", f"/dags/{dag_id}/clearTaskInstances", body, took_effect=cleared)
        return reply["task_instances"]

    def mark_task(self, dag_id: str, run_id: str, task_id: str, new_state: str) -> list[dict[str, Any]]:
        """
        Set a task instance's state, as the UI's "Mark failed" / "Mark success" does; return the task
        instances as the API reports them. On a running task, the supervisor learns it at its next
        heartbeat (HTTP 409) and SIGTERMs the task process; on a deferred one, the trigger is removed and
        the triggerer cancels it.
        """
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"

        def marked() -> bool:
            now = self.task_instance(dag_id, run_id, task_id)
            return now is not None and now["state"] == new_state

        return self.change("PATCH", path, {"new_state": new_state}, took_effect=marked)["task_instances"]

    def state_store_entry(self, dag_id: str, run_id: str, task_id: str, key: str) -> dict[str, Any] | None:
        """A key of the task instance's task state store (``key``, ``value``, ``updated_at``), or None."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/state-store/{key}"
        reply = self.http.get(f"{self.api_url}/api/v2{path}", timeout=90)
        if reply.status_code == 404:
            return None
        if reply.status_code != 200:
            raise DeploymentError(f"GET /api/v2{path} -> {reply.status_code}: {reply.text[:300]}")
        return reply.json()

    def task_instance(
        self, dag_id: str, run_id: str, task_id: str, map_index: int | None = None
    ) -> dict[str, Any] | None:
        """The task instance (``state``, ``try_number``, ``id``, ...), or None if not created yet."""
        reply = self.http.get(
            f"{self.api_url}/api/v2{_ti_path(dag_id, run_id, task_id, map_index)}", timeout=90
        )
        if reply.status_code == 404:
            return None
        if reply.status_code != 200:
            raise DeploymentError(f"task instance {dag_id}/{run_id}/{task_id}: {reply.status_code}")
        return reply.json()

    def task_tries(self, dag_id: str, run_id: str, task_id: str, map_index: int | None = None) -> list[Try]:
        """Every try of the task instance so far (``.../tries``), by try number; [] if none yet."""
        path = _ti_path(dag_id, run_id, task_id, map_index)
        reply = self.http.get(f"{self.api_url}/api/v2{path}/tries", timeout=90)
        if reply.status_code == 404:
            return []
        if reply.status_code != 200:
            raise DeploymentError(f"tries of {dag_id}/{run_id}/{task_id}: {reply.status_code}")
        tries = [Try.from_api(entry) for entry in reply.json()["task_instances"]]
        return sorted(tries, key=lambda t: t.number)

    def wait_for_state(
        self, dag_id: str, run_id: str, task_id: str, states: Iterable[str], timeout: float
    ) -> dict[str, Any]:
        """Wait until the task instance is in one of ``states``; return it."""
        wanted = set(states)

        def probe() -> dict[str, Any] | None:
            ti = self.task_instance(dag_id, run_id, task_id)
            return ti if ti is not None and ti["state"] in wanted else None

        return wait_until(f"{dag_id}/{run_id}/{task_id} in {sorted(wanted)}", probe, timeout)

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int | None = None
    ) -> Any:
        """The XCom value (JSON-decoded); raise DeploymentError if there is none."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.api("GET", path + ("" if map_index is None else f"?map_index={map_index}"))["value"]

    def mapped_task_instances(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every mapped task instance of ``task_id`` in the run, by map index."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/listMapped?limit=100"
        return sorted(self.api("GET", path)["task_instances"], key=lambda ti: ti["map_index"])

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """
        The log of one try, as text: one line per structured event, ``LEVEL event key=value ...``.

        The API answers ``{"content": [{"event": ..., "level": ..., "timestamp": ..., ...}], ...}``.
        "" if there is no log (yet) or the API did not answer.
        """
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        try:
            reply = self.http.get(
                f"{self.api_url}/api/v2{path}",
                params={"full_content": "true"},
                headers={"Accept": "application/json"},
                timeout=90,
            )
        except requests.RequestException:
            return ""
        if reply.status_code != 200:
            return ""
        return "\n".join(_log_line(entry) for entry in reply.json().get("content") or [])

    # ---- The Livy stand-in ---------------------------------------------------------------------

    def livy(self, method: str, path: str, body: Any = None) -> Any:
        """Call the stand-in (``/admin/...`` or Livy's own API)."""
        reply = self.http.request(method, f"{self.livy_url}{path}", json=body, timeout=10)
        if reply.status_code >= 400:
            raise DeploymentError(f"Livy stand-in {method} {path} -> {reply.status_code}: {reply.text[:300]}")
        return reply.json()

    def livy_stats(self) -> dict[str, Any]:
        """``{"posts", "batches_created", "requests": {...}}`` since the start (or the last reset)."""
        return self.livy("GET", "/admin/stats")

    def livy_batches(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Every batch the stand-in ever created; only those of ``run_id`` if given (by Spark conf)."""
        batches = self.livy("GET", "/admin/batches")
        if run_id is None:
            return batches
        return [b for b in batches if (b.get("conf") or {}).get(RUN_ID_CONF_KEY) == run_id]

    def livy_requests(self, batches: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """
        The stand-in's request journal (``GET /admin/requests``), in arrival order.

        With ``batches``, only the requests about them (see :func:`concerns`).
        """
        journal = self.livy("GET", "/admin/requests")
        if batches is None:
            return journal
        return [entry for entry in journal if concerns(entry, batches)]

    # ---- Worker processes ----------------------------------------------------------------------

    def worker_processes(self, ti_id: str) -> tuple[int, int]:
        """
        ``(task process, supervisor)`` pids of the running task instance ``ti_id``.

        The task process titles itself ``airflow worker -- <ti id>``; its parent, the supervisor, is a
        LocalExecutor worker (``airflow worker -- LocalExecutor: ...``) under the scheduler, or
        ``airflow supervisor: <ti id>`` under a Celery worker's pool process.
        """
        if self.celery:
            roots = [self.components[w.component].pid for w in self.workers.values()]
            parent_title = _CELERY_SUPERVISOR_TITLE
        else:
            roots = [self.components["scheduler"].pid]
            parent_title = _SUPERVISOR_TITLE
        for root in roots:
            for pid in descendants(root):
                if cmdline(pid) != f"airflow worker -- {ti_id}":
                    continue
                supervisor = parent_of(pid)
                if supervisor is None or not cmdline(supervisor).startswith(parent_title):
                    raise DeploymentError(
                        f"the parent of task process {pid} is {supervisor} ({cmdline(supervisor or 0)!r}), "
                        f"not a worker ({parent_title}...)"
                    )
                if root not in _ancestors(supervisor):
                    raise DeploymentError(f"supervisor {supervisor} is not under {root}")
                self.extra_pids.add(pid)
                return pid, supervisor
        raise DeploymentError(f"no task process for task instance {ti_id} under {roots}")

    def sigkill(self, pid: int) -> float:
        """SIGKILL one process of this deployment (refuses any other); return the unix time just before."""
        return self.send_signal(pid, signal.SIGKILL)

    def signal_if_ours(self, pid: int, signum: signal.Signals) -> bool:
        """Signal ``pid`` if it still is a live process of this deployment; whether it was."""
        if not self._is_ours(pid):
            return False
        _signal_pid(pid, signum)
        return True

    def send_signal(self, pid: int, signum: signal.Signals) -> float:
        """Signal one process of this deployment (refuses any other); return the unix time just before."""
        if not self._is_ours(pid):
            raise DeploymentError(f"refusing to signal {pid}: not a live process of this deployment")
        self.extra_pids.add(pid)
        sent_at = time.time()
        os.kill(pid, signum)
        return sent_at


def _ti_path(dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
    return path if map_index is None else f"{path}/{map_index}"


def _ancestors(pid: int) -> list[int]:
    found: list[int] = []
    parent = parent_of(pid)
    while parent is not None and parent > 1:
        found.append(parent)
        parent = parent_of(parent)
    return found


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _signal_pid(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _log_line(entry: Any) -> str:
    if not isinstance(entry, dict):
        return str(entry)
    extras = " ".join(f"{key}={value}" for key, value in entry.items() if key not in _LOG_KEYS_NOT_SHOWN)
    level = str(entry.get("level", "")).upper()
    return f"{level} {entry.get('event', '')} {extras}".strip()


def wall_time(timestamp: str | None) -> float | None:
    """An ISO 8601 time from the REST API as unix time (what the stand-in's journal records)."""
    return None if timestamp is None else datetime.fromisoformat(timestamp).timestamp()


def batch_paths(batch_id: int) -> frozenset[str]:
    """The paths that address a batch by its id: the batch, its state and its log."""
    return frozenset({f"/batches/{batch_id}", f"/batches/{batch_id}/state", f"/batches/{batch_id}/log"})


def concerns(entry: dict[str, Any], batches: Sequence[dict[str, Any]]) -> bool:
    """
    Whether a journal entry is about one of ``batches``: by id or name in its path, or a POST that
    created one of them or carried one of their names.
    """
    ids = {batch["id"] for batch in batches}
    names = {batch["name"] for batch in batches if batch["name"]}
    if entry["method"] == "POST":
        return entry["created_id"] in ids or entry["name"] in names
    paths = {path for batch_id in ids for path in batch_paths(batch_id)}
    paths |= {f"/batches/{name}{suffix}" for name in names for suffix in ("", "/state", "/log")}
    return entry["path"] in paths


def describe_request(entry: dict[str, Any]) -> str:
    """One journal entry on one line."""
    text = f"{entry['method']} {entry['path']}{'?' + entry['query'] if entry['query'] else ''}"
    text += f" -> {entry['status'] if entry['status'] is not None else 'no reply'}"
    if entry["method"] == "POST":
        text += f" (name {entry['name']!r}, created batch {entry['created_id']})"
    return text


# ---- One crash scenario ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Try:
    """One try of a task instance, as the REST API's ``.../tries`` lists it; times are unix times."""

    number: int
    state: str | None
    start: float | None
    end: float | None
    hostname: str | None = None
    """Where it ran: a Celery worker's own loopback address (:attr:`CeleryWorker.address`)."""

    @classmethod
    def from_api(cls, entry: dict[str, Any]) -> Try:
        return cls(
            number=entry["try_number"],
            state=entry["state"],
            start=wall_time(entry["start_date"]),
            end=wall_time(entry["end_date"]),
            hostname=entry.get("hostname") or None,
        )


@dataclass
class Event:
    """One line of a scenario's timeline."""

    seconds: float
    text: str


@dataclass
class Clear:
    """A clear of a run's task after it succeeded: what the run had delivered, and what the clear did."""

    seconds: float
    """Since the trigger."""
    at: float
    """Unix time, just before the clear request was sent."""
    batches: list[dict[str, Any]]
    """The run's batches when it was cleared."""
    return_value: Any
    app_id: Any
    ti_before: dict[str, Any]
    """The task instance just before the clear (``try_number``, ``max_tries``, ``state``)."""
    ti_cleared: dict[str, Any]
    """The task instance as the clear request answered it."""
    dag_run_state: str
    """The state of the DAG run right after the clear."""
    keep_task_state: bool | None = None
    """What the clear request said about the task state store (None: nothing, the version's default)."""
    store_after: Any = None
    """The task state store entry's value right after the clear; None if there was none."""

    def describe(self) -> str:
        def ti(values: dict[str, Any]) -> str:
            return " ".join(f"{key}={values[key]}" for key in ("state", "try_number", "max_tries"))

        keep = "" if self.keep_task_state is None else f" (keep_task_state={self.keep_task_state})"
        return (
            f"cleared{keep} at {self.seconds:.1f}s: before {ti(self.ti_before)}; cleared "
            f"{ti(self.ti_cleared)}; dag run {self.dag_run_state}; had returned {self.return_value!r}, "
            f"app_id {self.app_id!r}, batches {[(b['id'], b['name']) for b in self.batches]}; "
            f"task state store after the clear: {self.store_after}"
        )


KILLS: dict[str, str] = {
    "task": "SIGKILL the task process (its supervisor reports the try failed at once)",
    "supervisor": (
        "SIGKILL the supervisor (the heartbeat timeout fails the try; the task process is orphaned)"
    ),
    "sigterm": (
        "a graceful stop of the worker (Kubernetes eviction, deploy, systemd stop): SIGTERM to the "
        "supervisor (Airflow 3.3 forwards it to the task process; 3.4's warm shutdown lets the task run "
        "on); after GRACEFUL_STOP_GRACE s SIGKILL to the task process and its supervisor if the task "
        "process still lives"
    ),
    "freeze": (
        "SIGSTOP the supervisor and the task process (a frozen worker, a network partition) until the "
        "heartbeat timeout failed the try and try 2 polls the batch; then SIGCONT both: two tries alive"
    ),
    "mark_failed": "mark the task instance failed through the REST API",
    "clear": "clear the task instance through the REST API while it runs (the scheduler runs it again)",
    "triggerer": "SIGKILL the triggerer and its processes (a crash), then start a new triggerer",
    **{
        f"worker_{how}": f"CeleryExecutor: {text}, the one running try 1"
        for how, text in WORKER_STOPS.items()
    },
}
"""What the harness can do to try 1 (``kill``), once it is polling a running batch."""
WORKER_KILLS = frozenset(f"worker_{how}" for how in WORKER_STOPS)
STEADY_KILLS = frozenset({"sigterm", "freeze", "mark_failed", "clear"}) | WORKER_KILLS
"""Done once the task polls the running batch steadily (see :func:`polls_steadily`), not at its first
poll: past the task's record write that follows the batch's start, so the action does not race it."""
STEADY_POLLS = 3
SETTLING_KILLS = frozenset({"sigterm", "freeze", "mark_failed", "clear"}) | WORKER_KILLS
"""After these (and after any run that did not succeed), the end of the run waits until try 1's task
process is gone and, unless the task succeeded, until Livy heard nothing of the run for
:data:`QUIET_SECONDS`: a DELETE from ``on_kill`` may follow the moment Airflow recorded the end."""
QUIET_SECONDS = 5.0
SETTLE_TIMEOUT = 30.0
ACTION_TIMEOUT = 90.0
"""How long a blocking step of an action (try 2 to reconnect, the new triggerer to adopt) may take."""


@dataclass
class CrashRun:
    """What happened in one run: the timeline, what Livy saw and what Airflow recorded."""

    dag_id: str
    run_id: str
    task_id: str
    kill: str | None
    """What the harness did to try 1 (see :data:`KILLS`), or ``None``."""
    while_deferred: bool = False
    """Whether the harness acted while try 1 was deferred (else while it ran in a worker)."""
    events: list[Event] = field(default_factory=list)
    began_at: float = 0.0
    """Unix time of the trigger."""
    ended_at: float | None = None
    """Unix time the harness saw the run end (and, after a settling action, settle)."""
    killed_pids: dict[str, int] = field(default_factory=dict)
    """The processes the harness signalled (``task``, ``supervisor``, ``triggerer``, ``worker``: the
    Celery worker's main process)."""
    killed_worker: str | None = None
    """The Celery worker the harness ended (its :attr:`CeleryWorker.address`)."""
    try_1_pids: dict[str, int] = field(default_factory=dict)
    """Try 1's ``task`` process and ``supervisor``, when the harness acted on a running try 1."""
    killed_at: float | None = None
    """Unix time just before the harness sent its (first) signal (``None`` if it sent none): every
    request that arrived earlier was sent before the signal, and the try ended after it."""
    acted_at: float | None = None
    """Unix time just before the harness acted on try 1 (a signal or a REST call); ``None`` if it did not."""
    action_reply: dict[str, Any] | None = None
    """The task instance as the mark-failed or clear request answered it."""
    marks: dict[str, float] = field(default_factory=dict)
    """Unix times at which notable things were seen, at most 0.5 s late: ``orphan_exited``,
    ``task_exited`` (try 1's task process, after a SIGTERM: at most 0.1 s late), ``sigkilled``,
    ``resumed`` (SIGCONT), ``stale_exited`` (try 1's task process after the SIGCONT),
    ``retry_polled`` (try 2's first poll seen), ``triggerer_started``, ``triggerer_polled``,
    ``worker_gone`` (every process of the ended Celery worker)."""
    store: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    """Snapshots of the operator's record (task state store entry ``livy_batch_record``: ``value``,
    ``updated_at``): ``end``; after a freeze also ``before_resume`` and ``stale_exited``."""
    final_state: str | None = None
    try_number: int | None = None
    tries: list[Try] = field(default_factory=list)
    """Every try, from the REST API, once the run ended."""
    batches: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    """The stand-in's journal entries about this run's batches (see :func:`concerns`) at the end."""
    posts_during_run: int | None = None
    return_value: Any = None
    app_id: Any = None
    logs: dict[int, str] = field(default_factory=dict)
    error: str | None = None
    clear: Clear | None = None
    """Set if the task was cleared after it succeeded (``clear_after_success``)."""

    def log(self, try_number: int) -> str:
        return self.logs.get(try_number, "")

    def get_try(self, number: int) -> Try:
        """Try ``number`` as the REST API reported it at the end."""
        found = [t for t in self.tries if t.number == number]
        assert len(found) == 1, f"try {number} is not among the tries {self.tries}\n{self.describe()}"
        return found[0]

    def try_start(self, number: int) -> float:
        """The unix time try ``number`` started (stamped by its supervisor before the task runs)."""
        start = self.get_try(number).start
        assert start is not None, f"try {number} has no start\n{self.describe()}"
        return start

    def try_end(self, number: int) -> float:
        """The unix time try ``number`` ended."""
        end = self.get_try(number).end
        assert end is not None, f"try {number} has no end\n{self.describe()}"
        return end

    def requests_of(self, method: str) -> list[dict[str, Any]]:
        """The run's requests with ``method`` (``POST``, ``DELETE``, ...), in arrival order."""
        return [e for e in self.requests if e["method"] == method]

    def since_trigger(self, at: float | None) -> str:
        """A unix time as seconds since the trigger, for messages."""
        return "-" if at is None else f"{at - self.began_at:.1f}s"

    def timings(self) -> dict[str, float]:
        """Seconds between what the harness did and what followed (only those that happened)."""
        found: dict[str, float] = {}
        tries = {t.number: t for t in self.tries}
        deletes = self.requests_of("DELETE")
        if self.acted_at is not None:
            after = [e["time"] for e in deletes if e["time"] >= self.acted_at]
            if after:
                found["action -> DELETE"] = after[0] - self.acted_at
            if 1 in tries and tries[1].end is not None:
                found["action -> try 1 end"] = tries[1].end - self.acted_at
            if 2 in tries and tries[2].start is not None:
                found["action -> try 2 start"] = tries[2].start - self.acted_at
                requests_2 = [e["time"] for e in self.requests if e["time"] >= tries[2].start]
                if requests_2:
                    found["action -> try 2's first Livy request"] = requests_2[0] - self.acted_at
            for mark, label in (
                ("task_exited", "SIGTERM -> task process exit"),
                ("sigkilled", "SIGTERM -> SIGKILL"),
                ("retry_polled", "SIGSTOP -> try 2 polls"),
                ("triggerer_polled", "kill -> the new triggerer polls"),
                ("worker_gone", "signal -> the worker's processes gone"),
            ):
                if mark in self.marks:
                    found[label] = self.marks[mark] - self.acted_at
        else:
            posts = self.requests_of("POST")
            if deletes and posts:
                found["POST -> DELETE"] = deletes[0]["time"] - posts[0]["time"]
        if "resumed" in self.marks and "stale_exited" in self.marks:
            found["SIGCONT -> stale try's exit"] = self.marks["stale_exited"] - self.marks["resumed"]
        if self.ended_at is not None:
            found["trigger -> end"] = self.ended_at - self.began_at
        return found

    def summary(self) -> str:
        """One line: the run's POSTs and DELETEs, its end, and the timings."""
        posts = [e for e in self.requests_of("POST") if e["created_id"] is not None]  # reply lost or not
        deletes = self.requests_of("DELETE")
        timings = ", ".join(f"{label} {seconds:.1f}s" for label, seconds in self.timings().items())
        return (
            f"POST {len(posts)} (created {[e['created_id'] for e in posts]}), "
            f"DELETE {len(deletes)} ({[e['path'] for e in deletes]}), "
            f"final {self.final_state} on try {self.try_number}, tries "
            f"{[(t.number, t.state) for t in self.tries]}; {timings}"
            + (f"; ERROR {self.error}" if self.error else "")
        )

    def describe(self) -> str:
        """Everything, for an assertion message."""
        timeline = "\n".join(f"  {e.seconds:6.1f}s  {e.text}" for e in self.events)
        tries = "\n".join(
            f"  try {t.number}: {t.state}, {self.since_trigger(t.start)} .. {self.since_trigger(t.end)}"
            for t in self.tries
        )
        journal = "\n".join(
            f"  {self.since_trigger(e['time']):>7}  {describe_request(e)}" for e in self.requests[-60:]
        )
        batches = "\n".join(f"  {b}" for b in self.batches)
        logs = "\n".join(f"--- try {n} ---\n{text[-6000:]}" for n, text in sorted(self.logs.items()))
        cleared = f"{self.clear.describe()}\n" if self.clear else ""
        marks = ", ".join(f"{name} {self.since_trigger(at)}" for name, at in self.marks.items())
        store = "\n".join(f"  {name}: {entry}" for name, entry in self.store.items())
        return (
            f"{self.dag_id} / {self.run_id}: state={self.final_state} try={self.try_number} "
            f"return_value={self.return_value!r} app_id={self.app_id!r} error={self.error}\n"
            f"action {self.kill}{' (while deferred)' if self.while_deferred else ''} at "
            f"{self.since_trigger(self.acted_at)}; marks: {marks or '-'}\n"
            f"summary: {self.summary()}\n"
            f"{cleared}timeline:\n{timeline}\ntries (since the trigger):\n{tries}\n"
            f"Livy requests about this run's batches (the last 60, since the trigger):\n{journal}\n"
            f"Livy batches of this run:\n{batches}\ntask state store:\n{store}\ntask logs:\n{logs}"
        )


def run_crash_scenario(
    deployment: Deployment,
    dag_id: str,
    run_id: str,
    *,
    kill: str | None,
    conf: dict[str, Any] | None = None,
    task_id: str = "spark_pi",
    while_deferred: bool = False,
    clear_after_success: bool = False,
    keep_task_state: bool | None = None,
    store_key: str = "livy_batch_record",
    timeout: float = 240,
    on_event: Callable[[Event], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> CrashRun:
    """
    Trigger ``dag_id``, act on try 1 of ``task_id`` while it polls a running batch; wait for the end.

    :param kill: what to do to try 1 (see :data:`KILLS`), or ``None`` (a DAG whose task ends itself).
        Transient API errors (a busy api-server) are retried until ``timeout``.
    :param while_deferred: act once try 1 is deferred and the triggerer polled the batch, holding
        :attr:`Deployment.triggerer_lock` (``kill="triggerer"`` implies it).
    :param clear_after_success: once the task succeeded, record what it delivered (``CrashRun.clear``),
        clear it through the REST API and wait for the try the scheduler runs after the clear.
    :param keep_task_state: sent with that clear (Airflow 3.4+; see :meth:`Deployment.clear_task`).
    :param store_key: the task state store key to snapshot (``CrashRun.store``).
    :param cancelled: polled; once it returns True the wait ends (the run is left as it is).
    :return: the run's record; ``error`` says what went wrong if the run did not end in time.
    """
    if kill is not None and kill not in KILLS:
        raise ValueError(f"unknown kill {kill!r}; one of {sorted(KILLS)}")
    while_deferred = while_deferred or kill == "triggerer"
    run = CrashRun(dag_id=dag_id, run_id=run_id, task_id=task_id, kill=kill, while_deferred=while_deferred)
    began = time.monotonic()
    run.began_at = time.time()

    def event(text: str, at: float | None = None) -> None:
        """Add to the timeline; ``at``: the unix time it happened (default: now)."""
        seconds = time.monotonic() - began if at is None else at - run.began_at
        run.events.append(Event(seconds, text))
        if on_event is not None:
            on_event(run.events[-1])

    def probe_unless_cancelled(probe: Callable[[], Any]) -> Callable[[], Any]:
        def probing() -> Any:
            if cancelled():
                raise DeploymentError("cancelled")
            deployment.check_components()  # a crashed scheduler ends every wait at once
            return probe()

        return probing

    step = _Step(deployment, run, event, probe_unless_cancelled, store_key)
    posts_before = deployment.livy_stats()["posts"]
    deployment.trigger(dag_id, run_id, conf)
    event(f"triggered {dag_id} run {run_id}")
    seen_state: tuple[Any, Any] = (None, None)
    seen_batches: dict[int, str] = {}
    shown_requests: set[int] = set()
    shown_routine: set[tuple[Any, str, str]] = set()
    kill_pending = kill is not None
    clear_pending = clear_after_success
    deferred_since: float | None = None
    holds_triggerer = False
    deadline = began + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                raise DeploymentError(f"the run did not finish within {timeout:.0f} s")
            if cancelled():
                raise DeploymentError("cancelled")
            deployment.check_components()  # a crashed scheduler: fail now, with its log's last lines
            try:
                ti = deployment.task_instance(dag_id, run_id, task_id)
                batches = deployment.livy_batches(run_id)
                journal = deployment.livy_requests(batches) if batches else []
            except requests.RequestException:
                time.sleep(1)
                continue
            state = (ti["state"], ti["try_number"]) if ti else (None, None)
            if state != seen_state and state[0] is not None:
                seen_state = state
                event(f"try {state[1]}: {state[0]}")
            for batch in batches:
                if batch["id"] not in seen_batches:
                    active = [i for i, known in seen_batches.items() if known in ("starting", "running")]
                    note = f": a duplicate, batch {active[0]} still runs" if active else ""
                    event(
                        f"Livy created batch {batch['id']} ({batch['name'] or 'no name'}), "
                        f"{batch['state']}{note}"
                    )
                elif batch["state"] != seen_batches[batch["id"]] and batch["state"] in (
                    "success",
                    "dead",
                    "killed",
                ):
                    event(f"Livy batch {batch['id']} ended: {batch['state']}")
                seen_batches[batch["id"]] = batch["state"]
            for entry in journal:
                if entry["seq"] in shown_requests:
                    continue
                shown_requests.add(entry["seq"])
                # Polls and log reads by id are shown once per (current try, path, status).
                routine = entry["method"] == "GET" and entry["kind"].startswith("GET /batches/{id}")
                key = (state[1], entry["path"], str(entry["status"]))
                if routine and key in shown_routine:
                    continue
                shown_routine.add(key)
                event(f"Livy request: {describe_request(entry)}", at=entry["time"])
            step.watch_processes()
            if ti is None:
                time.sleep(0.5)
                continue
            try_number, ti_state = ti["try_number"], ti["state"]
            if ti_state == "deferred" and deferred_since is None:
                deferred_since = time.time()
            if kill_pending and try_number == 1 and not while_deferred:
                ready = polls_steadily if kill in STEADY_KILLS else polls_running
                if ti_state == "running" and ready(batches, journal):
                    step.act(kill or "", ti)
                    kill_pending = False
            elif kill_pending and try_number == 1 and ti_state == "deferred" and deferred_since is not None:
                acted, holds_triggerer = step.act_while_deferred(
                    kill or "", ti, batches, journal, deferred_since
                )
                kill_pending = not acted
            if ti_state in TERMINAL_TI_STATES:
                if clear_pending and ti_state == "success":
                    clear_pending = False
                    run.clear = _clear(deployment, run, began, keep_task_state, store_key)
                    event(f"cleared {task_id}: {run.clear.describe()}")
                    continue
                earliest_try = run.clear.ti_before["try_number"] + 1 if run.clear else step.first_final_try
                if try_number >= earliest_try:
                    run.final_state, run.try_number = ti_state, try_number
                    break
            time.sleep(0.5)
        if kill_pending:
            raise DeploymentError(f"try 1 ended ({run.final_state}) before the harness could act ({kill})")
        if clear_pending:
            raise DeploymentError(f"try {run.try_number} ended {run.final_state}: no success to clear")
        if kill in SETTLING_KILLS or run.final_state != "success":
            step.settle(shown_requests, event)
    except DeploymentError as error:
        run.error = str(error)
        event(f"ERROR: {error}")
    finally:
        step.release()
        if holds_triggerer:
            deployment.triggerer_lock.release()
        run.ended_at = time.time()
        _collect(deployment, run, posts_before, store_key)
    if run.final_state == "success":
        event(f"task succeeded: returned {run.return_value!r}, app_id {run.app_id!r}")
    return run


def polls_running(
    batches: Sequence[dict[str, Any]], journal: Sequence[dict[str, Any]], since: float | None = None
) -> bool:
    """
    Whether a batch is running and the journal shows it was polled by id (``GET /batches/{id}`` or
    ``.../state`` answered 200), at or after ``since`` if given: the task (or its trigger) has the id
    and waits in its polling loop.
    """
    running = {batch["id"] for batch in batches if batch["state"] == "running"}
    polled = {f"/batches/{batch_id}" for batch_id in running} | {f"/batches/{i}/state" for i in running}
    return any(
        e["method"] == "GET"
        and e["status"] == 200
        and e["path"] in polled
        and (since is None or e["time"] >= since)
        for e in journal
    )


def running_since(batch: dict[str, Any]) -> float:
    """The unix time a batch of the stand-in went from ``starting`` to ``running`` (or will)."""
    starting = (batch.get("conf") or {}).get("spark.standin.startingSeconds", "0.2")
    return float(batch["created_at"]) + float(starting)


def polls_steadily(
    batches: Sequence[dict[str, Any]], journal: Sequence[dict[str, Any]], polls: int = STEADY_POLLS
) -> bool:
    """
    Whether a batch is running and the journal shows ``polls`` answered polls of it by id since it
    began to run: the task saw the state change, did what follows it (a whole-batch read, a record
    write with the app id) and went on polling.
    """
    for batch in batches:
        if batch["state"] != "running":
            continue
        since = running_since(batch)
        paths = {f"/batches/{batch['id']}", f"/batches/{batch['id']}/state"}
        seen = [e for e in journal if e["method"] == "GET" and e["status"] == 200 and e["path"] in paths]
        if len([e for e in seen if e["time"] >= since]) >= polls:
            return True
    return False


class _Step:
    """What the harness does to try 1 of one run (:data:`KILLS`), and what it watches afterwards."""

    def __init__(
        self,
        deployment: Deployment,
        run: CrashRun,
        event: Callable[..., None],
        unless_cancelled: Callable[[Callable[[], Any]], Callable[[], Any]],
        store_key: str,
    ) -> None:
        self.deployment = deployment
        self.run = run
        self.event = event
        self.unless_cancelled = unless_cancelled
        self.store_key = store_key
        self.first_final_try = 1
        """A terminal state of an earlier try is not the end (after a clear: the re-run's)."""
        self.stopped: list[int] = []
        """Processes the harness SIGSTOPped and has not yet continued."""

    def act_while_deferred(
        self,
        kill: str,
        ti: dict[str, Any],
        batches: Sequence[dict[str, Any]],
        journal: Sequence[dict[str, Any]],
        deferred_since: float,
    ) -> tuple[bool, bool]:
        """
        Act on the deferred try 1 if the current triggerer polled its batch since it deferred.

        Holds :attr:`Deployment.triggerer_lock` meanwhile, so that the other deferred scenario neither
        restarts the triggerer nor acts during a restart. Return whether it acted, and whether the lock is
        still held (after a mark-failed, until the run settled: the trigger's ``on_kill`` runs in the
        triggerer; a restart releases it once the new triggerer polls).
        """
        lock = self.deployment.triggerer_lock
        if not lock.acquire(blocking=False):
            return False, False
        since = max(deferred_since, self.deployment.triggerer_started_at)
        if not polls_running(batches, journal, since=since):
            lock.release()
            return False, False
        try:
            self.act(kill, ti)
        except BaseException:
            if kill != "triggerer":
                lock.release()
            raise
        return True, kill != "triggerer"

    def act(self, kill: str, ti: dict[str, Any]) -> None:
        run, deployment = self.run, self.deployment
        if kill == "triggerer":
            self._restart_triggerer()
            return
        if kill == "mark_failed" and run.while_deferred:
            run.acted_at = time.time()
            self._mark_failed()
            return
        task_pid, supervisor_pid = deployment.worker_processes(ti["id"])
        run.try_1_pids = {"task": task_pid, "supervisor": supervisor_pid}
        if kill in WORKER_KILLS:
            self._stop_worker(kill.removeprefix("worker_"), ti)
        elif kill in ("task", "supervisor"):
            _kill(deployment, run, ti, kill, self.event)
            run.acted_at = run.killed_at
        elif kill == "sigterm":
            self._graceful_stop(task_pid, supervisor_pid)
        elif kill == "freeze":
            self._freeze(task_pid, supervisor_pid)
        elif kill == "mark_failed":
            run.acted_at = time.time()
            self._mark_failed()
        elif kill == "clear":
            run.acted_at = time.time()
            cleared = deployment.clear_task(run.dag_id, run.run_id, run.task_id)
            if len(cleared) != 1 or cleared[0]["task_id"] != run.task_id:
                raise DeploymentError(f"clearing {run.task_id} of {run.run_id} cleared {cleared}")
            run.action_reply = {key: cleared[0][key] for key in ("state", "try_number", "max_tries")}
            self.first_final_try = ti["try_number"] + 1
            self.event(f"cleared the running task through the REST API: it is now {run.action_reply}")
        else:
            raise ValueError(f"unknown kill {kill!r}")

    def _stop_worker(self, how: str, ti: dict[str, Any]) -> None:
        """End the Celery worker that runs try 1 (see :data:`WORKER_STOPS`)."""
        run, deployment = self.run, self.deployment
        worker = deployment.worker_running(ti["id"])
        self.event(f"{how} stop of Celery worker {worker.name} ({worker.address}), which runs try 1")
        tree, run.killed_at, run.marks["worker_gone"] = deployment.stop_worker(worker, how)
        run.acted_at = run.killed_at
        run.killed_pids = {"worker": tree[0], **run.try_1_pids}
        run.killed_worker = worker.address
        self.event(f"every process of worker {worker.name} is gone: {tree}", at=run.marks["worker_gone"])

    def _mark_failed(self) -> None:
        run = self.run
        marked = self.deployment.mark_task(run.dag_id, run.run_id, run.task_id, "failed")
        if len(marked) != 1 or marked[0]["task_id"] != run.task_id:
            raise DeploymentError(f"marking {run.task_id} of {run.run_id} failed marked {marked}")
        run.action_reply = {key: marked[0][key] for key in ("state", "try_number", "max_tries")}
        where = "deferred" if run.while_deferred else "running"
        self.event(f"marked the {where} task failed through the REST API: it is now {run.action_reply}")

    def _graceful_stop(self, task_pid: int, supervisor_pid: int) -> None:
        """SIGTERM the supervisor; SIGKILL both after the grace period if the task process still lives."""
        run, deployment = self.run, self.deployment
        run.killed_pids = {"task": task_pid, "supervisor": supervisor_pid}
        run.killed_at = run.acted_at = deployment.send_signal(supervisor_pid, signal.SIGTERM)
        passes_on = (
            "3.4+: a warm shutdown, it lets task process {pid} run on"
            if AIRFLOW_3_4_PLUS
            else "it forwards SIGTERM to task process {pid}"
        ).format(pid=task_pid)
        self.event(
            f"SIGTERM supervisor {supervisor_pid} (a graceful stop; {passes_on}) while the task polls; "
            f"SIGKILL in {GRACEFUL_STOP_GRACE:.0f} s if still alive"
        )
        grace_ends = run.killed_at + GRACEFUL_STOP_GRACE
        while alive(task_pid) and time.time() < grace_ends:
            time.sleep(0.1)
        if not alive(task_pid):
            run.marks["task_exited"] = time.time()
            self.event(f"task process {task_pid} exited after the SIGTERM", at=run.marks["task_exited"])
            # Its supervisor has reported the try and is an idle LocalExecutor worker again, which may
            # already run try 2: it is left alone (under Kubernetes the pod would be gone).
            return
        run.marks["sigkilled"] = deployment.sigkill(task_pid)
        if alive(supervisor_pid):
            deployment.sigkill(supervisor_pid)
        self.event(f"the grace period ended: SIGKILL task process {task_pid} and supervisor {supervisor_pid}")

    def _freeze(self, task_pid: int, supervisor_pid: int) -> None:
        """
        SIGSTOP try 1's supervisor and task process; wait until try 2 polls the batch; SIGCONT them.

        Before the SIGCONT, the task state store entry is snapshotted (``before_resume``); again when
        try 1's task process is gone (``stale_exited``, see :meth:`watch_processes`).
        """
        run, deployment = self.run, self.deployment
        run.killed_pids = {"task": task_pid, "supervisor": supervisor_pid}
        run.killed_at = run.acted_at = deployment.send_signal(supervisor_pid, signal.SIGSTOP)
        self.stopped.append(supervisor_pid)
        deployment.send_signal(task_pid, signal.SIGSTOP)
        self.stopped.append(task_pid)
        self.event(f"SIGSTOP supervisor {supervisor_pid} and task process {task_pid} while the task polls")

        def try_2_polls() -> float | None:
            ti = deployment.task_instance(run.dag_id, run.run_id, run.task_id)
            if ti is None or ti["try_number"] < 2 or ti["state"] != "running" or ti["start_date"] is None:
                return None
            started = wall_time(ti["start_date"]) or 0.0
            journal = deployment.livy_requests(deployment.livy_batches(run.run_id))
            # Try 1 is frozen: a poll of the batch's state since try 2 started is try 2's, in its
            # polling loop (so its resume, and any write of it, is done).
            polls = [
                e["time"]
                for e in journal
                if e["method"] == "GET" and e["path"].endswith("/state") and e["status"] == 200
                if e["time"] >= started
            ]
            return polls[0] if polls else None

        run.marks["retry_polled"] = wait_until(
            "try 2 to start and poll the batch while try 1 is frozen",
            self.unless_cancelled(try_2_polls),
            ACTION_TIMEOUT,
        )
        self.event("try 2 polls the batch while try 1 is frozen", at=run.marks["retry_polled"])
        run.store["before_resume"] = self._store_entry()
        self.release()
        self.event(f"SIGCONT supervisor {supervisor_pid} and task process {task_pid}: two tries alive")

    def _restart_triggerer(self) -> None:
        """SIGKILL the triggerer's processes, start a new one, wait until it polls the batch."""
        run, deployment = self.run, self.deployment
        try:
            tree, run.killed_at = deployment.restart_triggerer()
            run.acted_at = run.killed_at
            run.killed_pids = {"triggerer": tree[0]}
            run.marks["triggerer_started"] = deployment.triggerer_started_at
            self.event(f"SIGKILL the triggerer and its processes {tree} while it polls; started a new one")

            def new_triggerer_polls() -> float | None:
                batches = deployment.livy_batches(run.run_id)
                journal = deployment.livy_requests(batches)
                running = {b["id"] for b in batches if b["state"] == "running"}
                paths = {f"/batches/{i}/state" for i in running} | {f"/batches/{i}" for i in running}
                polls = [
                    e["time"]
                    for e in journal
                    if e["method"] == "GET"
                    and e["path"] in paths
                    and e["time"] >= deployment.triggerer_started_at
                ]
                return polls[0] if polls else None

            run.marks["triggerer_polled"] = wait_until(
                "the new triggerer to poll the batch",
                self.unless_cancelled(new_triggerer_polls),
                ACTION_TIMEOUT,
            )
            self.event("the new triggerer polls the batch", at=run.marks["triggerer_polled"])
        finally:
            deployment.triggerer_lock.release()

    def release(self) -> None:
        """SIGCONT what the harness stopped (idempotent; also after an error)."""
        if not self.stopped:
            return
        self.run.marks.setdefault("resumed", time.time())
        for pid in self.stopped:
            self.deployment.signal_if_ours(pid, signal.SIGCONT)
        self.stopped.clear()

    def _store_entry(self) -> dict[str, Any] | None:
        run = self.run
        entry = self.deployment.state_store_entry(run.dag_id, run.run_id, run.task_id, self.store_key)
        return None if entry is None else {"value": entry["value"], "updated_at": entry["updated_at"]}

    def watch_processes(self) -> None:
        """Note when an orphaned or resumed task process of try 1 exits (called every loop)."""
        run = self.run
        orphan = run.killed_pids.get("task") if run.kill == "supervisor" else None
        if orphan is not None and "orphan_exited" not in run.marks and not alive(orphan):
            run.marks["orphan_exited"] = time.time()
            self.event(f"the orphaned task process {orphan} of try 1 exited")
        stale = run.killed_pids.get("task") if run.kill == "freeze" else None
        if (
            stale is not None
            and "resumed" in run.marks
            and not self.stopped
            and "stale_exited" not in run.marks
            and not alive(stale)
        ):
            run.marks["stale_exited"] = time.time()
            run.store["stale_exited"] = self._store_entry()
            self.event(f"the resumed task process {stale} of try 1 exited")

    def settle(self, shown: set[int], event: Callable[..., None]) -> None:
        """
        Wait until try 1's task process is gone and, unless the task succeeded, Livy heard nothing
        about the run's batches for :data:`QUIET_SECONDS` (at most :data:`SETTLE_TIMEOUT`): an
        ``on_kill`` (the task's, or its trigger's) may still be running.
        """
        run, deployment = self.run, self.deployment
        task_pid = run.try_1_pids.get("task")

        def settled() -> bool:
            self.watch_processes()
            if task_pid is not None and alive(task_pid):
                return False
            if run.final_state == "success":
                return True  # nothing of the run is left to act
            journal = deployment.livy_requests(deployment.livy_batches(run.run_id))
            for entry in journal:
                if entry["seq"] not in shown and entry["method"] != "GET":
                    shown.add(entry["seq"])
                    event(f"Livy request: {describe_request(entry)}", at=entry["time"])
            last = max((e["time"] for e in journal), default=0.0)
            return time.time() - last >= QUIET_SECONDS

        wait_until(
            "try 1 to be gone and Livy to hear no more of the run",
            self.unless_cancelled(settled),
            SETTLE_TIMEOUT,
        )


def _kill(
    deployment: Deployment, run: CrashRun, ti: dict[str, Any], kill: str, event: Callable[[str], None]
) -> None:
    task_pid, supervisor_pid = deployment.worker_processes(ti["id"])
    run.killed_pids = {"task": task_pid, "supervisor": supervisor_pid}
    if kill == "task":
        run.killed_at = deployment.sigkill(task_pid)
        event(f"SIGKILL task process {task_pid} (its supervisor {supervisor_pid} lives) while it polls")
    elif kill == "supervisor":
        run.killed_at = deployment.sigkill(supervisor_pid)
        event(
            f"SIGKILL supervisor {supervisor_pid} while its task process {task_pid} polls "
            "(the task process is orphaned)"
        )
    else:
        raise ValueError(f"unknown kill target {kill!r}")


def _clear(
    deployment: Deployment, run: CrashRun, began: float, keep_task_state: bool | None, store_key: str
) -> Clear:
    """
    Once the DAG run finished, record what the succeeded task delivered, then clear the task.

    Clearing a finished run puts it back to ``queued``, as clearing a task of a finished run in the UI.
    The task state store entry is read right after the clear (the re-run starts seconds later).
    """
    dag_id, run_id, task_id = run.dag_id, run.run_id, run.task_id

    def finished() -> str | None:
        state = deployment.dag_run(dag_id, run_id)["state"]
        return state if state in ("success", "failed") else None

    run_state = wait_until(f"DAG run {run_id} to finish", finished, 30)
    if run_state != "success":
        raise DeploymentError(f"DAG run {run_id} ended {run_state} although {task_id} succeeded")
    batches = deployment.livy_batches(run_id)
    return_value = deployment.xcom(dag_id, run_id, task_id)
    app_id = deployment.xcom(dag_id, run_id, task_id, "app_id")
    ti = deployment.task_instance(dag_id, run_id, task_id)
    if ti is None:
        raise DeploymentError(f"task instance {dag_id}/{run_id}/{task_id} vanished")
    seconds, at = time.monotonic() - began, time.time()
    cleared = deployment.clear_task(dag_id, run_id, task_id, keep_task_state)
    if len(cleared) != 1 or cleared[0]["task_id"] != task_id:
        raise DeploymentError(f"clearing {dag_id}/{run_id}/{task_id} cleared {cleared}")
    entry = deployment.state_store_entry(dag_id, run_id, task_id, store_key)
    return Clear(
        seconds=seconds,
        at=at,
        batches=batches,
        return_value=return_value,
        app_id=app_id,
        ti_before={key: ti[key] for key in ("state", "try_number", "max_tries")},
        ti_cleared={key: cleared[0][key] for key in ("state", "try_number", "max_tries")},
        dag_run_state=deployment.dag_run(dag_id, run_id)["state"],
        keep_task_state=keep_task_state,
        store_after=None if entry is None else entry["value"],
    )


def _collect(deployment: Deployment, run: CrashRun, posts_before: int, store_key: str) -> None:
    run.batches = deployment.livy_batches(run.run_id)
    run.requests = deployment.livy_requests(run.batches)
    run.posts_during_run = deployment.livy_stats()["posts"] - posts_before
    ti = deployment.task_instance(run.dag_id, run.run_id, run.task_id)
    if ti is not None:
        run.try_number = run.try_number or ti["try_number"]
        run.final_state = run.final_state or ti["state"]
        run.tries = deployment.task_tries(run.dag_id, run.run_id, run.task_id)
        for number in range(1, (ti["try_number"] or 0) + 1):
            run.logs[number] = deployment.task_log(run.dag_id, run.run_id, run.task_id, number)
        entry = deployment.state_store_entry(run.dag_id, run.run_id, run.task_id, store_key)
        run.store["end"] = (
            None if entry is None else {"value": entry["value"], "updated_at": entry["updated_at"]}
        )
    if run.final_state == "success":
        try:
            run.return_value = deployment.xcom(run.dag_id, run.run_id, run.task_id)
            run.app_id = deployment.xcom(run.dag_id, run.run_id, run.task_id, "app_id")
        except DeploymentError as error:
            run.error = run.error or f"reading the XComs: {error}"
