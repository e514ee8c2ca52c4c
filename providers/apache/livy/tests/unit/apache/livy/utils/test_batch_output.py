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
"""What a task shows of its batch (:mod:`.batch_output`): the result, the log, the links."""

from __future__ import annotations

import logging

from airflow.providers.apache.livy.hooks.livy import LivyHook
from airflow.providers.apache.livy.utils.durable_batch import (
    DurableBatch,
    TaskRun,
)
from unit.apache.livy.task_context import FakeTaskInstance
from unit.apache.livy.utils.durable_helpers import (
    KEY,
    LOG,
    SPARK,
    durable,
    one_try,
    requests_sent,
    stored,
)


class TestResult:
    def test_the_log_is_shown_once(self, livy, store):
        livy.states_for_new = ["success"]
        batch = one_try(store)
        batch.result()
        assert requests_sent(livy).count("GET /batches/0/log") == 1

    def test_an_unfinished_batch_is_read_for_its_app_id(self, livy, store):
        batch = durable(store)
        batch.submit(SPARK)
        assert batch.app_id() == "application_1_0000"

    def test_delivered_is_recorded_once_per_try(self, livy, store):
        livy.states_for_new = ["success"]
        batch = one_try(store, try_number=3)
        assert batch.delivered_in_this_try
        assert stored(store).delivered_try == 3


class TestLinksAndLiveLog:
    def test_links_are_published_once_each_as_they_appear(self, livy, store):
        published: list[dict[str, str]] = []
        livy.states_for_new = ["starting", "running", "running", "success"]
        batch = DurableBatch(
            LivyHook(),
            store=store,
            key=KEY,
            task=TaskRun.of(FakeTaskInstance(), 0),
            log=LOG,
            publish_links=published.append,
        )
        batch.submit(SPARK)
        livy.batches[0].app_info = [
            {"driverLogUrl": None, "sparkUiUrl": None},
            {"driverLogUrl": "http://127.0.0.1:8042/d", "sparkUiUrl": "http://127.0.0.1:4040/"},
        ]
        batch.wait(0.001)
        assert published == [
            {"livy_batch": "http://127.0.0.1:8998/ui/batch/0/log"},
            {"driver_log": "http://127.0.0.1:8042/d", "spark_ui": "http://127.0.0.1:4040/"},
        ]

    def test_without_follow_log_the_end_shows_the_whole_log_through_dump_batch_logs(self, livy, store):
        livy.states_for_new = ["running", "success"]
        one_try(store)
        assert requests_sent(livy).count("GET /batches/0/log") == 1

    def test_the_end_shows_only_what_the_live_log_did_not(self, livy, store, caplog):
        caplog.set_level(logging.INFO)
        livy.states_for_new = ["running", "running", "success"]
        batch = DurableBatch(
            LivyHook(),
            store=store,
            key=KEY,
            task=TaskRun.of(FakeTaskInstance(), 0),
            log=LOG,
            follow_log=True,
        )
        batch.submit(SPARK)
        livy.batches[0].logs = [["stdout: ", "a"], ["stdout: ", "a", "b"], ["stdout: ", "a", "b", "c"]]
        batch.wait(0.001)
        assert batch.record.log_cursor is not None  # stored with the next write
        batch.result()
        assert [r.getMessage() for r in caplog.records if r.getMessage() in ("stdout: ", "a", "b", "c")] == [
            "stdout: ",
            "a",
            "b",
            "c",
        ]
