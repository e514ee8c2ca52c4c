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
Livy batch states and what each one means: the one place that classifies them.

Light on purpose (no HTTP client): the operator, the durable record, the sensor, the trigger and
both hooks import it.
"""

from __future__ import annotations

import logging
from enum import Enum

log = logging.getLogger(__name__)


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


FAILED_STATES = frozenset({BatchState.DEAD, BatchState.KILLED, BatchState.ERROR})
"""Livy's failed terminal states; ``error`` is an interactive-session state, counted as failed."""
TERMINAL_STATES = frozenset({BatchState.SUCCESS, *FAILED_STATES})
"""States a batch never leaves: the hooks' ``TERMINAL_STATES`` and the record's final states."""
TERMINAL_STATE_VALUES = frozenset(state.value for state in TERMINAL_STATES)


def batch_outcome(state: str | BatchState) -> BatchOutcome:
    """
    Classify a Livy batch state.

    ``success`` succeeded; ``dead``, ``killed`` and ``error`` failed; every other state, including
    ``recovering`` and states this provider does not know, is active (not finished). An unknown
    state is logged, never raised.
    """
    member = state if isinstance(state, BatchState) else BatchState(str(state))
    if member is BatchState.SUCCESS:
        return BatchOutcome.SUCCEEDED
    if member in FAILED_STATES:
        return BatchOutcome.FAILED
    if member.name == "UNKNOWN":
        log.warning(
            "Livy reported batch state %r, which is not known; treating it as not finished", member.value
        )
    return BatchOutcome.ACTIVE
