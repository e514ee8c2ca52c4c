"""
The crash-safe LivyOperator, shown on a real Airflow 3.3 with a real SIGKILL. Run: ``bash dev/demo.sh``.

Starts a Livy stand-in and a loopback Airflow (api-server, scheduler, dag-processor; LocalExecutor,
SQLite) in a scratch AIRFLOW_HOME, then runs the example DAG's ``spark_pi`` task twice: with
``durable=True`` and with ``durable=False``. Each time the worker's task process is SIGKILLed while it
polls the running Spark batch, and Airflow retries the task. Prints each timeline and a side-by-side
summary, and stops every process it started. Exit status 0 when both runs behaved as expected.

``--celery`` (``bash dev/demo.sh --celery``) tells the same story on a distributed Airflow:
CeleryExecutor with two Celery workers, a Redis broker and a PostgreSQL metadata database (Debian's
packages, which ``dev/demo.sh --celery`` installs where missing). There the whole worker that runs try 1
is SIGKILLed (every process of it: the machine died), the retry runs on the other worker, and the
killed worker is started again before the next run.

``--spark`` (``bash dev/demo.sh --spark``) runs real Spark applications: the stand-in runs each batch
as ``spark-submit --master local[1]`` of ``dev/spark-apps/pi.py`` (PySpark from ``.venvs/spark``, which
``dev/demo.sh --spark`` builds, and the machine's Java), so the batch that survives the kill is a real
Spark application; the summary adds the spark-submit processes started and the app's result.

``--livy`` (``bash dev/demo.sh --livy``) tells it against real Apache Livy: Livy's own server (its jars
from Maven Central, which ``dev/demo.sh --livy`` assembles into ``dev/apache-livy/target/jars``) runs
each batch as a real ``spark-submit`` of the Pi app; Airflow talks to it through a loopback proxy that
journals what Livy saw. The summary counts the spark-submit processes Livy started.

The deployment harness is the e2e tests' one: providers/apache/livy/tests/e2e/airflow_deployment.py.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "providers" / "apache" / "livy" / "tests"
sys.path.insert(0, str(TESTS))

from e2e.airflow_deployment import (  # noqa: E402
    CeleryWorker,
    CrashRun,
    Deployment,
    DeploymentError,
    Event,
    run_crash_scenario,
)
from e2e.services import PostgresServer, ServiceError, scratch_dir  # noqa: E402

EXAMPLE_DAG = TESTS / "system" / "apache" / "livy" / "example_livy.py"
SPARK_DAG = TESTS / "e2e" / "dags" / "spark" / "livy_real_spark.py"
SPARK_RUNS = (("durable=True", "livy_real_spark"), ("durable=False", "livy_real_spark_not_durable"))
PI_APP = ROOT / "dev" / "spark-apps" / "pi.py"
SPARK_CONF = {"app": f"local://{PI_APP}", "partitions": "8", "seconds": "2"}
"""The real Pi app: ~16 s of work once the driver is up (~4 s), to outlive kill -> retry."""
LIVY_CONF = {**SPARK_CONF, "app": str(PI_APP)}
"""Real Livy takes the app by its path (below ``livy.file.local-dir-whitelist``)."""
JOB_SECONDS = 15  # the simulated Spark job; it must outlive kill -> retry (~4 s)
RUNS = (("durable=True", "example_livy"), ("durable=False", "example_livy_not_durable"))
QUIET_STATES = ("scheduled", "queued")
WORKERS = (CeleryWorker("worker-1", "127.0.0.11"), CeleryWorker("worker-2", "127.0.0.12"))
"""The distributed demo's Celery workers; each records its own loopback address as its tries' hostname."""

BOLD, DIM, GREEN, RED, RESET = (
    ("\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m") if sys.stdout.isatty() else ("",) * 5
)


class DemoFailed(Exception):
    """The demo did not show what it should; the message is one line."""


def say(text: str = "") -> None:
    print(text, flush=True)


def show(event: Event) -> None:
    if any(event.text.endswith(f": {state}") for state in QUIET_STATES):
        return
    text = event.text
    if text.startswith("SIGKILL"):
        text = f"{RED}{text}{RESET}"
    elif text.startswith("task succeeded"):
        text = f"{GREEN}{text}{RESET}"
    say(f"  {event.seconds:6.1f} s  {text}")


def run_one(
    deployment: Deployment, label: str, dag_id: str, index: int, spark: bool = False, livy: bool = False
) -> CrashRun:
    what = "every process of the Celery worker that runs it" if deployment.celery else "the task process"
    say(f"\n{BOLD}[{index}/{len(RUNS)}] {label}: DAG {dag_id}; SIGKILL {what} mid-poll{RESET}")
    # On Celery the retry waits for the heartbeat timeout (10 s): a longer job.
    conf: dict[str, Any] = {"duration": str(JOB_SECONDS + 10 if deployment.celery else JOB_SECONDS)}
    run = run_crash_scenario(
        deployment,
        dag_id,
        f"demo-{dag_id}-{time.strftime('%H%M%S')}",
        kill="worker_sigkill" if deployment.celery else "task",
        conf=LIVY_CONF if livy else SPARK_CONF if spark else conf,
        on_event=show,
        timeout=300 if spark else 240,
    )
    if run.error:
        raise DemoFailed(f"{label}: {run.error}")
    return run


def restart_killed_worker(deployment: Deployment, run: CrashRun) -> None:
    """Start the Celery worker the run killed again (the machine came back), for the next run."""
    killed = next(w for w in deployment.workers.values() if w.address == run.killed_worker)
    deployment.restart_worker(killed)
    say(f"  {DIM}started {killed.name} again{RESET}")


def worker_names(run: CrashRun) -> str:
    """Where each try ran: the Celery workers' names by the tries' hostnames."""
    names = {worker.address: worker.name for worker in WORKERS}
    return " -> ".join(names.get(t.hostname or "", t.hostname or "?") for t in run.tries)


def spark_launches(deployment: Deployment, run: CrashRun) -> list[dict[str, Any]]:
    """The spark-submit processes the stand-in started for the run's batches (``GET /admin/spark``)."""
    ids = {batch["id"] for batch in run.batches}
    return [launch for launch in deployment.livy("GET", "/admin/spark") if launch["batch_id"] in ids]


