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

The deployment harness is the e2e tests' one: providers/apache/livy/tests/e2e/airflow_deployment.py.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

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


def run_one(deployment: Deployment, label: str, dag_id: str, index: int) -> CrashRun:
    what = "every process of the Celery worker that runs it" if deployment.celery else "the task process"
    say(f"\n{BOLD}[{index}/{len(RUNS)}] {label}: DAG {dag_id}; SIGKILL {what} mid-poll{RESET}")
    run = run_crash_scenario(
        deployment,
        dag_id,
        f"demo-{dag_id}-{time.strftime('%H%M%S')}",
        kill="worker_sigkill" if deployment.celery else "task",
        # On Celery the retry waits for the heartbeat timeout (10 s): a longer job.
        conf={"duration": str(JOB_SECONDS + 10 if deployment.celery else JOB_SECONDS)},
        on_event=show,
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


def summary(runs: dict[str, CrashRun], celery: bool) -> None:
    rows = [
        ("POSTs seen by Livy", lambda r: r.posts_during_run),
        ("batches created", lambda r: len(r.batches)),
        ("final task state", lambda r: f"{r.final_state} (try {r.try_number})"),
        ("returned batch id", lambda r: r.return_value),
        ("app_id (XCom)", lambda r: r.app_id),
    ]
    if celery:
        rows.append(("tries ran on", worker_names))
    labels = list(runs)
    width = max(len(str(getter(run))) for _, getter in rows for run in runs.values()) + 2
    say(f"\n{BOLD}{'':<22}" + "".join(f"{label:<{width}}" for label in labels) + RESET)
    for name, getter in rows:
        say(f"{name:<22}" + "".join(f"{getter(runs[label])!s:<{width}}" for label in labels))


def main(argv: list[str]) -> int:
    unknown = [arg for arg in argv if arg != "--celery"]
    if unknown:
        say(f"usage: bash dev/demo.sh [--celery]; unknown: {' '.join(unknown)}")
        return 2
    celery = "--celery" in argv
    began = time.monotonic()
    scratch = scratch_dir("livy-demo-")
    home = scratch / "airflow"
    say(f"{BOLD}Crash-safe LivyOperator demo{RESET} {DIM}(AIRFLOW_HOME {home}){RESET}")

    def progress(line: str) -> None:
        say(f"  {DIM}{time.monotonic() - began:5.1f} s  {line}{RESET}")

    postgres = PostgresServer(scratch / "postgres") if celery else None
    workers = WORKERS if celery else ()
    deployment = Deployment(
        home, [EXAMPLE_DAG], parallelism=4, log=progress, postgres=postgres, workers=workers
    )
    failure: str | None = None
    runs: dict[str, CrashRun] = {}
    try:
        if postgres is not None:
            say("Starting PostgreSQL and Redis (Debian's packages) on 127.0.0.1")
            postgres.start()
        servers = "api-server, scheduler, dag-processor" + (", two Celery workers" if celery else "")
        say(f"Starting the Livy stand-in and Airflow 3.3 ({servers}) on 127.0.0.1")
        deployment.start([dag_id for _, dag_id in RUNS])
        deployment.wait_for_workers()
        for index, (label, dag_id) in enumerate(RUNS, start=1):
            runs[label] = run_one(deployment, label, dag_id, index)
            if celery and index < len(RUNS):
                restart_killed_worker(deployment, runs[label])
        summary(runs, celery)
        check("durable=True", runs["durable=True"], expected_batches=1)
        check("durable=False", runs["durable=False"], expected_batches=2)
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
    if failure:
        say(f"\n{RED}DEMO FAILED: {failure}{RESET}")
        say(f"Logs kept in {home}: process-logs/ (Airflow, Livy stand-in) and logs/ (task logs)")
        return 1
    shutil.rmtree(scratch, ignore_errors=True)
    say(
        f"\n{GREEN}durable=True: one Spark job, found again after the crash. durable=False: the retry "
        f"submitted a second, duplicate job.{RESET}"
    )
    say(f"Done in {time.monotonic() - began:.0f} s; no process left running.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
