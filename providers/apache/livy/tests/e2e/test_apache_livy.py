"""
End to end against real Apache Livy: real Airflow 3.3, real kills, real spark-submit.

One deployment (LocalExecutor, SQLite, a triggerer) whose Livy is Apache Livy itself
(``livy_standin.apache_livy``: the jars ``dev/lib.sh make_livy_env`` assembles from Maven Central, the
PySpark of ``.venvs/spark``), behind ``livy_standin.journal_proxy``, which journals every request Livy
saw (and can drop the reply to a POST). The scenarios run one after another; each asserts on data:
the journal, Livy's own ``GET /batches``, the spark-submit processes Livy started (sampled from
``/proc``), the task's XComs and tries.

Marked ``livy`` (``dev/test.sh`` runs them in the real-Livy step, on Airflow 3.3).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from e2e.airflow_deployment import CrashRun, Deployment, run_crash_scenario
from e2e.checks import check_try_1_killed
from e2e.conftest import _SUMMARIES, CAN_RUN, SKIP_REASON, _keep_or_remove, _progress

ROOT = Path(__file__).resolve().parents[5]
PI_APP = ROOT / "dev" / "spark-apps" / "pi.py"
DAG_FILE = Path(__file__).resolve().parent / "dags" / "apache_livy" / "livy_apache.py"
SPARK_HOME = os.environ.get("LIVY_STANDIN_SPARK_HOME")
SPARK_PYTHON = os.environ.get("LIVY_STANDIN_SPARK_PYTHON")
LIVY_JARS = os.environ.get("APACHE_LIVY_JARS")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.livy,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not CAN_RUN, reason=SKIP_REASON),
]


@pytest.fixture(scope="module")
def apache_livy() -> Iterator[Any]:
    """Apache Livy on loopback, watched for the spark-submit processes it starts."""
    if not (SPARK_HOME and SPARK_PYTHON and LIVY_JARS):
        if os.environ.get("APACHE_LIVY_REQUIRED") == "1":
            pytest.fail("APACHE_LIVY_REQUIRED=1 but real Spark or Livy's jars are missing")
        pytest.skip("real Apache Livy: source dev/lib.sh; make_spark_env; make_livy_env")
    from livy_standin.apache_livy import ApacheLivy

    workdir = Path(tempfile.mkdtemp(prefix="livy-e2e-apache-livy-"))
    livy = ApacheLivy(
        jars=Path(LIVY_JARS),
        spark_home=Path(SPARK_HOME),
        python=SPARK_PYTHON,
        apps_dir=PI_APP.parent,
        workdir=workdir,
    )
    livy.start()
    livy.watch()
    try:
        yield livy
    finally:
        livy.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def deployment(request: pytest.FixtureRequest, apache_livy: Any) -> Iterator[Deployment]:
    """Airflow (api-server, scheduler, dag-processor, triggerer) with the journaling proxy to Livy."""
    home = Path(tempfile.mkdtemp(prefix="livy-e2e-apache-"))
    deployment = Deployment(
        home,
        [DAG_FILE],
        parallelism=4,
        triggerer=True,
        log=_progress("apache livy deployment"),
        livy_upstream=apache_livy.url,
    )
    try:
        deployment.start(["livy_apache", "livy_apache_deferrable"])
        yield deployment
    finally:
        deployment.stop()
        _keep_or_remove(request, home, keep=os.environ.get("LIVY_E2E_KEEP") == "1")


def run(deployment: Deployment, dag_id: str, label: str, *, kill: str | None, **conf: str) -> CrashRun:
    """Trigger ``dag_id`` with the Pi app (``conf`` sets its length), act on try 1, wait for the end."""
    return run_crash_scenario(
        deployment,
        dag_id,
        f"e2e-apache-{label}-{time.strftime('%Y%m%dT%H%M%S')}",
        kill=kill,
        conf={"app": str(PI_APP), "partitions": "10", "seconds": "2", **conf},
        timeout=360,
        on_event=lambda event: print(f"[apache {label}] {event.seconds:6.1f}s  {event.text}", flush=True),
    )


def livy_batches(livy: Any) -> dict[int, dict[str, Any]]:
    """Livy's own list of the batches it holds, by id."""
    listing = requests.get(f"{livy.url}/batches?size=1000", timeout=10).json()
    return {batch["id"]: batch for batch in listing["sessions"]}


