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
What both Livy hooks share: endpoints, the ``POST /batches`` body and the checks of its fields.

The checks keep provider 4.6.4's names and behaviour (its tests and its users' call them); the
error messages add the argument's name.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import requests

from airflow.providers.apache.livy.utils.batch_record import validate_batch_id
from airflow.providers.apache.livy.utils.states import TERMINAL_STATES

log = logging.getLogger(__name__)

DEFAULT_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
"""The headers of every request to Livy, before the hook's ``extra_headers``."""


def sanitize_endpoint_prefix(endpoint_prefix: str | None) -> str:
    """Return ``endpoint_prefix`` as ``/prefix`` (one leading slash, none trailing), or ``""``."""
    stripped = endpoint_prefix.strip("/") if endpoint_prefix else ""
    return f"/{stripped}" if stripped else ""


def batch_ui_url(base_url: str | None, endpoint_prefix: str, batch_id: int) -> str | None:
    """The page of batch ``batch_id`` in Livy's web UI under ``base_url``, without credentials."""
    if not base_url:
        return None
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    netloc = parts.netloc.rpartition("@")[2]
    path = f"{parts.path.rstrip('/')}{endpoint_prefix}/ui/batch/{batch_id}/log"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def async_auth_type(auth_type: Any | None) -> type | None:
    """
    The ``aiohttp`` auth class matching ``requests`` auth class ``auth_type``, for the triggerer.

    The worker talks to Livy through ``requests``, the triggerer through ``aiohttp``; only basic
    auth has a counterpart. For any other class the triggerer keeps ``aiohttp``'s basic auth with
    the connection's login, as provider 4.6.4 did, and a warning says so.
    """
    if auth_type is None:
        return None
    if auth_type is requests.auth.HTTPBasicAuth:
        return aiohttp.BasicAuth
    log.warning(
        "deferrable=True: the triggerer talks to Livy through aiohttp, which has no counterpart of %r; "
        "it uses basic auth with the connection's login instead",
        auth_type,
    )
    return None


class _LivyHookBase:
    """What both Livy hooks share: identity, terminal states, endpoints and the POST body."""

    TERMINAL_STATES = set(TERMINAL_STATES)

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
        lists = {"args": args, "jars": jars, "pyFiles": py_files, "files": files, "archives": archives}
        sizes = {"driverMemory": driver_memory, "executorMemory": executor_memory}
        for key, values in lists.items():
            if values:
                _LivyHookBase._validate_list_of_stringables(values, _FIELD_NAMES[key])
        for key, size in sizes.items():
            _LivyHookBase._validate_size_format(size, _FIELD_NAMES[key])
        _LivyHookBase._validate_extra_conf(conf)
        optional: dict[str, Any] = {
            "proxyUser": proxy_user,
            "className": class_name,
            **{key: list(values) if values else None for key, values in lists.items()},
            "args": [str(value) for value in args] if args else None,
            **sizes,
            "driverCores": driver_cores,
            "executorCores": executor_cores,
            "numExecutors": num_executors,
            "queue": queue,
            "name": name,
            "conf": conf,
        }
        return {"file": file, **{key: value for key, value in optional.items() if value}}

    @staticmethod
    def _validate_size_format(size: str | None, field: str | None = None) -> bool:
        """
        Check that ``size`` is a JVM memory size (``512m``, ``2g``, ``1GB``...), if given.

        :param field: the argument's name, for the error.
        :raises ValueError: it is not.
        """
        if size and not (isinstance(size, str) and _SIZE_PATTERN.fullmatch(size)):
            where = f" in '{field}' (a JVM memory size such as '512m' or '2g')" if field else ""
            raise ValueError(f"Invalid java size format for string'{size}'{where}")
        return True

    @staticmethod
    def _validate_list_of_stringables(
        vals: Sequence[str | int | float] | None, field: str | None = None
    ) -> bool:
        """
        Check that ``vals`` is a list or tuple of strings and numbers (sent as strings).

        :param field: the argument's name, for the error.
        :raises ValueError: it is not.
        """
        if not isinstance(vals, list | tuple) or not all(isinstance(val, str | int | float) for val in vals):
            where = f" for '{field}', got {type(vals).__name__}" if field else ""
            raise ValueError(f"List of strings expected{where}")
        return True

    @staticmethod
    def _validate_extra_conf(conf: dict[Any, Any] | None) -> bool:
        """
        Check that ``conf``, if given, maps non-empty names to non-empty strings or numbers.

        Values are never put in the error: Spark conf often carries credentials.

        :raises ValueError: it does not.
        """
        if not conf:
            return True
        if not isinstance(conf, dict):
            raise ValueError("'conf' argument must be a dict")
        for key, value in conf.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"'conf' keys must be non-empty strings, got {key!r}")
            if not isinstance(value, str | int | float) or value == "":
                raise ValueError(f"'conf' values must be either strings or ints (or floats); {key!r} is not")
        return True

    @staticmethod
    def _validate_session_id(session_id: int | str) -> None:
        """
        Check that ``session_id`` is a Livy batch id.

        :raises TypeError: it is not an integer (or a string of digits).
        :raises ValueError: it is outside Livy's id range.
        """
        validate_batch_id(session_id)

    @staticmethod
    def _parse_post_response(response: dict[Any, Any]) -> Any:
        """The batch id in Livy's reply to ``POST /batches`` (``None`` if it has none)."""
        return response.get("id")

    @staticmethod
    def _parse_request_response(response: dict[Any, Any], parameter: Any) -> Any:
        """The field ``parameter`` of a reply from Livy (``None`` if it has none)."""
        return response.get(parameter)


_SIZE_PATTERN = re.compile(r"\d+[kmgtp]b?", re.IGNORECASE)
_FIELD_NAMES = {
    "args": "args",
    "jars": "jars",
    "pyFiles": "py_files",
    "files": "files",
    "archives": "archives",
    "driverMemory": "driver_memory",
    "executorMemory": "executor_memory",
}
"""The argument behind each field of the POST body, for errors."""
