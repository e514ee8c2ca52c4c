"""
The measuring child of compare_released.py: run by each venv's python, prints one ``RESULT <json>`` line.

    python benchmarks/compare_released_probe.py import          one fresh-interpreter import of the operator
    python benchmarks/compare_released_probe.py tasks SPEC      polling tasks against a Livy stand-in
    python benchmarks/compare_released_probe.py triggers SPEC   deferred tasks' triggers in one process

``SPEC`` is JSON (see :func:`probe_tasks` and :func:`probe_triggers`). Only stdlib modules are imported
at the top, so the import figure is not flattered by preloading.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from typing import Any

OPERATOR_MODULE = "airflow.providers.apache.livy.operators.livy"
WATCHED_MODULES = ("requests", "aiohttp", "airflow.providers.http", "airflow.providers.http.hooks.http")
"""Provider discovery (run by ``import airflow.sdk``) already loads ``airflow.providers.http`` itself."""
JOB_LINE = re.compile(r"\bline (\d+) of batch (\d+)\b")
"""A line of a stand-in job's log."""


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


def kind_of(url: str) -> str:
    """``/batches/17/state`` -> ``GET /batches/{id}/state``-style path; names become ``{name}``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url).path.strip("/").split("/")
    if parts[:1] == ["batches"] and len(parts) > 1:
        parts[1] = "{id}" if parts[1].isdigit() else "{name}"
    return "/" + "/".join(parts)


def wire_bytes(response: Any) -> int:
    """Bytes of one HTTP response as received: status line, headers and body."""
    head = len(f"HTTP/1.1 {response.status_code} {response.reason or ''}\r\n") + 2
    return head + sum(len(k) + len(v) + 4 for k, v in response.headers.items()) + len(response.content)


class Recorder:
    """Every ``requests`` exchange of the process, and every job log line the task logged."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, int]] = []
        self.lines: list[tuple[int, int]] = []

    def install(self) -> None:
        import requests

        send = requests.Session.send

        def recording_send(session: requests.Session, request: Any, **kwargs: Any) -> Any:
            response = send(session, request, **kwargs)
            self.requests.append((f"{request.method} {kind_of(request.url or '')}", wire_bytes(response)))
            return response

        requests.Session.send = recording_send  # type: ignore[method-assign]

    def count_line(self, message: str) -> None:
        for match in JOB_LINE.finditer(message):
            self.lines.append((int(match.group(2)), int(match.group(1))))


def silence_logs(recorder: Recorder) -> None:
    """
    Keep the logs off stdout (the RESULT line must parse), counting the job lines logged.

    Airflow 3 logs through structlog (info included: the lines are counted, then dropped), stdlib
    ``logging`` too.
    """
    import logging

    import structlog

    def count_and_drop(_: Any, __: str, event: dict[str, Any]) -> Any:
        message = str(event.get("event", ""))
        positional = event.get("positional_args")
        if positional:
            with contextlib.suppress(TypeError, ValueError):
                message = message % tuple(positional)
        recorder.count_line(message)
        raise structlog.DropEvent

    structlog.configure(processors=[count_and_drop], wrapper_class=structlog.make_filtering_bound_logger(20))

    class Counting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            recorder.count_line(record.getMessage())

    root = logging.getLogger()
    root.handlers = [Counting()]
    root.setLevel(logging.INFO)


