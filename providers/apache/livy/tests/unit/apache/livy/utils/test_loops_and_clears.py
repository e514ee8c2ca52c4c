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
Airflow 3.4: a batch per task loop iteration, and the batch an earlier run left running after a clear
that discarded the record (``utils/earlier_run.py``), against the scripted Livy.
"""

from __future__ import annotations

import hashlib
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from airflow.providers.apache.livy.exceptions import LivyHttpError
from airflow.providers.apache.livy.hooks.livy import LivyHook
from airflow.providers.apache.livy.operators.livy import LivyOperator
from airflow.providers.apache.livy.utils.batch_finder import MAX_EARLIER_RUNS
from airflow.providers.apache.livy.utils.batch_record import (
    BatchRecord,
    LoopPosition,
    batch_name,
    is_valid_batch_name,
)
from airflow.providers.apache.livy.utils.durable_batch import DurableBatch, TaskRun
from airflow.providers.apache.livy.utils.kill_policy import EarlierRunAction, KillAction, KillPolicy
from airflow.providers.apache.livy.version_compat import AIRFLOW_V_3_3_PLUS as HAS_RESUMABLE_JOB_MIXIN
from unit.apache.livy.task_context import FakeTaskInstance, MemoryTaskStateStore

KEY = "livy_batch_id"
LOG = logging.getLogger("loops_and_clears_test")
SPARK = {"file": "pi.py", "conf": {}, "name": None}
LOOP_REGION = "01a25247-43e0-78f4-9f56-63c7fe7d2f08"


def in_loop(iteration: int, *, region_id: str = LOOP_REGION, map_index: int = -1) -> TaskRun:
    """A task instance of a loop body: Airflow's region is the loop's, its index the iteration."""
    ti = FakeTaskInstance(map_index=map_index)
    ti.region_id, ti.region_index = region_id, iteration if map_index < 0 else map_index  # type: ignore[attr-defined]
    return TaskRun.of(ti, retries=0, loop=SimpleNamespace(index=iteration))


def durable(store: Any, task: TaskRun, action: KillAction = KillAction.AUTO) -> DurableBatch:
    return DurableBatch(LivyHook(), store=store, key=KEY, task=task, log=LOG, kill_policy=KillPolicy(action))


@pytest.fixture
def store_factory(journal):
    """New empty stores sharing the journal: one per loop iteration, as Airflow scopes them."""
    return lambda: MemoryTaskStateStore(journal)


def http(livy) -> list[str]:
    return [f"{entry[1]} {entry[2]}" for entry in livy.journal if entry[0] == "http"]


class TestNames:
    def test_outside_loops_names_are_those_of_earlier_releases(self):
        identity = "\x00".join(("etl", "spark", "manual__1", "2", ""))
        digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
        name = batch_name(dag_id="etl", task_id="spark", run_id="manual__1", map_index=2, submission=1)
        assert name == f"airflow-etl-spark-manual__1-m2-t1-s1-{digest}"

    def test_each_iteration_has_a_name_of_its_own_that_shows_it(self):
        names = [in_loop(i).batch_name(1, None) for i in range(3)]
        assert len(set(names)) == 3
        assert [name.split("-")[-4] for name in names] == ["i0", "i1", "i2"]
        assert all(is_valid_batch_name(name) for name in names)

    def test_a_name_stays_the_same_across_the_retries_of_one_iteration(self):
        first = in_loop(2)
        retry = TaskRun(**{**first.__dict__, "try_number": 2})
        assert retry.batch_name(1, None) == first.batch_name(1, None)

    def test_a_recreated_loop_does_not_reuse_the_names_of_the_one_it_replaced(self):
        # A clear of a loop forks its region: the same iteration, the same tries, another region.
        replaced, recreated = in_loop(1), in_loop(1, region_id="01a25247-ffff-7000-8000-000000000000")
        assert replaced.batch_name(1, None) != recreated.batch_name(1, None)

    def test_mapped_instances_inside_an_iteration_are_apart(self):
        names = {
            in_loop(i, region_id=f"region-of-iteration-{i}", map_index=m).batch_name(1, "job")
            for i in range(2)
            for m in range(2)
        }
        assert len(names) == 4
        assert all(name.startswith(("job-i0-t1-s1-", "job-i1-t1-s1-")) for name in names)

    def test_long_ids_and_iterations_stay_within_livys_limits(self):
        task = TaskRun(
            dag_id="d" * 250,
            task_id="t" * 250,
            run_id="r" * 250,
            map_index=99_999,
            try_number=1,
            first_try=1_000_000,
            loop=LoopPosition(iteration=2**31 - 1, region="x" * 100),
        )
        name = task.batch_name(10_000, None)
        assert is_valid_batch_name(name)
        assert len(name) <= 255
        assert is_valid_batch_name(task.batch_name(1, "p" * 300))


class TestLoopPosition:
    @pytest.mark.parametrize(
        "loop", [None, SimpleNamespace(), SimpleNamespace(index=True), SimpleNamespace(index=-1)]
    )
    def test_outside_a_loop_there_is_none(self, loop):
        assert LoopPosition.of(FakeTaskInstance(), loop) is None

    def test_inside_a_loop_it_is_airflows_region(self):
        ti = SimpleNamespace(region_id=LOOP_REGION, region_index=3)
        assert LoopPosition.of(ti, SimpleNamespace(index=3)) == LoopPosition(3, f"{LOOP_REGION}/3")


class TestIterations:
    def test_each_iteration_posts_and_returns_its_own_batch(self, livy, store_factory):
        # One store per iteration, as Airflow 3.4 scopes the task state store by region.
        ids = []
        for iteration in range(3):
            batch = durable(store_factory(), in_loop(iteration))
            ids.append(batch.submit(SPARK).batch_id)
        assert ids == [0, 1, 2]
        assert livy.post_count == 3
        assert len({post["body"]["name"] for post in livy.posted}) == 3


def earlier(first_try: int, submission: int = 1) -> str:
    """The name the run whose first try was ``first_try`` gave its ``submission``-th batch."""
    return TaskRun(**{**RERUN.__dict__, "first_try": first_try}).batch_name(submission, None)


RERUN = TaskRun(
    dag_id="etl", task_id="spark_job", run_id="manual__1", map_index=-1, try_number=3, first_try=3
)
"""Try 3, the first after a clear: tries 1 and 2 were the earlier run (first try 1)."""


class TestAfterAClearThatDiscardedTheRecord:
    def test_auto_deletes_the_batch_the_dead_worker_left_then_submits(self, livy, store):
        livy.add(earlier(1), ["running"], id=7)
        record = durable(store, RERUN).submit(SPARK)
        assert http(livy)[:4] == [
            f"GET /batches/{earlier(2)}",
            f"GET /batches/{earlier(1)}",
            f"GET /batches/{earlier(1, 2)}",
            "DELETE /batches/7",
        ]
        assert 7 not in livy.batches
        assert livy.posted[0]["body"]["name"] == RERUN.batch_name(1, None) == record.name
        assert record.batch_id == 8

    def test_keep_batch_adopts_it_and_submits_nothing(self, livy, store):
        livy.add(earlier(1, 1), ["dead"], id=6)
        livy.add(earlier(1, 2), ["running"], id=7)
        batch = durable(store, RERUN, KillAction.KEEP_BATCH)
        record = batch.submit(SPARK)
        assert livy.post_count == 0
        assert "DELETE /batches/7" not in http(livy)
        assert record == BatchRecord(
            name=earlier(1, 2), submission=2, batch_id=7, app_id="application_1_0007", owner_try=3
        )
        assert BatchRecord.from_stored(store.get(KEY)) == record

    def test_a_finished_batch_of_the_earlier_run_is_left_alone(self, livy, store):
        livy.add(earlier(1), ["success"], id=4)
        durable(store, RERUN).submit(SPARK)
        assert "DELETE /batches/4" not in http(livy)
        assert livy.post_count == 1

    def test_only_the_newest_earlier_run_livy_knows_is_looked_at(self, livy, store):
        livy.add(earlier(1), ["running"], id=1)  # an older run: a later run dealt with it already
        livy.add(earlier(2), ["success"], id=2)
        durable(store, RERUN).submit(SPARK)
        assert "DELETE /batches/1" not in http(livy)

    def test_a_failed_lookup_submits_nothing(self, livy, store):
        livy.override[f"GET /batches/{earlier(2)}"] = (503, "<html>Service Unavailable</html>")
        with pytest.raises(LivyHttpError):
            durable(store, RERUN).submit(SPARK)
        assert livy.post_count == 0
        assert store.get(KEY) is None

    def test_a_reply_without_a_state_is_a_clear_error(self, livy, store):
        livy.override[f"GET /batches/{earlier(2)}"] = (200, json.dumps({"id": 3, "name": earlier(2)}))
        with pytest.raises(Exception, match="has no state"):
            durable(store, RERUN).submit(SPARK)
        assert livy.post_count == 0

    def test_a_first_run_looks_nothing_up(self, livy, store):
        durable(store, TaskRun(**{**RERUN.__dict__, "try_number": 1, "first_try": 1})).submit(SPARK)
        assert http(livy) == ["POST /batches"]

    def test_the_look_back_is_bounded(self, livy, store):
        task = TaskRun(**{**RERUN.__dict__, "try_number": 50, "first_try": 50})
        durable(store, task).submit(SPARK)
        assert http(livy)[:-1] == [f"GET /batches/{earlier(f)}" for f in range(49, 49 - MAX_EARLIER_RUNS, -1)]

    def test_with_a_kept_record_nothing_is_looked_up(self, livy, store):
        store.set(KEY, BatchRecord(name=earlier(1), batch_id=0, final_state="dead", owner_try=2).to_json())
        durable(store, RERUN).submit(SPARK)
        assert http(livy) == ["POST /batches"]

    @pytest.mark.parametrize(
        ("action", "expected"),
        [
            (KillAction.AUTO, EarlierRunAction.DELETE),
            (KillAction.DELETE_BATCH, EarlierRunAction.DELETE),
            (KillAction.KEEP_BATCH, EarlierRunAction.ADOPT),
        ],
    )
    def test_the_rule_follows_on_kill_action(self, action, expected):
        assert action.on_earlier_run_batch is expected

    def test_earlier_first_tries(self):
        assert list(RERUN.earlier_first_tries(10)) == [2, 1]
        assert list(TaskRun(**{**RERUN.__dict__, "first_try": None}).earlier_first_tries(10)) == []


@pytest.mark.airflow33
@pytest.mark.skipif(not HAS_RESUMABLE_JOB_MIXIN, reason="needs Airflow 3.3+ (ResumableJobMixin)")
class TestLoopBodyOperator:
    def test_every_iteration_runs_a_batch_of_its_own(self, livy, store_factory):
        # The bug this guards against: iteration 1 posted iteration 0's name, Livy refused the
        # duplicate, and the operator returned iteration 0's finished batch as its own.
        results = []
        for iteration in range(3):
            ti = FakeTaskInstance()
            ti.region_id, ti.region_index = LOOP_REGION, iteration  # type: ignore[attr-defined]
            context = {
                "ti": ti,
                "task_state_store": store_factory(),
                "loop": SimpleNamespace(index=iteration),
            }
            operator = LivyOperator(task_id="spark_job", file="pi.py", polling_interval=0.001)
            results.append((operator.execute(context), ti.xcoms["app_id"]))
        assert results == [(i, f"application_1_{i:04d}") for i in range(3)]
        assert livy.post_count == 3
        assert [post["body"]["name"].split("-")[-4] for post in livy.posted] == ["i0", "i1", "i2"]