def record(request: pytest.FixtureRequest, label: str, run: CrashRun, submits: int, more: str = "") -> None:
    request.config.stash.setdefault(_SUMMARIES, []).append(
        f"apache livy {label}: {run.summary()}; spark-submits {submits}{more}"
    )


def test_worker_killed_mid_poll_reconnects(
    request: pytest.FixtureRequest, deployment: Deployment, apache_livy: Any
) -> None:
    began = time.time()
    crash = run(deployment, "livy_apache", "task-kill", kill="task")
    assert crash.error is None, crash.describe()
    assert (crash.final_state, crash.try_number) == ("success", 2), crash.describe()
    check_try_1_killed(crash)
    (batch,) = crash.batches
    assert (crash.posts_during_run, len(crash.requests_of("DELETE"))) == (1, 0), crash.describe()
    assert crash.return_value == batch["id"], crash.describe()
    assert livy_batches(apache_livy)[batch["id"]]["state"] == "success"
    submits = apache_livy.submits_since(began)
    assert len(submits) == 1, (submits, crash.describe())
    assert "Pi is roughly 3.1" in crash.log(2), crash.describe()
    record(request, "worker SIGKILLed mid-poll", crash, len(submits))


def test_triggerer_killed_and_restarted(
    request: pytest.FixtureRequest, deployment: Deployment, apache_livy: Any
) -> None:
    began = time.time()
    crash = run(deployment, "livy_apache_deferrable", "triggerer", kill="triggerer")
    assert crash.error is None, crash.describe()
    assert crash.final_state == "success", crash.describe()
    (batch,) = crash.batches
    assert (crash.posts_during_run, len(crash.requests_of("DELETE"))) == (1, 0), crash.describe()
    assert crash.return_value == batch["id"], crash.describe()
    submits = apache_livy.submits_since(began)
    assert len(submits) == 1, (submits, crash.describe())
    record(request, "triggerer SIGKILLed and restarted", crash, len(submits))


def test_marked_failed_deletes_the_batch_and_its_spark_submit(
    request: pytest.FixtureRequest, deployment: Deployment, apache_livy: Any
) -> None:
    began = time.time()
    crash = run(deployment, "livy_apache", "mark-failed", kill="mark_failed", partitions="60")
    assert crash.final_state == "failed", crash.describe()
    (batch,) = crash.batches
    deletes = crash.requests_of("DELETE")
    assert [entry["path"] for entry in deletes] == [f"/batches/{batch['id']}"], crash.describe()
    assert deletes[0]["status"] == 200, crash.describe()
    assert batch["id"] not in livy_batches(apache_livy), "Livy forgot the deleted batch"
    # The batch's spark-submit, by the --name Livy gives it (a leftover of an earlier scenario may be
    # first sampled after this one began).
    (submit,) = [
        pid for pid in apache_livy.submits_since(began) if apache_livy.submit_names[pid] == batch["name"]
    ]
    deadline = time.monotonic() + 30
    while submit in apache_livy.spark_submit_pids() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert submit not in apache_livy.spark_submit_pids(), "the batch's spark-submit was ended"
    record(request, "marked failed", crash, 1)


def test_a_lost_post_reply_is_resolved_by_name(
    request: pytest.FixtureRequest, deployment: Deployment, apache_livy: Any
) -> None:
    began = time.time()
    crash = run(deployment, "livy_apache", "lost-reply", kill=None, partitions="2", drop_reply="true")
    assert crash.error is None, crash.describe()
    assert crash.final_state == "success", crash.describe()
    (batch,) = crash.batches
    (post,) = crash.requests_of("POST")
    assert (post["status"], post["created_id"]) == (None, batch["id"]), "Livy created it; the reply was lost"
    lookups = [e for e in crash.requests if e["kind"] == "GET /batches/{name}"]
    assert lookups, crash.describe()
    assert lookups[0]["status"] == 200, crash.describe()
    assert crash.return_value == batch["id"], crash.describe()
    submits = apache_livy.submits_since(began)
    assert len(submits) == 1, (submits, crash.describe())
    record(request, "POST reply lost", crash, len(submits))


