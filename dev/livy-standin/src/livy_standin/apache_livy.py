"""Real Apache Livy on loopback, started and ended by pid: for the conformance suite, e2e tests and demo.

The server is Livy's own ``org.apache.livy.server.LivyServer`` from the jars ``dev/apache-livy``
assembles from Maven Central, run by the machine's Java with a scratch configuration directory
(``livy.conf``, ``log4j.properties``, Spark's ``spark-defaults.conf``), log directory and recovery
state directory per instance. Livy runs each batch as a ``spark-submit`` child process of its own
(``local`` master, client mode), with PySpark from PyPI as ``SPARK_HOME``; everything binds to
127.0.0.1 and no Spark UI is started.

:meth:`ApacheLivy.stop` ends the server and then every ``spark-submit`` it started that still runs
(Livy leaves them running when it dies), by pid, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .spark import java_home_from_path

STARTUP_SECONDS = 120.0
"""How long :meth:`ApacheLivy.start` waits for Livy to answer ``GET /batches``."""
STOP_GRACE_SECONDS = 10.0
"""Seconds between the SIGTERM that stops Livy (or a leftover spark-submit) and its SIGKILL."""
SPARK_DEFAULTS = {
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "512m",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}
"""Spark conf every batch gets from ``spark-defaults.conf``: loopback only, small and fast to start."""
LOG4J = """\
log4j.rootCategory=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=%d{{yy/MM/dd HH:mm:ss}} %p %c{{1}}: %m%n
log4j.logger.org.eclipse.jetty=WARN
"""


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 now (Livy takes a fixed ``livy.server.port``)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ApacheLivy:
    """One Apache Livy server on 127.0.0.1.

    :param jars: the server's jars (``dev/apache-livy/target/jars``).
    :param spark_home: Spark's home: the ``pyspark`` package directory of a PySpark install.
    :param python: the Python that runs PySpark batches (``PYSPARK_PYTHON``).
    :param apps_dir: where batch files are; Livy accepts local files only below it.
    :param workdir: scratch directory (configuration, logs, state); a new temporary one by default,
        removed by :meth:`stop` then.
    :param recovery: start with ``livy.server.recovery.mode = recovery`` (filesystem state store).
        Livy refuses to start so unless its master is YARN: kept to show that.
    :param conf: more ``livy.conf`` entries.
    """

    jars: Path
    spark_home: Path
    python: str
    apps_dir: Path
    workdir: Path | None = None
    recovery: bool = False
    conf: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    started_submits: set[int] = field(default_factory=set)
    submits_seen: dict[int, float] = field(default_factory=dict)
    """Every spark-submit seen while :meth:`watch` ran: pid -> when it was first seen (unix time)."""
    submit_names: dict[int, str] = field(default_factory=dict)
    """The ``--name`` Livy gave each spark-submit seen (the batch's name, if it has one)."""
    _own_workdir: bool = False
    _watching: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        """Livy's own log (log4j)."""
        assert self.workdir is not None
        return self.workdir / "logs" / "livy-server.log"

    def __enter__(self) -> ApacheLivy:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        """Write the configuration and start Livy; return once it answers (raise if it does not)."""
        if self.workdir is None:
            self.workdir, self._own_workdir = Path(tempfile.mkdtemp(prefix="apache-livy-")), True
        if not self.port:
            self.port = free_loopback_port()
        self._write_configuration()
        out = (self.workdir / "logs" / "stdout.log").open("ab")
        self.process = subprocess.Popen(
            self._command(),
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self._wait_until_up()

    def watch(self, interval: float = 0.5) -> None:
        """Note every spark-submit Livy starts (in :attr:`submits_seen`) until :meth:`stop`."""
        self._watching.set()

        def sample() -> None:
            while self._watching.is_set():
                for pid in self.spark_submit_pids():
                    with self._lock:
                        if pid not in self.submits_seen:
                            self.submits_seen[pid] = time.time()
                            self.submit_names[pid] = spark_app_name(pid)
                time.sleep(interval)

        threading.Thread(target=sample, name="apache-livy-submits", daemon=True).start()

    def submits_since(self, since: float) -> set[int]:
        """The spark-submit processes first seen at or after ``since`` (unix time)."""
        with self._lock:
            return {pid for pid, seen in self.submits_seen.items() if seen >= since}

    def stop(self, *, kill: bool = False) -> None:
        """End Livy (SIGTERM, SIGKILL after a grace; at once with ``kill``), then what it left running.

        The workdir stays when it was given, so a restart finds Livy's recovery state there.
        """
        if self.process is not None:
            if self.process.poll() is None:  # a reaped pid may name another process by now
                self.spark_submit_pids()
                _end(self.process.pid, kill=kill)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=STOP_GRACE_SECONDS + 5)
            self.process = None
        if not kill:
            self._watching.clear()
            self.end_leftover_submits()
        if self._own_workdir and self.workdir is not None and not kill:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir, self._own_workdir = None, False

    def restart(self, *, kill: bool = True) -> None:
        """Stop Livy (SIGKILL by default: a crash) and start it again on the same port and directories."""
        own = self._own_workdir
        self._own_workdir = False  # keep the state directory across the restart
        self.stop(kill=kill)
        self._own_workdir = own
        self.start()

    def end_leftover_submits(self) -> None:
        """End every spark-submit this Livy started that still runs (by pid, if it still is one)."""
        with self._lock:
            pids, self.started_submits = sorted(self.started_submits), set()
        for pid in pids:
            if _is_spark_submit(pid):  # not a pid the system has given to another process since
                _end(pid, kill=False)

    def spark_submit_pids(self) -> set[int]:
        """The pids of the spark-submit processes (Spark drivers) Livy started and that still run."""
        process = self.process
        if process is None:
            return set()
        pids = {pid for pid in _descendants(process.pid) if _is_spark_submit(pid)}
        with self._lock:
            self.started_submits |= pids
        return pids

    def _write_configuration(self) -> None:
        assert self.workdir is not None
        conf_dir, logs, state = (self.workdir / name for name in ("conf", "logs", "state"))
        for directory in (conf_dir, logs, state, self.workdir / "spark-tmp"):
            directory.mkdir(parents=True, exist_ok=True)
        entries = {
            "livy.server.host": "127.0.0.1",
            "livy.server.port": str(self.port),
            "livy.spark.master": "local",
            "livy.file.local-dir-whitelist": f"{self.apps_dir.resolve()}/",
            "livy.ui.enabled": "true",
            **(
                {
                    "livy.server.recovery.mode": "recovery",
                    "livy.server.recovery.state-store": "filesystem",
                    "livy.server.recovery.state-store.url": state.resolve().as_uri(),
                }
                if self.recovery
                else {}
            ),
            **self.conf,
        }
        (conf_dir / "livy.conf").write_text("".join(f"{key} = {value}\n" for key, value in entries.items()))
        (conf_dir / "log4j.properties").write_text(LOG4J.format(log=self.log_file))
        spark_conf = {**SPARK_DEFAULTS, "spark.local.dir": str(self.workdir / "spark-tmp")}
        (conf_dir / "spark-defaults.conf").write_text("".join(f"{k} {v}\n" for k, v in spark_conf.items()))

    def _command(self) -> list[str]:
        assert self.workdir is not None
        java = Path(_java_home()) / "bin" / "java"
        classpath = f"{self.workdir / 'conf'}:{self.jars.resolve()}/*"
        return [
            str(java),
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-cp",
            classpath,
            "org.apache.livy.server.LivyServer",
        ]

    def _environment(self) -> dict[str, str]:
        assert self.workdir is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_", "LIVY_"))}
        env.pop("PYTHONPATH", None)
        env.update(
            JAVA_HOME=_java_home(),
            SPARK_HOME=str(self.spark_home),
            SPARK_CONF_DIR=str(self.workdir / "conf"),
            SPARK_LOCAL_IP="127.0.0.1",
            PYSPARK_PYTHON=self.python,
            PYSPARK_DRIVER_PYTHON=self.python,
            LIVY_CONF_DIR=str(self.workdir / "conf"),
            LIVY_LOG_DIR=str(self.workdir / "logs"),
            TMPDIR=str(self.workdir / "spark-tmp"),
            PYTHONUNBUFFERED="1",
        )
        return env

    def _wait_until_up(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Apache Livy exited with {self.process.returncode}: {self._log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/batches", timeout=2).status_code == 200:
                    return
            time.sleep(0.25)
        tail = self._log_tail()
        self.stop(kill=True)
        raise RuntimeError(f"Apache Livy did not answer within {STARTUP_SECONDS:.0f} s: {tail}")

    def _log_tail(self) -> str:
        assert self.workdir is not None
        text = ""
        for name in ("stdout.log", "livy-server.log"):
            with contextlib.suppress(OSError):
                text += (self.workdir / "logs" / name).read_text(errors="replace")[-1500:]
        return text


def _java_home() -> str:
    home = java_home_from_path()
    if home is None:
        raise RuntimeError("Apache Livy needs Java 17 (java on PATH, or JAVA_HOME)")
    return home


def _end(pid: int, *, kill: bool) -> None:
    """SIGTERM ``pid`` (SIGKILL at once with ``kill``); SIGKILL it if it still runs after a grace."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        if not kill:
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _children(pid: int) -> list[int]:
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                children += [int(c) for c in (task / "children").read_text().split()]
    return children


def _descendants(pid: int) -> list[int]:
    found, todo = [], _children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += _children(child)
    return found


def spark_app_name(pid: int) -> str:
    """The ``--name`` argument of spark-submit ``pid`` ("" if it has none or is gone)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return ""
    return argv[argv.index("--name") + 1] if "--name" in argv[:-1] else ""


def _is_spark_submit(pid: int) -> bool:
    """Whether ``pid`` is a Spark driver: the JVM ``spark-submit`` ends up as (not its launcher scripts)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    is_java = bool(argv) and argv[0].endswith(b"java")
    launcher = b"org.apache.spark.launcher.Main" in argv
    return is_java and not launcher and b"org.apache.spark.deploy.SparkSubmit" in argv
