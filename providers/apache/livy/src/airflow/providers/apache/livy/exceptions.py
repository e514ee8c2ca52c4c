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
"""Errors raised when Livy answers something the provider cannot use."""

from __future__ import annotations

from typing import Any

from airflow.exceptions import AirflowException


class LivyError(AirflowException):
    """A request to Livy failed; the message names the endpoint and, where known, the batch."""

    def __init__(self, message: str, *, endpoint: str, batch: int | str | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.batch = batch


class LivyHttpError(LivyError):
    """Livy (or a gateway in front of it) answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        http_status: int,
        livy_message: str,
        batch: int | str | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint, batch=batch)
        self.http_status = http_status
        self.livy_message = livy_message


class LivyBatchNotFound(LivyHttpError):
    """404: Livy does not know this batch (finished and garbage-collected, deleted, or Livy restarted)."""


class LivyAuthError(LivyHttpError):
    """401 or 403: the credentials were refused; retrying cannot help."""


class LivyDuplicateBatchName(LivyHttpError):
    """400 "Duplicate session name": a batch with this name is already in Livy's memory."""


class LivyBatchRejected(LivyHttpError):
    """Livy (or a gateway in front of it) refused ``POST /batches`` with a 4xx reply."""


class LivyBatchNotCreated(LivyError):
    """The reply to ``POST /batches`` was lost, and Livy holds no batch under the name it carried."""


class LivyResponseError(LivyError):
    """Livy answered 2xx with a body that is not the JSON the API promises (e.g. a gateway's HTML page)."""


class LivyBatchReplaced(AirflowException):
    """Livy holds another batch under this batch's id: it restarted without recovery and reused the id."""


class LivyBatchTakenOver(AirflowException):
    """A later try of the task owns the batch now: this (stale) try must not touch it."""


class LivyTaskStopped(AirflowException):
    """
    The task process was told to stop (``on_kill``); the message says what became of the batch.

    :param decision: the :class:`~airflow.providers.apache.livy.utils.kill_policy.KillDecision`.
    :param outcome: the :class:`~airflow.providers.apache.livy.utils.kill_policy.KillOutcome`: what
        was actually done, which a fence or Livy may have made differ from the decision.
    """

    def __init__(self, message: str, *, decision: Any = None, outcome: Any = None) -> None:
        super().__init__(message)
        self.decision = decision
        self.outcome = outcome
