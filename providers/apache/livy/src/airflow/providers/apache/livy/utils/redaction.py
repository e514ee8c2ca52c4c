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
The one policy for Spark conf values, which often carry credentials.

* Logs name conf *keys*, never values (:func:`describe_batch_body`).
* The trigger serializes every conf value as ``***`` (:func:`redact_spark_params`).
* Values under credential-like keys are registered with Airflow's secrets masker after templates
  are rendered (:func:`credential_conf_values`), so they are masked wherever they would appear.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***"
CREDENTIAL_CONF_KEY = re.compile(
    r"secret|passw(or)?d|token|credential|access\.?key|private\.?key|api\.?key|auth\.(key|secret|token)", re.I
)
"""Keys whose values are credentials; not ``spark.authenticate`` (``true``) or ``spark.yarn.principal``."""


def credential_conf_values(conf: Mapping[Any, Any] | None) -> list[str]:
    """The non-empty string values of ``conf`` whose keys look like credentials (none if not a mapping)."""
    if not isinstance(conf, Mapping):
        return []
    return [
        value
        for key, value in conf.items()
        if CREDENTIAL_CONF_KEY.search(str(key)) and isinstance(value, str) and value
    ]


def redact_spark_params(spark_params: Mapping[str, Any]) -> dict[str, Any]:
    """Copy ``spark_params`` with every Spark conf value replaced by ``***``."""
    conf = spark_params.get("conf")
    if not isinstance(conf, Mapping):
        return dict(spark_params)
    return {**spark_params, "conf": dict.fromkeys(conf, REDACTED)}


def describe_batch_body(body: Mapping[str, Any]) -> str:
    """Summarise a POST body for logs: file, class, name and conf *keys* only."""
    parts = [f"file={body.get('file')!r}"]
    parts.extend(
        f"{key}={body[key]!r}" for key in ("className", "name", "proxyUser", "queue") if body.get(key)
    )
    if body.get("conf"):
        parts.append(f"conf keys={sorted(str(key) for key in body['conf'])}")
    return ", ".join(parts)
