"""
Airflow 3.4 scenarios (``test_airflow34.py``): task loops, and a clear after the worker died.

:func:`run_loop_scenario` triggers a DAG whose loop body is a Livy task, optionally SIGKILLs the task
process of one iteration while it polls its running batch, and waits for the DAG run to end.
:func:`run_clear_after_dead_worker` SIGKILLs the task process while it polls, waits until Airflow
holds the try failed (``up_for_retry``, with a retry an hour away), clears the task the default way
(the task state store is discarded) and waits for the re-run. Both record what Livy's journal, the
task instances and their XComs show. A batch belongs to an iteration and map index by its Spark conf.
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
    polls_running,
)
from e2e.mapped_run import MAP_INDEX_CONF_KEY

ITERATION_CONF_KEY = "spark.airflow.loop_index"  # as dags/airflow34/livy_loops.py sets it


@dataclass
class Airflow34Run:
    """What happened in one run of a scenario of this module."""

    dag_id: str
    run_id: str
    task_id: str
    events: list[Event] = field(default_factory=list)
    began_at: float = 0.0
    killed_at: float | None = None
    killed: tuple[int, int] | None = None
    """``(iteration, map index)`` of the task instance whose task process was SIGKILLed."""
    cleared: list[dict[str, Any]] = field(default_factory=list)
    """The task instances the clear reported."""
    instances: list[dict[str, Any]] = field(default_factory=list)
    """The task instances of ``task_id`` at the end (``iteration``, ``map_index``, ``state``, ...)."""
    return_values: dict[tuple[int, int], Any] = field(default_factory=dict)
    """``(iteration, map index)`` -> the batch id the task instance returned."""
    dag_run_state: str | None = None
    batches: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    ended_at: float | None = None
    error: str | None = None

    def batches_of(self, iteration: int | None, map_index: int = -1) -> list[dict[str, Any]]:
        """The batches created for an iteration (``None``: outside loops) and map index, by Spark conf."""
        tag = (None if iteration is None else str(iteration), str(map_index))
        return [b for b in self.batches if _position_of(b) == tag]

    def requests_of(self, method: str) -> list[dict[str, Any]]:
        """The journal's requests of ``method`` about this run's batches (POSTs: those Livy accepted)."""
        return [
            e for e in self.requests if e["method"] == method and (method != "POST" or e["status"] == 201)
        ]

    def summary(self) -> str:
        tries = sorted((ti["iteration"], ti["map_index"], ti["try_number"]) for ti in self.instances)
        return (
            f"POST {len(self.requests_of('POST'))}, DELETE {len(self.requests_of('DELETE'))}, "
            f"batches {len(self.batches)}; dag run {self.dag_run_state}; task instances "
            f"(iteration, map index, tries) {tries}; "
            f"trigger -> end {(self.ended_at or 0) - self.began_at:.1f}s"
            + (f"; ERROR {self.error}" if self.error else "")
        )

    def describe(self) -> str:
        timeline = "\n".join(f"  {e.seconds:6.1f}s  {e.text}" for e in self.events)
        batches = "\n".join(
            f"  {b['id']} {b['name']} {b['state']} iteration {(b.get('conf') or {}).get(ITERATION_CONF_KEY)}"
            for b in self.batches
        )
        return (
            f"{self.dag_id} / {self.run_id}: {self.summary()}\nreturned {self.return_values}\n"
            f"timeline:\n{timeline}\nbatches:\n{batches}"
        )


def _position_of(batch: dict[str, Any]) -> tuple[str | None, str | None]:
    """The (loop iteration, map index) the batch's Spark conf names."""
    conf = batch.get("conf") or {}
    return conf.get(ITERATION_CONF_KEY), conf.get(MAP_INDEX_CONF_KEY)


