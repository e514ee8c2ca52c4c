"""
The real-Spark backend (``--spark``, livy_standin/spark.py).

Most tests run a fake ``spark-submit`` (a small Python script in a temp Spark home): the process
handling, Livy states, log ring, DELETE and shutdown, with no Spark needed. The tests marked ``spark``
run the real thing (PySpark's spark-submit and the repo's ``dev/spark-apps/pi.py``) when
``LIVY_STANDIN_SPARK_HOME`` and ``LIVY_STANDIN_SPARK_PYTHON`` are set (``dev/lib.sh make_spark_env``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from livy_standin import LivyStandin
from livy_standin.__main__ import parse_args
from livy_standin.body import CreateBatchRequest
from livy_standin.spark import SparkLauncher, local_path

PI_APP = Path(__file__).resolve().parents[2] / "spark-apps" / "pi.py"
FAKE_SUBMIT = f"""#!{sys.executable}
import os, subprocess, sys, time
args = sys.argv[sys.argv.index("/apps/fake-app.py") + 1:]
code, seconds = int(args[0]), float(args[1])
print("starting the driver", flush=True)
time.sleep(0.2)
print("INFO SparkContext: Submitted application: fake", flush=True)
child = subprocess.Popen(["sleep", "60"])  # a Python worker of the driver, in the job's group
open("child.pid", "w").write(str(child.pid))
for i in range(int(args[2]) if len(args) > 2 else 3):
    print(f"out {{i}}", flush=True)
