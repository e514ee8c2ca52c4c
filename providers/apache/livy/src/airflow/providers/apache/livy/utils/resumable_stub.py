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
Stand-in for ``airflow.sdk.ResumableJobMixin`` on Airflow < 3.3.

Airflow versions before 3.3 have no task state store, so nothing can survive a worker crash:
``execute_resumable`` submits, waits and returns, exactly as the operator did before AIP-103.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import JsonValue


class ResumableJobMixin:
    """Keep the provider importable on Airflow < 3.3; every try submits a new job."""

    external_id_key: str = "remote_job_id"

    def __init__(self, *, durable: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.durable = durable

    def execute_resumable(self, context: Any) -> Any:
        """Submit the job, wait for it and return its result (no crash recovery)."""
        external_id = self.submit_job(context)
        self.poll_until_complete(external_id, context)
        return self.get_job_result(external_id, context)

    def submit_job(self, context: Any) -> JsonValue:
        raise NotImplementedError

    def get_job_status(self, external_id: JsonValue, context: Any) -> str:
        raise NotImplementedError

    def is_job_active(self, status: str) -> bool:
        raise NotImplementedError

    def is_job_succeeded(self, status: str) -> bool:
        raise NotImplementedError

    def poll_until_complete(self, external_id: JsonValue, context: Any) -> Any:
        raise NotImplementedError

    def get_job_result(self, external_id: JsonValue, context: Any) -> Any:
        raise NotImplementedError
