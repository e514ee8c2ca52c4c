"""
The services a distributed Airflow needs, run from Debian's packages on 127.0.0.1: PostgreSQL (the
metadata database) and Redis (the Celery broker).

Each is started as a foreground process of ours, in a process group of its own, and ended by its pid.
``dev/test.sh`` and ``dev/demo.sh --celery`` install the packages where they are missing
(``dev/lib.sh``: ``ensure_debian_packages``); :func:`find_postgres_bin` and :func:`find_redis_server`
say clearly what is missing when they are not.

PostgreSQL refuses to run as root: as root, the cluster belongs to the ``postgres`` user (Debian's
package creates it) and its directory sits in a scratch directory that user can reach.
:meth:`PostgresServer.create_database` migrates Airflow's schema once into a template database and
gives each deployment a copy of it (``CREATE DATABASE ... TEMPLATE``: under a second, where ``airflow
db migrate`` takes 15 s and more).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
DB_USER = "airflow"
TEMPLATE_DB = "airflow_template"
POSTGRES_SETTINGS = {
    "listen_addresses": LOOPBACK,
    # A scratch database: durability is not what these tests measure; speed on 2 cores is.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # Every deployment's scheduler, api-server, dag-processor, triggerer and Celery workers (result
    # backend) hold pooled connections.
    "max_connections": "400",
    "shared_buffers": "64MB",
}


class ServiceError(RuntimeError):
    """A service is missing, did not start, or refused a command; the message says which and why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def find_postgres_bin() -> Path:
    """The directory of PostgreSQL's server binaries (``initdb``, ``postgres``), newest version first."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True):
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise ServiceError(
        "PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/initdb): "
        "`apt-get install postgresql` (dev/test.sh does it when run as root)"
    )


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise ServiceError(
            "redis-server is not installed: `apt-get install redis-server` "
            "(dev/test.sh does it when run as root)"
        )
    return found


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in path.parent.name.split(".") if part.isdigit())


def wait_for(what: str, ready: Callable[[], bool], timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise ServiceError(f"{what}: the process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise ServiceError(f"{what}: not ready within {timeout:.0f} s")
        time.sleep(0.1)


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.5):
        return True
    return False


class _Service:
    """One server process of ours, leader of its own process group; :meth:`stop` ends it by pid."""

    name = "service"

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.scratch / f"{self.name}.log"

    def _spawn(self, argv: list[str], **popen: Any) -> None:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **popen,
            )

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` s; idempotent."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> _Service:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError


class RedisServer(_Service):
    """``redis-server`` on 127.0.0.1 and a free port, in memory only (no RDB or AOF files)."""

    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        argv = [find_redis_server(), "--bind", LOOPBACK, "--port", str(self.port), "--save", ""]
        argv += ["--appendonly", "no", "--daemonize", "no", "--dir", str(self.scratch)]
        self._spawn(argv)
        assert self.process is not None
        wait_for(
            f"redis-server on port {self.port} ({self.log_path})",
            lambda: _accepts(self.port),
            30,
            self.process,
        )


class PostgresServer(_Service):
    """
    A PostgreSQL cluster of its own (``initdb`` in a scratch directory) on 127.0.0.1 and a free port,
    user :data:`DB_USER`, trust authentication on loopback only.
    """

    name = "postgres"

    def __init__(self, scratch: Path) -> None:
        super().__init__(scratch)
        self._user = _cluster_user()
        self._template_lock = threading.Lock()
        self._template_ready = False

    @property
    def data_dir(self) -> Path:
        return self.scratch / "data"

    @property
    def socket_dir(self) -> Path:
        return self.scratch / "socket"

    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{DB_USER}@{LOOPBACK}:{self.port}/{database}"

    def start(self) -> None:
        binaries = find_postgres_bin()
        self._make_dirs()
        self.port = free_port()
        initdb = [str(binaries / "initdb"), "-D", str(self.data_dir), "-U", DB_USER, "--auth=trust"]
        initdb += ["--encoding=UTF8", "--locale=C", "--no-sync"]
        with self.log_path.open("ab") as out:
            result = subprocess.run(
                initdb, stdout=out, stderr=subprocess.STDOUT, check=False, **self._as_owner()
            )
        if result.returncode != 0:
            raise ServiceError(f"initdb failed (exit {result.returncode}):\n{self.tail()}")
        argv = [str(binaries / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        argv += ["-c", f"unix_socket_directories={self.socket_dir}"]
        for key, value in POSTGRES_SETTINGS.items():
            argv += ["-c", f"{key}={value}"]
        self._spawn(argv, **self._as_owner())
        assert self.process is not None
        wait_for(f"PostgreSQL on port {self.port} ({self.log_path})", self._answers, 60, self.process)

    def stop(self, grace: float = 10.0) -> None:
        # SIGTERM: PostgreSQL's "smart" shutdown waits for clients; SIGINT ("fast") ends them.
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        super().stop(grace)

    def _make_dirs(self) -> None:
        """The scratch directory, owned by the cluster's user (reachable by it: /tmp is world-searchable)."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self._user is not None:
            for path in (self.scratch, self.socket_dir):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
            for parent in self.scratch.parents:
                if not os.access(parent, os.X_OK, effective_ids=False) or not parent.stat().st_mode & 0o001:
                    raise ServiceError(
                        f"{parent} is not searchable by others: the postgres user cannot reach {self.scratch}"
                    )
            # The log file is written by us (the parent); the data directory by initdb as postgres.

    def _as_owner(self) -> dict[str, Any]:
        """``Popen`` arguments that run a command as the cluster's user (root: ``postgres``)."""
        if self._user is None:
            return {}
        return {
            "user": self._user.pw_uid,
            "group": self._user.pw_gid,
            "extra_groups": [],
            "cwd": self.scratch,
        }

    def _answers(self) -> bool:
        return _accepts(self.port) and self._psql("postgres", "SELECT 1", check=False).returncode == 0

    def _psql(self, database: str, sql: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        psql = find_postgres_bin() / "psql"
        command = [str(psql) if psql.exists() else "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        command += ["-h", LOOPBACK, "-p", str(self.port), "-U", DB_USER, "-d", database, "-c", sql]
        result = subprocess.run(command, capture_output=True, check=False, timeout=60)
        if check and result.returncode != 0:
            raise ServiceError(f"psql {sql!r} failed: {result.stderr.decode(errors='replace').strip()}")
        return result

    def create_database(self, name: str, migrate: Callable[[str], None]) -> str:
        """
        Create database ``name`` with Airflow's schema; return its SQLAlchemy URL.

        The first call creates :data:`TEMPLATE_DB` and runs ``migrate(url)`` on it (``airflow db
        migrate``); every call then copies the template, which nothing may be connected to meanwhile.
        """
        with self._template_lock:
            if not self._template_ready:
                self._psql("postgres", f"CREATE DATABASE {TEMPLATE_DB}")
                migrate(self.url(TEMPLATE_DB))
                self._template_ready = True
            self._psql("postgres", f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE_DB}')
        return self.url(name)


def _cluster_user() -> pwd.struct_passwd | None:
    """Who runs the cluster: ``postgres`` when we are root (PostgreSQL refuses root), else we."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as error:
        raise ServiceError(
            "running as root, PostgreSQL needs the 'postgres' user (Debian's postgresql package creates it)"
        ) from error


def scratch_dir(prefix: str) -> Path:
    """A new scratch directory in the temp dir, searchable by others (for the postgres user)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path
