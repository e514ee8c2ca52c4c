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
import re
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import aiohttp
import requests
import tenacity
from airflow.providers.http.hooks.http import HttpAsyncHook, HttpHook

from airflow.providers.apache.livy.exceptions import (
    LivyAuthError,
    LivyBatchNotFound,
    LivyDuplicateBatchName,
    LivyHttpError,
    LivyResponseError,
)

log = logging.getLogger(__name__)

CSRF_HEADER = "X-Requested-By"
"""Livy's CSRF filter rejects any non-GET request that lacks this header (any value)."""

MAX_BATCH_ID = 2**31 - 1
"""Livy numbers batches with a 32-bit signed counter."""

_BATCH_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_LOG_PAGE_SIZE = 100
_REPLY_EXCERPT_CHARS = 200


def sanitize_endpoint_prefix(endpoint_prefix: str | None) -> str:
    """Return ``endpoint_prefix`` as ``/prefix`` (one leading slash, none trailing), or ``""``."""
    stripped = endpoint_prefix.strip("/") if endpoint_prefix else ""
    return f"/{stripped}" if stripped else ""


class BatchState(Enum):
    """
    State of a Livy batch, as Livy reports it.

    A state this enum does not list (a newer Livy, a gateway) still converts: ``BatchState("x")``
    returns a pseudo-member named ``UNKNOWN`` whose ``value`` is ``"x"``, so reading a state never
    raises. Use :func:`batch_outcome` to decide what a state means.
    """

    NOT_STARTED = "not_started"
    STARTING = "starting"
    RUNNING = "running"
    IDLE = "idle"
    BUSY = "busy"
    SHUTTING_DOWN = "shutting_down"
    ERROR = "error"
    DEAD = "dead"
    KILLED = "killed"
    SUCCESS = "success"
    RECOVERING = "recovering"

    @classmethod
    def _missing_(cls, value: object) -> BatchState | None:
        if not isinstance(value, str):
            return None
        unknown = object.__new__(cls)
        unknown._name_ = "UNKNOWN"
        unknown._value_ = value
        return unknown


class BatchOutcome(Enum):
    """What a batch state means for whoever waits on the batch."""

    ACTIVE = "active"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


_FAILED_STATES = frozenset({"dead", "killed", "error"})
_ACTIVE_STATES = frozenset(
    {"not_started", "starting", "running", "idle", "busy", "shutting_down", "recovering"}
)


def batch_outcome(state: str | BatchState) -> BatchOutcome:
    """
    Classify a Livy batch state; the one classification every component of the provider uses.

    ``success`` succeeded; ``dead``, ``killed`` and ``error`` failed; every other state, including
    ``recovering`` and states this provider does not know, is active (not finished). An unknown
    state is logged, never raised.
    """
    value = state.value if isinstance(state, BatchState) else str(state)
    if value == BatchState.SUCCESS.value:
        return BatchOutcome.SUCCEEDED
    if value in _FAILED_STATES:
        return BatchOutcome.FAILED
    if value not in _ACTIVE_STATES:
        log.warning("Livy reported batch state %r, which is not known; treating it as not finished", value)
    return BatchOutcome.ACTIVE


def validate_batch_id(session_id: Any) -> int:
    """
    Return ``session_id`` as a Livy batch id, or raise.

    :raises TypeError: it is not an integer (or a string of digits).
    :raises ValueError: it is outside Livy's id range ``0 .. 2**31 - 1``.
    """
    if isinstance(session_id, bool) or not isinstance(session_id, int | str):
        raise TypeError(f"'session_id' must be an integer, got {type(session_id).__name__}")
    if isinstance(session_id, str):
        if not session_id.isascii() or not session_id.isdigit():
            raise TypeError(f"'session_id' must be an integer, got {session_id[:40]!r}")
        session_id = int(session_id)
    if not 0 <= session_id <= MAX_BATCH_ID:
        raise ValueError(f"'session_id' {session_id} is outside Livy's batch id range 0..{MAX_BATCH_ID}")
    return session_id


def is_valid_batch_name(name: object) -> bool:
    """Whether ``name`` is a batch name safe to put in a URL: ``[A-Za-z0-9._-]``, not all digits."""
    return isinstance(name, str) and _BATCH_NAME_PATTERN.fullmatch(name) is not None and not name.isdigit()


def describe_batch_body(body: dict[str, Any]) -> str:
    """Summarise a POST body for logs: file, class, name and conf *keys* only (values may be secrets)."""
    parts = [f"file={body.get('file')!r}"]
    for key in ("className", "name", "proxyUser", "queue"):
        if body.get(key):
            parts.append(f"{key}={body[key]!r}")
    if body.get("conf"):
        parts.append(f"conf keys={sorted(str(key) for key in body['conf'])}")
    return ", ".join(parts)


