"""
What durability costs: LivyOperator with durable=True vs durable=False, side by side in one run.

Runs N tasks of each kind against the Livy stand-in on 127.0.0.1 (short simulated jobs), with an
in-memory task state store, and prints per-task wall time, HTTP requests and store writes as ratios.

    .venvs/airflow-3.3/bin/python benchmarks/durable_overhead.py [N]     (after bash dev/test.sh --quick)
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import time
from pathlib import Path

from airflow.providers.apache.livy.operators.livy import LivyOperator
from livy_standin import LivyStandin

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "providers" / "apache" / "livy" / "tests"))
from unit.apache.livy.task_context import FakeTaskInstance, MemoryTaskStateStore

JOB = {"spark.standin.startingSeconds": "0.05", "spark.standin.durationSeconds": "0.3"}
RUN_IDS = (f"run_{number}" for number in itertools.count())
"""Every task gets its own run id: a shared one makes a durable task adopt an earlier task's batch."""


def run_tasks(livy: LivyStandin, durable: bool, count: int) -> dict[str, float]:
    seconds, requests, writes = [], [], []
    for _ in range(count):
        store = MemoryTaskStateStore(journal=[])
        before = sum(livy.stats()["requests"].values())
        started = time.perf_counter()
        operator = LivyOperator(
            task_id="spark", file="pi.py", conf=JOB, polling_interval=0.05, durable=durable
        )
        ti = FakeTaskInstance(dag_id="bench", task_id="spark", run_id=next(RUN_IDS))
        operator.execute({"ti": ti, "task_state_store": store})
        seconds.append(time.perf_counter() - started)
        requests.append(sum(livy.stats()["requests"].values()) - before)
        writes.append(store.writes)
    return {
        "seconds": statistics.median(seconds),
        "requests": statistics.mean(requests),
        "writes": statistics.mean(writes),
    }


def quiet_logs() -> None:
    """Airflow 3 logs through structlog to stdout; keep only errors so the table stands out."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


def main() -> None:
    quiet_logs()
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    with LivyStandin(port=0) as livy:
        os.environ["AIRFLOW_CONN_LIVY_DEFAULT"] = f"livy://127.0.0.1:{livy.port}"
        run_tasks(livy, True, 1)  # warm up imports and connections
        durable = run_tasks(livy, True, count)
        plain = run_tasks(livy, False, count)
    print(f"{count} tasks each, 0.35 s simulated Spark jobs, polling every 0.05 s")
    print(f"{'':24}{'durable=False':>15}{'durable=True':>15}{'ratio':>9}")
    for key, label in (
        ("seconds", "median wall time (s)"),
        ("requests", "HTTP requests / task"),
        ("writes", "store writes / task"),
    ):
        ratio = f"{durable[key] / plain[key]:.2f}x" if plain[key] else "-"
        print(f"{label:24}{plain[key]:>15.3f}{durable[key]:>15.3f}{ratio:>9}")


if __name__ == "__main__":
    main()
