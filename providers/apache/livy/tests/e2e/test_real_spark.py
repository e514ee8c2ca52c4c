"""
Crash recovery with a real Spark application: the worker dies while a real spark-submit runs.

A deployment of its own (LocalExecutor, SQLite) whose Livy stand-in runs each batch as a real
``spark-submit --master local[1]`` (``--spark``; PySpark from ``.venvs/spark``, made by
``dev/lib.sh make_spark_env``, which exports ``LIVY_STANDIN_SPARK_HOME`` and
``LIVY_STANDIN_SPARK_PYTHON``; skipped without them). The durable DAG submits ``dev/spark-apps/pi.py``;
the harness SIGKILLs the task process once it polls the running application; the retry must reconnect
to that same application (one POST, one spark-submit ever), which then succeeds and prints its result.
Marked ``spark`` (``dev/test.sh`` runs it once, on Airflow 3.3).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.airflow_deployment import CrashRun, Deployment, run_crash_scenario
from e2e.checks import between, check_try_1_killed, polls_of
from e2e.conftest import _SUMMARIES, CAN_RUN, SKIP_REASON, _keep_or_remove, _progress

ROOT = Path(__file__).resolve().parents[5]
PI_APP = ROOT / "dev" / "spark-apps" / "pi.py"
SPARK_DAG = Path(__file__).resolve().parent / "dags" / "spark" / "livy_real_spark.py"
SPARK_HOME = os.environ.get("LIVY_STANDIN_SPARK_HOME")
SPARK_PYTHON = os.environ.get("LIVY_STANDIN_SPARK_PYTHON")
PARTITIONS, SECONDS_PER_PARTITION = 10, 2
"""~20 s of work after the driver is up: it outlives the kill -> retry (~4 s on Airflow 3.3)."""

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.spark,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not CAN_RUN, reason=SKIP_REASON),
    pytest.mark.skipif(
        not (SPARK_HOME and SPARK_PYTHON),
        reason="real Spark: LIVY_STANDIN_SPARK_HOME/_PYTHON unset (source dev/lib.sh; make_spark_env)",
    ),
]


@pytest.fixture(scope="module")
def spark_deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """Airflow (api-server, scheduler, dag-processor) and a stand-in that runs real Spark."""
    assert SPARK_HOME is not None
    assert SPARK_PYTHON is not None
    home = Path(tempfile.mkdtemp(prefix="livy-e2e-spark-"))
    deployment = Deployment(
        home,
        [SPARK_DAG],
        parallelism=3,
        log=_progress("spark deployment"),
        standin_args=["--spark", "--spark-home", SPARK_HOME, "--spark-python", SPARK_PYTHON],
    )
    try:
        deployment.start(["livy_real_spark"])
        yield deployment
    finally:
        deployment.stop()
        _keep_or_remove(request, home, keep=False)


def spark_timings(run: CrashRun, launch: dict[str, Any]) -> dict[str, float]:
    """Seconds: spark-submit start -> driver up (its SparkContext), driver up -> exit, SIGKILL -> exit."""
    return {
        "spark-submit -> driver up": launch["running_at"] - launch["started_at"],
        "driver up -> spark-submit exit": launch["ended_at"] - launch["running_at"],
        "SIGKILL -> spark-submit exit": launch["ended_at"] - (run.killed_at or 0.0),
    }


def test_worker_killed_while_a_real_spark_app_runs(
    request: pytest.FixtureRequest, spark_deployment: Deployment
) -> None:
    run = run_crash_scenario(
        spark_deployment,
        "livy_real_spark",
        f"e2e-real-spark-{time.strftime('%Y%m%dT%H%M%S')}",
        kill="task",
        conf={
            "app": f"local://{PI_APP}",
            "partitions": str(PARTITIONS),
            "seconds": str(SECONDS_PER_PARTITION),
        },
        timeout=300,
        on_event=lambda event: print(f"[real_spark] {event.seconds:6.1f}s  {event.text}", flush=True),
    )
    assert run.error is None, run.describe()
    assert (run.final_state, run.try_number) == ("success", 2), run.describe()
    killed_at = check_try_1_killed(run)

    # One POST, one batch, no DELETE; the task returned that batch's id.
    (batch,) = run.batches
    posts = run.requests_of("POST")
    assert (run.posts_during_run, len(posts)) == (1, 1), run.describe()
    assert posts[0]["created_id"] == batch["id"], run.describe()
    assert run.requests_of("DELETE") == [], run.describe()
    assert run.return_value == batch["id"], run.describe()
    # Real Livy reports no application id for a local master; the XCom says the same.
    assert (batch["appId"], run.app_id) == (None, None), run.describe()

    # One spark-submit ever, running across the kill; try 2 polled it by id while it still ran.
    launches = spark_deployment.livy("GET", "/admin/spark")
    (launch,) = launches
    assert launch["batch_id"] == batch["id"], launches
    assert (launch["state"], launch["exit_code"], launch["killed"]) == ("success", 0, False), launch
    # Livy's local mode (and the stand-in) report ``running`` once spark-submit runs: the kill came
    # while it ran, maybe before the driver was up.
    assert launch["started_at"] < killed_at < launch["ended_at"], (launch, run.describe())
    try_2 = between(run, run.try_start(2), launch["ended_at"])
    assert polls_of(try_2, batch["id"]), run.describe()
    assert str(launch["spark_app_id"]).startswith("local-"), launch

    # The app's result, in Livy's log of the batch and in the task log of the try that finished it.
    log = spark_deployment.livy("GET", f"/batches/{batch['id']}/log?size=-1")["log"]
    assert any(line.startswith("Pi is roughly 3.1") for line in log), log[-40:]
    assert "Pi is roughly 3.1" in run.log(2), run.describe()

    timings = ", ".join(f"{label} {seconds:.1f}s" for label, seconds in spark_timings(run, launch).items())
    request.config.stash.setdefault(_SUMMARIES, []).append(
        f"real_spark ({launch['spark_app_id']}, pid {launch['pid']}): {run.summary()}; {timings}"
    )
