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
What both Livy hooks share on the wire: headers, reply reading, read retries and log paging.

Everything that looks at status codes or HTTP client exceptions lives in ``hooks/``; the rest of the
provider sees only the typed errors of :mod:`airflow.providers.apache.livy.exceptions`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import aiohttp
import requests
import tenacity

from airflow.providers.apache.livy.exceptions import (
    LivyAuthError,
    LivyBatchNotFound,
    LivyDuplicateBatchName,
    LivyHttpError,
    LivyResponseError,
)
from airflow.providers.apache.livy.utils.log_stream import page_lines

CSRF_HEADER = "X-Requested-By"
"""Livy's CSRF filter rejects any request but GET, HEAD and OPTIONS without this header (any value)."""
LOG_PAGE_SIZE = 100
LOST_REPLY_ERRORS = (requests.ConnectionError, requests.Timeout)
"""Errors after which a POST may or may not have reached Livy."""
_REPLY_EXCERPT_CHARS = 200
_LIVY_NOT_FOUND = (
    re.compile(r"Session '(?P<ref>[^']*)' not found\."),  # any request naming an unknown id or name
    re.compile(r"Session (?P<ref>\d+) already stopped\."),  # DELETE racing another DELETE or the GC
)
_BATCH_SEGMENT = re.compile(r"/batches/(?P<ref>[^/?]+)(?:/state|/log)?/?$")
"""The id or name a batch endpoint names (the last ``/batches/`` segment, so a prefix cannot fool it)."""


def request_headers(method: str, *headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge ``headers`` (later ones win) and add the CSRF header to anything but a read."""
    merged: dict[str, Any] = {}
    for more in headers:
        merged.update(more or {})
    if method.upper() not in ("GET", "HEAD", "OPTIONS"):
        merged.setdefault(CSRF_HEADER, "airflow")
    return merged


def excerpt(text: str) -> str:
    """``text`` on one line, cut to a length fit for an error message."""
    collapsed = " ".join(text.split())
    if len(collapsed) > _REPLY_EXCERPT_CHARS:
        return collapsed[:_REPLY_EXCERPT_CHARS] + "..."
    return collapsed


def _livy_message(text: str) -> str:
    """Livy's error text: ``{"msg": ...}`` (0.6+), a bare JSON string (0.5, parse errors) or raw text."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return excerpt(text)
    if isinstance(parsed, dict) and isinstance(parsed.get("msg"), str):
        return parsed["msg"]
    if isinstance(parsed, str):
        return parsed
    return excerpt(text)


def _subject(batch: int | str | None) -> str:
    return f"batch {batch!r}" if batch is not None else "Livy"


def is_livy_not_found(text: str, endpoint: str | None = None) -> bool:
    """
    Whether a 404 body is Livy's own "no such batch", rather than a gateway's or a router's page.

    Livy's is ``{"msg": "Session '<ref>' not found."}`` (0.6+), the same text as a bare JSON string
    (0.5), or a DELETE's ``Session <id> already stopped.``. When ``endpoint`` names a batch
    (``.../batches/<ref>...``), ``<ref>`` must be it.

    Any other 404 (a gateway's HTML page, a wrong endpoint prefix, an empty body) says nothing about
    the batch, so it must not be taken to mean that Livy forgot it.
    """
    try:
        parsed = json.loads(text)
    except ValueError:
        return False
    if isinstance(parsed, dict):
        parsed = parsed.get("msg")
    if not isinstance(parsed, str):
        return False
    requested = _BATCH_SEGMENT.search(endpoint or "")
    for pattern in _LIVY_NOT_FOUND:
        match = pattern.fullmatch(parsed.strip())
        if match is not None:
            return requested is None or match["ref"] == requested["ref"]
    return False


def raise_for_reply_status(
    status: Any, text: str, *, method: str, endpoint: str, batch: int | str | None = None
) -> None:
    """
    Raise the typed error for an HTTP error reply from Livy (status 300 and above); return otherwise.

    A reply whose status is not a number (a test double of a reply) counts as a success, as it does
    for ``HttpHook`` users who call ``raise_for_status()`` and then ``json()``.

    :raises LivyAuthError: 401 or 403.
    :raises LivyBatchNotFound: 404 with Livy's own "not found" body (:func:`is_livy_not_found`); any
        other 404 is a plain :class:`LivyHttpError`.
    :raises LivyDuplicateBatchName: 400 "Duplicate session name".
    :raises LivyHttpError: any other status outside 2xx.
    """
    if isinstance(status, bool) or not isinstance(status, int) or status < 300:
        return
    message = _livy_message(text)
    error_class: type[LivyHttpError] = LivyHttpError
    detail = ""
    if status in (401, 403):
        error_class = LivyAuthError
    elif status == 404 and is_livy_not_found(text, endpoint):
        error_class = LivyBatchNotFound
    elif status == 404:
        detail = " (not Livy's own 'not found' reply: a gateway's page, or a wrong endpoint prefix?)"
    elif status == 400 and "Duplicate session name" in message:
        error_class = LivyDuplicateBatchName
    raise error_class(
        f"Livy answered HTTP {status} for {_subject(batch)} at {method} {endpoint}{detail}: {message}",
        endpoint=endpoint,
        http_status=status,
        livy_message=message,
        batch=batch,
    )


def not_json_error(
    status: Any, text: str, *, method: str, endpoint: str, batch: int | str | None = None
) -> LivyResponseError:
    """The error for a success reply whose body is not JSON (e.g. a gateway's HTML login page)."""
    return LivyResponseError(
        f"Livy answered HTTP {status} for {_subject(batch)} at {method} {endpoint} with a body that is "
        f"not JSON (a proxy or login page?): {excerpt(text)!r}",
        endpoint=endpoint,
        batch=batch,
    )


def read_response(response: Any, *, method: str, endpoint: str, batch: int | str | None = None) -> Any:
    """
    The JSON body of a ``requests`` reply from Livy, read as ``HttpHook`` users read one.

    An error status raises the typed error (:func:`raise_for_reply_status`); otherwise the body is
    ``response.json()``.

    :raises LivyResponseError: a success reply whose body is not JSON.
    """
    status = response.status_code
    if isinstance(status, int) and status >= 300:
        raise_for_reply_status(status, response.text, method=method, endpoint=endpoint, batch=batch)
    try:
        return response.json()
    except ValueError:
        raise not_json_error(status, response.text, method=method, endpoint=endpoint, batch=batch) from None


async def read_async_response(response: Any, *, method: str, endpoint: str) -> Any:
    """
    The JSON body of an ``aiohttp`` reply from Livy: :func:`read_response` for the async hook.

    A test double may carry no status; its body is read as JSON whatever its content type.
    """
    status = response.status
    if isinstance(status, int) and status >= 300:
        raise_for_reply_status(status, await response.text(), method=method, endpoint=endpoint)
    try:
        return await response.json(content_type=None)
    except ValueError:
        raise not_json_error(status, await response.text(), method=method, endpoint=endpoint) from None


def require_field(reply: Any, field: str, *, endpoint: str, batch: int | str | None = None) -> Any:
    """Return ``reply[field]``, or raise :class:`LivyResponseError` if the reply lacks it."""
    if not isinstance(reply, dict) or field not in reply:
        raise LivyResponseError(
            f"Livy's reply for {_subject(batch)} at {endpoint} has no {field!r}: "
            f"{excerpt(json.dumps(reply))!r}",
            endpoint=endpoint,
            batch=batch,
        )
    return reply[field]


def is_refusal(error: LivyHttpError) -> bool:
    """Whether an error reply to a POST is a refusal (4xx): Livy or a gateway turned it down."""
    return 400 <= error.http_status < 500 and not isinstance(error, LivyDuplicateBatchName)


_TRANSIENT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    TimeoutError,
)
_PERMANENT_ERRORS = (
    requests.exceptions.SSLError,
    requests.exceptions.InvalidURL,
    aiohttp.ClientSSLError,
    aiohttp.InvalidURL,
)


