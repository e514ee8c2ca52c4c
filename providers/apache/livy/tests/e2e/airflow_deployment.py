"""
A real Airflow 3.3 deployment on the loopback interface, with the Livy stand-in, for end-to-end tests.

Used by the e2e tests (``conftest.py``) and by ``dev/demo.py``; this is the only copy.

* :class:`Deployment` makes a scratch ``AIRFLOW_HOME`` (LocalExecutor, SQLite), copies DAG files into
  its dags folder, runs ``airflow db migrate`` and starts the Livy stand-in, ``airflow api-server``,
  ``airflow scheduler`` and ``airflow dag-processor``, each in its own process group, all bound to
  127.0.0.1. It talks to the public REST API (no token: the simple auth manager makes everyone admin)
  and to the stand-in's ``/admin`` endpoints, finds worker processes in ``/proc`` and SIGKILLs them.
  :meth:`Deployment.stop` ends every process it started, by pid, including task processes (each in a
  process group of its own) and the ones a killed supervisor orphaned.
* :func:`run_crash_scenario` triggers one run, kills the worker at the chosen point (or, once the
  task succeeded, clears it through the REST API so that it runs again), waits for the end and
  collects what Livy and Airflow saw, with a timeline.

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
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

LOOPBACK = "127.0.0.1"
TERMINAL_TI_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
RUN_ID_CONF_KEY = "spark.airflow.run_id"
"""The Spark conf key the example DAG sets to the run id: how a batch is traced back to its run."""

_SUPERVISOR_TITLE = "airflow worker -- LocalExecutor"
_LOG_KEYS_NOT_SHOWN = frozenset(
    {"event", "level", "timestamp", "logger", "sources", "filename", "lineno"}
    | {"dag_id", "run_id", "task_id", "map_index", "try_number", "ti_id"}
)


class DeploymentError(RuntimeError):
    """The deployment could not start or did not behave in time; the message says what and where."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


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

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


