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
"""Hooks for Apache Livy's batch REST API (``/batches``), synchronous and asynchronous."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import requests
import tenacity
from airflow.providers.http.hooks.http import HttpAsyncHook, HttpHook

from airflow.providers.apache.livy.exceptions import (
    LivyBatchNotCreated,
    LivyBatchNotFound,
    LivyBatchRejected,
    LivyDuplicateBatchName,
    LivyHttpError,
    LivyResponseError,
)
from airflow.providers.apache.livy.hooks._base import (
    DEFAULT_HEADERS,
    _LivyHookBase,
    async_auth_type,
    batch_ui_url,
    sanitize_endpoint_prefix,
)
from airflow.providers.apache.livy.hooks._transport import (
    LOST_REPLY_ERRORS,
    LogPager,
    error_result,
    is_refusal,
    read_async_response,
    read_response,
    read_retry_args,
    request_headers,
    require_field,
)
from airflow.providers.apache.livy.utils.batch_record import is_valid_batch_name, validate_batch_id
from airflow.providers.apache.livy.utils.redaction import describe_batch_body
from airflow.providers.apache.livy.utils.states import BatchState

log = logging.getLogger(__name__)

__all__ = [
    "BatchState",
    "LivyAsyncHook",
    "LivyHook",
    "async_auth_type",
    "batch_ui_url",
    "follows_live_log",
    "reads_state_from_batch",
    "sanitize_endpoint_prefix",
]


class LivyHook(_LivyHookBase, HttpHook):
    """
    Hook for Apache Livy's batch REST API.

    Every method raises a typed :mod:`~airflow.providers.apache.livy.exceptions` error (a subclass
    of ``AirflowException``) naming the batch and the endpoint when Livy's reply cannot be used;
    transport errors (``requests.ConnectionError``, ``requests.Timeout``) propagate as they are.

    :param livy_conn_id: reference to a pre-defined Livy connection.
    :param extra_options: options passed to ``requests`` (e.g. ``{"timeout": 30, "verify": False}``).
    :param extra_headers: headers sent with every request to Livy.
    :param auth_type: the ``requests`` auth class (default: basic auth with the connection's login).
    :param endpoint_prefix: path prefix in front of ``/batches`` (Livy behind a gateway such as Knox).
    :param retry_args: tenacity arguments for every read (5xx and 429 replies and connection errors are
        retried; a POST or DELETE never is). Also settable later as the ``retry_args`` attribute.
    """

    default_headers = DEFAULT_HEADERS
    retried_reads = 0
    """How many reads needed more than one attempt: Livy (or the way to it) failed for a moment, and
    may have restarted meanwhile, so what answers under a batch's id may be another batch."""

    def __init__(
        self,
        livy_conn_id: str = _LivyHookBase.default_conn_name,
        extra_options: dict[str, Any] | None = None,
        extra_headers: dict[str, Any] | None = None,
        auth_type: Any | None = None,
        endpoint_prefix: str | None = None,
        retry_args: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(http_conn_id=livy_conn_id)
        self.extra_headers = extra_headers or {}
        self.extra_options = extra_options or {}
        self.endpoint_prefix = sanitize_endpoint_prefix(endpoint_prefix)
        self.retry_args = retry_args
        if auth_type:
            self.auth_type = auth_type

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Describe the connection form: Livy needs host and port, login and password are optional."""
        return {
            "hidden_fields": [],
            "relabeling": {"schema": "Protocol (http or https)"},
            "placeholders": {
                "host": "livy.example.com",
                "port": "8998",
                "schema": "http",
                "extra": '{"X-Requested-By": "airflow"}',
            },
        }

    def run_method(
        self,
        endpoint: str,
        method: str = "GET",
        data: Any | None = None,
        headers: dict[str, Any] | None = None,
        retry_args: dict[str, Any] | None = None,
    ) -> Any:
        """
        Send one request to Livy and return the ``requests.Response`` whatever its status.

        :param endpoint: path below the connection's base URL (include the endpoint prefix).
        :param method: ``GET``, ``POST``, ``PUT``, ``DELETE`` or ``HEAD``.
        :param data: query parameters (GET) or body.
        :param headers: headers for this request only.
        :param retry_args: tenacity arguments for this read (default: the hook's ``retry_args``).
            Reads only: a POST is never retried, since Livy would create a second batch.
        """
        method = method.upper()
        if method not in ("GET", "POST", "PUT", "DELETE", "HEAD"):
            raise ValueError(f"Invalid http method '{method}'")
        send = self._request_sender(endpoint, method, data, headers)
        retry_args = self.retry_args if retry_args is None else retry_args
        if retry_args and method in ("GET", "HEAD"):
            return tenacity.Retrying(**read_retry_args(retry_args))(self._counting_retries(send))
        return send()

    def _counting_retries(self, send: Callable[[], requests.Response]) -> Callable[[], requests.Response]:
        """``send``, counting in :attr:`retried_reads` each read that needed another attempt."""
        attempts = 0

        def attempt() -> requests.Response:
            nonlocal attempts
            attempts += 1
            if attempts == 2:
                self.retried_reads += 1
            return send()

        return attempt

    def _request_sender(
        self, endpoint: str, method: str, data: Any, headers: dict[str, Any] | None
    ) -> Callable[[], requests.Response]:
        all_headers = request_headers(method, self.extra_headers, headers)
        options = {**self.extra_options, "check_response": False}

        def send() -> requests.Response:
            previous_method, self.method = self.method, method
            try:
                return self.run(endpoint, data, all_headers, options)
            finally:
                self.method = previous_method

        return send

    def _request_json(
        self,
        endpoint: str,
        method: str = "GET",
        *,
        data: Any | None = None,
        batch: int | str | None = None,
        retry_args: dict[str, Any] | None = None,
    ) -> Any:
        # The keyword arguments provider 4.6.4 passed, which tests patching run_method assert.
        retry = {} if retry_args is None else {"retry_args": retry_args}
        response = self.run_method(
            method=method, endpoint=endpoint, data=data, headers=self.extra_headers, **retry
        )
        return read_response(response, method=method, endpoint=endpoint, batch=batch)

    def post_batch(self, *args: Any, **kwargs: Any) -> int:
        """
        ``POST /batches`` once (never retried), with a body built by :meth:`build_post_batch_body`.

        :return: the id of the new batch.
        :raises LivyDuplicateBatchName: a batch with this name is already in Livy's memory.
        """
        body = self.build_post_batch_body(*args, **kwargs)
        endpoint = self._batches()
        if not self.base_url:
            self.get_conn()  # sets base_url (scheme, host and port; never credentials)
        self.log.info("Submitting Livy batch to %s: %s", self.base_url, describe_batch_body(body))
        reply = self._request_json(endpoint, "POST", data=json.dumps(body), batch=body.get("name"))
        batch_id = validate_batch_id(require_field(reply, "id", endpoint=endpoint, batch=body.get("name")))
        self.log.info("Livy created batch %s", batch_id)
        return batch_id

    def create_batch(self, name: str, batch_kwargs: Mapping[str, Any]) -> int:
        """
        Post a batch named ``name`` once through :meth:`post_batch`; if its fate is unknown, find it.

        ``batch_kwargs`` are :meth:`build_post_batch_body`'s arguments; their ``name`` is replaced.

        A lost reply (connection error, timeout) or a "Duplicate session name" rejection is resolved
        with ``GET /batches/{name}``: the batch found there is the one an earlier POST created. Only
        Livy's own "not found" reply to that lookup means no batch has the name; any other error
        reply to it (401, 403, 429, 5xx, a gateway's 404 page) or transport error propagates as it
        is, since it says nothing about the POST.

        :return: the id of the batch named ``name``.
        :raises LivyBatchRejected: Livy or a gateway refused the POST itself (4xx).
        :raises LivyBatchNotCreated: the reply was lost and Livy says it holds no batch with this
            name, so posting again under the same name is safe.
        :raises ValueError: ``name`` could not be looked up (checked before anything is posted).
        """
        if not is_valid_batch_name(name):
            raise ValueError(f"{name!r} is not a batch name this provider would have given")
        try:
            return self.post_batch(**{**batch_kwargs, "name": name})
        except LivyDuplicateBatchName:
            reason = "Livy already holds a batch with this name"
        except LOST_REPLY_ERRORS as error:
            reason = f"the reply to the POST was lost ({type(error).__name__})"
        except LivyHttpError as error:
            # Only the POST's own refusal: an overridden post_batch may send other requests too.
            if not is_refusal(error) or error.endpoint != self._batches():
                raise
            raise LivyBatchRejected(
                str(error),
                endpoint=error.endpoint,
                http_status=error.http_status,
                livy_message=error.livy_message,
                batch=name,
            ) from error
        self.log.warning("Submitting batch %r: %s; looking it up by name", name, reason)
        try:
            batch = self.get_batch_by_name(name)
        except LivyBatchNotFound:
            raise LivyBatchNotCreated(
                f"Submitting batch {name!r}: {reason}, and Livy holds no batch with this name",
                endpoint=self._batches(),
                batch=name,
            ) from None
        found_id = require_field(batch, "id", endpoint=self._batches(f"/{name}"), batch=name)
        batch_id = validate_batch_id(found_id)
        self.log.info("Found batch %r as batch %s", name, batch_id)
        return batch_id

    def get_batch(self, session_id: int | str) -> dict:
        """Return the batch object Livy holds for ``session_id``."""
        batch_id = validate_batch_id(session_id)
        return self._request_json(self._batches(f"/{batch_id}"), batch=batch_id)

    def get_batch_by_name(self, name: str) -> dict:
        """
        Return the batch named ``name`` (``GET /batches/{name}``, Livy 0.6+).

        :raises LivyBatchNotFound: Livy says no batch with that name is in its memory (any other 404,
            such as a gateway's page, is a plain :class:`~.LivyHttpError`).
        """
        if not is_valid_batch_name(name):
            raise ValueError(f"{name!r} is not a batch name this provider would have given")
        return self._request_json(self._batches(f"/{name}"), batch=name)

    def get_batch_state(self, session_id: int | str, retry_args: dict[str, Any] | None = None) -> BatchState:
        """Return the state of batch ``session_id`` (``GET /batches/{id}/state``); an unknown one too."""
        batch_id = validate_batch_id(session_id)
        endpoint = self._batches(f"/{batch_id}/state")
        reply = self._request_json(endpoint, batch=batch_id, retry_args=retry_args)
        state = require_field(reply, "state", endpoint=endpoint, batch=batch_id)
        if not isinstance(state, str):
            raise LivyResponseError(
                f"Livy reported a non-string state {state!r} for batch {batch_id} at {endpoint}",
                endpoint=endpoint,
                batch=batch_id,
            )
        return BatchState(state)

    def delete_batch(self, session_id: int | str) -> dict:
        """
        Delete (kill) batch ``session_id``.

        Livy's own "not found" reply means the batch is already gone: it is logged and treated as
        done (``{"msg": "not found"}``). Any other 404 (a gateway's page) raises.
        """
        batch_id = validate_batch_id(session_id)
        try:
            return self._request_json(self._batches(f"/{batch_id}"), "DELETE", batch=batch_id)
        except LivyBatchNotFound:
            self.log.info("Livy no longer knows batch %s; nothing to delete", batch_id)
            return {"msg": "not found"}

    def get_batch_logs(self, session_id: int | str, log_start_position: int, log_batch_size: int) -> dict:
        """Return one page of the batch's log: ``{"id", "from", "total", "log": [...]}``."""
        batch_id = validate_batch_id(session_id)
        page = {"from": log_start_position, "size": log_batch_size}
        return self._request_json(self._batches(f"/{batch_id}/log"), data=page, batch=batch_id)

    def batch_ui_url(self, session_id: int | str) -> str | None:
        """
        The batch's page in Livy's web UI (``/ui/batch/{id}/log``), or ``None`` without a base URL.

        Built from the connection's base URL and the endpoint prefix; credentials in the URL are left out.
        """
        batch_id = validate_batch_id(session_id)
        if not self.base_url:
            self.get_conn()
        return batch_ui_url(self.base_url, self.endpoint_prefix, batch_id)

    def dump_batch_logs(self, session_id: int | str) -> None:
        """Write the batch's log (as much as Livy still buffers) to the task log."""
        self.log.info("Fetching the logs of Livy batch %s", session_id)
        pager = LogPager(session_id)
        while (start := pager.next_start) is not None:
            pager.add(self.get_batch_logs(session_id, start, pager.page_size))
        for line in pager.lines:
            self.log.info(line)


_OWN_DUMP_BATCH_LOGS = LivyHook.dump_batch_logs


def _is_own(hook: Any, name: str, own: Any) -> bool:
    """Whether ``hook``'s method ``name`` is this module's (not overridden in a subclass, nor mocked)."""
    return getattr(type(hook), name, None) is own and name not in vars(hook)


def reads_state_from_batch(hook: Any) -> bool:
    """
    Whether a poll that reads the whole batch may take its state from it instead of ``get_batch_state``.

    Not when ``get_batch_state`` is overridden or mocked: such a hook (or test) was written for
    provider 4.6.4, which called it on every poll. For a :class:`LivyHook` or a :class:`LivyAsyncHook`.
    """
    own = _OWN_ASYNC_GET_BATCH_STATE if isinstance(hook, LivyAsyncHook) else _OWN_GET_BATCH_STATE
    return _is_own(hook, "get_batch_state", own)


def follows_live_log(hook: Any) -> bool:
    """
    Whether to show Livy's log while waiting, through ``hook.get_batch_logs``.

    Not when ``dump_batch_logs`` is overridden or mocked: such a hook (or test) was written for
    provider 4.6.4, which showed the whole log once at the end, through that method.
    """
    return _is_own(hook, "dump_batch_logs", _OWN_DUMP_BATCH_LOGS)


class LivyAsyncHook(_LivyHookBase, HttpAsyncHook):
    """
    Asynchronous hook for Apache Livy's batch REST API, used by :class:`~.LivyTrigger`.

    The read methods return ``{"status": "success" | "error", "response": ...}`` dictionaries, as the
    released provider did: an error reply never raises. An error dictionary for an HTTP error reply
    also carries ``"status_code"`` and ``"batch_not_found"`` (``True`` only for Livy's own "not
    found" reply). Transport errors (``aiohttp.ClientConnectionError``, timeouts) propagate, as they
    did in 4.6.4.

    :param livy_conn_id: reference to a pre-defined Livy connection.
    :param extra_options: options passed to ``aiohttp`` for each request.
    :param extra_headers: headers sent with every request to Livy.
    :param endpoint_prefix: path prefix in front of ``/batches``.
    :param auth_type: the ``aiohttp`` auth class (default ``aiohttp.BasicAuth``).
    """

    _def_headers = DEFAULT_HEADERS

    def __init__(
        self,
        livy_conn_id: str = _LivyHookBase.default_conn_name,
        extra_options: dict[str, Any] | None = None,
        extra_headers: dict[str, Any] | None = None,
        endpoint_prefix: str | None = None,
        auth_type: Any | None = None,
    ) -> None:
        super().__init__(http_conn_id=livy_conn_id, auth_type=auth_type or aiohttp.BasicAuth)
        self.extra_headers = extra_headers or {}
        self.extra_options = extra_options or {}
        self.endpoint_prefix = sanitize_endpoint_prefix(endpoint_prefix)

    async def run_method(
        self,
        endpoint: str,
        method: str | None = None,
        data: Any | None = None,
        headers: dict[str, Any] | None = None,
    ) -> Any:
        """
        Send one request and return ``{"status": "success", "response": <json>}`` or an error dict.

        ``endpoint`` is taken as given (include the endpoint prefix). An error dict carries
        ``"status_code"`` and ``"batch_not_found"`` for an HTTP error reply.
        """
        method = method or self.method
        if method not in {"GET", "PATCH", "POST", "PUT", "DELETE", "HEAD"}:
            return {"status": "error", "response": f"Invalid http method {method}"}
        try:
            return {
                "status": "success",
                "response": await self._request_json(endpoint, method, data, headers),
            }
        except LivyHttpError as error:
            return error_result(str(error), error.http_status, isinstance(error, LivyBatchNotFound))
        except LivyResponseError as error:
            return error_result(str(error), None)
        except aiohttp.ClientResponseError as error:  # an error status raised by the HTTP provider
            message = f"Livy answered HTTP {error.status} at {method} {endpoint}: {error.message}"
            return error_result(message, error.status)

    async def _request_json(
        self, endpoint: str, method: str, data: Any | None, headers: dict[str, Any] | None
    ) -> Any:
        all_headers = request_headers(method, self._def_headers, self.extra_headers, headers)
        options = {**self.extra_options, "check_response": False}
        async with self.session(method=method) as http:
            response = await http.run(
                endpoint=endpoint, data=data, headers=all_headers, extra_options=options
            )
            return await read_async_response(response, method=method, endpoint=endpoint)

    async def get_batch_state(self, session_id: int | str) -> Any:
        """
        Return ``{"batch_state": BatchState, "status": "success", ...}`` or an error dictionary.

        An error dictionary carries ``"status": "error"``, ``"batch_state": "error"`` and, for an
        HTTP error, ``"status_code"`` and ``"batch_not_found"``.
        """
        batch_id = validate_batch_id(session_id)
        result = await self.run_method(
            endpoint=self._batches(f"/{batch_id}/state"), method="GET", headers=self.extra_headers
        )
        reply = result["response"]
        state = reply.get("state") if result["status"] == "success" and isinstance(reply, dict) else None
        state = state.value if isinstance(state, BatchState) else state
        if not isinstance(state, str):
            self.log.warning("Could not read the state of Livy batch %s: %s", batch_id, reply)
            return {
                "batch_state": "error",
                "response": f"Unable to get the state of batch {batch_id}: {reply}",
                "status": "error",
                "status_code": result.get("status_code"),
                "batch_not_found": result.get("batch_not_found", False),
            }
        return {
            "batch_state": BatchState(state),
            "response": "successfully fetched the batch state.",
            "status": "success",
        }

    async def get_batch(self, session_id: int | str) -> Any:
        """Return ``{"status": "success", "response": <batch object>}`` or an error dictionary."""
        batch_id = validate_batch_id(session_id)
        return await self.run_method(
            endpoint=self._batches(f"/{batch_id}"), method="GET", headers=self.extra_headers
        )

    async def delete_batch(self, session_id: int | str) -> dict[str, Any]:
        """
        Delete (kill) batch ``session_id``: ``{"status": "success", "response": <Livy's reply>}``.

        Livy's own "not found" reply means the batch is already gone: ``{"status": "success",
        "response": "not found"}``. Any other error reply gives an error dictionary; transport errors
        propagate. Livy answers only once the kill is done, which can take a while.
        """
        batch_id = validate_batch_id(session_id)
        result = await self.run_method(
            endpoint=self._batches(f"/{batch_id}"), method="DELETE", headers=self.extra_headers
        )
        if result.get("batch_not_found"):
            self.log.info("Livy no longer knows batch %s; nothing to delete", batch_id)
            return {"status": "success", "response": "not found"}
        return result

    async def get_batch_logs(
        self, session_id: int | str, log_start_position: int, log_batch_size: int
    ) -> Any:
        """Return ``{"status": "success", "response": <log page>}`` or an error dictionary."""
        batch_id = validate_batch_id(session_id)
        page = {"from": log_start_position, "size": log_batch_size}
        return await self.run_method(
            endpoint=self._batches(f"/{batch_id}/log"), data=page, method="GET", headers=self.extra_headers
        )

    async def dump_batch_logs(self, session_id: int | str) -> Any:
        """Return the batch's log lines, logging each; on failure, the error text instead."""
        pager = LogPager(session_id)
        while (start := pager.next_start) is not None:
            result = await self.get_batch_logs(session_id, start, pager.page_size)
            if result["status"] != "success":
                self.log.warning(
                    "Could not read the log of Livy batch %s: %s", session_id, result["response"]
                )
                return result["response"]
            try:
                pager.add(result["response"])
            except LivyResponseError as error:
                self.log.warning("%s", error)
                return str(error)
        for line in pager.lines:
            self.log.info(line)
        return pager.lines


_OWN_GET_BATCH_STATE = LivyHook.get_batch_state
_OWN_ASYNC_GET_BATCH_STATE = LivyAsyncHook.get_batch_state