def task_context_doubles() -> Any:
    """The unit tests' task state store and task instance (``tests/unit/apache/livy/task_context.py``)."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "providers" / "apache" / "livy" / "tests"))
    from unit.apache.livy import task_context

    return task_context


def run_task(operator_class: Any, spec: dict[str, Any], run_id: str, recorder: Recorder) -> dict[str, Any]:
    """Run one polling task with the provider's defaults (``durable`` where it exists) and a fresh store."""
    from collections import Counter

    doubles = task_context_doubles()
    store = doubles.MemoryTaskStateStore(journal=[])
    ti = doubles.FakeTaskInstance(dag_id="bench", task_id="spark", run_id=run_id, max_tries=0)
    conf = {
        "spark.standin.startingSeconds": "0.05",
        "spark.standin.durationSeconds": str(spec["polls"] * spec["interval"]),
        "spark.standin.logLines": str(spec["lines"]),
    }
    operator = operator_class(
        task_id="spark", file="pi.py", conf=conf, polling_interval=spec["interval"], deferrable=False
    )
    first_request, first_line = len(recorder.requests), len(recorder.lines)
    cpu, started = time.thread_time(), time.perf_counter()
    batch_id = operator.execute({"ti": ti, "task_state_store": store})
    cpu, seconds = time.thread_time() - cpu, time.perf_counter() - started
    requests = recorder.requests[first_request:]
    lines = [number for batch, number in recorder.lines[first_line:] if batch == batch_id]
    return {
        "requests": len(requests),
        "by_kind": dict(Counter(kind for kind, _ in requests)),
        "bytes": sum(size for _, size in requests),
        "writes": store.writes,
        "cpu_seconds": cpu,
        "seconds": seconds,
        "lines_shown": len(lines),
        "lines_distinct": len(set(lines)),
        "lines_in_order": lines == sorted(lines),
    }


def probe_tasks(spec: dict[str, Any]) -> dict[str, Any]:
    """
    ``spec``: ``{"url", "tasks", "lines", "polls", "interval"}``: ``tasks`` polling tasks (after one
    warm-up) whose job logs ``lines`` lines over ``polls`` polling intervals, against the stand-in at ``url``.
    """
    import os

    recorder = Recorder()
    recorder.install()
    from airflow.providers.apache.livy.operators.livy import LivyOperator

    silence_logs(recorder)  # after the import: importing Airflow configures structlog
    os.environ["AIRFLOW_CONN_LIVY_DEFAULT"] = spec["url"].replace("http://", "livy://")
    tag = time.time_ns()  # run ids (and so batch names) of their own: the stand-in outlives the probe
    run_task(LivyOperator, {**spec, "polls": 2}, f"bench_{tag}_warmup", recorder)
    tasks = [run_task(LivyOperator, spec, f"bench_{tag}_{run:03d}", recorder) for run in range(spec["tasks"])]
    return {"tasks": tasks}


def probe_triggers(spec: dict[str, Any]) -> dict[str, Any]:
    """
    ``spec``: ``{"url", "batch_ids", "interval", "follow_log", "named"}``: one trigger per batch, all
    run at once in this process's event loop (as the triggerer runs them), each until its event.

    ``follow_log`` and ``named`` (a durable task's batch name) are passed where the provider has them.
    """
    import asyncio
    import inspect
    import os
    import resource

    recorder = Recorder()
    from airflow.providers.apache.livy.triggers.livy import LivyTrigger

    silence_logs(recorder)
    os.environ["AIRFLOW_CONN_LIVY_DEFAULT"] = spec["url"].replace("http://", "livy://")
    newer = set(inspect.signature(LivyTrigger).parameters)
    options = {"follow_log": spec["follow_log"]} if "follow_log" in newer else {}

    def trigger_for(batch_id: int, name: str | None) -> Any:
        named = {"batch_name": name} if name and spec["named"] and "batch_name" in newer else {}
        return LivyTrigger(
            batch_id=batch_id, spark_params={}, polling_interval=spec["interval"], **options, **named
        )

    async def first_event(trigger: Any) -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise RuntimeError("no event")

    async def run_all() -> list[dict[str, Any]]:
        triggers = [trigger_for(batch_id, name) for batch_id, name in spec["batches"]]
        return await asyncio.gather(*(first_event(trigger) for trigger in triggers))

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu, started = time.process_time(), time.perf_counter()
    events = asyncio.run(run_all())
    cpu, seconds = time.process_time() - cpu, time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "cpu_seconds": cpu,
        "seconds": seconds,
        "rss_growth_kib": rss_after - rss_before,
        "statuses": sorted({event["status"] for event in events}),
        "event_bytes": [len(json.dumps(event, default=str)) for event in events],
        "lines_logged": len(recorder.lines),
    }


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "import":
        emit(probe_import())
    elif mode == "tasks":
        emit(probe_tasks(json.loads(sys.argv[2])))
    elif mode == "triggers":
        emit(probe_triggers(json.loads(sys.argv[2])))
    else:
        sys.exit(f"usage: {sys.argv[0]} import | tasks SPEC | triggers SPEC")


if __name__ == "__main__":
    main()
