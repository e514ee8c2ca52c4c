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
"""The facade (:mod:`.durable_batch`): a whole try through it, and what it keeps stable."""

from __future__ import annotations

from airflow.providers.apache.livy.utils.batch_record import RECORD_FORMAT
from unit.apache.livy.utils.durable_helpers import ID_KEY, SPARK, durable, one_try, stored


def test_record_format_is_stable():
    assert RECORD_FORMAT == "airflow-livy-batch/1"


class TestTheFacade:
    """The operator calls one object; its parts share one record and one store."""

    def test_a_whole_try_posts_once_and_records_each_step(self, livy, store):
        batch = one_try(store)
        assert next(entry[:3] for entry in livy.journal if entry[0] == "http") == ("http", "POST", "/batches")
        assert livy.post_count == 1
        assert (stored(store).final_state, stored(store).delivered_try) == ("success", 1)
        assert batch.record == stored(store)

    def test_a_refused_write_reaches_the_kill(self, livy, store):
        batch = durable(store)
        assert batch.tracked.on_write_failed == batch.kill.stop_if_airflow_stopped_this_try

    def test_a_retry_reconnects_through_the_same_facade(self, livy, store):
        livy.states_for_new = ["running"] * 3 + ["success"]
        first = durable(store)
        first.submit(SPARK)
        store.set(ID_KEY, first.external_id())
        retry = one_try(store, try_number=2)
        assert (livy.post_count, retry.external_id(), stored(store).owner_try) == (1, 0, 2)