def _excerpt(text: str) -> str:
    collapsed = " ".join(text.split())
    if len(collapsed) > _REPLY_EXCERPT_CHARS:
        return collapsed[:_REPLY_EXCERPT_CHARS] + "..."
    return collapsed


def _livy_message(text: str) -> str:
    """Livy's error text: ``{"msg": ...}`` (0.6+), a bare JSON string (0.5, parse errors) or raw text."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return _excerpt(text)
    if isinstance(parsed, dict) and isinstance(parsed.get("msg"), str):
        return parsed["msg"]
    if isinstance(parsed, str):
        return parsed
    return _excerpt(text)


def _subject(batch: int | str | None) -> str:
    return f"batch {batch!r}" if batch is not None else "Livy"


def read_livy_reply(
    status: int, text: str, *, method: str, endpoint: str, batch: int | str | None = None
) -> Any:
    """
    Turn one HTTP reply from Livy into its JSON body, or raise a typed error naming batch and endpoint.

    Shared by :class:`LivyHook` and :class:`LivyAsyncHook`.

    :raises LivyAuthError: 401 or 403.
    :raises LivyBatchNotFound: 404.
    :raises LivyDuplicateBatchName: 400 "Duplicate session name".
    :raises LivyHttpError: any other status outside 2xx.
    :raises LivyResponseError: 2xx whose body is not JSON (e.g. a gateway's HTML login page).
    """
    where = f"{method} {endpoint}"
    if status >= 300:
        message = _livy_message(text)
        error_class: type[LivyHttpError] = LivyHttpError
        if status in (401, 403):
            error_class = LivyAuthError
        elif status == 404:
            error_class = LivyBatchNotFound
        elif status == 400 and "Duplicate session name" in message:
            error_class = LivyDuplicateBatchName
        raise error_class(
            f"Livy answered HTTP {status} for {_subject(batch)} at {where}: {message}",
            endpoint=endpoint,
            http_status=status,
            livy_message=message,
            batch=batch,
        )
    try:
        return json.loads(text)
    except ValueError:
        raise LivyResponseError(
            f"Livy answered HTTP {status} for {_subject(batch)} at {where} with a body that is not JSON "
            f"(a proxy or login page?): {_excerpt(text)!r}",
            endpoint=endpoint,
            batch=batch,
        ) from None


def require_field(reply: Any, field: str, *, endpoint: str, batch: int | str | None = None) -> Any:
    """Return ``reply[field]``, or raise :class:`LivyResponseError` if the reply lacks it."""
    if not isinstance(reply, dict) or field not in reply:
        raise LivyResponseError(
            f"Livy's reply for {_subject(batch)} at {endpoint} has no {field!r}: "
            f"{_excerpt(json.dumps(reply))!r}",
            endpoint=endpoint,
            batch=batch,
        )
    return reply[field]


def _is_retryable_reply(response: Any) -> bool:
    return isinstance(response, requests.Response) and response.status_code >= 500


def _last_outcome(retry_state: tenacity.RetryCallState) -> Any:
    """Return the last reply (or re-raise the last error) once the retries are used up."""
    assert retry_state.outcome is not None
    return retry_state.outcome.result()


def read_retry_args(retry_args: dict[str, Any]) -> dict[str, Any]:
    """
    Complete tenacity arguments for a read: retry 5xx replies and connection errors, nothing else.

    Keys given by the caller win, so a DAG can still supply its own ``retry`` predicate. Without a
    ``stop``, reads give up after 5 attempts (tenacity alone would retry forever).
    """
    return {
        "stop": tenacity.stop_after_attempt(5),
        "retry": tenacity.retry_if_exception_type((requests.ConnectionError, requests.Timeout))
        | tenacity.retry_if_result(_is_retryable_reply),
        "retry_error_callback": _last_outcome,
        "reraise": True,
        **retry_args,
    }


class _LivyHookBase:
    """What both Livy hooks share: identity, terminal states, endpoints and the POST body."""

    TERMINAL_STATES = {BatchState.SUCCESS, BatchState.DEAD, BatchState.KILLED, BatchState.ERROR}

    conn_name_attr = "livy_conn_id"
    default_conn_name = "livy_default"
    conn_type = "livy"
    hook_name = "Apache Livy"

    endpoint_prefix: str

    def _batches(self, suffix: str = "") -> str:
        """The path of ``/batches`` (plus ``suffix``) behind the endpoint prefix."""
        return f"{self.endpoint_prefix}/batches{suffix}"

    @staticmethod
    def build_post_batch_body(
        file: str,
        args: Sequence[str | int | float] | None = None,
        class_name: str | None = None,
        jars: list[str] | None = None,
        py_files: list[str] | None = None,
        files: list[str] | None = None,
        archives: list[str] | None = None,
        name: str | None = None,
        driver_memory: str | None = None,
        driver_cores: int | str | None = None,
        executor_memory: str | None = None,
        executor_cores: int | None = None,
        num_executors: int | str | None = None,
        queue: str | None = None,
        proxy_user: str | None = None,
        conf: dict[Any, Any] | None = None,
    ) -> dict[str, Any]:
        """
        Build the ``POST /batches`` request body, validating each field Livy would reject.

        :param file: path of the file containing the application to execute (required).
        :param args: application command line arguments.
        :param class_name: name of the application Java/Spark main class.
        :param jars: jars to be used in this session.
        :param py_files: python files to be used in this session.
        :param files: files to be used in this session.
        :param archives: archives to be used in this session.
        :param name: the name of this session.
        :param driver_memory: amount of memory to use for the driver process, e.g. ``512m``.
        :param driver_cores: number of cores to use for the driver process.
        :param executor_memory: amount of memory to use per executor process, e.g. ``2g``.
        :param executor_cores: number of cores to use for each executor.
        :param num_executors: number of executors to launch for this session.
        :param queue: the name of the YARN queue to which the application is submitted.
        :param proxy_user: user to impersonate when running the job.
        :param conf: Spark configuration properties.
        :return: the request body.
        """
        if not file or not isinstance(file, str):
            raise ValueError("'file' must be a non-empty string: the application to run")
        body: dict[str, Any] = {"file": file}
        optional: dict[str, Any] = {
            "proxyUser": proxy_user,
            "className": class_name,
            "args": [str(value) for value in _checked_list("args", args) or []] or None,
            "jars": _checked_list("jars", jars),
            "pyFiles": _checked_list("py_files", py_files),
            "files": _checked_list("files", files),
            "archives": _checked_list("archives", archives),
            "driverMemory": _checked_size("driver_memory", driver_memory),
            "driverCores": driver_cores,
            "executorMemory": _checked_size("executor_memory", executor_memory),
            "executorCores": executor_cores,
            "numExecutors": num_executors,
            "queue": queue,
            "name": name,
            "conf": _checked_conf(conf),
        }
        body.update({key: value for key, value in optional.items() if value})
        return body


_SIZE_PATTERN = re.compile(r"\d+([bBkKmMgGtTpP]|[kKmMgGtTpP][bB])?")


def _checked_size(field: str, size: str | None) -> str | None:
    if size and (not isinstance(size, str) or not _SIZE_PATTERN.fullmatch(size)):
        raise ValueError(f"'{field}' must be a JVM memory size such as '512m' or '2g', got {size!r}")
    return size


def _checked_list(field: str, values: Sequence[Any] | None) -> list[Any] | None:
    if not values:
        return None
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ValueError(f"'{field}' must be a list, got {type(values).__name__}")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"'{field}' must hold strings or numbers, got {type(value).__name__}")
    return list(values)


def _checked_conf(conf: dict[Any, Any] | None) -> dict[Any, Any] | None:
    if not conf:
        return None
    if not isinstance(conf, dict):
        raise ValueError(f"'conf' must be a dict, got {type(conf).__name__}")
    for key, value in conf.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"'conf' keys must be non-empty strings, got {key!r}")
        if isinstance(value, dict | list | tuple | set) or value is None:
            # The value is not echoed: Spark conf often carries credentials.
            raise ValueError(f"'conf' value for {key!r} must be a string or a number")
    return conf


class LivyHook(_LivyHookBase, HttpHook):
    """
    Hook for Apache Livy's batch REST API.

    Every method that reads a batch raises a typed :mod:`~airflow.providers.apache.livy.exceptions`
    error (a subclass of ``AirflowException``) naming the batch and the endpoint when Livy's reply
    cannot be used.

    :param livy_conn_id: reference to a pre-defined Livy connection.
    :param extra_options: options passed to ``requests`` (e.g. ``{"timeout": 30, "verify": False}``).
    :param extra_headers: headers sent with every request to Livy.
    :param auth_type: the ``requests`` auth class (default: basic auth with the connection's login).
    :param endpoint_prefix: path prefix in front of ``/batches`` (Livy behind a gateway such as Knox).
    """

    default_headers = {"Content-Type": "application/json", "Accept": "application/json"}

    def __init__(
        self,
        livy_conn_id: str = _LivyHookBase.default_conn_name,
        extra_options: dict[str, Any] | None = None,
        extra_headers: dict[str, Any] | None = None,
        auth_type: Any | None = None,
        endpoint_prefix: str | None = None,
    ) -> None:
        super().__init__(http_conn_id=livy_conn_id)
        self.extra_headers = extra_headers or {}
        self.extra_options = extra_options or {}
        self.endpoint_prefix = sanitize_endpoint_prefix(endpoint_prefix)
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
        :param retry_args: tenacity arguments; used for reads only. 5xx replies and connection errors
            are retried; a POST is never retried, since Livy would create a second batch.
        """
        method = method.upper()
        if method not in ("GET", "POST", "PUT", "DELETE", "HEAD"):
            raise ValueError(f"Invalid http method '{method}'")
        send = self._request_sender(endpoint, method, data, headers)
        if retry_args and method in ("GET", "HEAD"):
            return tenacity.Retrying(**read_retry_args(retry_args))(send)
        return send()

    def _request_sender(
        self, endpoint: str, method: str, data: Any, headers: dict[str, Any] | None
    ) -> Callable[[], requests.Response]:
        all_headers = {**self.extra_headers, **(headers or {})}
        if method != "GET":
            all_headers.setdefault(CSRF_HEADER, "airflow")
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
        response = self.run_method(endpoint, method, data=data, retry_args=retry_args)
        return read_livy_reply(
            response.status_code, response.text, method=method, endpoint=endpoint, batch=batch
        )

    def submit_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        """
        ``POST /batches`` once (never retried) and return the created batch as Livy describes it.

        :raises LivyDuplicateBatchName: a batch with ``body["name"]`` is already in Livy's memory.
        """
        endpoint = self._batches()
        self.log.info("Submitting Livy batch: %s", describe_batch_body(body))
        reply = self._request_json(endpoint, "POST", data=json.dumps(body), batch=body.get("name"))
        batch_id = validate_batch_id(require_field(reply, "id", endpoint=endpoint, batch=body.get("name")))
        self.log.info("Livy created batch %s", batch_id)
        return {**reply, "id": batch_id}

    def post_batch(self, *args: Any, **kwargs: Any) -> int:
        """
        Submit a batch built from :meth:`build_post_batch_body`'s arguments and return its id.

        :return: the id of the new batch.
        """
        return self.submit_batch(self.build_post_batch_body(*args, **kwargs))["id"]

    def get_batch(self, session_id: int | str, retry_args: dict[str, Any] | None = None) -> dict:
        """Return the batch object Livy holds for ``session_id``."""
        batch_id = validate_batch_id(session_id)
        return self._request_json(self._batches(f"/{batch_id}"), batch=batch_id, retry_args=retry_args)

    def get_batch_by_name(self, name: str, retry_args: dict[str, Any] | None = None) -> dict:
        """
        Return the batch named ``name`` (``GET /batches/{name}``, Livy 0.6+).

        :raises LivyBatchNotFound: no batch with that name is in Livy's memory.
        """
        if not is_valid_batch_name(name):
            raise ValueError(f"{name!r} is not a batch name this provider would have given")
        return self._request_json(self._batches(f"/{name}"), batch=name, retry_args=retry_args)

    def get_batch_state(self, session_id: int | str, retry_args: dict[str, Any] | None = None) -> BatchState:
        """Return the state of batch ``session_id``; never raises for a state it does not know."""
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

        A 404 means the batch is already gone; it is logged and treated as done.
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
        endpoint = self._batches(f"/{batch_id}/log")
        page = {"from": log_start_position, "size": log_batch_size}
        return self._request_json(endpoint, data=page, batch=batch_id)

    def dump_batch_logs(self, session_id: int | str) -> None:
        """Write the batch's log (as much as Livy still buffers) to the task log."""
        self.log.info("Fetching the logs of Livy batch %s", session_id)
        pager = LogPager(session_id)
        while (start := pager.next_start) is not None:
            pager.add(self.get_batch_logs(session_id, start, pager.page_size))
        for line in pager.lines:
            self.log.info(line)


class LogPager:
    """
    Reads a batch's log page by page: ask :attr:`next_start`, fetch that page, :meth:`add` it.

    Shared by both hooks. Livy keeps only a ring buffer (200 lines by default), so ``total`` is
    what it still holds, not what the job wrote.
    """

    page_size = _LOG_PAGE_SIZE

    def __init__(self, session_id: int | str) -> None:
        self.session_id = session_id
        self.lines: list[str] = []
        self._start = 0
        self._total = 1

    @property
    def next_start(self) -> int | None:
        """The ``from`` of the next page to fetch, or ``None`` once the whole log is read."""
        return self._start if self._start < self._total else None

    def add(self, page: Any) -> None:
        """Take one ``GET /batches/{id}/log`` reply."""
        page_lines = page.get("log") if isinstance(page, dict) else None
        if not isinstance(page_lines, list) or not isinstance(page.get("total"), int):
            raise LivyResponseError(
                f"Livy's log page for batch {self.session_id!r} has no 'log' list or 'total'",
                endpoint="log",
                batch=self.session_id,
            )
        self.lines.extend(str(line) for line in page_lines)
        self._start += len(page_lines)
        self._total = page["total"] if page_lines else self._start


class LivyAsyncHook(_LivyHookBase, HttpAsyncHook):
    """
    Asynchronous hook for Apache Livy's batch REST API, used by :class:`~.LivyTrigger`.

    The read methods return ``{"status": "success" | "error", "response": ...}`` dictionaries, as the
    released provider did, so an error never raises inside the triggerer.

    :param livy_conn_id: reference to a pre-defined Livy connection.
    :param extra_options: options passed to ``aiohttp`` for each request.
    :param extra_headers: headers sent with every request to Livy.
    :param endpoint_prefix: path prefix in front of ``/batches``.
    :param auth_type: the ``aiohttp`` auth class (default ``aiohttp.BasicAuth``).
    """

    _def_headers = LivyHook.default_headers

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

        ``endpoint`` is taken as given (include the endpoint prefix).
        """
        method = (method or self.method).upper()
        if method not in {"GET", "PATCH", "POST", "PUT", "DELETE", "HEAD"}:
            return {"status": "error", "response": f"Invalid http method {method}"}
        try:
            return {
                "status": "success",
                "response": await self._request_json(endpoint, method, data, headers),
            }
        except (LivyHttpError, LivyResponseError) as error:
            return {
                "status": "error",
                "response": str(error),
                "status_code": getattr(error, "http_status", None),
            }
        except (aiohttp.ClientError, TimeoutError) as error:
            return {"status": "error", "response": f"{method} {endpoint} failed: {error!r}"}

    async def _request_json(
        self, endpoint: str, method: str, data: Any | None, headers: dict[str, Any] | None
    ) -> Any:
        all_headers = {**self._def_headers, **self.extra_headers, **(headers or {})}
        if method != "GET":
            all_headers.setdefault(CSRF_HEADER, "airflow")
        options = {**self.extra_options, "check_response": False}
        async with self.session(method=method) as http:
            response = await http.run(
                endpoint=endpoint, data=data, headers=all_headers, extra_options=options
            )
            text = await response.text()
        return read_livy_reply(response.status, text, method=method, endpoint=endpoint)

    async def get_batch_state(self, session_id: int | str) -> Any:
        """
        Return ``{"batch_state": BatchState, "status": "success", ...}`` or an error dictionary.

        An error dictionary carries ``"status": "error"``, ``"batch_state": "error"`` and, for an
        HTTP error, ``"status_code"``.
        """
        batch_id = validate_batch_id(session_id)
        result = await self.run_method(self._batches(f"/{batch_id}/state"), "GET")
        state = (
            result["response"].get("state")
            if result["status"] == "success" and isinstance(result["response"], dict)
            else None
        )
        if not isinstance(state, str):
            self.log.warning("Could not read the state of Livy batch %s: %s", batch_id, result["response"])
            return {
                "batch_state": "error",
                "response": f"Unable to get the state of batch {batch_id}: {result['response']}",
                "status": "error",
                "status_code": result.get("status_code"),
            }
        return {
            "batch_state": BatchState(state),
            "response": "successfully fetched the batch state.",
            "status": "success",
        }

    async def get_batch(self, session_id: int | str) -> Any:
        """Return ``{"status": "success", "response": <batch object>}`` or an error dictionary."""
        batch_id = validate_batch_id(session_id)
        return await self.run_method(self._batches(f"/{batch_id}"), "GET")

    async def get_batch_logs(
        self, session_id: int | str, log_start_position: int, log_batch_size: int
    ) -> Any:
        """Return ``{"status": "success", "response": <log page>}`` or an error dictionary."""
        batch_id = validate_batch_id(session_id)
        page = {"from": log_start_position, "size": log_batch_size}
        return await self.run_method(self._batches(f"/{batch_id}/log"), "GET", data=page)

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
