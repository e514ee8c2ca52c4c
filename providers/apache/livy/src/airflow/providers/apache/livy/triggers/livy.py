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

from airflow.providers.apache.livy.hooks.livy import LivyAsyncHook
from airflow.providers.apache.livy.utils.batch_record import BatchRecord, Identity, IdentityChecks, app_id_of
from airflow.providers.apache.livy.utils.redaction import redact_spark_params
from airflow.providers.apache.livy.utils.states import BatchOutcome, batch_outcome


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


class _WaitFailed(Exception):
    """Livy's answer cannot be trusted: the wait ends with an error event carrying this message."""


class LivyTrigger(BaseTrigger):
    """
    Poll a Livy batch from the triggerer until it reaches a terminal state.

    The event is ``{"status": "success" | "error" | "timeout", "batch_id", "response", "log_lines"}``
    plus ``"state"`` (the terminal Livy state) when the batch finished. Polls read
    ``GET /batches/{id}/state``; with ``batch_name``, the whole batch is read on the schedule of
    :class:`~airflow.providers.apache.livy.utils.batch_record.IdentityChecks` (as the worker does),
    and a batch that is no longer ours ends the wait with an error.

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
    :param batch_name: the name the batch must carry (durable runs).
    :param app_id: the Spark application id the batch must carry, if known.
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
        app_id: str | None = None,
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
        self._app_id = app_id

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
                "app_id": self._app_id,
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
            event = self._event("error", f"Waiting for Livy batch {self._batch_id} failed: {error!r}")
        yield TriggerEvent(event)

    def _event(self, status: str, response: str, **more: Any) -> dict[str, Any]:
        return {"status": status, "batch_id": self._batch_id, "response": response, "log_lines": None, **more}

    async def poll_for_termination(self, batch_id: int | str) -> dict[str, Any]:
        """
        Poll the batch until it finishes, the wait times out or Livy's answer cannot be used.

        Returns the event. Transport errors (``aiohttp.ClientConnectionError``, timeouts) propagate.
        """
        hook = self._get_async_hook()
        deadline = (
            None
            if self._execution_timeout is None
            else time.monotonic() + self._execution_timeout.total_seconds()
        )
        checks = IdentityChecks(verified=False) if self._batch_name is not None else None
        try:
            while True:
                full_read = checks is not None and checks.full_read_due()
                state, full_read = await self._poll(hook, batch_id, full_read=full_read)
                if checks is not None:
                    checks.polled(state, full_read=full_read)
                if batch_outcome(state) is not BatchOutcome.ACTIVE and checks is not None and not full_read:
                    state, _ = await self._poll(hook, batch_id, full_read=True)  # the end check
                    checks.polled(state, full_read=True)
                if batch_outcome(state) is not BatchOutcome.ACTIVE:
                    return await self._finished(hook, batch_id, state)
                if deadline is not None and time.monotonic() >= deadline:
                    return self._event("timeout", f"Batch {batch_id} timed out")
                self.log.info("Batch %s is in state %s", batch_id, state)
                await asyncio.sleep(self._polling_interval)
        except _WaitFailed as failure:
            return self._event("error", str(failure))

    async def _poll(self, hook: LivyAsyncHook, batch_id: int | str, *, full_read: bool) -> tuple[str, bool]:
        """One poll: the state, and whether it came from reading (and checking) the whole batch."""
        if full_read:
            state = await self._read_own_batch_state(hook, batch_id)
            if state is not None:
                return state, True
        result = await hook.get_batch_state(batch_id)
        if result["status"] != "success":
            raise _WaitFailed(str(result["response"]))
        return result["batch_state"].value, full_read

    async def _read_own_batch_state(self, hook: LivyAsyncHook, batch_id: int | str) -> str | None:
        result = await hook.get_batch(batch_id)
        batch = result["response"]
        if result["status"] != "success" or not isinstance(batch, dict):
            raise _WaitFailed(f"Could not read Livy batch {batch_id}: {batch}")
        record = BatchRecord(name=self._batch_name, batch_id=int(batch_id), app_id=self._app_id)
        if record.identify(batch) is Identity.OTHER:
            raise _WaitFailed(
                f"Livy batch {batch_id} is now {batch.get('name')!r}, not {record.describe()}: "
                "Livy restarted and reused the id; the original batch is gone"
            )
        self._app_id = self._app_id or app_id_of(batch)
        state = batch.get("state")
        return state if isinstance(state, str) else None

    async def _finished(self, hook: LivyAsyncHook, batch_id: int | str, state: str) -> dict[str, Any]:
        lines = await self._log_lines(hook, batch_id)
        if batch_outcome(state) is BatchOutcome.SUCCEEDED:
            return self._event("success", f"Batch {batch_id} succeeded", log_lines=lines, state=state)
        message = f"Batch {batch_id} did not succeed (state {state})"
        return self._event("error", message, log_lines=lines, state=state)

    async def _log_lines(self, hook: LivyAsyncHook, batch_id: int | str) -> list[str] | None:
        """Livy's log of the finished batch; best effort: the outcome is known whatever happens here."""
        try:
            log_lines = await hook.dump_batch_logs(batch_id)
        except Exception as error:  # a transport error must not turn a known outcome into an error
            self.log.warning("Could not read the log of Livy batch %s: %r", batch_id, error)
            return None
        return log_lines if isinstance(log_lines, list) else None

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
