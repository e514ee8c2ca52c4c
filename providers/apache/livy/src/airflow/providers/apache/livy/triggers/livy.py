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
"""Trigger that waits, in the triggerer, for a Livy batch to finish."""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow.providers.apache.livy.hooks.livy import BatchOutcome, LivyAsyncHook, batch_outcome

REDACTED = "***"


def redact_spark_params(spark_params: dict[str, Any]) -> dict[str, Any]:
    """Copy ``spark_params`` with every Spark conf value replaced by ``***`` (they may be credentials)."""
    conf = spark_params.get("conf")
    if not isinstance(conf, dict):
        return dict(spark_params)
    return {**spark_params, "conf": dict.fromkeys(conf, REDACTED)}


def class_path(cls: type | str | None) -> str | None:
    """Return the importable dotted path of ``cls`` (a string is returned as it is)."""
    if cls is None or isinstance(cls, str):
        return cls
    return f"{cls.__module__}.{cls.__qualname__}"


def import_class(path: str | type | None) -> Any:
    """Import a class from its dotted path (a class is returned as it is)."""
    if path is None or not isinstance(path, str):
        return path
    module_name, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


class LivyTrigger(BaseTrigger):
    """
    Poll a Livy batch from the triggerer until it reaches a terminal state.

    The event is ``{"status": "success" | "error" | "timeout", "batch_id", "response", "log_lines"}``
    plus ``"state"`` (the terminal Livy state) when the batch finished.

    :param batch_id: the batch to watch.
    :param spark_params: the operator's Spark parameters; serialized with conf values redacted.
    :param livy_conn_id: reference to a pre-defined Livy connection.
    :param polling_interval: seconds between polls; ``0`` reports success at once without polling.
    :param extra_options: options passed to ``aiohttp`` for each request.
    :param extra_headers: headers sent with every request to Livy.
    :param livy_hook_async: a ready hook to use instead of building one (not serialized).
    :param execution_timeout: stop waiting (``"timeout"`` event) after this long.
    :param endpoint_prefix: path prefix in front of ``/batches``.
    :param auth_type: the ``aiohttp`` auth class or its dotted path (default ``aiohttp.BasicAuth``).
    :param batch_name: the name the batch must carry; a batch with another name under the same id
        (Livy restarted and reused it) ends the wait with an error instead of being watched.
    """

    def __init__(
        self,
        batch_id: int | str,
        spark_params: dict[Any, Any],
        livy_conn_id: str = "livy_default",
        polling_interval: int = 0,
        extra_options: dict[str, Any] | None = None,
        extra_headers: dict[str, Any] | None = None,
        livy_hook_async: LivyAsyncHook | None = None,
        execution_timeout: timedelta | None = None,
        endpoint_prefix: str | None = None,
        auth_type: type | str | None = None,
        batch_name: str | None = None,
    ) -> None:
        super().__init__()
        self._batch_id = batch_id
        self.spark_params = redact_spark_params(spark_params or {})
        self._livy_conn_id = livy_conn_id
        self._polling_interval = polling_interval
        self._extra_options = extra_options
        self._extra_headers = extra_headers
        self._livy_hook_async = livy_hook_async
        self._execution_timeout = execution_timeout
        self._endpoint_prefix = endpoint_prefix
        self._auth_type = class_path(auth_type)
        self._batch_name = batch_name

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Serialize the trigger's arguments (Spark conf values redacted, no hook)."""
        return (
            "airflow.providers.apache.livy.triggers.livy.LivyTrigger",
            {
                "batch_id": self._batch_id,
                "spark_params": self.spark_params,
                "livy_conn_id": self._livy_conn_id,
                "polling_interval": self._polling_interval,
                "extra_options": self._extra_options,
                "extra_headers": self._extra_headers,
                "execution_timeout": self._execution_timeout,
                "endpoint_prefix": self._endpoint_prefix,
                "auth_type": self._auth_type,
                "batch_name": self._batch_name,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the batch finishes (or times out) and yield one event."""
        try:
            if self._polling_interval:
                event = await self.poll_for_termination(self._batch_id)
            else:
                event = self._event("success", f"Batch {self._batch_id} succeeded")
        except Exception as error:
            event = self._event("error", f"Waiting for Livy batch {self._batch_id} failed: {error}")
        yield TriggerEvent(event)

    def _event(self, status: str, response: str, **more: Any) -> dict[str, Any]:
        return {"status": status, "batch_id": self._batch_id, "response": response, "log_lines": None, **more}

    async def poll_for_termination(self, batch_id: int | str) -> dict[str, Any]:
        """Poll the batch until it finishes, the wait times out or Livy cannot answer; return the event."""
        hook = self._get_async_hook()
        deadline = (
            time.monotonic() + self._execution_timeout.total_seconds() if self._execution_timeout else None
        )
        while True:
            state, problem = await self._current_state(hook, batch_id)
            if problem is not None:
                return self._event("error", problem)
            outcome = batch_outcome(state)
            if outcome is not BatchOutcome.ACTIVE:
                log_lines = await hook.dump_batch_logs(batch_id)
                lines = log_lines if isinstance(log_lines, list) else None
                if outcome is BatchOutcome.SUCCEEDED:
                    return self._event("success", f"Batch {batch_id} succeeded", log_lines=lines, state=state)
                return self._event(
                    "error", f"Batch {batch_id} did not succeed (state {state})", log_lines=lines, state=state
                )
            if deadline is not None and time.monotonic() >= deadline:
                return self._event("timeout", f"Batch {batch_id} timed out")
            self.log.info("Batch %s is in state %s", batch_id, state)
            await asyncio.sleep(self._polling_interval)

    async def _current_state(self, hook: LivyAsyncHook, batch_id: int | str) -> tuple[str, str | None]:
        """Return ``(state, None)``, or ``("", problem)`` if the state cannot be trusted."""
        if self._batch_name is None:
            result = await hook.get_batch_state(batch_id)
            if result["status"] != "success":
                return "", str(result["response"])
            return result["batch_state"].value, None
        result = await hook.get_batch(batch_id)
        batch = result["response"]
        if (
            result["status"] != "success"
            or not isinstance(batch, dict)
            or not isinstance(batch.get("state"), str)
        ):
            return "", f"Could not read Livy batch {batch_id}: {batch}"
        if "name" in batch and batch["name"] != self._batch_name:
            return "", (
                f"Livy batch {batch_id} is now named {batch['name']!r}, not {self._batch_name!r}: "
                "Livy restarted and reused the id; the original batch is gone"
            )
        return batch["state"], None

    def _get_async_hook(self) -> LivyAsyncHook:
        if self._livy_hook_async is None or not isinstance(self._livy_hook_async, LivyAsyncHook):
            self._livy_hook_async = LivyAsyncHook(
                livy_conn_id=self._livy_conn_id,
                extra_headers=self._extra_headers,
                extra_options=self._extra_options,
                endpoint_prefix=self._endpoint_prefix,
                auth_type=import_class(self._auth_type),
            )
        return self._livy_hook_async