print("Spark application local-1700000000123: done", file=sys.stderr, flush=True)
time.sleep(seconds)
child.kill()
sys.exit(code)
"""


def wait_for(what: str, probe: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def fake_home(tmp_path: Path) -> Path:
    home = tmp_path / "spark-home"
    (home / "bin").mkdir(parents=True)
    submit = home / "bin" / "spark-submit"
    submit.write_text(FAKE_SUBMIT)
    submit.chmod(0o755)
    return home


@pytest.fixture
def launcher(fake_home: Path, tmp_path: Path) -> Iterator[SparkLauncher]:
    spark = SparkLauncher(
        fake_home, sys.executable, java_home="/nonexistent-jvm", scratch=tmp_path / "scratch"
    )
    yield spark
    spark.close(grace=2)


@pytest.fixture
def server(launcher: SparkLauncher) -> Iterator[LivyStandin]:
    with LivyStandin(host="127.0.0.1", port=0, spark=launcher) as standin:
        yield standin


def submit(server: LivyStandin, *args: str, name: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"file": "local:///apps/fake-app.py", "args": list(args), "conf": {"spark.x": "1"}}
    if name:
        body["name"] = name
    reply = requests.post(f"{server.url}/batches", json=body, timeout=10)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def get(server: LivyStandin, path: str) -> dict[str, Any]:
    reply = requests.get(f"{server.url}{path}", timeout=10)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def state(server: LivyStandin, batch_id: int) -> str:
    return str(get(server, f"/batches/{batch_id}/state")["state"])


def test_command_maps_the_request_to_spark_submit(launcher: SparkLauncher, tmp_path: Path) -> None:
    req = CreateBatchRequest(
        file="local:///apps/job.py",
        name="n1",
        conf={"spark.driver.extraJavaOptions": "-Dx=1", "spark.ui.enabled": "true", "spark.a": "b"},
        extra={"className": "C", "pyFiles": ["file:///p/a.py"], "args": [1, "two"]},
    )
    argv = launcher.command(req, tmp_path)
    assert argv[0] == str(launcher.submit)
    assert argv[-3:] == ["/apps/job.py", "1", "two"]
    confs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--conf"]
    assert "spark.a=b" in confs
    assert "spark.ui.enabled=false" in confs  # loopback only: never a UI
    assert {
        "spark.master=local[1]",
        "spark.driver.bindAddress=127.0.0.1",
        "spark.driver.host=127.0.0.1",
    } <= set(confs)
    assert f"spark.local.dir={tmp_path}" in confs
    (java_opts,) = [c for c in confs if c.startswith("spark.driver.extraJavaOptions=")]
    assert java_opts.startswith("spark.driver.extraJavaOptions=-Dx=1 -XX:TieredStopAtLevel=1")
    assert f"-Djava.io.tmpdir={tmp_path}" in java_opts
    assert argv[argv.index("--name") + 1] == "n1"
    assert argv[argv.index("--class") + 1] == "C"
    assert argv[argv.index("--py-files") + 1] == "/p/a.py"
    env = launcher.environment(tmp_path)
    assert env["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert env["PYSPARK_PYTHON"] == sys.executable
    assert env["TMPDIR"] == str(tmp_path)


def test_local_path() -> None:
    assert local_path("local:///a/b.py") == "/a/b.py"
    assert local_path("file:///a/b.py") == "/a/b.py"
    assert local_path("/a/b.py") == "/a/b.py"


def test_starting_running_success_with_the_output_in_the_log(server: LivyStandin) -> None:
    created = submit(server, "0", "0.5", "250", name="fake-1")
    assert created["state"] == "running", "Livy's local mode: running as soon as spark-submit runs"
    assert created["appId"] is None
    wait_for("running", lambda: state(server, 0) == "running")
    wait_for("success", lambda: state(server, 0) == "success")
    log = get(server, "/batches/0/log?size=-1")["log"]
    assert log[0] == "stdout: " and log[-1] == "\nstderr: "
    assert len(log) == 202  # the ring keeps the last 200 lines (stderr merged into them)
    assert log[-2] == "Spark application local-1700000000123: done"
    batch = get(server, "/batches/0")
    assert batch["appId"] is None  # real Livy has none for a local master
    assert batch["appInfo"]["driverLogUrl"] is None
    (launch,) = requests.get(f"{server.url}/admin/spark", timeout=10).json()
    assert launch["batch_id"] == 0 and launch["exit_code"] == 0 and launch["state"] == "success"
    assert launch["started_at"] <= launch["running_at"] <= launch["ended_at"]
    assert launch["spark_app_id"] == "local-1700000000123"


def test_a_failing_app_is_dead(server: LivyStandin) -> None:
    submit(server, "3", "0")
    wait_for("dead", lambda: state(server, 0) == "dead")
    assert server.registry.launcher is not None
    assert server.registry.launcher.launches()[0]["exit_code"] == 3


def test_delete_ends_the_whole_process_group(server: LivyStandin, launcher: SparkLauncher) -> None:
    submit(server, "0", "60")
    wait_for("running", lambda: state(server, 0) == "running")
    (job,) = launcher.jobs
    pid_file = job.scratch / "child.pid"
    child = int(wait_for("the driver's child", lambda: pid_file.exists() and pid_file.read_text()))
    assert requests.delete(f"{server.url}/batches/0", timeout=10).json() == {"msg": "deleted"}
    assert server.batches()[0]["state"] == "killed"
    wait_for("the job's end", job.done.is_set)
    assert job.exit_code == -signal.SIGTERM
    wait_for("the child's end", lambda: not Path(f"/proc/{child}").exists() or _zombie(child))
    wait_for("the scratch dir removed", lambda: not job.scratch.exists())


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_close_ends_running_jobs_and_removes_the_scratch(
    server: LivyStandin, launcher: SparkLauncher
) -> None:
    submit(server, "0", "60")
    submit(server, "0", "60")
    wait_for("both running", lambda: state(server, 0) == state(server, 1) == "running")
    launcher.close(grace=2)
    assert all(job.done.is_set() for job in launcher.jobs)
    assert [b["state"] for b in server.batches()] == ["killed", "killed"]
    assert not launcher.scratch.exists()


def test_a_crash_restart_keeps_the_job_running(server: LivyStandin, launcher: SparkLauncher) -> None:
    submit(server, "0", "1")
    wait_for("running", lambda: state(server, 0) == "running")
    server.restart(recovery=False)  # Livy crashed: the app runs on, unseen
    wait_for("the job's end", launcher.jobs[0].done.is_set)
    assert server.batches()[0]["state"] == "success"


def test_cli_needs_a_spark_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIVY_STANDIN_SPARK_HOME", raising=False)
    monkeypatch.delenv("SPARK_HOME", raising=False)
    with pytest.raises(SystemExit):
        parse_args(["--spark"])
    assert parse_args(["--spark", "--spark-home", "/x"]).spark_home == "/x"


REAL_HOME = os.environ.get("LIVY_STANDIN_SPARK_HOME")
REAL_PYTHON = os.environ.get("LIVY_STANDIN_SPARK_PYTHON")


@pytest.mark.spark
@pytest.mark.timeout(180)
@pytest.mark.skipif(not (REAL_HOME and REAL_PYTHON), reason="real Spark: run dev/lib.sh make_spark_env first")
def test_real_spark_pi(tmp_path: Path) -> None:
    assert REAL_HOME is not None and REAL_PYTHON is not None
    spark = SparkLauncher(REAL_HOME, REAL_PYTHON, scratch=tmp_path / "scratch")
    try:
        with LivyStandin(host="127.0.0.1", port=0, spark=spark) as server:
            body = {"file": f"local://{PI_APP}", "args": ["2", "0"], "name": "real-pi"}
            assert requests.post(f"{server.url}/batches", json=body, timeout=10).status_code == 201
            wait_for("running", lambda: state(server, 0) in ("running", "success", "dead"), 120)
            wait_for("the end", lambda: state(server, 0) in ("success", "dead"), 120)
            assert state(server, 0) == "success"
            log = get(server, "/batches/0/log?size=-1")["log"]
            assert any(line.startswith("Pi is roughly 3.1") for line in log), log[-30:]
            (launch,) = spark.launches()
            assert launch["spark_app_id"].startswith("local-")
            assert get(server, "/batches/0")["appId"] is None
    finally:
        spark.close()
    assert not (tmp_path / "scratch").exists()
