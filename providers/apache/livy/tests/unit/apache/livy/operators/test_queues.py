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
The YARN queue against the executor queue: ``queue=`` (4.6.4: YARN), ``yarn_queue=``, ``executor_queue=``.

What the scheduler routes by is read from the serialized DAG (the scheduler's view); what YARN gets is
read from the ``POST /batches`` body the scripted Livy received. Runs on every Airflow version.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest

from airflow.providers.apache.livy.operators.livy import LivyOperator
from airflow.providers.apache.livy.version_compat import AIRFLOW_V_3_0_PLUS
from unit.apache.livy.task_context import FakeTaskInstance

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG
else:
    from airflow.models import DAG  # type: ignore[assignment,no-redef]

# A partial() that raised before expand() says so when it is collected.
pytestmark = pytest.mark.filterwarnings("ignore:Task 'spark_job' was never mapped!:UserWarning")

DEFAULT = "default"  # [operators] default_queue
START = datetime(2026, 1, 1)


def scheduler_view(dag: Any) -> Any:
    """The DAG as the scheduler sees it: serialized and deserialized again."""
    try:
        from airflow.serialization.serialized_objects import DagSerialization as Serialization
    except ImportError:  # Airflow 2.11 and 3.0-3.2
        from airflow.serialization.serialized_objects import SerializedDAG as Serialization
    return Serialization.from_dict(Serialization.to_dict(dag))


@contextmanager
def livy_warnings() -> Iterator[list[str]]:
    """Collect the warnings this provider emits (as messages)."""
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield messages
    messages.extend(str(w.message) for w in caught if str(w.message).startswith("LivyOperator"))


def task(default_args: dict[str, Any] | None = None, **kwargs: Any) -> tuple[LivyOperator, Any]:
    """A ``LivyOperator`` in a DAG with ``default_args``, and the scheduler's copy of it."""
    with DAG("queues", schedule=None, start_date=START, default_args=default_args or {}) as dag:
        op = LivyOperator(task_id="spark_job", file="pi.py", **kwargs)
    return op, scheduler_view(dag).get_task("spark_job")


def mapped(default_args: dict[str, Any] | None = None, **kwargs: Any) -> tuple[Any, Any]:
    """A mapped ``LivyOperator`` (two instances), and the scheduler's copy of it."""
    expand = kwargs.pop("expand", {"args": [["1"], ["2"]]})
    with DAG("queues", schedule=None, start_date=START, default_args=default_args or {}) as dag:
        op = LivyOperator.partial(task_id="spark_job", file="pi.py", **kwargs).expand(**expand)
    return op, scheduler_view(dag).get_task("spark_job")


def unmapped(op: Any, **expanded: Any) -> LivyOperator:
    """The operator a worker builds for one mapped instance (what ``render_template_fields`` does)."""
    return op.unmap({"args": ["1"], **expanded})


def posted_queue(livy: Any, op: LivyOperator) -> Any:
    """Run ``op`` against the scripted Livy; return the ``queue`` field of its POST body (or ``absent``)."""
    op.durable = False
    op._polling_interval = 0
    op.execute({"ti": FakeTaskInstance(task_id=op.task_id)})
    return livy.posted[-1]["body"].get("queue", "absent")


# (default_args, call kwargs) -> (executor queue the scheduler routes by, YARN queue, warns)
RULES = [
    pytest.param({}, {}, DEFAULT, None, False, id="nothing"),
    pytest.param({}, {"queue": "root.etl"}, DEFAULT, "root.etl", False, id="queue=: YARN (4.6.4)"),
    pytest.param({}, {"yarn_queue": "root.etl"}, DEFAULT, "root.etl", False, id="yarn_queue="),
    pytest.param({}, {"executor_queue": "spark"}, "spark", None, False, id="executor_queue="),
    pytest.param(
        {}, {"yarn_queue": "root.etl", "executor_queue": "spark"}, "spark", "root.etl", False, id="both names"
    ),
    pytest.param(
        {}, {"queue": "root.etl", "executor_queue": "spark"}, "spark", "root.etl", False, id="queue= + exec"
    ),
    pytest.param({"queue": "spark"}, {}, "spark", "spark", True, id="default_args queue only (4.6.4)"),
    pytest.param(
        {"queue": "spark"}, {"queue": "root.etl"}, "spark", "root.etl", False, id="queue= over default_args"
    ),
    pytest.param({"queue": "spark"}, {"yarn_queue": "root.etl"}, "spark", "root.etl", False, id="da + yarn"),
    pytest.param({"queue": "spark"}, {"executor_queue": "gpu"}, "gpu", None, False, id="da + executor"),
    pytest.param(
        {"queue": "spark", "yarn_queue": "root.etl"}, {}, "spark", "root.etl", False, id="da queue + yarn"
    ),
    pytest.param({"queue": "spark", "executor_queue": "gpu"}, {}, "gpu", None, False, id="da queue + exec"),
    pytest.param({"executor_queue": "spark"}, {}, "spark", None, False, id="da executor_queue"),
    pytest.param(
        {"yarn_queue": "root.default"}, {"queue": "root.etl"}, DEFAULT, "root.etl", False, id="call over da"
    ),
]


class TestRules:
    @pytest.mark.parametrize(("default_args", "kwargs", "executor", "yarn", "warns"), RULES)
    def test_task(self, default_args, kwargs, executor, yarn, warns):
        with livy_warnings() as caught:
            op, scheduled = task(default_args, **kwargs)
        assert (op.queue, scheduled.queue, op.spark_params["queue"]) == (executor, executor, yarn)
        assert len(caught) == warns

    @pytest.mark.parametrize(("default_args", "kwargs", "executor", "yarn", "warns"), RULES)
    def test_mapped_task(self, default_args, kwargs, executor, yarn, warns):
        """``partial()`` takes the same arguments to the same queues; the scheduler routes by it."""
        with livy_warnings() as caught:
            op, scheduled = mapped(default_args, **kwargs)
        with livy_warnings() as at_run_time:
            worker_task = unmapped(op)
        new_names = {"yarn_queue", "executor_queue"} & {*kwargs, *default_args}
        if "queue" in kwargs and not new_names:
            executor = kwargs["queue"]  # 4.6.4: the scheduler routes a mapped task by partial(queue=) too
            warns = True
        assert (scheduled.queue, worker_task.spark_params["queue"]) == (executor, yarn)
        assert len(caught) == warns
        assert at_run_time == [], "warned at parse time only"

    def test_a_task_whose_call_repeats_default_args_queue_counts_as_default_args(self):
        """Airflow passes no trace of where an argument came from: equal values look the same."""
        with livy_warnings() as caught:
            op, _ = task({"queue": "spark"}, queue="spark")
        assert (op.queue, op.spark_params["queue"]) == ("spark", "spark")
        assert len(caught) == 1


class TestYarnQueueReachesLivy:
    @pytest.mark.parametrize("kwargs", [{"queue": "root.etl"}, {"yarn_queue": "root.etl"}])
    def test_post_body(self, livy, kwargs):
        op, _ = task({"queue": "spark_workers"}, **kwargs)
        assert posted_queue(livy, op) == "root.etl"
        assert op.queue == "spark_workers"

    def test_default_args_queue_alone_is_sent_as_in_4_6_4(self, livy):
        with livy_warnings():
            op, _ = task({"queue": "spark_workers"})
        assert posted_queue(livy, op) == "spark_workers"

    def test_default_args_queue_is_not_sent_once_the_new_names_are_used(self, livy):
        op, _ = task({"queue": "spark_workers"}, executor_queue="spark_workers")
        assert posted_queue(livy, op) == "absent"

    def test_mapped_instance(self, livy):
        op, _ = mapped({"queue": "spark_workers"}, yarn_queue="root.etl")
        assert posted_queue(livy, unmapped(op)) == "root.etl"

    def test_yarn_queue_is_templated(self):
        op = LivyOperator(task_id="t", file="pi.py", yarn_queue="root.{{ params.team }}")
        op.render_template_fields(context={"params": {"team": "ml"}})
        assert op.spark_params["queue"] == "root.ml"
        assert LivyOperator.template_fields == ("spark_params",)


class TestArguments:
    def test_new_keyword_only_arguments(self):
        parameters = inspect.signature(LivyOperator.__init__).parameters
        for name in ("queue", "yarn_queue", "executor_queue"):
            assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
            assert parameters[name].default is None

    @pytest.mark.parametrize("build", [task, mapped])
    def test_queue_and_yarn_queue_together_are_refused(self, build):
        with pytest.raises(ValueError, match=r"queue='a' and yarn_queue='b' both set the YARN queue"):
            build(queue="a", yarn_queue="b")

    def test_queue_in_the_call_beats_yarn_queue_in_default_args(self):
        op, _ = task({"yarn_queue": "root.default"}, queue="root.etl")
        assert op.spark_params["queue"] == "root.etl"

    def test_task_level_default_args(self):
        with livy_warnings() as caught:
            op = LivyOperator(task_id="t", file="pi.py", default_args={"queue": "spark"})
        assert (op.queue, op.spark_params["queue"]) == ("spark", "spark")
        assert len(caught) == 1
        op = LivyOperator(task_id="t", file="pi.py", default_args={"queue": "spark", "yarn_queue": "y"})
        assert (op.queue, op.spark_params["queue"]) == ("spark", "y")


class TestWarning:
    def test_says_what_happens_and_what_to_write_instead(self):
        with livy_warnings() as caught:
            task({"queue": "spark_workers"})
        assert caught == [
            "LivyOperator 'spark_job': queue='spark_workers' from default_args is sent to Livy as the YARN "
            "queue of the batch, and routes the task to that executor queue too, as in provider 4.6.4. Set "
            "executor_queue= to route the task only, or yarn_queue= for the YARN queue."
        ]

    def test_once_per_task_pointing_at_the_dag_file(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with DAG("queues", schedule=None, start_date=START, default_args={"queue": "spark"}):
                LivyOperator(task_id="a", file="pi.py")
                LivyOperator(task_id="b", file="pi.py")
        ours = [w for w in caught if str(w.message).startswith("LivyOperator")]
        assert [w.category for w in ours] == [UserWarning, UserWarning]
        assert ["'a'" in str(ours[0].message), "'b'" in str(ours[1].message)] == [True, True]
        assert {w.filename for w in ours} == {__file__}

    def test_mapped_queue_warning_names_the_routing(self):
        with livy_warnings() as caught:
            mapped(queue="root.etl")
        assert len(caught) == 1
        assert caught[0].startswith("LivyOperator.partial 'spark_job': queue='root.etl' is the YARN queue")
        assert "scheduler routes the mapped task to that executor queue too" in caught[0]


class TestMapped:
    def test_executor_queue_routes_every_instance(self):
        op, scheduled = mapped(executor_queue="spark_workers", yarn_queue="root.etl")
        assert (op.queue, scheduled.queue) == ("spark_workers", "spark_workers")
        worker_task = unmapped(op)
        assert (worker_task.queue, worker_task.spark_params["queue"]) == ("spark_workers", "root.etl")

    def test_yarn_queue_can_be_expanded(self):
        op, scheduled = mapped(executor_queue="spark", expand={"yarn_queue": ["root.a", "root.b"]})
        assert scheduled.queue == "spark"
        assert [op.unmap({"yarn_queue": q}).spark_params["queue"] for q in ("root.a", "root.b")] == [
            "root.a",
            "root.b",
        ]

    def test_yarn_queue_from_default_args_can_still_be_expanded(self):
        op, _ = mapped({"yarn_queue": "root.default"}, expand={"yarn_queue": ["root.a"]})
        assert op.unmap({"yarn_queue": "root.a"}).spark_params["queue"] == "root.a"

    @pytest.mark.parametrize("name", ["queue", "executor_queue"])
    def test_executor_queue_cannot_be_expanded_like_queue(self, name):
        """The scheduler routes all instances of a mapped task alike (Airflow's rule for ``queue``)."""
        with pytest.raises(TypeError, match=f"already specified argument: {name}"):
            mapped(expand={name: ["a", "b"]})

    def test_queue_moved_to_yarn_survives_unmapping(self):
        """``partial(queue=..., executor_queue=...)``: unmapping sees the executor queue under ``queue``."""
        op, scheduled = mapped({"queue": "spark"}, queue="root.etl", executor_queue="gpu")
        assert scheduled.queue == "gpu"
        worker_task = unmapped(op)
        assert (worker_task.queue, worker_task.spark_params["queue"]) == ("gpu", "root.etl")

    def test_task_level_default_args_survive_unmapping(self):
        """Unmapping sees only the DAG's ``default_args``: ``partial()`` keeps what came from the task's."""
        op, scheduled = mapped(default_args={"queue": "spark", "yarn_queue": "root.etl"})
        worker_task = unmapped(op)
        assert (scheduled.queue, worker_task.queue, worker_task.spark_params["queue"]) == (
            "spark",
            "spark",
            "root.etl",
        )

    def test_task_group_default_args(self):
        if AIRFLOW_V_3_0_PLUS:
            from airflow.sdk import TaskGroup
        else:
            from airflow.utils.task_group import TaskGroup  # type: ignore[no-redef]
        group_defaults = {"executor_queue": "gpu", "yarn_queue": "root.etl"}
        with (
            DAG("queues", schedule=None, start_date=START, default_args={"queue": "spark"}) as dag,
            TaskGroup("etl", default_args=group_defaults),
        ):
            op = LivyOperator.partial(task_id="spark_job", file="pi.py").expand(args=[["1"]])
        assert scheduler_view(dag).get_task("etl.spark_job").queue == "gpu"
        worker_task = unmapped(op)
        assert (worker_task.queue, worker_task.spark_params["queue"]) == ("gpu", "root.etl")

    def test_subclass(self):
        class MyLivyOperator(LivyOperator):
            pass

        with DAG("queues", schedule=None, start_date=START) as dag:
            op = MyLivyOperator.partial(task_id="spark_job", file="pi.py", executor_queue="gpu").expand(
                args=[["1"]]
            )
        assert scheduler_view(dag).get_task("spark_job").queue == "gpu"
        assert type(unmapped(op)) is MyLivyOperator

    def test_no_queue_sends_none_to_yarn_on_every_airflow(self):
        """Airflow < 3.3 fills ``partial_kwargs["queue"]`` with the default queue: not a YARN queue."""
        op, scheduled = mapped()
        assert scheduled.queue == DEFAULT
        assert unmapped(op).spark_params["queue"] is None
