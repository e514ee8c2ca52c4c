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
from __future__ import annotations

import dataclasses

import pytest

from airflow.providers.apache.livy.utils.batch_record import (
    MAX_BATCH_ID,
    RECORD_FORMAT,
    BatchRecord,
    Identity,
    IdentityChecks,
    NotOurRecord,
    batch_name,
    is_valid_batch_name,
    validate_batch_id,
)

NAME = "airflow-etl-spark-manual__1-t1-s1-0123456789"


def batch(**fields):
    return {"id": 4, "name": NAME, "state": "running", "appId": None, **fields}


class TestTransitions:
    def test_a_submission_goes_from_written_ahead_to_delivered(self):
        ahead = BatchRecord.ahead_of_post(NAME, 1)
        assert ahead.awaits_creation
        created = ahead.created(4)
        seen = created.seen(batch(appId="application_1_0004"))
        finished = seen.finished("success")
        delivered = finished.delivered(2)
        assert (created.batch_id, seen.app_id, finished.final_state, delivered.delivered_try) == (
            4,
            "application_1_0004",
            "success",
            2,
        )
        assert not created.awaits_creation
        assert finished.succeeded
        assert finished.is_finished
        assert ahead.batch_id is None, "records are immutable: a transition returns a new one"

    def test_found_by_name_takes_the_id_and_app_id(self):
        found = BatchRecord.ahead_of_post(NAME, 1).found(batch(id=9, appId="application_1_0009"))
        assert (found.batch_id, found.app_id) == (9, "application_1_0009")

    def test_rejected_needs_a_new_name(self):
        rejected = BatchRecord.ahead_of_post(NAME, 2).rejected()
        assert rejected.is_finished
        assert not rejected.succeeded
        assert not rejected.awaits_creation
        assert BatchRecord.from_stored(rejected.to_json()) == rejected

    @pytest.mark.parametrize(
        "change",
        [
            lambda r: r.created(5),  # already created
            lambda r: r.rejected(),  # a created batch was not refused
            lambda r: r.finished("success").finished("dead"),  # a final state is final
            lambda r: r.finished("dead").delivered(1),  # only a success is delivered
            lambda r: r.finished("running"),  # not a terminal state
        ],
    )
    def test_transitions_that_make_no_sense_are_refused(self, change):
        with pytest.raises(ValueError):
            change(BatchRecord.ahead_of_post(NAME, 1).created(4))

    def test_a_record_of_an_id_only_has_no_name(self):
        record = BatchRecord.of_batch("17")
        assert (record.name, record.batch_id, record.is_legacy) == (None, 17, True)

    def test_every_transition_yields_a_record_the_next_try_reads_back(self):
        record = BatchRecord.ahead_of_post(NAME, 3)
        for step in (
            lambda r: r,
            lambda r: r.created(0),
            lambda r: r.seen(batch(appId="application_1_0000")),
            lambda r: r.finished("success"),
            lambda r: r.delivered(1),
        ):
            record = step(record)
            assert BatchRecord.from_stored(record.to_json()) == record


class TestStoredValues:
    def test_the_bare_id_of_provider_4_6_4_is_read(self):
        assert BatchRecord.from_stored(0) == BatchRecord(name=None, batch_id=0)

    @pytest.mark.parametrize(
        "value",
        [
            "abc",
            "3/../../admin",
            {"x": 1},
            -1,
            2**40,
            True,
            1.5,
            [1],
            None,
            {"format": RECORD_FORMAT, "name": "a/b"},
            {"format": RECORD_FORMAT, "name": "12345"},
            {"format": RECORD_FORMAT, "name": None},
            {"format": RECORD_FORMAT, "name": NAME, "batch_id": -3},
            {"format": RECORD_FORMAT, "name": NAME, "batch_id": True},
            {"format": RECORD_FORMAT, "name": NAME, "submission": 0},
            {"format": RECORD_FORMAT, "name": NAME, "app_id": ["x"]},
            {"format": RECORD_FORMAT, "name": NAME, "app_id": "a" * 256},
            {"format": RECORD_FORMAT, "name": NAME, "batch_id": 1, "final_state": "running"},
            {"format": RECORD_FORMAT, "name": NAME, "final_state": "success"},
            {"format": RECORD_FORMAT, "name": NAME, "batch_id": 1, "final_state": "dead", "delivered_try": 1},
            {"format": "airflow-livy-batch/2", "name": NAME},
        ],
    )
    def test_values_not_ours_are_refused(self, value):
        with pytest.raises(NotOurRecord):
            BatchRecord.from_stored(value)

    def test_a_record_cannot_even_be_made_invalid(self):
        with pytest.raises(NotOurRecord):
            BatchRecord(name="x/y")
        with pytest.raises(NotOurRecord):
            dataclasses.replace(BatchRecord.ahead_of_post(NAME, 1), batch_id=MAX_BATCH_ID + 1)


