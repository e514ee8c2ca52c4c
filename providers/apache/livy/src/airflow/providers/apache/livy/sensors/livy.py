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
"""Sensor that waits for a Livy batch to finish."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, BaseSensorOperator

from airflow.providers.apache.livy.hooks.livy import LivyHook
from airflow.providers.apache.livy.utils.states import BatchOutcome, batch_outcome

if TYPE_CHECKING:
    from airflow.sdk import Context


class LivySensor(BaseSensorOperator):
    """
    Wait for a Livy batch to finish: succeed on ``success``, fail on ``dead``, ``killed`` or ``error``.

    :param batch_id: identifier of the monitored batch. (templated)
    :param livy_conn_id: reference to a pre-defined Livy connection.
    :param livy_conn_auth_type: the ``requests`` auth class for the Livy connection.
    :param extra_options: options passed to ``requests`` (e.g. ``{"timeout": 30}``).
    :param endpoint_prefix: path prefix in front of ``/batches``.
    """

    template_fields: Sequence[str] = ("batch_id",)

    def __init__(
        self,
        *,
        batch_id: int | str,
        livy_conn_id: str = "livy_default",
        livy_conn_auth_type: Any | None = None,
        extra_options: dict[str, Any] | None = None,
        endpoint_prefix: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_id = batch_id
        self._livy_conn_id = livy_conn_id
        self._livy_conn_auth_type = livy_conn_auth_type
        self._livy_hook: LivyHook | None = None
        self._extra_options = extra_options or {}
        self._endpoint_prefix = endpoint_prefix

    def get_hook(self) -> LivyHook:
        """Return the (cached) :class:`~.LivyHook`."""
        if self._livy_hook is None or not isinstance(self._livy_hook, LivyHook):
            self._livy_hook = LivyHook(
                livy_conn_id=self._livy_conn_id,
                extra_options=self._extra_options,
                auth_type=self._livy_conn_auth_type,
                endpoint_prefix=self._endpoint_prefix,
            )
        return self._livy_hook

    def poke(self, context: Context) -> bool:
        """Return whether the batch finished successfully; raise if it finished unsuccessfully."""
        state = self.get_hook().get_batch_state(self.batch_id)
        outcome = batch_outcome(state)
        if outcome is BatchOutcome.FAILED:
            raise AirflowException(f"Livy batch {self.batch_id} did not succeed: it ended {state.value}")
        self.log.info("Livy batch %s is %s", self.batch_id, state.value)
        return outcome is BatchOutcome.SUCCEEDED
