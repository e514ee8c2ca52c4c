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
Shared by the tests of the durable core's parts: one task run, and tries played as the mixin plays them.

Each test plays one or two tries the way ``ResumableJobMixin`` drives them: ``resume`` with what the
store holds, then ``submit`` when told to, ``wait``, ``result`` and ``mark_delivered``, through the
:class:`~.DurableBatch` facade, against the scripted Livy (``fake_livy.py``).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.providers.apache.livy.hooks.livy import LivyHook
from airflow.providers.apache.livy.utils.batch_record import BatchRecord
from airflow.providers.apache.livy.utils.durable_batch import (
    DurableBatch,
    ResumeDecision,
    TaskRun,
)
from airflow.providers.apache.livy.utils.kill_policy import KillAction, KillPolicy

KEY = "livy_batch_record"
ID_KEY = "livy_batch_id"
"""Where the mixin keeps the batch id (the operator's ``external_id_key``)."""
LOG = logging.getLogger("durable_batch_test")
TASK = TaskRun(dag_id="etl", task_id="spark_job", run_id="manual__1", map_index=-1, try_number=1, first_try=1)
SPARK = {"file": "pi.py", "conf": {"spark.executor.cores": "2"}, "name": None}
FAILED = ["dead", "killed", "error"]


def our_name(submission: int = 1) -> str:
    return TASK.batch_name(submission, None)


def durable(store: Any, *, try_number: int = 1, first_try: int = 1) -> DurableBatch:
    task = TaskRun(**{**TASK.__dict__, "try_number": try_number, "first_try": first_try})
    return DurableBatch(LivyHook(), store=store, key=KEY, id_key=ID_KEY, task=task, log=LOG)


def stored(store) -> BatchRecord:
    return BatchRecord.from_stored(store.get(KEY))


def requests_sent(livy) -> list[str]:
    return [f"{entry[1]} {entry[2]}" for entry in livy.journal if entry[0] == "http"]


def one_try(store, *, try_number: int = 1, first_try: int = 1, interval: float = 0.001) -> DurableBatch:
    """One try as the mixin drives it: resume what is stored, else submit; wait; deliver."""
    batch = durable(store, try_number=try_number, first_try=first_try)
    stored_value = store.get(ID_KEY)
    decision = ResumeDecision.of(batch.resume(stored_value)) if stored_value else ResumeDecision.SUBMIT
    if decision is ResumeDecision.SUBMIT:
        batch.submit(SPARK)
        store.set(ID_KEY, batch.external_id())
    if decision is not ResumeDecision.RETURN_RESULT:
        batch.wait(interval)
    batch.result()
    batch.app_id()
    batch.mark_delivered()
    return batch


def policy(state: str | None, *, action: KillAction = KillAction.AUTO, retry: bool = True) -> KillPolicy:
    return KillPolicy(action, lambda: state, retry)
