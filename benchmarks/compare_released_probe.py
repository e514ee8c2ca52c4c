"""
The measuring child of compare_released.py: run by each venv's python, prints one ``RESULT <json>`` line.

    python benchmarks/compare_released_probe.py import       one fresh-interpreter import of the operator
    python benchmarks/compare_released_probe.py tasks N      1 warm-up + N polling tasks against a stand-in

Only stdlib modules are imported at the top, so the import figure is not flattered by preloading.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

OPERATOR_MODULE = "airflow.providers.apache.livy.operators.livy"
WATCHED_MODULES = ("requests", "aiohttp", "airflow.providers.http", "airflow.providers.http.hooks.http")
"""Provider discovery (run by ``import airflow.sdk``) already loads ``airflow.providers.http`` itself."""
POLLING_INTERVAL = 0.02
JOB = {"spark.standin.startingSeconds": "0.1", "spark.standin.durationSeconds": "1.0"}
"""About 50 polls at 0.02 s (each poll also costs a request); identical for both providers."""
BATCH_READS = ("GET /batches/{id}", "GET /batches/{id}/state")


def emit(result: dict[str, Any]) -> None:
    """Print the result on the one line the parent parses."""
    print("RESULT " + json.dumps(result), flush=True)


def probe_import() -> dict[str, Any]:
    """CPU time of importing the operator module on top of what every DAG file already imports."""
    import airflow.sdk  # noqa: F401
    from airflow.sdk import BaseOperator  # noqa: F401

    before = set(sys.modules)
    started = time.process_time()
    __import__(OPERATOR_MODULE)
    cpu = time.process_time() - started
    provider = sys.modules["airflow.providers.apache.livy"]
    return {
        "cpu_seconds": cpu,
        "new_modules": len(set(sys.modules) - before),
        "loaded": {name: name in sys.modules for name in WATCHED_MODULES},
        "preloaded": {name: name in before for name in WATCHED_MODULES},
        "provider_version": getattr(provider, "__version__", "?"),
        "provider_path": str(getattr(provider, "__file__", "?")),
        "airflow_version": sys.modules["airflow"].__version__,
    }


class Request:
    """One HTTP exchange as the client saw it."""

    def __init__(self, method: str, url: str, body_bytes: int) -> None:
        self.kind = f"{method} {kind_of(url)}"
        self.body_bytes = body_bytes

    @property
    def is_batch_read(self) -> bool:
        """A read of the batch by id: full object or state only."""
        return self.kind in BATCH_READS


POLL_SLEEP = "poll-sleep"
"""Marker in the event list: the main thread slept for exactly the polling interval."""
Event = Request | str


def kind_of(url: str) -> str:
    """``/batches/17/state`` -> ``/batches/{id}/state``; names become ``{name}``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url).path.strip("/").split("/")
    if parts[:1] != ["batches"]:
        return "/" + "/".join(parts)
    if len(parts) > 1:
        parts[1] = "{id}" if parts[1].isdigit() else "{name}"
    return "/" + "/".join(parts)


def record_events(events: list[Event]) -> None:
    """Append every ``requests`` exchange and every polling sleep of the main thread to ``events``."""
    import threading

    import requests

    send = requests.Session.send
    sleep = time.sleep
    main = threading.main_thread()

    def recording_send(self: requests.Session, request: Any, **kwargs: Any) -> Any:
        response = send(self, request, **kwargs)
        events.append(Request(request.method or "?", request.url or "", len(response.content)))
        return response

    def recording_sleep(seconds: float) -> None:
        if threading.current_thread() is main and seconds == POLLING_INTERVAL:
            events.append(POLL_SLEEP)
        sleep(seconds)

    requests.Session.send = recording_send  # type: ignore[method-assign]
    time.sleep = recording_sleep


def task_context_doubles() -> Any:
    """The unit tests' task state store and task instance (``tests/unit/apache/livy/task_context.py``)."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "providers" / "apache" / "livy" / "tests"))
    from unit.apache.livy import task_context

    return task_context


def summarize(events: list[Event], store: Any, seconds: float) -> dict[str, Any]:
    """
    Per-task figures; the steady polling loop is what lies between the first and the last poll sleep.

    Each stretch between two consecutive poll sleeps is exactly one polling-loop iteration. Without
    poll sleeps (a loop that does not call ``time.sleep``) every batch read of the task counts.
    """
    from collections import Counter

    sleeps = [index for index, event in enumerate(events) if event == POLL_SLEEP]
    loop = events[sleeps[0] : sleeps[-1]] if len(sleeps) >= 2 else events
    loop_reads = [event for event in loop if isinstance(event, Request) and event.is_batch_read]
    requests = [event for event in events if isinstance(event, Request)]
    return {
        "seconds": seconds,
        "requests": dict(Counter(request.kind for request in requests)),
        "writes": store.writes,
        "deletes": store.deletes,
        "polls": len(sleeps) + 1 if sleeps else None,
        "loop_iterations": len(sleeps) - 1 if len(sleeps) >= 2 else None,
        "loop_reads": len(loop_reads),
        "loop_bytes": sum(read.body_bytes for read in loop_reads),
    }


def run_task(operator_class: Any, run_id: str, events: list[Event]) -> dict[str, Any]:
    """Run one polling task with the provider's default ``durable`` and a fresh store."""
    doubles = task_context_doubles()
    store = doubles.MemoryTaskStateStore(journal=[])
    ti = doubles.FakeTaskInstance(dag_id="bench", task_id="spark", run_id=run_id, max_tries=0)
    operator = operator_class(
        task_id="spark", file="pi.py", conf=JOB, polling_interval=POLLING_INTERVAL, deferrable=False
    )
    start = len(events)
    started = time.perf_counter()
    operator.execute({"ti": ti, "task_state_store": store})
    return summarize(events[start:], store, time.perf_counter() - started)


def quiet_logs() -> None:
    """Airflow 3 logs through structlog to stdout; keep only errors so the RESULT line is parseable."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.getLogger().setLevel(logging.ERROR)


def probe_tasks(count: int) -> dict[str, Any]:
    """One warm-up task, then ``count`` measured ones, each with its own run id, on a fresh stand-in."""
    import os

    from livy_standin import LivyStandin

    events: list[Event] = []
    record_events(events)
    from airflow.providers.apache.livy.operators.livy import LivyOperator

    quiet_logs()  # after the import: importing Airflow configures structlog

    with LivyStandin(host="127.0.0.1", port=0, quiet=True) as livy:
        os.environ["AIRFLOW_CONN_LIVY_DEFAULT"] = f"livy://127.0.0.1:{livy.port}"
        run_task(LivyOperator, "bench_warmup", events)
        before = sum(livy.stats()["requests"].values())
        tasks = [run_task(LivyOperator, f"bench_{run:03d}", events) for run in range(count)]
        server_requests = sum(livy.stats()["requests"].values()) - before
        batches = livy.batches()
    return {
        "tasks": tasks,
        "server_requests": server_requests,
        "batches_created": len(batches),
        "batch_states": sorted({batch["state"] for batch in batches}),
    }


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "import":
        emit(probe_import())
    elif mode == "tasks":
        emit(probe_tasks(int(sys.argv[2]) if len(sys.argv) > 2 else 5))
    else:
        sys.exit(f"usage: {sys.argv[0]} import | tasks [N]")


if __name__ == "__main__":
    main()
