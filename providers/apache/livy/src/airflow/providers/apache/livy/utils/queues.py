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
Which queue is which: the YARN queue of a ``LivyOperator``'s batch and the executor queue of its task.

Provider 4.6.4's ``queue=`` is the YARN queue and shadows ``BaseOperator.queue``, the executor (e.g.
Celery) queue the scheduler routes the task to. ``yarn_queue=`` and ``executor_queue=`` name each one;
``queue=`` keeps its 4.6.4 meaning. Airflow fills the arguments a task leaves out from ``default_args``
and passes ``default_args`` on to ``__init__``, so a ``queue`` equal to ``default_args["queue"]``
counts as coming from ``default_args``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping, MutableMapping
from typing import Any

Queues = tuple[str | None, str | None]
"""The YARN queue, and the executor queue (``None``: ``BaseOperator``'s, from ``default_args`` or config)."""


def resolve_queues(
    task_id: str,
    *,
    queue: str | None,
    yarn_queue: str | None,
    executor_queue: str | None,
    default_args: Mapping[str, Any] | None,
    mapped: bool = False,
) -> Queues:
    """
    Return a ``LivyOperator``'s YARN and executor queues, from its arguments as Airflow filled them.

    ``queue`` given in the call is the YARN queue (4.6.4); with ``yarn_queue`` given too, ``ValueError``.
    ``queue`` from ``default_args`` alone is the executor queue when the task uses ``yarn_queue`` or
    ``executor_queue``; otherwise it is also the YARN queue, as in 4.6.4, and a ``UserWarning`` says so.

    :param mapped: the task is being unmapped at run time: :func:`route_mapped_task` settled the queues
        at parse time (an ``executor_queue`` it left ``None`` means 4.6.4's meaning of ``queue``).
    """
    if mapped:
        if executor_queue is None:
            return (queue if yarn_queue is None else yarn_queue), None
        return yarn_queue, executor_queue
    defaults = default_args or {}
    if queue is not None and not _from_defaults(defaults, "queue", queue):
        if yarn_queue is not None and not _from_defaults(defaults, "yarn_queue", yarn_queue):
            raise ValueError(
                f"LivyOperator {task_id!r}: queue={queue!r} and yarn_queue={yarn_queue!r} both set the YARN "
                "queue. Pass yarn_queue= only (queue= is its 4.6.4 name); executor_queue= routes the task."
            )
        return queue, executor_queue
    if queue is not None and yarn_queue is None and executor_queue is None:
        warnings.warn(
            f"LivyOperator {task_id!r}: queue={queue!r} from default_args is sent to Livy as the YARN queue "
            "of the batch, and routes the task to that executor queue too, as in provider 4.6.4. Set "
            "executor_queue= to route the task only, or yarn_queue= for the YARN queue.",
            UserWarning,
            stacklevel=_dag_file_stacklevel(),
        )
        return queue, None
    return yarn_queue, executor_queue


def route_mapped_task(
    partial_kwargs: MutableMapping[str, Any], given: Mapping[str, Any], default_queue: str
) -> None:
    """
    Settle the queues of a mapped ``LivyOperator`` in the kwargs ``partial()`` built (in place).

    The scheduler routes every mapped instance by ``partial_kwargs["queue"]``, and unmapping passes
    ``partial_kwargs`` to ``__init__``. So ``queue`` becomes the executor queue and ``executor_queue``
    says so; ``executor_queue`` stays ``None`` only where ``queue`` keeps 4.6.4's meaning (the YARN
    queue, which the scheduler routes by too). ``executor_queue``, like ``queue``, cannot be expanded.

    :param partial_kwargs: what ``BaseOperator.partial()`` built (with the DAG's ``default_args`` merged).
    :param given: the keyword arguments passed to ``partial()``.
    :param default_queue: the executor queue of a task that names none (``[operators] default_queue``).
    """
    parents = _parent_defaults(partial_kwargs)
    defaults = {**parents, **(given.get("default_args") or {})}
    queue = given.get("queue", defaults.get("queue"))  # not the filler partial() puts there
    yarn_queue = partial_kwargs.get("yarn_queue", defaults.get("yarn_queue"))
    executor_queue = partial_kwargs.get("executor_queue", defaults.get("executor_queue"))
    task_id = partial_kwargs["task_id"]
    yarn, executor = resolve_queues(
        task_id, queue=queue, yarn_queue=yarn_queue, executor_queue=executor_queue, default_args=defaults
    )
    if queue is not None and yarn_queue is None and executor_queue is None:
        if "queue" in given:
            warnings.warn(
                f"LivyOperator.partial {task_id!r}: queue={queue!r} is the YARN queue of each batch, and the "
                "scheduler routes the mapped task to that executor queue too, as in provider 4.6.4. Use "
                "yarn_queue= for the YARN queue alone, and executor_queue= to route the task.",
                UserWarning,
                stacklevel=_dag_file_stacklevel(),
            )
        partial_kwargs["executor_queue"] = None
        return
    # Moved from queue=, or from the task's own default_args (unmapping sees only the DAG's).
    if yarn is not None and "yarn_queue" not in partial_kwargs and yarn != parents.get("yarn_queue"):
        partial_kwargs["yarn_queue"] = yarn
    routed = executor if executor is not None else defaults.get("queue") or default_queue
    partial_kwargs["queue"] = partial_kwargs["executor_queue"] = routed


def _from_defaults(defaults: Mapping[str, Any], key: str, value: str) -> bool:
    return key in defaults and defaults[key] == value


def _parent_defaults(partial_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The ``default_args`` of the task's DAG and task group (unmapping sees these again)."""
    dag, group = partial_kwargs.get("dag"), partial_kwargs.get("task_group")
    if dag is None:
        return {}
    return {**(dag.default_args or {}), **((group.default_args or {}) if group is not None else {})}


def _dag_file_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside Airflow (the DAG file)."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("airflow."):
        frame, level = frame.f_back, level + 1
    return level
