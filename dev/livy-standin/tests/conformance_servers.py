"""
The two servers the conformance suite runs against: the stand-in (``--spark``) and real Apache Livy.

Both run real ``spark-submit`` jobs (PySpark from ``.venvs/spark``) in local mode on 127.0.0.1, so
one request gets the answers each server really gives. Real Livy needs its jars
(``dev/lib.sh make_livy_env``: ``APACHE_LIVY_JARS``); without them its cases are skipped, unless
``APACHE_LIVY_REQUIRED=1`` (the test command's real-Livy step), where that is an error.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from livy_standin import LivyStandin
from livy_standin.apache_livy import ApacheLivy, spark_app_name
from livy_standin.spark import SparkLauncher

APPS = Path(__file__).resolve().parents[2] / "spark-apps"
PI_APP = APPS / "pi.py"
SPARK_HOME = os.environ.get("LIVY_STANDIN_SPARK_HOME")
SPARK_PYTHON = os.environ.get("LIVY_STANDIN_SPARK_PYTHON")
LIVY_JARS = os.environ.get("APACHE_LIVY_JARS")
KINDS = ("standin", "apache-livy")
LIVY_VERSION = "0.7.1-incubating"
"""The Livy that dev/apache-livy/pom.xml pins; the stand-in answers as that version does."""


@dataclass
class Server:
    """One server under test, and the few things a test needs beyond its REST API."""

    kind: str
    url: str
    restart: Callable[[], None]
    """Restart it as a crash does (no recovery): Livy SIGKILLed and started again."""
    live_submits: Callable[[], set[int]]
    """The pids of the spark-submit processes it started that still run."""
    submit_of: Callable[[dict[str, Any]], int | None]
    """The pid of the spark-submit that runs ``batch`` (a batch object), while it runs."""

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=30)

    def post(self, path: str, body: object) -> requests.Response:
        return requests.post(self.url + path, json=body, timeout=60, headers={"X-Requested-By": "tests"})

    def delete(self, path: str) -> requests.Response:
        return requests.delete(self.url + path, timeout=60, headers={"X-Requested-By": "tests"})


def require(kind: str) -> None:
    """Skip (or fail, where the real server is required) when ``kind`` cannot run here."""
    if not (SPARK_HOME and SPARK_PYTHON):
        pytest.skip("real Spark: run dev/lib.sh make_spark_env first")
    if kind == "apache-livy" and not LIVY_JARS:
        if os.environ.get("APACHE_LIVY_REQUIRED") == "1":
            pytest.fail("APACHE_LIVY_REQUIRED=1 but APACHE_LIVY_JARS is not set (dev/lib.sh make_livy_env)")
        pytest.skip("real Apache Livy: run dev/lib.sh make_livy_env first")


def apache_livy(workdir: Path | None = None, **kwargs: object) -> ApacheLivy:
    """A real Livy server (not started) on the PySpark of ``.venvs/spark``."""
    assert LIVY_JARS and SPARK_HOME and SPARK_PYTHON
    return ApacheLivy(
        jars=Path(LIVY_JARS),
        spark_home=Path(SPARK_HOME),
        python=SPARK_PYTHON,
        apps_dir=APPS,
        workdir=workdir,
        **kwargs,  # type: ignore[arg-type]
    )


def livy_submit_of(livy: ApacheLivy) -> Callable[[dict[str, Any]], int | None]:
    """Find a batch's spark-submit among Livy's by the ``--name`` Livy gives it (the batch's name)."""

    def submit_of(batch: dict[str, Any]) -> int | None:
        return next((pid for pid in livy.spark_submit_pids() if spark_app_name(pid) == batch["name"]), None)

    return submit_of


def running_server(kind: str) -> Iterator[Server]:
    """Start a server of ``kind``, yield it, end it and everything it started."""
    require(kind)
    assert SPARK_HOME and SPARK_PYTHON
    if kind == "apache-livy":
        with tempfile.TemporaryDirectory(prefix="conformance-livy-") as workdir:
            livy = apache_livy(Path(workdir))
            livy.start()
            try:
                yield Server(kind, livy.url, livy.restart, livy.spark_submit_pids, livy_submit_of(livy))
            finally:
                livy.stop()
        return
    launcher = SparkLauncher(SPARK_HOME, SPARK_PYTHON)
    try:
        with LivyStandin(host="127.0.0.1", port=0, spark=launcher, livy_version=LIVY_VERSION) as standin:

            def running_jobs() -> list[dict[str, Any]]:
                jobs = requests.get(f"{standin.url}/admin/spark", timeout=10).json()
                return [job for job in jobs if job["exit_code"] is None]

            def live_submits() -> set[int]:
                return {job["pid"] for job in running_jobs()}

            def submit_of(batch: dict[str, Any]) -> int | None:
                return next((job["pid"] for job in running_jobs() if job["batch_id"] == batch["id"]), None)

            restart = lambda: standin.restart(recovery=False)  # noqa: E731
            yield Server(kind, standin.url, restart, live_submits, submit_of)
    finally:
        launcher.close()