class TestIdentity:
    def record(self, **fields):
        return dataclasses.replace(BatchRecord.ahead_of_post(NAME, 1).created(4), **fields)

    def test_same_name_is_ours(self):
        assert self.record().identify(batch()) is Identity.OURS

    def test_another_name_is_not_ours(self):
        assert self.record().identify(batch(name="another-team")) is Identity.OTHER

    def test_another_app_id_is_not_ours_even_with_our_name(self):
        record = self.record(app_id="application_1_0004")
        assert record.identify(batch(appId="application_2_0001")) is Identity.OTHER
        assert record.identify(batch(appId="application_1_0004")) is Identity.OURS
        assert record.identify(batch(appId=None)) is Identity.OURS

    @pytest.mark.parametrize("reply", [batch(name=None), {"id": 4, "state": "running"}])
    def test_a_server_that_echoes_no_name_falls_back_to_the_app_id(self, reply):
        assert self.record().identify(reply) is Identity.UNNAMED
        known = self.record(app_id="application_1_0004")
        assert known.identify({**reply, "appId": "application_9_0001"}) is Identity.OTHER

    def test_a_record_without_a_name_checks_the_app_id_only(self):
        record = BatchRecord(name=None, batch_id=4, app_id="application_1_0004")
        assert record.identify(batch(name="whatever")) is Identity.OURS
        assert record.identify(batch(appId="application_2_0002")) is Identity.OTHER


class TestIdentityChecks:
    class Clock:
        now = 0.0

        def __call__(self) -> float:
            return self.now

    def full_reads(self, states, *, verified, clock=None):
        checks = IdentityChecks(verified=verified, clock=clock or self.Clock())
        reads = []
        for state in states:
            full = checks.full_read_due()
            reads.append(full)
            checks.polled(state, full_read=full)
        return reads

    def test_after_our_own_post_only_state_changes_read_the_batch(self):
        states = ["starting", "starting", "running", "running", "running"]
        assert self.full_reads(states, verified=True) == [False, False, False, True, False]

    def test_a_reconnect_reads_the_batch_first(self):
        assert self.full_reads(["running", "running"], verified=False) == [True, False]

    def test_a_long_wait_reads_the_batch_at_the_interval(self):
        clock = self.Clock()
        checks = IdentityChecks(verified=True, clock=clock)
        checks.polled("running", full_read=False)
        clock.now = IdentityChecks.interval - 1
        assert not checks.full_read_due()
        clock.now = IdentityChecks.interval
        assert checks.full_read_due()
        checks.polled("running", full_read=True)
        assert not checks.full_read_due()


