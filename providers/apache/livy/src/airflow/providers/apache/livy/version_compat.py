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
The one place that knows which Airflow version is installed.

Everything version-dependent that the provider imports comes from here, so the rest of the code
reads the same on Airflow 2.11, 3.0-3.2 and 3.3+.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any


def get_base_airflow_version_tuple() -> tuple[int, int, int]:
    """Return the installed Airflow version as ``(major, minor, micro)``."""
    from airflow import __version__
    from packaging.version import Version

    version = Version(__version__)
    return version.major, version.minor, version.micro


AIRFLOW_V_3_0_PLUS = get_base_airflow_version_tuple() >= (3, 0, 0)

if TYPE_CHECKING or AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import BaseOperator, BaseSensorOperator
    from airflow.sdk.log import mask_secret
else:  # Airflow 2.11
    from airflow.models import BaseOperator
    from airflow.sensors.base import BaseSensorOperator
    from airflow.utils.log.secrets_masker import mask_secret

try:
    from airflow.sdk import ResumableJobMixin

    HAS_RESUMABLE_JOB_MIXIN = True
except ImportError:  # Airflow < 3.3 (AIP-103 landed in 3.3)
    from airflow.providers.apache.livy.utils.resumable_stub import (  # type: ignore[assignment]
        ResumableJobMixin,
    )

    HAS_RESUMABLE_JOB_MIXIN = False

if TYPE_CHECKING:
    from pydantic import JsonValue
else:
    JsonValue = Any

__all__ = [
    "AIRFLOW_V_3_0_PLUS",
    "HAS_RESUMABLE_JOB_MIXIN",
    "BaseOperator",
    "BaseSensorOperator",
    "JsonValue",
    "ResumableJobMixin",
    "mask_secret",
]
