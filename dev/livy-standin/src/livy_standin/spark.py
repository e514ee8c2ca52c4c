"""Real Spark behind the stand-in's Livy API (opt-in: ``--spark``): each batch runs ``spark-submit``.

A batch becomes one ``spark-submit --master local[1] <file> <args>`` child process, leader of a process
group of its own (the JVM driver and its Python processes join it), started and ended by pid: DELETE, a
graceful ``/admin/restart`` and :meth:`SparkLauncher.close` SIGTERM the group (Spark's shutdown hooks
run), then SIGKILL it after :data:`KILL_GRACE_SECONDS`. Livy states, as Livy's local mode reports
them: ``running`` as soon as spark-submit runs (Livy's ``SparkProcApp`` has no ``starting`` of its
own: that comes from YARN), then ``success`` (exit 0), ``dead`` (any other exit) or ``killed`` (ended
by the stand-in). When the driver's SparkContext is up (its log line ``SparkContext: Submitted
application``) is recorded as ``running_at`` in ``GET /admin/spark``. stdout and
stderr are merged into the batch log's 200-line ring, as Livy's ``redirectErrorStream``. ``appId`` is
null, as real Livy reports for ``local`` master; the application id a driver prints (``local-<ms>``)
is recorded in ``GET /admin/spark``, the journal of every spark-submit started.

Everything stays on loopback (``SPARK_LOCAL_IP``, driver bind address and host; no Spark UI); each
job's ``spark.local.dir`` and ``java.io.tmpdir`` is a scratch directory removed when it ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .body import CreateBatchRequest
from .jobs import LOG_RING_SIZE, STDERR_MARKER, STDOUT_MARKER, Batch

KILL_GRACE_SECONDS = 5.0
"""Seconds between the SIGTERM that ends a job and the SIGKILL of what still lives in its group."""
DRIVER_UP = re.compile(r"SparkContext: Submitted application")
"""The driver log line after which the batch is ``running`` (the SparkContext is being created)."""
LOCAL_APP_ID = re.compile(r"\blocal-\d{10,}\b")
"""A ``local`` master's Spark application id, as a driver may print it (``local-<millis>``)."""
DRIVER_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
"""Start fast and small: C1 only, serial GC (a small app runs in ~8 s with ~0.5 GB)."""
LOOPBACK_CONF = {
    "spark.master": "local[1]",
    "spark.submit.deployMode": "client",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "512m",
}
"""Spark conf the stand-in always sets, over the batch's own (loopback only, one local core)."""


def java_home_from_path() -> str | None:
    """``JAVA_HOME`` from the environment, else from the ``java`` on PATH (``<home>/bin/java``)."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    return str(Path(java).resolve().parents[1]) if java else None


def local_path(file: str) -> str:
    """The path spark-submit reads for a Livy ``file``: ``local:///x`` and ``file:///x`` become ``/x``."""
    for scheme in ("local://", "file://"):
        if file.startswith(scheme):
            return file[len(scheme) :]
    return file


@dataclass
class SparkJob:
    """One spark-submit process and what the stand-in saw of it; times are ``time.monotonic()``."""

    batch_id: int
    argv: list[str]
    scratch: Path
    process: subprocess.Popen[bytes]
    started: float
    started_wall: float
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_RING_SIZE))
    running_at: float | None = None
    running_wall: float | None = None
    ended_at: float | None = None
    ended_wall: float | None = None
    exit_code: int | None = None
    kill_requested: bool = False
    spark_app_id: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int:
        """The spark-submit process (the JVM driver after its ``exec``), leader of the job's group."""
        return self.process.pid

    def state(self) -> str:
        """The Livy state of the job."""
        if self.kill_requested:
            return "killed"
        if self.exit_code is None:
            return "running"  # Livy's local mode: running once spark-submit runs (SparkProcApp)
        return "success" if self.exit_code == 0 else "dead"

    def as_json(self) -> dict[str, Any]:
        """The job as ``GET /admin/spark`` lists it (wall-clock unix times)."""
        return {
            "batch_id": self.batch_id,
            "pid": self.pid,
            "argv": list(self.argv),
            "state": self.state(),
            "started_at": self.started_wall,
            "running_at": self.running_wall,
            "ended_at": self.ended_wall,
            "exit_code": self.exit_code,
            "killed": self.kill_requested,
            "spark_app_id": self.spark_app_id,
            "log_lines": len(self.lines),
        }