def show_spark(deployment: Deployment, run: CrashRun) -> list[dict[str, Any]]:
    """Print each spark-submit of the run and the app's result line; return the launches."""
    launches = spark_launches(deployment, run)
    for launch in launches:
        took = (launch["ended_at"] or time.time()) - launch["started_at"]
        up = (launch["running_at"] or launch["started_at"]) - launch["started_at"]
        log = deployment.livy("GET", f"/batches/{launch['batch_id']}/log?size=-1")["log"]
        result = next((line for line in reversed(log) if line.startswith("Pi is roughly")), "no result")
        say(
            f"  {DIM}spark-submit pid {launch['pid']} (batch {launch['batch_id']}, Spark app "
            f"{launch['spark_app_id']}): driver up in {up:.1f} s, {launch['state']} after {took:.1f} s; "
            f"{result}{RESET}"
        )
    return launches


def show_livy_submits(livy: Any, run: CrashRun) -> list[int]:
    """Print the spark-submit processes real Livy started during the run; return their pids."""
    pids = sorted(livy.submits_since(run.began_at))
    say(f"  {DIM}spark-submit processes Livy started: {pids or 'none'}{RESET}")
    return pids


def check(label: str, run: CrashRun, expected_batches: int) -> None:
    """Raise DemoFailed unless ``run`` shows what the demo claims."""
    problems = []
    if run.final_state != "success":
        problems.append(f"the task ended {run.final_state}")
    if run.posts_during_run != expected_batches or len(run.batches) != expected_batches:
        problems.append(
            f"Livy saw {run.posts_during_run} POSTs and created {len(run.batches)} batches, "
            f"expected {expected_batches}"
        )
    if run.batches and run.final_state == "success":
        last = max(run.batches, key=lambda b: b["id"])
        if run.return_value != last["id"] or run.app_id != last["appId"]:
            problems.append(
                f"the task returned batch {run.return_value!r} / app {run.app_id!r}, "
                f"Livy has batch {last['id']} / app {last['appId']!r}"
            )
    if problems:
        raise DemoFailed(f"{label}: " + "; ".join(problems))


def summary(runs: dict[str, CrashRun], celery: bool, launches: dict[str, list[dict[str, Any]]]) -> None:
    rows = [
        ("POSTs seen by Livy", lambda r: r.posts_during_run),
        ("batches created", lambda r: len(r.batches)),
        ("final task state", lambda r: f"{r.final_state} (try {r.try_number})"),
        ("returned batch id", lambda r: r.return_value),
        ("app_id (XCom)", lambda r: r.app_id),
    ]
    if celery:
        rows.append(("tries ran on", worker_names))
    if launches:
        by_run = {id(run): launches[label] for label, run in runs.items()}
        rows.append(("spark-submits", lambda r: len(by_run[id(r)])))
    labels = list(runs)
    width = max(len(str(getter(run))) for _, getter in rows for run in runs.values()) + 2
    say(f"\n{BOLD}{'':<22}" + "".join(f"{label:<{width}}" for label in labels) + RESET)
    for name, getter in rows:
        say(f"{name:<22}" + "".join(f"{getter(runs[label])!s:<{width}}" for label in labels))


