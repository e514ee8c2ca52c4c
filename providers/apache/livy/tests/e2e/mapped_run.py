"""
The mapped-task scenario of the distributed deployment: many mapped task instances of one Livy task
spread over two Celery workers, one of which dies while every batch runs.

:func:`run_mapped_scenario` triggers the run, waits until every mapped task instance polls its running
batch and both workers run some of them, SIGKILLs every process of one worker, and waits until every
task instance ended; :class:`MappedRun` holds what Livy and Airflow saw. A batch belongs to a mapped
task instance by its Spark conf (``spark.airflow.map_index``), which the DAG templates per instance.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from e2e.airflow_deployment import (
    TERMINAL_TI_STATES,
    Deployment,
    DeploymentError,
    Event,
    Try,
    polls_running,
)

MAP_INDEX_CONF_KEY = "spark.airflow.map_index"


@dataclass
class MappedRun:
    """What happened in one run of a mapped Livy task."""

    dag_id: str
    run_id: str
    task_id: str
    count: int
    events: list[Event] = field(default_factory=list)
    began_at: float = 0.0
    killed_worker: str | None = None
    """The address of the worker the harness killed."""
    killed_at: float | None = None
    worker_gone_at: float | None = None
    placement: dict[int, str] = field(default_factory=dict)
    """Map index -> the address of the worker that ran try 1, when the harness acted."""
    states: dict[int, str | None] = field(default_factory=dict)
    tries: dict[int, list[Try]] = field(default_factory=dict)
    return_values: dict[int, Any] = field(default_factory=dict)
    app_ids: dict[int, Any] = field(default_factory=dict)
    batches: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    ended_at: float | None = None
    error: str | None = None

    def batch_of(self, map_index: int) -> list[dict[str, Any]]:
        """The batches created for ``map_index`` (by their Spark conf)."""
        return _of(self.batches, map_index)

    def moved(self) -> list[int]:
        """The map indexes whose try 1 ran on the killed worker."""
        return sorted(i for i, address in self.placement.items() if address == self.killed_worker)

    def summary(self) -> str:
        posts = [e for e in self.requests if e["method"] == "POST" and e["status"] == 201]
        deletes = [e for e in self.requests if e["method"] == "DELETE"]
        retried = [i for i, tries in self.tries.items() if len(tries) > 1]
        retry_starts = [t.start for i in retried for t in self.tries[i][1:] if t.start is not None]
        killed_at = self.killed_at or 0.0
        kill_to_retries = (
            f"kill -> first retry {min(retry_starts) - killed_at:.1f}s, "
            f"last {max(retry_starts) - killed_at:.1f}s"
            if retry_starts
            else "no retry"
        )
        states = sorted({str(s) for s in self.states.values()})
        return (
            f"{self.count} mapped task instances, {len(self.moved())} on the killed worker; "
            f"POST {len(posts)}, DELETE {len(deletes)}, batches {len(self.batches)}; "
            f"retried {len(retried)}; final states {states}; {kill_to_retries}; "
            f"trigger -> end {(self.ended_at or 0) - self.began_at:.1f}s"
            + (f"; ERROR {self.error}" if self.error else "")
        )

    def describe(self) -> str:
        timeline = "\n".join(f"  {e.seconds:6.1f}s  {e.text}" for e in self.events)
        tis = "\n".join(
            f"  [{i}] {self.states.get(i)} on {self.placement.get(i)}; tries "
            f"{[(t.number, t.state, t.hostname) for t in self.tries.get(i, [])]}; returned "
            f"{self.return_values.get(i)!r}; batches {[(b['id'], b['state']) for b in self.batch_of(i)]}"
            for i in range(self.count)
        )
        return (
            f"{self.dag_id} / {self.run_id}: {self.summary()}\ntimeline:\n{timeline}\ntask instances:\n{tis}"
        )


def run_mapped_scenario(
    deployment: Deployment,
    dag_id: str,
    run_id: str,
    *,
    count: int,
    victim: str,
    conf: dict[str, Any] | None = None,
    task_id: str = "spark_pi",
    timeout: float = 300,
    on_event: Callable[[Event], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> MappedRun:
    """
    Trigger ``dag_id`` (``count`` mapped instances of ``task_id``); once every instance polls its running
    batch and both the ``victim`` worker and another run some, SIGKILL every process of ``victim``;
    wait until every instance ended.
    """
    run = MappedRun(dag_id=dag_id, run_id=run_id, task_id=task_id, count=count)
    run.began_at = time.time()

    def event(text: str, at: float | None = None) -> None:
        run.events.append(Event((at or time.time()) - run.began_at, text))
        if on_event is not None:
            on_event(run.events[-1])

    deployment.trigger(dag_id, run_id, conf)
    event(f"triggered {dag_id} run {run_id}")
    deadline = time.monotonic() + timeout
    try:
        _wait(deployment, run, deadline, cancelled, lambda: _all_polling(deployment, run))
        run.placement = {ti["map_index"]: ti["hostname"] for ti in _instances(deployment, run)}
        worker = deployment.workers[victim]
        on_victim = [i for i, address in run.placement.items() if address == worker.address]
        if not on_victim or len(on_victim) == count:
            raise DeploymentError(
                f"try 1 of {len(on_victim)} of {count} instances runs on {victim}: {run.placement}"
            )
        event(f"every batch is polled; instances {on_victim} run on {victim} ({worker.address})")
        tree, run.killed_at, run.worker_gone_at = deployment.stop_worker(worker, "sigkill")
        run.killed_worker = worker.address
        event(f"SIGKILL every process of worker {victim}: {tree}", at=run.killed_at)
        _wait(deployment, run, deadline, cancelled, lambda: _all_ended(deployment, run))
        event(f"every instance ended: {sorted(set(run.states.values()), key=str)}")
    except DeploymentError as error:
        run.error = str(error)
        event(f"ERROR: {error}")
    finally:
        run.ended_at = time.time()
        _collect(deployment, run)
    return run


def _wait(
    deployment: Deployment,
    run: MappedRun,
    deadline: float,
    cancelled: Callable[[], bool],
    done: Callable[[], bool],
) -> None:
    while True:
        if cancelled():
            raise DeploymentError("cancelled")
        if time.monotonic() > deadline:
            raise DeploymentError("the run did not finish in time")
        deployment.check_components()
        try:
            if done():
                return
        except requests.RequestException:
            pass  # a busy api-server: ask again
        time.sleep(0.5)


def _instances(deployment: Deployment, run: MappedRun) -> list[dict[str, Any]]:
    return deployment.mapped_task_instances(run.dag_id, run.run_id, run.task_id)


def _all_polling(deployment: Deployment, run: MappedRun) -> bool:
    """Every instance runs try 1, and the journal shows each one's batch running and polled by id."""
    instances = _instances(deployment, run)
    if len(instances) != run.count or any(ti["state"] != "running" for ti in instances):
        return False
    batches = deployment.livy_batches(run.run_id)
    journal = deployment.livy_requests(batches)
    return all(polls_running(_of(batches, i), journal) for i in range(run.count))


def _of(batches: list[dict[str, Any]], map_index: int) -> list[dict[str, Any]]:
    """The batches created for ``map_index`` (by their Spark conf)."""
    return [b for b in batches if (b.get("conf") or {}).get(MAP_INDEX_CONF_KEY) == str(map_index)]


def _all_ended(deployment: Deployment, run: MappedRun) -> bool:
    instances = _instances(deployment, run)
    run.states = {ti["map_index"]: ti["state"] for ti in instances}
    return len(instances) == run.count and all(state in TERMINAL_TI_STATES for state in run.states.values())


def _collect(deployment: Deployment, run: MappedRun) -> None:
    run.batches = deployment.livy_batches(run.run_id)
    run.requests = deployment.livy_requests(run.batches) if run.batches else []
    for ti in _instances(deployment, run):
        index = ti["map_index"]
        run.states[index] = ti["state"]
        run.tries[index] = deployment.task_tries(run.dag_id, run.run_id, run.task_id, index)
        if ti["state"] == "success":
            run.return_values[index] = deployment.xcom(run.dag_id, run.run_id, run.task_id, map_index=index)
            run.app_ids[index] = deployment.xcom(
                run.dag_id, run.run_id, run.task_id, "app_id", map_index=index
            )