class _Runner:
    """The shared steps: trigger, wait, kill a polling task process, collect."""

    def __init__(
        self,
        deployment: Deployment,
        run: Airflow34Run,
        timeout: float,
        on_event: Callable[[Event], None] | None,
        cancelled: Callable[[], bool],
    ) -> None:
        self.deployment, self.run = deployment, run
        self.deadline = time.monotonic() + timeout
        self.on_event, self.cancelled = on_event, cancelled

    def event(self, text: str, at: float | None = None) -> None:
        self.run.events.append(Event((at or time.time()) - self.run.began_at, text))
        if self.on_event is not None:
            self.on_event(self.run.events[-1])

    def wait(self, what: str, done: Callable[[], Any]) -> Any:
        while True:
            if self.cancelled():
                raise DeploymentError("cancelled")
            if time.monotonic() > self.deadline:
                raise DeploymentError(f"timed out waiting for {what}")
            self.deployment.check_components()
            try:
                result = done()
            except requests.RequestException:
                result = None  # a busy api-server: ask again
            if result:
                return result
            time.sleep(0.5)

    def instances(self) -> list[dict[str, Any]]:
        """The task instances of the run's task, each with its ``iteration`` (``None`` outside loops)."""
        path = f"/dags/{self.run.dag_id}/dagRuns/{self.run.run_id}/taskInstances?limit=100"
        found = []
        for ti in self.deployment.api("GET", path)["task_instances"]:
            if ti["task_id"] == self.run.task_id:
                ti["iteration"] = (ti.get("loop_iteration") or {}).get("iteration")
                found.append(ti)
        return found

    def kill_when_polling(self, iteration: int | None, map_index: int = -1) -> None:
        """SIGKILL the task process of try 1 of that task instance once it polls its running batch."""

        def polling() -> dict[str, Any] | None:
            for ti in self.instances():
                if (ti["iteration"], ti["map_index"], ti["state"], ti["try_number"]) != (
                    iteration,
                    map_index,
                    "running",
                    1,
                ):
                    continue
                batches = self._batches_of(iteration, map_index)
                journal = self.deployment.livy_requests(batches) if batches else []
                return ti if polls_running(batches, journal) else None
            return None

        ti = self.wait(f"iteration {iteration} to poll its running batch", polling)
        task_pid, supervisor_pid = self.deployment.worker_processes(ti["id"])
        self.run.killed_at = self.deployment.sigkill(task_pid)
        self.run.killed = (iteration if iteration is not None else -1, map_index)
        self.event(
            f"SIGKILL task process {task_pid} of iteration {iteration} (supervisor {supervisor_pid} lives)"
        )

    def _batches_of(self, iteration: int | None, map_index: int) -> list[dict[str, Any]]:
        self.run.batches = self.deployment.livy_batches(self.run.run_id)
        return self.run.batches_of(iteration, map_index)

    def dag_run_ended(self) -> str | None:
        state = self.deployment.dag_run(self.run.dag_id, self.run.run_id)["state"]
        return state if state in ("success", "failed") else None

    def collect(self) -> None:
        run, deployment = self.run, self.deployment
        run.ended_at = time.time()
        run.batches = deployment.livy_batches(run.run_id)
        run.requests = deployment.livy_requests(run.batches) if run.batches else []
        run.dag_run_state = deployment.dag_run(run.dag_id, run.run_id)["state"]
        run.instances = self.instances()
        for ti in run.instances:
            if ti["state"] != "success":
                continue
            query = f"map_index={ti['map_index']}"
            if ti.get("region_id") is not None:
                query += f"&region_id={ti['region_id']}&region_index={ti['region_index']}"
            ti_path = f"/dags/{run.dag_id}/dagRuns/{run.run_id}/taskInstances/{run.task_id}"
            path = f"{ti_path}/xcomEntries/return_value"
            iteration = ti["iteration"] if ti["iteration"] is not None else -1
            run.return_values[iteration, ti["map_index"]] = deployment.api("GET", f"{path}?{query}")["value"]


def _scenario(
    deployment: Deployment,
    run: Airflow34Run,
    conf: dict[str, Any] | None,
    timeout: float,
    on_event: Callable[[Event], None] | None,
    cancelled: Callable[[], bool],
    act: Callable[[_Runner], None],
) -> Airflow34Run:
    """Trigger the run, ``act`` on it, wait for the DAG run to end; collect what happened, always."""
    runner = _Runner(deployment, run, timeout, on_event, cancelled)
    try:
        deployment.trigger(run.dag_id, run.run_id, conf)
        runner.event(f"triggered {run.dag_id} run {run.run_id}")
        act(runner)
        runner.event(f"DAG run ended {runner.wait('the DAG run to end', runner.dag_run_ended)}")
    except DeploymentError as error:
        run.error = str(error)
        runner.event(f"ERROR: {error}")
    finally:
        runner.collect()
    return run


def run_loop_scenario(
    deployment: Deployment,
    dag_id: str,
    run_id: str,
    *,
    task_id: str,
    conf: dict[str, Any] | None = None,
    kill_iteration: int | None = None,
    timeout: float = 240,
    on_event: Callable[[Event], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Airflow34Run:
    """Trigger ``dag_id``; SIGKILL the task process of ``kill_iteration`` while it polls; wait for the end."""

    def act(runner: _Runner) -> None:
        if kill_iteration is not None:
            runner.kill_when_polling(kill_iteration)

    run = Airflow34Run(dag_id=dag_id, run_id=run_id, task_id=task_id, began_at=time.time())
    return _scenario(deployment, run, conf, timeout, on_event, cancelled, act)


def run_clear_after_dead_worker(
    deployment: Deployment,
    dag_id: str,
    run_id: str,
    *,
    task_id: str = "spark_pi",
    conf: dict[str, Any] | None = None,
    timeout: float = 240,
    on_event: Callable[[Event], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Airflow34Run:
    """
    Trigger ``dag_id``; SIGKILL the task process while it polls; once the try is failed, clear the task
    (the default clear: the task state store is discarded); wait for the re-run to end.
    """

    def failed() -> bool:
        ti = deployment.task_instance(dag_id, run_id, task_id)
        return ti is not None and ti["state"] in ("up_for_retry", "failed")

    def rerun_ended() -> str | None:
        ti = deployment.task_instance(dag_id, run_id, task_id)
        ended = ti is not None and ti["try_number"] > 1 and ti["state"] in TERMINAL_TI_STATES
        return ti["state"] if ended else None

    def act(runner: _Runner) -> None:
        runner.kill_when_polling(None)
        runner.wait("try 1 to be held failed", failed)
        runner.event("try 1 is held failed; its batch runs on, owned by nobody once the record is discarded")
        run.cleared = deployment.clear_task(dag_id, run_id, task_id)
        store = deployment.state_store_entry(dag_id, run_id, task_id, "livy_batch_record")
        runner.event(f"cleared {task_id} (default: task state discarded; store now {store})")
        runner.event(f"re-run ended {runner.wait('the re-run to end', rerun_ended)}")

    run = Airflow34Run(dag_id=dag_id, run_id=run_id, task_id=task_id, began_at=time.time())
    return _scenario(deployment, run, conf, timeout, on_event, cancelled, act)
