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

from airflow.providers.apache.livy.hooks._transport import is_transient
from airflow.providers.apache.livy.hooks.livy import LivyAsyncHook, reads_state_from_batch
from airflow.providers.apache.livy.utils.batch_record import (
    BatchRecord,
    Identity,
    IdentityChecks,
    app_id_of,
    app_links_of,
    validate_batch_id,
)
from airflow.providers.apache.livy.utils.kill_policy import KillAction
from airflow.providers.apache.livy.utils.log_pace import LogPace
from airflow.providers.apache.livy.utils.log_stream import LIVE_PAGE_SIZE, LogFollower
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


ON_KILL_ACTIONS = (KillAction.DELETE_BATCH.value, KillAction.KEEP_BATCH.value)
"""What :meth:`LivyTrigger.on_kill` may do with the batch when a user acts on the deferred task."""
_DEFAULTS: dict[str, Any] = {
    "auth_type": None,
    "batch_name": None,
    "app_id": None,
    "on_kill_action": KillAction.DELETE_BATCH.value,
    "redeferrals": 0,
    "report_links": False,
    "follow_log": False,
    "log_cursor": None,
}
"""The defaults of the arguments provider 4.6.4's trigger did not have (left out when serialized)."""


class _WaitFailed(Exception):
    """Livy's answer cannot be trusted: the wait ends with an error event carrying this message."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class LivyTrigger(BaseTrigger):
    """
    Poll a Livy batch from the triggerer until it reaches a terminal state.

    The event is ``{"status": "success" | "error" | "timeout" | "running", "batch_id", "response",
    "log_lines", "redeferrals", "log_cursor"}``, plus ``"state"`` (the terminal Livy state) when the
    batch finished and ``"transient"`` on an ``error`` event: ``True`` when the wait ended on a
    transport error (connection refused or reset, timeout) or a 5xx/429 reply, which asking again
    later may cure. ``"log_lines"`` is always ``None``: with ``follow_log`` the trigger writes new
    lines of Livy's log to its own log (the task log, on Airflow 3) as they appear, and
    ``"log_cursor"`` says how far, so the worker shows only the rest. ``"redeferrals"`` echoes the
    argument. With ``report_links``, the whole batch is read on every poll until Livy reports the
    application's URLs; then (at least :attr:`links_event_delay` seconds after it started) a
    ``"running"`` event carries them (``"batch"``: ``appId`` and ``appInfo``), for the operator to
    push as links before it defers again.

    Each poll is one request, as on the worker: ``GET /batches/{id}/state``, or the whole batch when
    :class:`~airflow.providers.apache.livy.utils.batch_record.IdentityChecks` wants it (with
    ``batch_name``: a batch that is no longer ours ends the wait with an error), when links are
    awaited, or when the log's :class:`~airflow.providers.apache.livy.utils.log_pace.LogPace` wants
    its last lines; the log endpoint is read besides only when those fell behind.

    :meth:`on_kill` (Airflow 3.3+: a user marked the deferred task failed or success, or cleared it)
    deletes the batch if it is still ours, unless ``on_kill_action="keep_batch"``.

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
    :param on_kill_action: ``"delete_batch"`` (default) or ``"keep_batch"``: what :meth:`on_kill`
        does with the batch.
    :param redeferrals: how many times the task deferred again after a transient error; echoed in
        every event.
    :param report_links: end the wait with a ``"running"`` event once Livy reports the Spark UI or
        driver log URL.
    :param follow_log: write new lines of Livy's log to the trigger's log while waiting.
    :param log_cursor: how far the log was already shown (a
        :class:`~airflow.providers.apache.livy.utils.log_stream.LogStream` cursor).
    """

    on_kill_timeout: float = 20.0
    """Seconds :meth:`on_kill` spends on Livy at most (the triggerer allows 30 by default)."""
    links_event_delay: float = 10.0
    """
    Seconds a ``report_links`` trigger waits at least before its ``running`` event: a trigger that
    fires right after the task deferred can race the scheduler, which then fails the try.
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
        on_kill_action: str = KillAction.DELETE_BATCH.value,
        redeferrals: int = 0,
        report_links: bool = False,
        follow_log: bool = False,
        log_cursor: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if on_kill_action not in ON_KILL_ACTIONS:
            raise ValueError(f"'on_kill_action' must be one of {ON_KILL_ACTIONS}, got {on_kill_action!r}")
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
        self._on_kill_action = KillAction(on_kill_action).value
        self._redeferrals = redeferrals
        self._report_links = report_links
        self._follow_log = follow_log
        self._log_cursor = log_cursor
        self._log_follower: LogFollower | None = None
        self._log_pace = LogPace(float(polling_interval or 0))
        self._app_info: dict[str, Any] | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """
        Serialize the trigger's arguments (Spark conf values redacted, no hook).

        Provider 4.6.4's arguments always; the newer ones only when they differ from their defaults,
        so a trigger built with 4.6.4's arguments serializes as it did.
        """
        newer = {
            "auth_type": self._auth_type,
            "batch_name": self._batch_name,
            "app_id": self._app_id,
            "on_kill_action": self._on_kill_action,
            "redeferrals": self._redeferrals,
            "report_links": self._report_links,
            "follow_log": self._follow_log,
            "log_cursor": self._log_cursor,
        }
        return (
            "airflow.providers.apache.livy.triggers.livy.LivyTrigger",
            {
                "batch_id": self._batch_id,
                "spark_params": self.spark_params,
                "livy_conn_id": self._livy_conn_id,
                "polling_interval": self._polling_interval,
                "extra_options": self._extra_options,
                "extra_headers": self._extra_headers,
                "livy_hook_async": None,
                "execution_timeout": self._execution_timeout,
                "endpoint_prefix": self._endpoint_prefix,
                **{key: value for key, value in newer.items() if value != _DEFAULTS[key]},
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
            event = self._event(
                "error",
                f"Waiting for Livy batch {self._batch_id} failed: {type(error).__name__}: {error}",
                transient=is_transient(error),
            )
        yield TriggerEvent(event)

    def _event(self, status: str, response: str, **more: Any) -> dict[str, Any]:
        """The event: 4.6.4's keys, ``redeferrals`` after a redeferral, and ``more``."""
        return {
            "status": status,
            "batch_id": self._batch_id,
            "response": response,
            "log_lines": None,  # kept for 4.6.4's execute_complete; the worker reads the log itself
            **({"redeferrals": self._redeferrals} if self._redeferrals else {}),
            **self._log_progress(),
            **more,
        }

    def _log_progress(self) -> dict[str, Any]:
        """
        ``{"log_cursor": ...}``: how far the log was shown, so the worker shows only the rest.

        A trigger that does not follow the log hands back the cursor it was given: the worker keeps
        it in memory only until its next write, so the task would otherwise show those lines again.
        """
        if self._log_follower is not None:
            return {"log_cursor": self._log_follower.cursor}
        return {"log_cursor": self._log_cursor} if self._follow_log or self._log_cursor else {}

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
        self._log_pace.endpoint_only = not reads_state_from_batch(hook)
        links_due = time.monotonic() + self.links_event_delay
        try:
            while True:
                links_wanted = self._report_links and self._app_info is None
                log_due = self._follow_log and self._log_pace.tail_due()
                full_read = links_wanted or log_due or (checks is not None and checks.full_read_due())
                state, batch = await self._poll(hook, batch_id, full_read=full_read)
                if checks is not None:
                    checks.polled(state, full_read=batch is not None)
                if batch_outcome(state) is not BatchOutcome.ACTIVE and checks is not None and batch is None:
                    state, _ = await self._poll(hook, batch_id, full_read=True)  # the end check
                    checks.polled(state, full_read=True)
                if batch_outcome(state) is not BatchOutcome.ACTIVE:
                    return self._finished(batch_id, state)
                if deadline is not None and time.monotonic() >= deadline:
                    return self._event("timeout", f"Batch {batch_id} timed out")
                if self._report_links and self._app_info is not None and time.monotonic() >= links_due:
                    # The worker shows the log lines so far: the triggerer may drop the log of a
                    # trigger that fires on its first poll.
                    return self._links_event(batch_id, state)
                self.log.info("Batch %s is in state %s", batch_id, state)
                if batch is not None:
                    self._show_log_tail(batch_id, batch)
                if self._follow_log and self._log_pace.endpoint_due():
                    await self._show_new_log_lines(hook, batch_id)
                await asyncio.sleep(self._polling_interval)
                self._log_pace.polled()
        except _WaitFailed as failure:
            return self._event("error", str(failure), transient=failure.transient)

    async def _poll(
        self, hook: LivyAsyncHook, batch_id: int | str, *, full_read: bool
    ) -> tuple[str, dict[str, Any] | None]:
        """One poll: the state, and the whole batch if this poll read (and checked) it."""
        batch = await self._read_own_batch(hook, batch_id) if full_read else None
        state = batch.get("state") if batch is not None else None
        if isinstance(state, str) and not self._log_pace.endpoint_only:
            return state, batch
        result = await hook.get_batch_state(batch_id)
        if result.get("status", "success") != "success":
            raise _WaitFailed(str(result.get("response")), transient=is_transient(result.get("status_code")))
        state = result.get("batch_state")
        return str(getattr(state, "value", state)), batch

    async def _read_own_batch(self, hook: LivyAsyncHook, batch_id: int | str) -> dict[str, Any]:
        """Read the whole batch, check it is still ours, and take its app id and links."""
        result = await hook.get_batch(batch_id)
        batch = result["response"]
        if result["status"] != "success" or not isinstance(batch, dict):
            raise _WaitFailed(
                f"Could not read Livy batch {batch_id}: {batch}",
                transient=result["status"] != "success" and is_transient(result.get("status_code")),
            )
        record = BatchRecord(name=self._batch_name, batch_id=int(batch_id), app_id=self._app_id)
        if record.identify(batch) is Identity.OTHER:
            raise _WaitFailed(
                f"Livy batch {batch_id} is now {batch.get('name')!r}, not {record.describe()}: "
                "Livy restarted and reused the id; the original batch is gone"
            )
        self._app_id = self._app_id or app_id_of(batch)
        if app_links_of(batch):
            self._app_info = batch.get("appInfo")
        return batch

    def _links_event(self, batch_id: int | str, state: str) -> dict[str, Any]:
        """The ``running`` event: the application's links are known while the batch runs."""
        batch = {"appId": self._app_id, "appInfo": self._app_info}
        return self._event("running", f"Batch {batch_id} is {state}", state=state, batch=batch)

    def _follower(self, batch_id: int | str) -> LogFollower:
        if self._log_follower is None:
            self._log_follower = LogFollower(self._log_cursor, self.log, f"Livy batch {batch_id}")
        return self._log_follower

    def _show_log_tail(self, batch_id: int | str, batch: dict[str, Any]) -> None:
        """Log what is new among the last lines of the log that a whole read of the batch carried."""
        if not self._follow_log or self._log_pace.endpoint_only:
            return
        if not isinstance(batch.get("log"), list):  # a server whose batch objects lack the log
            self._log_pace.endpoint_only = True
            return
        self._log_pace.tail_read(self._follower(batch_id).show_last_lines(batch["log"]))

    async def _show_new_log_lines(self, hook: LivyAsyncHook, batch_id: int | str) -> None:
        """Read the log's end (all of it if that is not enough) and log the lines not shown yet."""
        follower = self._follower(batch_id)
        size = self._log_pace.endpoint_page_size()
        try:
            shown = None
            if size != LIVE_PAGE_SIZE:
                shown = follower.show_page(self._log_page(await hook.get_batch_logs(batch_id, -1, size)))
            if shown is None:
                shown = follower.show_page(
                    self._log_page(await hook.get_batch_logs(batch_id, 0, LIVE_PAGE_SIZE))
                )
        except ValueError as error:
            self._stop_following(batch_id, error)
            return
        self._log_pace.endpoint_read(shown or 0)

    @staticmethod
    def _log_page(result: dict[str, Any]) -> Any:
        if result["status"] != "success":
            raise ValueError(result["response"])
        return result["response"]

    def _stop_following(self, batch_id: int | str, error: Exception) -> None:
        self._follow_log = False
        self.log.warning("Not following the log of Livy batch %s: %s", batch_id, error)

    def _finished(self, batch_id: int | str, state: str) -> dict[str, Any]:
        if batch_outcome(state) is BatchOutcome.SUCCEEDED:
            return self._event("success", f"Batch {batch_id} succeeded", state=state)
        return self._event("error", f"Batch {batch_id} did not succeed", state=state, transient=False)

    async def on_kill(self) -> None:
        """
        Delete the batch if still ours: a user marked the deferred task failed or success, or cleared it.

        Airflow 3.3+ calls this only then: not when the triggerer restarts, hands the trigger to
        another triggerer or times it out, nor once the trigger fired its event.

        With ``batch_name``, the batch is read first and left alone if Livy now uses its id for
        another batch; without it, it is deleted by id, as 4.6.4's operator did. Livy's own "not
        found" means there is nothing to delete. Spends at most :attr:`on_kill_timeout` seconds on
        Livy, and never raises: what it did and why is logged.
        """
        try:
            await asyncio.wait_for(self._kill_batch(), timeout=self.on_kill_timeout)
        except TimeoutError:
            self.log.warning(
                "Livy did not answer in time about batch %s (on_kill waits %s s at most); if the DELETE "
                "reached it, Livy goes on killing the batch",
                self._batch_id,
                self.on_kill_timeout,
            )
        except Exception as error:
            self.log.warning("Could not delete Livy batch %s: %r", self._batch_id, error)

    async def _kill_batch(self) -> None:
        if self._on_kill_action == KillAction.KEEP_BATCH:
            self.log.info("Keeping Livy batch %s running: on_kill_action=keep_batch", self._batch_id)
            return
        batch_id = validate_batch_id(self._batch_id)
        hook = self._get_async_hook()
        if self._batch_name is not None:
            result = await hook.get_batch(batch_id)
            batch = result["response"]
            if result.get("batch_not_found"):
                self.log.info("Livy no longer knows batch %s; nothing to delete", batch_id)
                return
            if result["status"] != "success" or not isinstance(batch, dict):
                self.log.warning(
                    "Not deleting Livy batch %s: could not read it to check it is ours: %s", batch_id, batch
                )
                return
            record = BatchRecord(name=self._batch_name, batch_id=batch_id, app_id=self._app_id)
            if record.identify(batch) is Identity.OTHER:
                self.log.warning(
                    "Not deleting Livy batch %s: it is now %r, not %s",
                    batch_id,
                    batch.get("name"),
                    record.describe(),
                )
                return
        self.log.info(
            "Deleting Livy batch %s: the deferred task was marked failed or success, or cleared", batch_id
        )
        result = await hook.delete_batch(batch_id)
        if result["status"] != "success":
            self.log.warning("Livy did not delete batch %s: %s", batch_id, result["response"])
        elif result["response"] == "not found":
            self.log.info("Livy batch %s was already gone", batch_id)
        else:
            self.log.info("Deleted Livy batch %s", batch_id)

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
