# Licensed to the Apache Software Foundation (ASF) under one
# or more contributor license agreements.  See the NOTICE file
# distributed with this work for additional information
# regarding copyright ownership.  The ASF licenses this file
# to you under the Apache License, Version 2.0 (the
# "License"); you may not use this file except in compliance
# with the License.  You may obtain a copy of the License at
#
#   http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing,
# software distributed under the License is distributed on an
# "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY
# KIND, either express or implied.  See the License for the
# specific language governing permissions and limitations
# under the License.
"""
One try of a ``LivyOperator`` task, run as its own process so a test can SIGKILL it for real.

The task state store and the XComs live in JSON files that outlive the process, as the metadata
database outlives a worker. ``--kill-at POINT`` makes the process SIGKILL itself at that point;
the operator's code is not changed, only the hook and task-instance calls around it are wrapped.

As Airflow's task runner does, the process calls ``operator.on_kill()`` from its SIGTERM handler
(and carries on), and calls it again after an ``AirflowTaskTimeout``: ``--execution-timeout S``
runs ``execute`` inside Airflow's own SIGALRM timeout, as the task runner does, and
``--timeout-after-polls N`` raises one from the N-th ``get_batch_state``, inside the operator's
wait (deterministic). The task instance's
state as the API server holds it (``get_task_states``) is read from ``ti_state.json`` in the state
directory, which the test writes (absent: ``running``); every such query is appended to
``ti_state_queries.jsonl``.

    python worker.py --state DIR --try N [--max-tries M] [--retries R] [--kill-at POINT]
                     [--execution-timeout S | --timeout-after-polls N] [--conf JSON] --livy-port PORT
    python worker.py --serve     (fork server, see ``serve_forks``)

Prints ``RESULT <json>`` (return value and XComs) on success, ``EXCEPTION <json>`` (the type that
ended the try) on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

RETRIES = 1
KILL_POINTS = (
    "before_post",
    "after_post",
    "after_lost_reply",
    "mid_poll",
    "after_success_before_log_dump",
    "during_log_dump",
    "during_xcom_push",
    "after_delivery",
)


def die() -> None:
    """SIGKILL this process: no cleanup, no finally blocks, exactly like an OOM kill."""
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class FileTaskStateStore:
    """``task_state_store`` persisted to a JSON file, written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def _write(self, values: dict[str, Any]) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(values))
        os.replace(temporary, self.path)

    def get(self, key: str, default: Any = None) -> Any:
        return self._read().get(key, default)

    def set(self, key: str, value: Any, retention: Any = None) -> None:
        if value is None:
            raise ValueError("None values are refused")
        self._write({**self._read(), key: value})

    def delete(self, key: str) -> None:
        values = self._read()
        values.pop(key, None)
        self._write(values)

    def clear(self) -> None:
        self._write({})


TI_STATE_FILE = "ti_state.json"
"""
This task instance as the API server holds it: ``{"state": "failed"}`` (``null``: no state, i.e.
cleared); ``{}``: no such task instance (its dag run was deleted); ``{"error": "..."}``: the API
server cannot be asked. No file: ``{"state": "running"}``.
"""
TI_STATE_QUERIES_FILE = "ti_state_queries.jsonl"