@dataclass
class SparkBatch(Batch):
    """A batch whose state and log come from a real spark-submit process, not from the clock."""

    job: SparkJob | None = None

    def _job(self) -> SparkJob:
        if self.job is None:
            raise RuntimeError(f"spark batch {self.id} has no job")
        return self.job

    def job_state(self, now: float) -> str:
        """The spark-submit process's state (``now`` is not needed: the process says)."""
        return "starting" if self.zombie else self._job().state()

    def finished_at(self) -> float | None:
        """When the process ended (or the kill was asked); None while it runs."""
        job = self._job()
        if self.zombie or job.ended_at is None:
            return None
        return max(job.ended_at, self.recovering_until or job.ended_at)

    def app_id(self, now: float) -> str | None:
        """Always None: real Livy reports no application id for a ``local`` master."""
        return None

    def lines_emitted(self, now: float) -> int:
        """How many output lines the ring holds."""
        return len(self._job().lines)

    def log(self, now: float) -> list[str]:
        """Livy's batch log: marker, the last LOG_RING_SIZE merged output lines, stderr marker."""
        if self.zombie or self.log_lost:
            return []
        return [STDOUT_MARKER, *list(self._job().lines), STDERR_MARKER]

    def kill(self, now: float) -> None:
        """End the spark-submit process group (SIGTERM, then SIGKILL after the grace period)."""
        if self.killed_at is None:
            self.killed_at = now
        job = self._job()
        if job.exit_code is None and not job.kill_requested:
            job.kill_requested = True
            ender = threading.Thread(
                target=_end_group, args=(job,), name=f"spark-kill-{self.id}", daemon=True
            )
            ender.start()


def _signal_group(job: SparkJob, signum: int) -> None:
    """Signal the job's process group (its pgid is the spark-submit pid we started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(job.pid, signum)


def _end_group(job: SparkJob, grace: float = KILL_GRACE_SECONDS) -> None:
    """SIGTERM the job's group; SIGKILL it if the leader has not exited after ``grace`` s."""
    _signal_group(job, signal.SIGTERM)
    if not job.done.wait(grace):
        _signal_group(job, signal.SIGKILL)