def is_transient(failure: BaseException | int | None) -> bool:
    """
    Whether a request that failed may succeed if sent again later: the one retry predicate.

    ``failure`` is the HTTP status of an error reply (5xx and 429 are transient), or what was raised:
    a refused or reset connection, a timeout or a truncated reply (``requests`` or ``aiohttp``), or a
    :class:`~.LivyHttpError` with a transient status. TLS errors, bad URLs, other replies (4xx) and
    anything else are not.
    """
    if isinstance(failure, LivyHttpError):
        return is_transient(failure.http_status)
    if isinstance(failure, BaseException):
        return isinstance(failure, _TRANSIENT_ERRORS) and not isinstance(failure, _PERMANENT_ERRORS)
    return failure is not None and (failure >= 500 or failure == HTTPStatus.TOO_MANY_REQUESTS)


def _is_transient_reply(response: Any) -> bool:
    return isinstance(response, requests.Response) and is_transient(response.status_code)


def _last_outcome(retry_state: tenacity.RetryCallState) -> Any:
    """Return the last reply (or re-raise the last error) once the retries are used up."""
    assert retry_state.outcome is not None
    return retry_state.outcome.result()


def read_retry_args(retry_args: dict[str, Any]) -> dict[str, Any]:
    """
    Complete tenacity arguments for a read: retry 5xx and 429 replies and connection errors only.

    Keys given by the caller win, so a DAG can still supply its own ``retry`` predicate. Without a
    ``stop``, reads give up after 5 attempts (tenacity alone would retry forever).
    """
    return {
        "stop": tenacity.stop_after_attempt(5),
        "retry": tenacity.retry_if_exception(is_transient) | tenacity.retry_if_result(_is_transient_reply),
        "retry_error_callback": _last_outcome,
        "reraise": True,
        **retry_args,
    }


class LogPager:
    """
    Reads a batch's log page by page: ask :attr:`next_start`, fetch that page, :meth:`add` it.

    Livy keeps only a ring buffer (200 lines by default), so ``total`` is what it still holds, not
    what the job wrote.
    """

    page_size = LOG_PAGE_SIZE

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
        """
        Take one ``GET /batches/{id}/log`` reply (read by :func:`~.log_stream.page_lines`).

        A page without a ``total`` (some gateways, and test doubles) is taken as the last one.
        """
        try:
            lines = page_lines(page)
        except ValueError as error:
            raise LivyResponseError(
                f"Livy's log page for batch {self.session_id!r} is not one: {error}",
                endpoint="log",
                batch=self.session_id,
            ) from None
        total = page.get("total")
        self.lines.extend(lines)
        self._start += len(lines)
        self._total = (
            total if lines and isinstance(total, int) and not isinstance(total, bool) else self._start
        )


def error_result(response: str, status_code: int | None, batch_not_found: bool = False) -> dict[str, Any]:
    """The async hook's error dictionary for a request that got an error reply."""
    return {
        "status": "error",
        "response": response,
        "status_code": status_code,
        "batch_not_found": batch_not_found,
    }