class FileTaskInstance:
    """
    The task instance's identity, XComs (cleared at the start of every try, as Airflow does) and,
    like Airflow 3's ``RuntimeTaskInstance``, ``get_task_states`` answered from ``ti_state.json``.
    """

    def __init__(self, state_dir: Path, try_number: int, max_tries: int, kill_on_push: bool) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = "faults", "spark_job", "manual__1", -1
        self.try_number = try_number
        self.max_tries = max_tries
        self.stats_tags: dict[str, str] = {}
        self.path = state_dir / "xcom.json"
        self.state_dir = state_dir
        self.kill_on_push = kill_on_push
        self.path.write_text("{}")

    def xcom_push(self, key: str, value: Any) -> None:
        if self.kill_on_push and key == "app_id":  # the result's push, not an extra link's
            die()
        self.path.write_text(json.dumps({**json.loads(self.path.read_text()), key: value}))

    def get_task_states(
        self,
        dag_id: str,
        map_index: int | None = None,
        task_ids: list[str] | None = None,
        task_group_id: str | None = None,
        logical_dates: list[Any] | None = None,
        run_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        """``{run_id: {task_id: state}}``, as ``RuntimeTaskInstance.get_task_states`` returns it."""
        criteria = {"dag_id": dag_id, "map_index": map_index, "task_ids": task_ids, "run_ids": run_ids}
        with (self.state_dir / TI_STATE_QUERIES_FILE).open("a") as queries:
            queries.write(json.dumps({"try": self.try_number, **criteria}) + "\n")
        state_file = self.state_dir / TI_STATE_FILE
        held = json.loads(state_file.read_text()) if state_file.exists() else {"state": "running"}
        if "error" in held:
            raise RuntimeError(held["error"])
        matches = (
            dag_id == self.dag_id
            and map_index in (None, self.map_index)
            and task_group_id is None
            and (task_ids is None or self.task_id in task_ids)
            and (run_ids is None or self.run_id in run_ids)
        )
        if not matches or "state" not in held:
            return {}
        return {self.run_id: {self.task_id: held["state"]}}


def arm(operator: Any, point: str | None, timeout_after_polls: int | None = None) -> None:
    """
    Wrap the hook's public methods (4.6.4's seams) so that this process dies at ``point``, or
    times out (``AirflowTaskTimeout``) on the ``timeout_after_polls``-th state poll.
    """
    from airflow.providers.common.compat.sdk import AirflowTaskTimeout

    hook = operator.hook
    post, get_state, by_name = hook.post_batch, hook.get_batch_state, hook.get_batch_by_name
    dump, page = hook.dump_batch_logs, hook.get_batch_logs

    def post_batch(*args: Any, **kwargs: Any) -> int:
        if point == "before_post":
            die()
        batch_id = post(*args, **kwargs)
        if point == "after_post":
            die()
        return batch_id

    def get_batch_by_name(name: str) -> dict[str, Any]:
        if point == "after_lost_reply":
            die()
        return by_name(name)

    polls = 0

    def get_batch_state(batch_id: Any, retry_args: Any = None) -> Any:
        nonlocal polls
        polls += 1
        if polls == timeout_after_polls:
            raise AirflowTaskTimeout(f"timed out (the worker's --timeout-after-polls {polls})")
        state = get_state(batch_id, retry_args=retry_args)
        if point == "mid_poll" and state.value == "running":
            die()
        return state

    def dump_batch_logs(batch_id: Any) -> None:
        if point == "after_success_before_log_dump":
            die()
        dump(batch_id)

    def get_batch_logs(batch_id: Any, start: int, size: int) -> dict[str, Any]:
        result = page(batch_id, start, size)
        if point == "during_log_dump":
            die()
        return result

    hook.post_batch, hook.get_batch_state, hook.get_batch_by_name = (
        post_batch,
        get_batch_state,
        get_batch_by_name,
    )
    hook.dump_batch_logs, hook.get_batch_logs = dump_batch_logs, get_batch_logs


def parse_try(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--try", dest="try_number", type=int, required=True)
    parser.add_argument(
        "--max-tries",
        type=int,
        default=RETRIES,
        help="as Airflow holds it: retries, + last try after a clear",
    )
    parser.add_argument("--retries", type=int, default=RETRIES, help="the operator's retries")
    parser.add_argument("--kill-at", choices=KILL_POINTS)
    timeouts = parser.add_mutually_exclusive_group()
    timeouts.add_argument(
        "--execution-timeout",
        type=float,
        help="seconds: execute() under Airflow's SIGALRM timeout, then on_kill(), as the task runner does",
    )
    timeouts.add_argument(
        "--timeout-after-polls",
        type=int,
        help="raise AirflowTaskTimeout from this state poll, then on_kill() as the task runner does",
    )
    parser.add_argument("--conf", default="{}")
    parser.add_argument("--livy-port", type=int, required=True)
    return parser.parse_args(argv)


def run_try(options: argparse.Namespace) -> None:
    """Run one try of the task in this process; print ``RESULT <json>`` if it returns."""
    from datetime import timedelta

    from airflow.providers.common.compat.sdk import AirflowTaskTimeout
    from airflow.sdk.execution_time.timeout import timeout

    from airflow.providers.apache.livy.operators.livy import LivyOperator

    os.environ["AIRFLOW_CONN_LIVY_DEFAULT"] = f"livy://127.0.0.1:{options.livy_port}"
    store = FileTaskStateStore(options.state / "task_state_store.json")
    ti = FileTaskInstance(
        options.state,
        options.try_number,
        options.max_tries,
        options.kill_at == "during_xcom_push",
    )
    operator = LivyOperator(
        task_id="spark_job",
        file="local:///opt/spark/examples/jars/spark-examples.jar",
        class_name="org.apache.spark.examples.SparkPi",
        conf=json.loads(options.conf),
        polling_interval=0.2,
        retries=options.retries,
        execution_timeout=timedelta(seconds=options.execution_timeout or 3600)
        if options.execution_timeout or options.timeout_after_polls
        else None,
    )
    arm(operator, options.kill_at, options.timeout_after_polls)
    task_process = os.getpid()

    def on_term(signum: int, frame: Any) -> None:
        # As Airflow's task runner (``_execute_task``): on_kill(), then the task carries on.
        if os.getpid() == task_process:
            operator.on_kill()

    signal.signal(signal.SIGTERM, on_term)
    context = {"ti": ti, "task_state_store": store}
    try:  # as the task runner's _run_execute_callable
        if options.execution_timeout:
            with timeout(options.execution_timeout):
                result = operator.execute(context)
        else:
            result = operator.execute(context)
    except AirflowTaskTimeout:
        operator.on_kill()
        raise
    if options.kill_at == "after_delivery":
        die()
    xcoms = json.loads(ti.path.read_text())
    print("RESULT " + json.dumps({"return_value": result, "xcoms": xcoms}), flush=True)


def run_reporting(options: argparse.Namespace) -> int:
    """Run one try; on an exception print ``EXCEPTION {"type", "module"}`` and the traceback. Exit code."""
    try:
        run_try(options)
    except BaseException as error:
        import traceback

        ended = {"type": type(error).__name__, "module": type(error).__module__}
        print("EXCEPTION " + json.dumps(ended), flush=True)
        traceback.print_exc()
        return 1
    return 0


def serve_forks() -> None:
    """
    Import Airflow once, then fork one child per try, as Airflow's supervisor forks the task process.

    Each try is a real process that can be signalled (SIGKILL, SIGTERM, SIGSTOP), without paying
    Airflow's import time again; several can run at once. One JSON request a stdin line, one JSON
    reply a stdout line:

    - ``{"start": [argv...]}`` forks a try and replies ``{"pid"}`` at once;
    - ``{"wait": pid}`` waits for that try to end and replies ``{"exitcode", "output"}``.
    """
    import importlib

    # The imports the children share; the operator imports the hook (HTTP clients) on first use.
    for module in ("operators.livy", "hooks.livy"):
        importlib.import_module(f"airflow.providers.apache.livy.{module}")

    outputs: dict[int, Path] = {}
    for line in sys.stdin:
        request = json.loads(line)
        if "wait" in request:
            pid = request["wait"]
            _, status = os.waitpid(pid, 0)
            output = outputs.pop(pid)
            reply = {"exitcode": os.waitstatus_to_exitcode(status), "output": output.read_text()}
            print(json.dumps(reply), flush=True)
            continue
        options = parse_try(request["start"])
        output = options.state / f"try-{options.try_number}.log"
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            with output.open("w") as sink:
                os.dup2(sink.fileno(), 1)
                os.dup2(sink.fileno(), 2)
            code = run_reporting(options)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        outputs[pid] = output
        print(json.dumps({"pid": pid}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve_forks()
    else:
        sys.exit(run_reporting(parse_try(sys.argv[1:])))