class SparkLauncher:
    """Starts a spark-submit per batch and keeps their journal (``GET /admin/spark``).

    :param spark_home: Spark's home (PyPI's ``pyspark`` package directory has ``bin/spark-submit``).
    :param python: the Python of the PySpark driver and workers (one with ``pyspark`` installed).
    :param java_home: the JVM's home; default: ``$JAVA_HOME``, else from the ``java`` on PATH.
    :param scratch: where each job's scratch directory goes (a new temp dir, removed by :meth:`close`).
    """

    def __init__(
        self,
        spark_home: str | os.PathLike[str],
        python: str,
        java_home: str | None = None,
        scratch: str | os.PathLike[str] | None = None,
    ) -> None:
        self.spark_home = Path(spark_home).resolve()
        self.submit = self.spark_home / "bin" / "spark-submit"
        if not os.access(self.submit, os.X_OK):
            raise ValueError(f"no executable spark-submit under {self.spark_home}")
        self.python = python
        self.java_home = java_home or java_home_from_path()
        if self.java_home is None:
            raise ValueError("no Java found: set JAVA_HOME or put java on PATH")
        self.scratch = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="livy-standin-spark-"))
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.jobs: list[SparkJob] = []
        self._lock = threading.Lock()
        self._closed = False

    def launch(self, batch: Batch, req: CreateBatchRequest) -> SparkBatch:
        """Start ``batch``'s spark-submit; return the batch backed by it (replaces ``batch``)."""
        if self._closed:
            raise RuntimeError("the Spark launcher is closed")
        scratch = Path(tempfile.mkdtemp(prefix=f"batch-{batch.id}-", dir=self.scratch))
        argv = self.command(req, scratch)
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=scratch,
            env=self.environment(scratch),
            process_group=0,
        )
        job = SparkJob(batch.id, argv, scratch, process, time.monotonic(), time.time())
        with self._lock:
            self.jobs.append(job)
        assert process.stdout is not None
        threading.Thread(target=self._read, args=(job, process.stdout), daemon=True).start()
        threading.Thread(target=self._wait, args=(job,), daemon=True).start()
        values = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch) if f.init}
        return SparkBatch(**values, job=job)

    def command(self, req: CreateBatchRequest, scratch: Path) -> list[str]:
        """The spark-submit command line for a batch request (Livy's own mapping, local master)."""
        assert req.file is not None
        conf = {**req.conf, **LOOPBACK_CONF, "spark.local.dir": str(scratch)}
        java_opts = f"{DRIVER_JAVA_OPTIONS} -Djava.io.tmpdir={scratch}"
        user_opts = req.conf.get("spark.driver.extraJavaOptions")
        conf["spark.driver.extraJavaOptions"] = f"{user_opts} {java_opts}" if user_opts else java_opts
        argv = [str(self.submit)]
        for key, value in conf.items():
            argv += ["--conf", f"{key}={value}"]
        if req.name is not None:
            argv += ["--name", req.name]
        extra = req.extra
        if extra.get("className"):
            argv += ["--class", str(extra["className"])]
        for option, key in (("--py-files", "pyFiles"), ("--jars", "jars"), ("--files", "files")):
            paths = extra.get(key) or []
            if paths:
                argv += [option, ",".join(local_path(str(p)) for p in paths)]
        argv.append(local_path(req.file))
        argv += [str(arg) for arg in extra.get("args") or []]
        return argv

    def environment(self, scratch: Path) -> dict[str, str]:
        """The job's environment: Spark's home, the Python, the JVM, loopback only, scratch temp dirs."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_"))}
        env.update(
            SPARK_HOME=str(self.spark_home),
            PYSPARK_PYTHON=self.python,
            PYSPARK_DRIVER_PYTHON=self.python,
            JAVA_HOME=str(self.java_home),
            SPARK_LOCAL_IP="127.0.0.1",
            TMPDIR=str(scratch),
            PYTHONUNBUFFERED="1",
        )
        env.pop("PYTHONPATH", None)
        return env

    def _read(self, job: SparkJob, stream: Any) -> None:
        """Copy the merged output into the job's log ring; note when the driver is up."""
        with stream:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                job.lines.append(line)
                if job.running_at is None and DRIVER_UP.search(line):
                    job.running_at, job.running_wall = time.monotonic(), time.time()
                if job.spark_app_id is None and (found := LOCAL_APP_ID.search(line)):
                    job.spark_app_id = found.group(0)

    def _wait(self, job: SparkJob) -> None:
        """Reap the process, end what it left in its group, remove its scratch directory."""
        code = job.process.wait()
        job.ended_at, job.ended_wall = time.monotonic(), time.time()
        job.exit_code = code
        job.done.set()
        _signal_group(job, signal.SIGKILL)  # Python workers the driver left behind, if any
        shutil.rmtree(job.scratch, ignore_errors=True)

    def launches(self) -> list[dict[str, Any]]:
        """Every spark-submit started, in order (``GET /admin/spark``)."""
        with self._lock:
            return [job.as_json() for job in self.jobs]

    def active(self) -> Sequence[SparkJob]:
        """The jobs whose process has not exited."""
        with self._lock:
            return [job for job in self.jobs if not job.done.is_set()]

    def close(self, grace: float = KILL_GRACE_SECONDS) -> None:
        """End every running job (SIGTERM, SIGKILL after ``grace`` s), wait for them, remove the scratch."""
        self._closed = True
        active = self.active()
        for job in active:
            job.kill_requested = True
            _signal_group(job, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for job in active:
            if not job.done.wait(max(0.0, deadline - time.monotonic())):
                _signal_group(job, signal.SIGKILL)
        for job in active:
            job.done.wait(10)
        shutil.rmtree(self.scratch, ignore_errors=True)