def main(argv: list[str]) -> int:
    modes = ("--celery", "--spark", "--livy")
    unknown = [arg for arg in argv if arg not in modes]
    if unknown or len(set(argv)) > 1:
        say(f"usage: bash dev/demo.sh [--celery | --spark | --livy]; not understood: {' '.join(argv)}")
        return 2
    celery = "--celery" in argv
    real_livy = "--livy" in argv
    spark = "--spark" in argv or real_livy
    spark_home, spark_python = (
        os.environ.get("LIVY_STANDIN_SPARK_HOME"),
        os.environ.get("LIVY_STANDIN_SPARK_PYTHON"),
    )
    if spark and not (spark_home and spark_python):
        say(
            "--spark and --livy need LIVY_STANDIN_SPARK_HOME and LIVY_STANDIN_SPARK_PYTHON "
            "(dev/demo.sh sets them)"
        )
        return 2
    livy_jars = os.environ.get("APACHE_LIVY_JARS")
    if real_livy and not livy_jars:
        say("--livy needs APACHE_LIVY_JARS (dev/demo.sh --livy sets it)")
        return 2
    runs_of = SPARK_RUNS if spark else RUNS
    spark_args = ["--spark", "--spark-home", spark_home or "", "--spark-python", spark_python or ""]
    began = time.monotonic()
    scratch = scratch_dir("livy-demo-")
    home = scratch / "airflow"
    say(f"{BOLD}Crash-safe LivyOperator demo{RESET} {DIM}(AIRFLOW_HOME {home}){RESET}")

    def progress(line: str) -> None:
        say(f"  {DIM}{time.monotonic() - began:5.1f} s  {line}{RESET}")

    postgres = PostgresServer(scratch / "postgres") if celery else None
    workers = WORKERS if celery else ()
    livy = None
    if real_livy:
        from livy_standin.apache_livy import ApacheLivy

        livy = ApacheLivy(
            jars=Path(livy_jars or ""),
            spark_home=Path(spark_home or ""),
            python=spark_python or "",
            apps_dir=PI_APP.parent,
            workdir=scratch / "apache-livy",
        )
        say("Starting Apache Livy (its own server, from Maven Central) on 127.0.0.1")
        try:
            livy.start()
        except RuntimeError as error:
            say(f"\n{RED}DEMO FAILED: Apache Livy did not start: {error}{RESET}")
            return 1
        livy.watch()
    deployment = Deployment(
        home,
        [SPARK_DAG if spark else EXAMPLE_DAG],
        parallelism=4,
        log=progress,
        postgres=postgres,
        workers=workers,
        standin_args=spark_args if spark else (),
        livy_upstream=None if livy is None else livy.url,
    )
    failure: str | None = None
    runs: dict[str, CrashRun] = {}
    try:
        if postgres is not None:
            say("Starting PostgreSQL and Redis (Debian's packages) on 127.0.0.1")
            postgres.start()
        servers = "api-server, scheduler, dag-processor" + (", two Celery workers" if celery else "")
        standin = "Livy stand-in (real Spark: spark-submit --master local[1])" if spark else "Livy stand-in"
        if livy is not None:
            standin = f"journaling proxy to Apache Livy at {livy.url}"
        say(f"Starting the {standin} and Airflow 3.3 ({servers}) on 127.0.0.1")
        deployment.start([dag_id for _, dag_id in runs_of])
        deployment.wait_for_workers()
        launches: dict[str, list[dict[str, Any]]] = {}
        for index, (label, dag_id) in enumerate(runs_of, start=1):
            runs[label] = run_one(deployment, label, dag_id, index, spark, livy is not None)
            if livy is not None:
                launches[label] = [{"pid": pid} for pid in show_livy_submits(livy, runs[label])]
            elif spark:
                launches[label] = show_spark(deployment, runs[label])
            if celery and index < len(runs_of):
                restart_killed_worker(deployment, runs[label])
        summary(runs, celery, launches)
        check("durable=True", runs["durable=True"], expected_batches=1)
        check("durable=False", runs["durable=False"], expected_batches=2)
        for label, expected in (("durable=True", 1), ("durable=False", 2)):
            if spark and len(launches[label]) != expected:
                raise DemoFailed(
                    f"{label}: {len(launches[label])} spark-submit processes, expected {expected}"
                )
    except (DemoFailed, DeploymentError, ServiceError) as error:
        failure = str(error).splitlines()[0]
    except KeyboardInterrupt:
        failure = "interrupted"
    finally:
        say(f"\n{DIM}Stopping every process the demo started...{RESET}")
        try:
            deployment.stop()
        except DeploymentError as error:
            failure = failure or f"could not stop everything: {error}"
        if postgres is not None:
            postgres.stop()
        if livy is not None:
            livy.stop()
    if failure:
        say(f"\n{RED}DEMO FAILED: {failure}{RESET}")
        say(f"Logs kept in {scratch}: airflow/process-logs/ (Airflow, Livy), airflow/logs/ (task logs)")
        return 1
    shutil.rmtree(scratch, ignore_errors=True)
    job = "real Spark application" if spark else "Spark job"
    job += " on Apache Livy" if livy is not None else ""
    say(
        f"\n{GREEN}durable=True: one {job}, found again after the crash. durable=False: the retry "
        f"submitted a second, duplicate {job}.{RESET}"
    )
    say(f"Done in {time.monotonic() - began:.0f} s; no process left running.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
