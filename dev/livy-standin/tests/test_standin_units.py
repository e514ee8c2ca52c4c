"""Pure helpers: Java int parsing, Scala slicing, the conf-driven job spec, the job clock."""

from __future__ import annotations

import pytest

from livy_standin import ApiError
from livy_standin.jobs import Batch, JobSpec, JobSpecError
from livy_standin.registry import java_int, scala_slice, wrap_int32


def test_java_int_accepts_what_parseint_accepts() -> None:
    assert [java_int(s) for s in ("0", "+5", "-7", "007", "2147483647")] == [0, 5, -7, 7, 2**31 - 1]
    for bad in ("", " 1", "1.0", "2147483648", "0x10"):
        with pytest.raises(ApiError) as err:
            java_int(bad)
        assert (err.value.status, err.value.body) == (400, {"msg": f'For input string: "{bad}"'})


def test_scala_slice_and_int_wrap() -> None:
    items = list(range(5))
    assert scala_slice(items, -2, 2) == [0, 1]
    assert scala_slice(items, 3, 100) == [3, 4]
    assert scala_slice(items, 4, 2) == []
    assert wrap_int32(2**31) == -(2**31)


def test_job_spec_defaults_and_errors() -> None:
    assert JobSpec.from_conf({"spark.executor.memory": "1g"}) == JobSpec(0.2, 2.0, "success", 5, False, 0.0)
    spec = JobSpec.from_conf({"spark.standin.dropReply": "TRUE", "spark.standin.logLines": "3"})
    assert (spec.drop_reply, spec.log_lines) == (True, 3)
    for conf in (
        {"spark.standin.durationSeconds": "-1"},
        {"spark.standin.logLines": "x"},
        {"spark.standin.x": "1"},
    ):
        with pytest.raises(JobSpecError):
            JobSpec.from_conf(conf)


def test_batch_clock() -> None:
    batch = Batch(3, "n", 0, JobSpec(1.0, 2.0, "dead", 4), {}, created=100.0, created_wall=0.0)
    assert [batch.state(t) for t in (100.5, 101.0, 102.9, 103.0)] == [
        "starting",
        "running",
        "running",
        "dead",
    ]
    assert batch.app_id(100.9) is None and batch.app_id(101.0) == "application_1700000000000_0003"
    assert [batch.lines_emitted(t) for t in (100.0, 101.0, 102.0, 103.0)] == [0, 0, 2, 4]
    batch.recovering_until = 104.0
    assert batch.state(103.5) == "recovering" and batch.finished_at() == 104.0
