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

    python worker.py --state DIR --try N [--max-tries M] [--kill-at POINT] [--conf JSON]
    python worker.py --serve     (fork server: one try per stdin line, see ``serve_forks``)

Prints ``RESULT <json>`` (return value and XComs) on success.
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


class FileTaskInstance:
    """The task instance's identity and XComs (cleared at the start of every try, as Airflow does)."""

    def __init__(self, path: Path, try_number: int, max_tries: int, kill_on_push: bool) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = "faults", "spark_job", "manual__1", -1
        self.try_number = try_number
        self.max_tries = max_tries
        self.stats_tags: dict[str, str] = {}
        self.path = path
        self.kill_on_push = kill_on_push
        path.write_text("{}")

    def xcom_push(self, key: str, value: Any) -> None:
        if self.kill_on_push:
            die()
        self.path.write_text(json.dumps({**json.loads(self.path.read_text()), key: value}))


def arm(operator: Any, point: str | None) -> None:
    """Wrap the hook's public methods (4.6.4's seams) so that this process dies at ``point``."""
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

    def get_batch_state(batch_id: Any, retry_args: Any = None) -> Any:
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
    parser.add_argument("--kill-at", choices=KILL_POINTS)
    parser.add_argument("--conf", default="{}")
    parser.add_argument("--livy-port", type=int, required=True)
    return parser.parse_args(argv)


def run_try(options: argparse.Namespace) -> None:
    """Run one try of the task in this process; print ``RESULT <json>`` if it returns."""
    from airflow.providers.apache.livy.operators.livy import LivyOperator

    os.environ["AIRFLOW_CONN_LIVY_DEFAULT"] = f"livy://127.0.0.1:{options.livy_port}"
    store = FileTaskStateStore(options.state / "task_state_store.json")
    ti = FileTaskInstance(
        options.state / "xcom.json",
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
        retries=RETRIES,
    )
    arm(operator, options.kill_at)
    result = operator.execute({"ti": ti, "task_state_store": store})
    if options.kill_at == "after_delivery":
        die()
    xcoms = json.loads(ti.path.read_text())
    print("RESULT " + json.dumps({"return_value": result, "xcoms": xcoms}), flush=True)


def serve_forks() -> None:
    """
    Import Airflow once, then fork one child per try read from stdin (one JSON argv list a line).

    Like Airflow's supervisor forking the task process: each try is a real process that can be
    SIGKILLed, without paying Airflow's import time again. Replies ``{"exitcode", "output"}``.
    """
    import airflow.providers.apache.livy.operators.livy  # noqa: F401  (the import the children share)

    for line in sys.stdin:
        options = parse_try(json.loads(line))
        output = options.state / f"try-{options.try_number}.log"
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            with output.open("w") as sink:
                os.dup2(sink.fileno(), 1)
                os.dup2(sink.fileno(), 2)
            code = 0
            try:
                run_try(options)
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        reply = {"exitcode": os.waitstatus_to_exitcode(status), "output": output.read_text()}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve_forks()
    else:
        run_try(parse_try(sys.argv[1:]))
