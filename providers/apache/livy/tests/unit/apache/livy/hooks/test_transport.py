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
"""What both hooks share on the wire (``hooks/_transport.py``): headers, replies, retries, log pages."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import requests
import tenacity
from airflow.exceptions import AirflowException

from airflow.providers.apache.livy.exceptions import (
    LivyAuthError,
    LivyBatchNotFound,
    LivyDuplicateBatchName,
    LivyError,
    LivyHttpError,
    LivyResponseError,
)
from airflow.providers.apache.livy.hooks._transport import (
    CSRF_HEADER,
    LOST_REPLY_ERRORS,
    LogPager,
    is_livy_not_found,
    is_refusal,
    is_transient,
    read_response,
    read_retry_args,
    request_headers,
    require_field,
)

FAST_RETRY = {"stop": tenacity.stop_after_attempt(3), "wait": tenacity.wait_none()}


# ---- request headers --------------------------------------------------------------------------------


def test_csrf_header_is_livys():
    assert CSRF_HEADER == "X-Requested-By"


@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT", "PATCH", "post", "delete"])
def test_csrf_header_is_added_to_state_changing_requests(method):
    assert request_headers(method)[CSRF_HEADER]


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "get"])
def test_csrf_header_is_not_added_to_reads(method):
    assert request_headers(method, {"Accept": "application/json"}) == {"Accept": "application/json"}


def test_later_headers_win_and_inputs_are_not_modified():
    defaults = {"Accept": "application/json", "X-A": "default"}
    extra = {"X-A": "extra", "X-B": "extra"}
    per_call = {"X-B": "call"}
    merged = request_headers("DELETE", defaults, None, extra, per_call)
    assert merged == {"Accept": "application/json", "X-A": "extra", "X-B": "call", CSRF_HEADER: "airflow"}
    assert defaults == {"Accept": "application/json", "X-A": "default"}
    assert extra == {"X-A": "extra", "X-B": "extra"}
    assert per_call == {"X-B": "call"}


def test_caller_csrf_value_is_kept():
    assert request_headers("POST", {CSRF_HEADER: "team-a"})[CSRF_HEADER] == "team-a"


# ---- reading a reply ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204, 299])
@pytest.mark.parametrize("body", [{"id": 1, "state": "running"}, [1, 2], "bare", None])
def test_2xx_json_is_returned(status, body):
    assert read_response(response(status, json.dumps(body)), method="GET", endpoint="/batches/1") == body


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (401, LivyAuthError),
        (403, LivyAuthError),
        (404, LivyHttpError),  # a 404 whose body is not Livy's "not found" (see below)
        (400, LivyHttpError),
        (409, LivyHttpError),
        (500, LivyHttpError),
        (502, LivyHttpError),
        (302, LivyHttpError),
    ],
)
def test_error_statuses_are_typed(status, error_class):
    with pytest.raises(error_class) as error:
        read_response(
            response(status, json.dumps({"msg": f"livy says {status}"})),
            method="GET",
            endpoint="/batches/3",
            batch=3,
        )
    assert type(error.value) is error_class
    assert isinstance(error.value, LivyError)
    assert isinstance(error.value, AirflowException)
    assert error.value.http_status == status
    assert error.value.endpoint == "/batches/3"
    assert error.value.batch == 3
    assert error.value.livy_message == f"livy says {status}"
    message = str(error.value)
    assert str(status) in message
    assert "batch 3" in message
    assert "GET /batches/3" in message
    assert f"livy says {status}" in message


LIVY_NOT_FOUND_BODIES = [
    (json.dumps({"msg": "Session '3' not found."}), "/batches/3"),
    (json.dumps({"msg": "Session '3' not found."}), "/batches/3/state"),
    (json.dumps({"msg": "Session '3' not found."}), "/gateway/livy/batches/3/log"),
    (json.dumps("Session '3' not found."), "/batches/3"),
    (json.dumps({"msg": "Session 'etl-s1-x' not found."}), "/batches/etl-s1-x"),
    ('{"msg":"Session \'3\' not found."}', "/batches/3"),
    (json.dumps({"msg": "Session 3 already stopped."}), "/batches/3"),
    (json.dumps({"msg": "Session '3' not found."}), "/version"),
]


@pytest.mark.parametrize(("body", "endpoint"), LIVY_NOT_FOUND_BODIES)
def test_livys_own_not_found_is_batch_not_found(body, endpoint):
    assert is_livy_not_found(body, endpoint)
    with pytest.raises(LivyBatchNotFound) as error:
        read_response(response(404, body), method="GET", endpoint=endpoint, batch=3)
    assert error.value.http_status == 404
    assert error.value.endpoint == endpoint


@pytest.mark.parametrize(
    ("body", "endpoint"),
    [
        ("<html><body><h2>HTTP ERROR 404</h2>Not Found</body></html>", "/batches/3"),
        ("", "/batches/3"),
        ("Not Found", "/batches/3"),
        (json.dumps({"msg": "Not Found"}), "/batches/3"),
        (json.dumps({"message": "Session '3' not found."}), "/batches/3"),
        (json.dumps({"msg": "Session '3' not found. Try again"}), "/batches/3"),
        (json.dumps({"msg": "Session '7' not found."}), "/batches/3"),  # about another batch
        (json.dumps({"msg": "Session 'x' not found."}), "/batches/etl-s1-x"),
        (json.dumps({"status": 404, "error": "Not Found", "path": "/batches/3"}), "/batches/3"),
        (json.dumps(["Session '3' not found."]), "/batches/3"),
        (json.dumps(None), "/batches/3"),
    ],
    ids=[
        "html",
        "empty",
        "text",
        "other-msg",
        "other-key",
        "more-text",
        "other-id",
        "other-name",
        "gateway-json",
        "list",
        "null",
    ],
)
def test_any_other_404_is_a_plain_http_error(body, endpoint):
    assert not is_livy_not_found(body, endpoint)
    with pytest.raises(LivyHttpError) as error:
        read_response(response(404, body), method="GET", endpoint=endpoint, batch=3)
    assert type(error.value) is LivyHttpError
    assert error.value.http_status == 404
    assert error.value.endpoint == endpoint
    assert "not Livy's own" in str(error.value)


def test_not_found_text_on_another_status_is_not_batch_not_found():
    with pytest.raises(LivyHttpError) as error:
        read_response(
            response(500, json.dumps({"msg": "Session '3' not found."})), method="GET", endpoint="/batches/3"
        )
    assert type(error.value) is LivyHttpError


def test_error_without_a_batch_names_livy():
    with pytest.raises(LivyHttpError) as error:
        read_response(response(500, '{"msg": "boom"}'), method="GET", endpoint="/version")
    assert error.value.batch is None
    assert "/version" in str(error.value)


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"msg": "Rejected, Reason: Duplicate session name: Some(etl-s1-abc) for session 3"}),
        json.dumps({"msg": "Duplicate session name: Some(etl-s1-abc) for session 3"}),
        json.dumps("Duplicate session name: Some(etl-s1-abc)"),
    ],
    ids=["livy-0.8-msg", "livy-0.7-msg", "livy-0.6-bare-string"],
)
def test_duplicate_name_is_typed(body):
    with pytest.raises(LivyDuplicateBatchName) as error:
        read_response(response(400, body), method="POST", endpoint="/batches", batch="etl-s1-abc")
    assert error.value.http_status == 400
    assert "Duplicate session name: Some(etl-s1-abc)" in error.value.livy_message
    assert error.value.batch == "etl-s1-abc"


def test_duplicate_name_text_on_another_status_is_not_a_duplicate():
    body = json.dumps({"msg": "Duplicate session name: Some(x)"})
    with pytest.raises(LivyHttpError) as error:
        read_response(response(500, body), method="POST", endpoint="/batches")
    assert type(error.value) is LivyHttpError


def test_other_400_is_a_plain_http_error():
    body = json.dumps({"msg": "Rejected, too many sessions are being created!"})
    with pytest.raises(LivyHttpError) as error:
        read_response(response(400, body), method="POST", endpoint="/batches")
    assert type(error.value) is LivyHttpError
    assert error.value.livy_message == "Rejected, too many sessions are being created!"


def test_bare_string_error_body_is_surfaced():
    text = 'Unrecognized field "ttl" (class org.apache.livy.server.batch.CreateBatchRequest)'
    with pytest.raises(LivyHttpError) as error:
        read_response(response(400, json.dumps(text)), method="POST", endpoint="/batches")
    assert error.value.livy_message == text
    assert text in str(error.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", ""),
        (
            "<html>\n  <body>Missing Required Header\n for CSRF protection.</body>\n</html>",
            "<html> <body>Missing Required Header for CSRF protection.</body> </html>",
        ),
        ('{"error": "no msg field"}', '{"error": "no msg field"}'),
        ('{"msg": 42}', '{"msg": 42}'),
    ],
    ids=["empty", "html", "json-without-msg", "non-string-msg"],
)
def test_other_error_bodies_are_quoted_on_one_line(body, expected):
    with pytest.raises(LivyHttpError) as error:
        read_response(response(400, body), method="POST", endpoint="/batches")
    assert error.value.livy_message == expected


def test_long_error_bodies_are_shortened():
    with pytest.raises(LivyHttpError) as error:
        read_response(response(502, "x" * 5000), method="GET", endpoint="/batches/3", batch=3)
    assert len(error.value.livy_message) < 250
    assert len(str(error.value)) < 600


def test_long_livy_messages_are_kept_whole():
    # Livy's own message is what the user needs; only raw bodies are cut.
    message = "requirement failed: " + "y" * 400
    with pytest.raises(LivyHttpError) as error:
        read_response(response(400, json.dumps({"msg": message})), method="POST", endpoint="/batches")
    assert error.value.livy_message == message


def test_2xx_html_is_a_response_error():
    page = "<html><head><title>Knox login</title></head><body>Please sign in</body></html>"
    with pytest.raises(LivyResponseError) as error:
        read_response(response(200, page), method="GET", endpoint="/batches/3/state", batch=3)
    assert not isinstance(error.value, LivyHttpError)
    assert isinstance(error.value, AirflowException)
    assert error.value.endpoint == "/batches/3/state"
    assert error.value.batch == 3
    message = str(error.value)
    assert "batch 3" in message
    assert "/batches/3/state" in message
    assert "Knox login" in message


def test_2xx_huge_non_json_body_is_shortened():
    with pytest.raises(LivyResponseError) as error:
        read_response(response(200, "<p>" * 3000), method="GET", endpoint="/batches/3", batch=3)
    assert len(str(error.value)) < 600


# ---- required fields ------------------------------------------------------------------------------------


def test_require_field_returns_the_value():
    assert require_field({"id": 7}, "id", endpoint="/batches") == 7
    assert require_field({"appId": None}, "appId", endpoint="/batches/7") is None


@pytest.mark.parametrize("reply", [{"state": "starting"}, [], "7", None, 7])
def test_require_field_missing(reply):
    with pytest.raises(LivyResponseError) as error:
        require_field(reply, "id", endpoint="/batches", batch="etl-s1-abc")
    assert error.value.endpoint == "/batches"
    assert error.value.batch == "etl-s1-abc"
    assert "'id'" in str(error.value)
    assert "/batches" in str(error.value)


# ---- refusals and lost replies ----------------------------------------------------------------------------


def _http_error(status: int, message: str = "no", error_class: type[LivyHttpError] = LivyHttpError):
    return error_class("x", endpoint="/batches", http_status=status, livy_message=message)


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        (_http_error(400), True),
        (_http_error(401, error_class=LivyAuthError), True),
        (_http_error(403, error_class=LivyAuthError), True),
        (_http_error(404, error_class=LivyBatchNotFound), True),
        (_http_error(499), True),
        (_http_error(400, "Duplicate session name", LivyDuplicateBatchName), False),
        (_http_error(500), False),
        (_http_error(502), False),
        (_http_error(503), False),
        (_http_error(302), False),
    ],
    ids=["400", "401", "403", "404", "499", "duplicate", "500", "502", "503", "302"],
)
def test_is_refusal(error, refused):
    assert is_refusal(error) is refused


@pytest.mark.parametrize(
    "error",
    [
        requests.ConnectionError("refused"),
        requests.Timeout("slow"),
        requests.ReadTimeout("read"),
        requests.ConnectTimeout("connect"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_lost_reply_errors(error):
    assert isinstance(error, LOST_REPLY_ERRORS)


@pytest.mark.parametrize(
    "error", [requests.HTTPError("500"), ValueError("x"), LivyResponseError("x", endpoint="/")]
)
def test_other_errors_are_not_lost_replies(error):
    assert not isinstance(error, LOST_REPLY_ERRORS)


# ---- transient errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (429, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (409, False),
        (302, False),
        (None, False),
    ],
)
def test_is_transient_status(status, transient):
    assert is_transient(status) is transient
    http_error = LivyHttpError("x", endpoint="/batches/1", http_status=status, livy_message="x")
    assert is_transient(http_error) is (transient if status is not None else False)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (aiohttp.ServerDisconnectedError(), True),
        (aiohttp.ClientOSError(104, "reset by peer"), True),
        (aiohttp.ServerTimeoutError("read timeout"), True),
        (aiohttp.ClientPayloadError("truncated"), True),
        (TimeoutError(), True),
        (aiohttp.InvalidURL("not a url"), False),
        (requests.ConnectionError("refused"), True),
        (requests.ReadTimeout("read"), True),
        (requests.exceptions.ChunkedEncodingError("truncated"), True),
        (requests.exceptions.SSLError("certificate verify failed"), False),
        (requests.exceptions.InvalidURL("not a url"), False),
        (ValueError("a bug"), False),
        (LivyResponseError("x", endpoint="/"), False),
        (RuntimeError("event loop trouble"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_is_transient_error(error, transient):
    assert is_transient(error) is transient


# ---- read retries ------------------------------------------------------------------------------------------


def response(status: int, text: str = "") -> requests.Response:
    reply = requests.Response()
    reply.status_code = status
    reply._content = text.encode()
    return reply


class Script:
    """A read that answers (or raises) the scripted outcomes in order; counts its calls."""

    def __init__(self, *outcomes: requests.Response | Exception) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self) -> requests.Response:
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def read_with(retry_args: dict[str, Any], read: Callable[[], requests.Response]) -> requests.Response:
    return tenacity.Retrying(**read_retry_args(retry_args))(read)


def test_5xx_replies_are_retried():
    read = Script(response(503, "unavailable"), response(502, "bad gateway"), response(200, "{}"))
    assert read_with(FAST_RETRY, read).status_code == 200
    assert read.calls == 3


@pytest.mark.parametrize(
    "error",
    [requests.ConnectionError("refused"), requests.ReadTimeout("slow")],
    ids=["connection", "timeout"],
)
def test_lost_replies_are_retried(error):
    read = Script(error, response(200, "{}"))
    assert read_with(FAST_RETRY, read).status_code == 200
    assert read.calls == 2


def test_a_tls_error_is_not_retried():
    read = Script(requests.exceptions.SSLError("certificate verify failed"), response(200, "{}"))
    with pytest.raises(requests.exceptions.SSLError):
        read_with(FAST_RETRY, read)
    assert read.calls == 1


def test_429_replies_are_retried():
    read = Script(response(429), response(200))
    assert read_with(FAST_RETRY, read).status_code == 200
    assert read.calls == 2


@pytest.mark.parametrize("status", [200, 400, 401, 403, 404, 409])
def test_other_replies_are_not_retried(status):
    read = Script(response(status), response(200))
    assert read_with(FAST_RETRY, read).status_code == status
    assert read.calls == 1


def test_other_exceptions_are_not_retried():
    read = Script(ValueError("a bug"), response(200))
    with pytest.raises(ValueError, match="a bug"):
        read_with(FAST_RETRY, read)
    assert read.calls == 1


def test_exhausted_retries_return_the_last_reply():
    read = Script(response(503, "first"), response(503, "second"), response(504, "third"), response(200))
    last = read_with(FAST_RETRY, read)
    assert (last.status_code, last.text) == (504, "third")
    assert read.calls == 3


def test_exhausted_retries_reraise_the_last_error():
    read = Script(requests.ConnectionError("first"), requests.ConnectionError("last"), response(200))
    with pytest.raises(requests.ConnectionError, match="last"):
        read_with({**FAST_RETRY, "stop": tenacity.stop_after_attempt(2)}, read)
    assert read.calls == 2


def test_without_a_stop_reads_give_up_after_five_attempts():
    read = Script(response(503))
    assert read_with({"wait": tenacity.wait_none()}, read).status_code == 503
    assert read.calls == 5


def test_caller_keys_win():
    read = Script(response(404, "not yet"), response(200))
    retry_args = {**FAST_RETRY, "retry": tenacity.retry_if_result(lambda reply: reply.status_code == 404)}
    assert read_with(retry_args, read).status_code == 200
    assert read.calls == 2

    read = Script(response(503))
    assert (
        read_with({"wait": tenacity.wait_none(), "stop": tenacity.stop_after_attempt(7)}, read).status_code
        == 503
    )
    assert read.calls == 7


def test_read_retry_args_does_not_modify_the_callers_dict():
    retry_args = dict(FAST_RETRY)
    completed = read_retry_args(retry_args)
    assert retry_args == FAST_RETRY
    assert completed["stop"] is FAST_RETRY["stop"]
    assert completed["wait"] is FAST_RETRY["wait"]


# ---- log pages --------------------------------------------------------------------------------------------


def page(total: int, lines: list[Any], start: int = 0) -> dict[str, Any]:
    return {"id": 2, "from": start, "total": total, "log": lines}


def read_all(pages: dict[int, dict[str, Any]], session_id: int = 2) -> tuple[list[int], list[str]]:
    """Drive a pager over ``pages`` (keyed by ``from``); return the starts asked for and the lines."""
    pager = LogPager(session_id)
    starts = []
    while (start := pager.next_start) is not None:
        starts.append(start)
        pager.add(pages[start])
    return starts, pager.lines


def test_pages_are_read_until_the_total():
    lines = [f"line {number}" for number in range(250)]
    pages = {start: page(250, lines[start : start + 100], start) for start in (0, 100, 200)}
    assert read_all(pages) == ([0, 100, 200], lines)
    assert LogPager.page_size == 100


def test_an_empty_log_is_one_page():
    assert read_all({0: page(0, [])}) == ([0], [])


def test_an_empty_page_ends_the_read():
    # Livy's ring buffer rotated (or the batch was collected) between pages.
    assert read_all({0: page(500, ["only"]), 1: page(500, [])}) == ([0, 1], ["only"])


def test_a_shrinking_total_ends_the_read():
    pages = {0: page(250, ["a"] * 100), 100: page(150, ["b"] * 50, 100)}
    starts, lines = read_all(pages)
    assert starts == [0, 100]
    assert lines == ["a"] * 100 + ["b"] * 50


def test_lines_are_kept_as_strings():
    assert read_all({0: page(3, ["text", 42, None])}) == ([0], ["text", "42", "None"])


@pytest.mark.parametrize(
    "bad_page",
    [
        {"id": 2, "from": 0, "total": 3},
        {"total": 3, "log": "x"},
        [],
        None,
    ],
    ids=["no-log", "log-not-a-list", "list", "none"],
)
def test_malformed_pages_raise(bad_page):
    pager = LogPager(2)
    with pytest.raises(LivyResponseError) as error:
        pager.add(bad_page)
    assert error.value.batch == 2
    assert "'log'" in str(error.value)
    assert pager.lines == []


@pytest.mark.parametrize(
    "page", [{"log": ["a"]}, {"log": ["a"], "total": "3"}], ids=["no-total", "odd-total"]
)
def test_a_page_without_a_usable_total_is_the_last(page):
    # Some gateways (and 4.6.4 users' test doubles) send no total: the page is all there is.
    pager = LogPager(2)
    pager.add(page)
    assert pager.lines == ["a"]
    assert pager.next_start is None