class Deployment:
    """
    Airflow 3.3 (api-server, scheduler, dag-processor; LocalExecutor, SQLite) plus the Livy stand-in.

    :param home: the ``AIRFLOW_HOME`` to use; created if missing. Reusing a home keeps its migrated
        database (a warm start).
    :param dag_files: DAG files copied into ``<home>/dags``.
    :param parallelism: ``[core] parallelism``: how many tasks may run at once.
    :param log: called with one line of progress at a time (default: nothing).
    """

    def __init__(
        self,
        home: Path,
        dag_files: Sequence[Path],
        *,
        parallelism: int = 4,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.home = Path(home).resolve()
        self.dag_files = [Path(p) for p in dag_files]
        self.parallelism = parallelism
        self._log = log or (lambda line: None)
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
        self.env = self._airflow_env()
        self._migrate()
        self._start_airflow("api-server", "--workers", "1", "--host", LOOPBACK, "--port", str(self.api_port))
        self._start_airflow("scheduler", "--skip-serve-logs")
        self._start_airflow("dag-processor")
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
        self.http.close()

    def leftover_pids(self) -> list[int]:
        """Processes of this deployment still alive (should be empty after :meth:`stop`)."""
        alive_components = [c.pid for c in self.components.values() if c.process.poll() is None]
        return sorted(set(alive_components) | set(self._marked_pids()))

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

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
        sessions = {c.pid for c in self.components.values()}
        return session_of(pid) in sessions and cmdline(pid).startswith("airflow")

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
        # Task instances record this "hostname", which the api-server asks for served logs: loopback.
        helpers = self.home / "python"
        helpers.mkdir(exist_ok=True)
        (helpers / "livy_e2e_loopback.py").write_text(
            f'"""Hostname callable for Airflow: this deployment is loopback only."""\n\n\n'
            f"def hostname():\n    return {LOOPBACK!r}\n"
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
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
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
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "10",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "1",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
            "AIRFLOW_CONN_LIVY_DEFAULT": json.dumps(conn),
        }

    def _start_standin(self) -> None:
        port_file = self.home / "livy-standin.port"
        port_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "livy_standin", "--host", LOOPBACK, "--port", "0"]
        self._spawn("livy-standin", [*argv, "--port-file", str(port_file)], self._base_env())
        component = self.components["livy-standin"]

        def bound() -> bool:
            if component.process.poll() is not None:
                raise DeploymentError(f"the Livy stand-in exited:\n{component.tail()}")
            return port_file.exists()

        wait_until("the Livy stand-in to bind", bound, 30)
        self.livy_port = int(port_file.read_text().strip())
        self._log(f"Livy stand-in listening at {self.livy_url}")

    def _airflow(self, *args: str) -> list[str]:
        binary = Path(sys.executable).parent / "airflow"
        return [str(binary), *args] if binary.exists() else [sys.executable, "-m", "airflow", *args]

    def _migrate(self) -> None:
        log_path = self.process_log_dir / "db-migrate.log"
        began = time.monotonic()
        with log_path.open("ab") as out:
            result = subprocess.run(
                self._airflow("db", "migrate"),
                env=self.env,
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

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log_path = self.process_log_dir / f"{name}.log"
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                argv,
                env=env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, ended by its pid in stop()
            )
        self.components[name] = Component(name, process, log_path)

    def _where(self) -> str:
        return f"; process logs in {self.process_log_dir}"

    def _check_components(self) -> None:
        for component in self.components.values():
            if component.process.poll() is not None:
                raise DeploymentError(
                    f"{component.name} exited with {component.process.returncode}; last lines of "
                    f"{component.log_path}:\n{component.tail()}"
                )

    def _api_healthy(self) -> bool:
        self._check_components()
        reply = self.http.get(f"{self.api_url}/api/v2/monitor/health", timeout=5)
        return reply.status_code == 200

    # ---- Airflow REST API ----------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, ok: Sequence[int] = (200,)) -> Any:
        """Call the public REST API (``/api/v2`` + ``path``); raise DeploymentError on another status."""
        reply = self.http.request(method, f"{self.api_url}/api/v2{path}", json=body, timeout=30)
        if reply.status_code not in ok:
            raise DeploymentError(f"{method} /api/v2{path} -> {reply.status_code}: {reply.text[:500]}")
        return reply.json() if reply.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        """Wait until the dag-processor has parsed ``dag_id``; fail at once on an import error."""

        def parsed() -> bool:
            self._check_components()
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
        with self._writes:
            return self.api("POST", f"/dags/{dag_id}/dagRuns", body)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """The DAG run (``state``, ...)."""
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def clear_task(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """
        Clear one task instance of a run, whatever its state, as the UI's "Clear" does.

        Returns the cleared task instances as the API reports them. ``reset_dag_runs`` puts a finished
        run back to ``queued``, so the scheduler runs the task again.
        """
        body = {
            "dag_run_id": run_id,
            "task_ids": [task_id],
            "only_failed": False,
            "dry_run": False,
            "reset_dag_runs": True,
        }
        with self._writes:
            return self.api("POST", f"/dags/{dag_id}/clearTaskInstances", body)["task_instances"]

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any] | None:
        """The task instance (``state``, ``try_number``, ``id``, ...), or None if not created yet."""
        reply = self.http.get(
            f"{self.api_url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}", timeout=30
        )
        if reply.status_code == 404:
            return None
        if reply.status_code != 200:
            raise DeploymentError(f"task instance {dag_id}/{run_id}/{task_id}: {reply.status_code}")
        return reply.json()

    def task_tries(self, dag_id: str, run_id: str, task_id: str) -> list[Try]:
        """Every try of the task instance so far (``.../tries``), by try number; [] if none yet."""
        reply = self.http.get(
            f"{self.api_url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries", timeout=30
        )
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

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """The XCom value (JSON-decoded); raise DeploymentError if there is none."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.api("GET", path)["value"]

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
                timeout=30,
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
        LocalExecutor worker (``airflow worker -- LocalExecutor: ...``) under the scheduler.
        """
        scheduler = self.components["scheduler"].pid
        for pid in descendants(scheduler):
            if cmdline(pid) == f"airflow worker -- {ti_id}":
                supervisor = parent_of(pid)
                if supervisor is None or not cmdline(supervisor).startswith(_SUPERVISOR_TITLE):
                    raise DeploymentError(
                        f"the parent of task process {pid} is {supervisor} ({cmdline(supervisor or 0)!r}), "
                        "not a LocalExecutor worker"
                    )
                if scheduler not in _ancestors(supervisor):
                    raise DeploymentError(f"supervisor {supervisor} is not under the scheduler {scheduler}")
                self.extra_pids.add(pid)
                return pid, supervisor
        raise DeploymentError(f"no task process for task instance {ti_id} under the scheduler")

    def sigkill(self, pid: int) -> float:
        """SIGKILL one process of this deployment (refuses any other); return the unix time just before."""
        if not self._is_ours(pid):
            raise DeploymentError(f"refusing to kill {pid}: not a live process of this deployment")
        self.extra_pids.add(pid)
        sent_at = time.time()
        os.kill(pid, signal.SIGKILL)
        return sent_at


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

    @classmethod
    def from_api(cls, entry: dict[str, Any]) -> Try:
        return cls(
            number=entry["try_number"],
            state=entry["state"],
            start=wall_time(entry["start_date"]),
            end=wall_time(entry["end_date"]),
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

    def describe(self) -> str:
        def ti(values: dict[str, Any]) -> str:
            return " ".join(f"{key}={values[key]}" for key in ("state", "try_number", "max_tries"))

        return (
            f"cleared at {self.seconds:.1f}s: before {ti(self.ti_before)}; cleared {ti(self.ti_cleared)}; "
            f"dag run {self.dag_run_state}; had returned {self.return_value!r}, app_id {self.app_id!r}, "
            f"batches {[(b['id'], b['name']) for b in self.batches]}"
        )


@dataclass
class CrashRun:
    """What happened in one run: the timeline, what Livy saw and what Airflow recorded."""

    dag_id: str
    run_id: str
    task_id: str
    kill: str | None
    events: list[Event] = field(default_factory=list)
    began_at: float = 0.0
    """Unix time of the trigger."""
    killed_pids: dict[str, int] = field(default_factory=dict)
    killed_at: float | None = None
    """Unix time just before the harness sent its SIGKILL (``None`` if it killed nothing): every
    request that arrived earlier was sent before the kill, and the try ended after it."""
    marks: dict[str, float] = field(default_factory=dict)
    """Unix times at which notable things were seen (``orphan_exited``: at most 0.5 s late)."""
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

    def since_trigger(self, at: float | None) -> str:
        """A unix time as seconds since the trigger, for messages."""
        return "-" if at is None else f"{at - self.began_at:.1f}s"

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
        return (
            f"{self.dag_id} / {self.run_id}: state={self.final_state} try={self.try_number} "
            f"return_value={self.return_value!r} app_id={self.app_id!r} error={self.error} "
            f"killed at {self.since_trigger(self.killed_at)}\n"
            f"{cleared}timeline:\n{timeline}\ntries (since the trigger):\n{tries}\n"
            f"Livy requests about this run's batches (the last 60, since the trigger):\n{journal}\n"
            f"Livy batches of this run:\n{batches}\ntask logs:\n{logs}"
        )


def run_crash_scenario(
    deployment: Deployment,
    dag_id: str,
    run_id: str,
    *,
    kill: str | None,
    conf: dict[str, Any] | None = None,
    task_id: str = "spark_pi",
    clear_after_success: bool = False,
    timeout: float = 240,
    on_event: Callable[[Event], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> CrashRun:
    """
    Trigger ``dag_id`` and kill try 1 of ``task_id`` while it polls a running batch; wait for the end.

    :param kill: ``"task"`` SIGKILLs the task process, ``"supervisor"`` its supervisor (the LocalExecutor
        worker; the task process is orphaned), ``None`` kills nothing (a DAG whose task kills itself).
        Transient API errors (a busy api-server) are retried until ``timeout``.
    :param clear_after_success: once the task succeeded, record what it delivered (``CrashRun.clear``),
        clear it through the REST API and wait for the try the scheduler runs after the clear.
    :param cancelled: polled; once it returns True the wait ends (the run is left as it is).
    :return: the run's record; ``error`` says what went wrong if the run did not end in time.
    """
    run = CrashRun(dag_id=dag_id, run_id=run_id, task_id=task_id, kill=kill)
    began = time.monotonic()
    run.began_at = time.time()

    def event(text: str, at: float | None = None) -> None:
        """Add to the timeline; ``at``: the unix time it happened (default: now)."""
        seconds = time.monotonic() - began if at is None else at - run.began_at
        run.events.append(Event(seconds, text))
        if on_event is not None:
            on_event(run.events[-1])

    posts_before = deployment.livy_stats()["posts"]
    deployment.trigger(dag_id, run_id, conf)
    event(f"triggered {dag_id} run {run_id}")
    seen_state: tuple[Any, Any] = (None, None)
    seen_batches: dict[int, str] = {}
    shown_requests: set[int] = set()
    shown_routine: set[tuple[Any, str, str]] = set()
    kill_pending = kill is not None
    clear_pending = clear_after_success
    deadline = began + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                raise DeploymentError(f"the run did not finish within {timeout:.0f} s")
            if cancelled():
                raise DeploymentError("cancelled")
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
            orphan = run.killed_pids.get("task") if kill == "supervisor" else None
            if orphan is not None and "orphan_exited" not in run.marks and not alive(orphan):
                run.marks["orphan_exited"] = time.time()
                event(f"the orphaned task process {orphan} of try 1 exited")
            if ti is None:
                time.sleep(0.5)
                continue
            try_number, ti_state = ti["try_number"], ti["state"]
            if kill_pending and try_number == 1 and ti_state == "running" and polls_running(batches, journal):
                _kill(deployment, run, ti, kill or "", event)
                kill_pending = False
            if ti_state in TERMINAL_TI_STATES:
                if clear_pending and ti_state == "success":
                    clear_pending = False
                    run.clear = _clear(deployment, run, began)
                    event(f"cleared {task_id}: {run.clear.describe()}")
                    continue
                if run.clear is None or try_number > run.clear.ti_before["try_number"]:
                    run.final_state, run.try_number = ti_state, try_number
                    break
            time.sleep(0.5)
        if kill_pending:
            raise DeploymentError(f"try 1 ended ({run.final_state}) before it could be killed")
        if clear_pending:
            raise DeploymentError(f"try {run.try_number} ended {run.final_state}: no success to clear")
    except DeploymentError as error:
        run.error = str(error)
        event(f"ERROR: {error}")
    finally:
        _collect(deployment, run, posts_before)
    if run.final_state == "success":
        event(f"task succeeded: returned {run.return_value!r}, app_id {run.app_id!r}")
    return run


def polls_running(batches: Sequence[dict[str, Any]], journal: Sequence[dict[str, Any]]) -> bool:
    """
    Whether a batch is running and the journal shows it was polled by id (``GET /batches/{id}`` or
    ``.../state`` answered 200): the task has persisted the id and waits in its polling loop.
    """
    running = {batch["id"] for batch in batches if batch["state"] == "running"}
    polled = {f"/batches/{batch_id}" for batch_id in running} | {f"/batches/{i}/state" for i in running}
    return any(e["method"] == "GET" and e["status"] == 200 and e["path"] in polled for e in journal)


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


def _clear(deployment: Deployment, run: CrashRun, began: float) -> Clear:
    """
    Once the DAG run finished, record what the succeeded task delivered, then clear the task.

    Clearing a finished run puts it back to ``queued``, as clearing a task of a finished run in the UI.
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
    cleared = deployment.clear_task(dag_id, run_id, task_id)
    if len(cleared) != 1 or cleared[0]["task_id"] != task_id:
        raise DeploymentError(f"clearing {dag_id}/{run_id}/{task_id} cleared {cleared}")
    return Clear(
        seconds=seconds,
        at=at,
        batches=batches,
        return_value=return_value,
        app_id=app_id,
        ti_before={key: ti[key] for key in ("state", "try_number", "max_tries")},
        ti_cleared={key: cleared[0][key] for key in ("state", "try_number", "max_tries")},
        dag_run_state=deployment.dag_run(dag_id, run_id)["state"],
    )


def _collect(deployment: Deployment, run: CrashRun, posts_before: int) -> None:
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
    if run.final_state == "success":
        try:
            run.return_value = deployment.xcom(run.dag_id, run.run_id, run.task_id)
            run.app_id = deployment.xcom(run.dag_id, run.run_id, run.task_id, "app_id")
        except DeploymentError as error:
            run.error = run.error or f"reading the XComs: {error}"