def test_livy_restarted_without_recovery_never_adopts_a_reused_id(
    request: pytest.FixtureRequest, deployment: Deployment, apache_livy: Any
) -> None:
    """
    Livy crashes while the task polls; it comes back with no batch and gives id 0 to another job.

    The task must not take that job for its own: its poll reads the same id, the other job's state.
    A poll that needed another attempt (Livy was down) is followed by a whole read, which names the
    other batch, so the try fails at once, without showing the other job's log as ours (or, if its
    read got through before the other job took the id, Livy's "not found" ends it); the retry
    finds no batch of its own under its name and submits one (``-s2-``), which succeeds.
    """
    began = time.time()
    result: dict[str, CrashRun] = {}
    label = "livy-restart"
    runner = threading.Thread(
        target=lambda: result.setdefault(
            "run", run(deployment, "livy_apache", label, kill=None, partitions="15")
        ),
        daemon=True,
    )
    runner.start()
    ours = wait_for_our_running_batch(deployment, began)
    orphan = set(apache_livy.spark_submit_pids())
    apache_livy.restart(kill=True)
    other = take_the_id(apache_livy, ours["id"], f"another-team-{int(began)}")
    assert other["id"] == ours["id"], "Livy reuses the id after a restart without recovery"
    runner.join(timeout=400)
    assert "run" in result, "the scenario did not end within 400 s"
    crash = result["run"]
    assert crash.error is None, crash.describe()
    assert (crash.final_state, crash.try_number) == ("success", 2), crash.describe()
    assert crash.return_value != other["id"], crash.describe()
    mine = [b for b in crash.batches if b["id"] == crash.return_value]
    assert mine, crash.describe()
    assert re.search(r"-s2-[0-9a-f]+$", mine[0]["name"]), ("a second submission", crash.batches)
    assert crash.posts_during_run == 2, crash.describe()
    # Try 1's poll failed while Livy was down; the read that got through was checked before its state
    # or log was taken for ours: no line of the other job (the same app) reached try 1's log.
    assert "Pi is roughly" not in crash.log(1), crash.describe()
    assert not [e for e in crash.requests_of("DELETE") if e["path"] == f"/batches/{other['id']}"]
    assert livy_batches(apache_livy)[other["id"]]["name"] == other["name"], "the other job was left alone"
    apache_livy.end_leftover_submits()  # the crashed Livy's spark-submit ran on, owned by nobody
    names = sorted(apache_livy.submit_names[pid] for pid in apache_livy.submits_since(began))
    print(f"[apache livy-restart] spark-submits: {names}", flush=True)
    record(
        request,
        "Livy restarted without recovery",
        crash,
        len(apache_livy.submits_since(began)),
        f"; orphaned by the crash {len(orphan)}",
    )


def take_the_id(livy: Any, batch_id: int, name: str) -> dict[str, Any]:
    """
    After a restart without recovery, give ``batch_id`` to another team's job (a real, short one).

    Livy counts ids from 0 again: the ids below ``batch_id`` go to POSTs without a file, which Livy
    refuses after taking an id (they stay as zombies, no spark-submit); then the job gets ``batch_id``.
    """
    headers = {"X-Requested-By": "tests"}
    for _ in range(batch_id):
        requests.post(f"{livy.url}/batches", json={"name": f"{name}-filler-{_}"}, headers=headers, timeout=60)
    body = {"file": str(PI_APP), "args": ["1", "0"], "name": name}
    return requests.post(f"{livy.url}/batches", json=body, headers=headers, timeout=60).json()


def polled_paths(batch_id: int) -> tuple[str, str]:
    """What a poll reads: the batch's state, or the whole batch (for its log's last lines)."""
    return f"/batches/{batch_id}/state", f"/batches/{batch_id}"


def wait_for_our_running_batch(deployment: Deployment, since: float) -> dict[str, Any]:
    """The batch of the run started after ``since``, once Livy runs it and the task polled it twice."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        batches = [
            b for b in deployment.livy_batches() if b["created_at"] >= since and b["state"] == "running"
        ]
        if batches:
            polls = [
                e
                for e in deployment.livy_requests(batches)
                if e["method"] == "GET" and e["path"] in polled_paths(batches[0]["id"])
            ]
            if len(polls) >= 2:
                return batches[0]
        time.sleep(0.5)
    raise AssertionError("the task's batch never ran")