class TestBatchNames:
    @pytest.mark.parametrize("run_id", ["manual__2026-11-23T22:00:00+00:00", "scheduled__x/y", "123", "é"])
    def test_names_are_url_safe_and_never_all_digits(self, run_id):
        name = batch_name(dag_id="123", task_id="456", run_id=run_id, map_index=-1, submission=1)
        assert is_valid_batch_name(name)
        assert "/" not in name
        assert not name.isdigit()

    def test_names_stay_distinct_when_sanitising_makes_them_alike(self):
        one = batch_name(dag_id="d", task_id="t", run_id="a:b", map_index=-1, submission=1)
        two = batch_name(dag_id="d", task_id="t", run_id="a+b", map_index=-1, submission=1)
        assert one != two

    def test_name_is_readable(self):
        name = batch_name(dag_id="etl", task_id="spark", run_id="manual__1", map_index=2, submission=3)
        assert name.startswith("airflow-etl-spark-manual__1-m2-t1-s3-")

    def test_mapped_instances_get_their_own_names(self):
        names = {
            batch_name(dag_id="d", task_id="t", run_id="r", map_index=index, submission=1)
            for index in range(3)
        }
        assert len(names) == 3

    def test_a_dag_name_is_the_readable_prefix(self):
        name = batch_name(
            dag_id="d", task_id="t", run_id="r", map_index=-1, submission=2, prefix="nightly etl/v2"
        )
        assert name.startswith("nightly_etl_v2-t1-s2-")
        assert is_valid_batch_name(name)

    def test_long_identifiers_are_truncated(self):
        name = batch_name(dag_id="d" * 300, task_id="t" * 300, run_id="r" * 300, map_index=-1, submission=1)
        assert len(name) <= 255
        assert is_valid_batch_name(name)


class TestBatchIds:
    @pytest.mark.parametrize(("value", "expected"), [(7, 7), ("7", 7), (0, 0), (MAX_BATCH_ID, MAX_BATCH_ID)])
    def test_accepted(self, value, expected):
        assert validate_batch_id(value) == expected

    @pytest.mark.parametrize("value", ["abc", "1.5", None, 1.5, True, "٣"])
    def test_not_integers(self, value):
        with pytest.raises(TypeError):
            validate_batch_id(value)

    @pytest.mark.parametrize("value", [-1, MAX_BATCH_ID + 1, "2147483648"])
    def test_out_of_range(self, value):
        with pytest.raises(ValueError):
            validate_batch_id(value)


class TestLinksAndLogCursor:
    SPARK_UI = "http://127.0.0.1:4040/"
    DRIVER_LOG = "http://127.0.0.1:8042/driver"

    def batch(self, driver_log: str | None, spark_ui: str | None = SPARK_UI) -> dict:
        return {"id": 1, "appId": "app-1", "appInfo": {"driverLogUrl": driver_log, "sparkUiUrl": spark_ui}}

    def test_seen_keeps_the_links_and_a_cleared_driver_log_url_does_not_erase_one(self):
        record = BatchRecord(name=None, batch_id=1).seen(self.batch(self.DRIVER_LOG))
        assert record.links == {"spark_ui": self.SPARK_UI, "driver_log": self.DRIVER_LOG}
        assert record.seen(self.batch(None)) is record

    def test_no_urls_no_links(self):
        record = BatchRecord(name=None, batch_id=1).seen(self.batch(None, None))
        assert record.links is None

    def test_found_by_name_takes_the_links_too(self):
        record = BatchRecord.ahead_of_post("job-t1-s1-x", 1).found(self.batch(self.DRIVER_LOG))
        assert record.links == {"spark_ui": self.SPARK_UI, "driver_log": self.DRIVER_LOG}

    def test_links_and_cursor_round_trip_and_are_left_out_until_set(self):
        plain = BatchRecord(name=None, batch_id=1)
        assert "links" not in plain.to_json()
        assert "log_cursor" not in plain.to_json()
        full = plain.seen(self.batch(self.DRIVER_LOG)).with_log_cursor({"stdout": [5, 5, "abc"]})
        assert BatchRecord.from_stored(full.to_json()) == full

    @pytest.mark.parametrize(
        "links",
        [{"spark_ui": 1}, {"spark_ui": ""}, {"other": "http://127.0.0.1/"}, ["http://127.0.0.1/"]],
    )
    def test_links_not_ours_are_refused(self, links):
        with pytest.raises(NotOurRecord, match="links"):
            BatchRecord(name=None, batch_id=1, links=links)

    def test_a_cursor_not_ours_is_refused(self):
        with pytest.raises(NotOurRecord, match="log cursor"):
            BatchRecord(name=None, batch_id=1, log_cursor={"stdout": "x"})
