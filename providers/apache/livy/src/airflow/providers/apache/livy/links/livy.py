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
Extra links of ``LivyOperator``: the batch in Livy's UI, the Spark UI and the Spark driver log.

The operator stores each URL as soon as it is known (and again after a reconnect) as the XCom under
the link's :attr:`~airflow.sdk.BaseOperatorLink.xcom_key`, the key Airflow 3's API server reads a
link from, so the links work while the batch runs (:func:`write_link_xcom`, as Airflow stores links);
:meth:`LivyLink.get_link` reads the same XCom (Airflow 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey


class LivyLink(BaseOperatorLink):
    """A link whose URL the operator pushes as an XCom under its ``xcom_key``."""

    url_key: ClassVar[str]
    """The name of its URL in what ``DurableBatch.links()`` returns."""

    @property
    def xcom_key(self) -> str:
        """The XCom key Airflow 3 reads the link from (``_link_<class name>``; Airflow 2 has none)."""
        return f"_link_{type(self).__name__}"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        """The URL pushed for this task instance, or ``""`` while none is known."""
        from airflow.providers.common.compat.sdk import XCom

        url = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return url if isinstance(url, str) else ""


class LivyBatchLink(LivyLink):
    """The batch's page in Livy's web UI (its log)."""

    name = "Livy Batch"
    url_key = "livy_batch"


class SparkUiLink(LivyLink):
    """The Spark application's web UI (``appInfo.sparkUiUrl``)."""

    name = "Spark UI"
    url_key = "spark_ui"


class SparkDriverLogLink(LivyLink):
    """The Spark driver's log (``appInfo.driverLogUrl``, kept after YARN clears it)."""

    name = "Spark Driver Log"
    url_key = "driver_log"


LIVY_LINKS: tuple[LivyLink, ...] = (LivyBatchLink(), SparkUiLink(), SparkDriverLogLink())
"""The links of ``LivyOperator``, in the order the UI shows them."""


def push_links(ti: Any, links: Mapping[str, str]) -> None:
    """Store each URL of ``links`` (by :attr:`LivyLink.url_key`) as the XCom its link reads."""
    for link in LIVY_LINKS:
        url = links.get(link.url_key)
        if url:
            write_link_xcom(ti, link.xcom_key, url)


def write_link_xcom(ti: Any, key: str, url: str) -> None:
    """
    Store one link's URL where Airflow keeps links, as Airflow itself does.

    On Airflow 3 that is the metadata database, past any custom XCom backend (the task runner
    writes the links it computes at the end of a try the same way); it takes a running task
    instance, so a stand-in for one (a test double) gets no link. On Airflow 2 the task pushes the
    XCom (``ti.xcom_push``) that :meth:`LivyLink.get_link` reads.
    """
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance, _xcom_push_to_db
    except ImportError:  # Airflow 2
        ti.xcom_push(key=key, value=url)
        return
    if isinstance(ti, RuntimeTaskInstance):
        _xcom_push_to_db(ti, key, url)
