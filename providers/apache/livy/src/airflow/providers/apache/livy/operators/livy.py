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
Operator that runs a Spark batch through Apache Livy, crash-safe on Airflow 3.3+ (``durable=True``).

The batch's lifecycle lives in :class:`~airflow.providers.apache.livy.utils.durable_batch.DurableBatch`;
this module is glue. Importing it loads no HTTP client: the hook and trigger are imported on first use.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowTaskTimeout,
    BaseOperator,
    ResumableJobMixin,
    mask_secret,
)
from airflow.providers.common.compat.sdk import (
    conf as airflow_conf,
)

from airflow.providers.apache.livy.links.livy import LIVY_LINKS, push_links
from airflow.providers.apache.livy.utils.durable_batch import DurableBatch, ResumeDecision, TaskRun
from airflow.providers.apache.livy.utils.kill_policy import (
    KillAction,
    KillDecision,
    KillPolicy,
    KillReason,
    airflow_state_of,
    retry_follows,
)
from airflow.providers.apache.livy.utils.queues import resolve_queues, route_mapped_task
from airflow.providers.apache.livy.utils.redaction import credential_conf_values

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.sdk.definitions.mappedoperator import OperatorPartial
    from pydantic import JsonValue

    from airflow.providers.apache.livy.hooks.livy import LivyHook
    from airflow.providers.apache.livy.triggers.livy import LivyTrigger

__all__ = ["LivyHook", "LivyOperator", "LivyTrigger"]


def __getattr__(name: str) -> Any:
    """Import ``LivyHook`` and ``LivyTrigger`` on first use (they bring ``requests`` and ``aiohttp``)."""
    if name == "LivyHook":
        from airflow.providers.apache.livy.hooks.livy import LivyHook

        return LivyHook
    if name == "LivyTrigger":
        from airflow.providers.apache.livy.triggers.livy import LivyTrigger

        return LivyTrigger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _this_module() -> Any:
    """Return this module, so that ``LivyHook`` and ``LivyTrigger`` are looked up where tests patch them."""
    return sys.modules[__name__]


class LivyOperator(ResumableJobMixin, BaseOperator):
    """
    Submit a Spark application to Apache Livy as a batch and (optionally) wait for it.

    .. seealso::
        For more information on how to use this operator, take a look at the guide:
        :ref:`howto/operator:LivyOperator`

    It waits by polling from the worker (``polling_interval > 0``), in the triggerer
    (``deferrable=True``), or not at all (``polling_interval=0``: fire and forget). While it waits,
    new lines of Livy's log reach the task log; the extra links (Livy batch, Spark UI, Spark driver
    log) work as soon as Livy reports the URLs.

    :param file: path of the file containing the application to execute (required). (templated)
    :param class_name: name of the application Java/Spark main class. (templated)
    :param args: application command line arguments. (templated)
    :param jars: jars to be used in this sessions. (templated)
    :param py_files: python files to be used in this session. (templated)
    :param files: files to be used in this session. (templated)
    :param driver_memory: amount of memory to use for the driver process. (templated)
    :param driver_cores: number of cores to use for the driver process. (templated)
    :param executor_memory: amount of memory to use per executor process. (templated)
    :param executor_cores: number of cores to use for each executor. (templated)
    :param num_executors: number of executors to launch for this session. (templated)
    :param archives: archives to be used in this session. (templated)
    :param queue: name of the YARN queue to which the application is submitted, as in provider 4.6.4
        (not ``BaseOperator``'s executor queue). From ``default_args`` alone it is the executor queue
        when the task uses ``yarn_queue`` or ``executor_queue``; see the guide. (templated)
    :param yarn_queue: name of the YARN queue to which the application is submitted; the same as
        ``queue=`` given in the call (give one of them). (templated)
    :param executor_queue: the executor (e.g. Celery) queue the scheduler routes the task to:
        ``BaseOperator``'s ``queue``, whose name ``LivyOperator`` keeps for the YARN queue. It routes
        mapped tasks too (``partial(executor_queue=...)``; it cannot be expanded, like ``queue``).
    :param name: name of this session. With ``durable=True`` it is the readable prefix of the unique
        batch name (``<name>[-i<iteration>]-t<first try>-s<submission>-<digest>``); otherwise it is
        sent as it is. (templated)
    :param conf: Spark configuration properties; values are never logged. (templated)
    :param proxy_user: user to impersonate when running the job. (templated)
    :param livy_conn_id: reference to a pre-defined Livy Connection.
    :param livy_conn_auth_type: the ``requests`` auth class for the Livy connection.
    :param livy_endpoint_prefix: path prefix in front of ``/batches``.
    :param polling_interval: seconds between polls; ``0`` returns once the batch is submitted.
    :param extra_options: options passed to ``requests`` / ``aiohttp`` (e.g. ``timeout``, ``verify``).
    :param extra_headers: headers sent with every request to Livy.
    :param retry_args: tenacity arguments for reads; 5xx and 429 replies and connection errors are retried,
        a POST never is.
    :param deferrable: wait in the triggerer instead of the worker.
    :param openlineage_inject_parent_job_info: inject OpenLineage parent job information into the
        Spark conf.
    :param openlineage_inject_transport_info: inject OpenLineage transport information into the
        Spark conf.
    :param durable: keep the batch across worker crashes (Airflow 3.3+; default ``True``).
        ``False`` submits a new batch on every try, as before AIP-103.
    :param on_kill_action: what killing the task does to a durable task's batch: ``"auto"`` (the
        default) deletes it when Airflow means the task to stop (marked failed or success, cleared,
        ``execution_timeout``) and keeps it when the worker goes away, so the retry reconnects;
        ``"delete_batch"`` always deletes it; ``"keep_batch"`` never does. Without durability the
        batch is always deleted, as in 4.6.4.
    """

    MAX_REDEFERRALS = 3
    """How often a deferred task waits again after the triggerer lost Livy for a moment."""
    LINKS_WAIT_SECONDS = 30.0
    """How long a deferrable task waits on the worker for a starting batch's links before deferring."""

    template_fields: Sequence[str] = ("spark_params",)
    template_fields_renderers = {"spark_params": "json"}
    external_id_key = "livy_batch_id"
    """Where the mixin keeps the batch id in the task state store, as provider 4.6.4 did."""
    record_key = "livy_batch_record"
    """Where the durable record (the batch's name, written before the POST, and what became of it) is kept."""
    operator_extra_links = LIVY_LINKS

    def __init__(
        self,
        *,
        file: str,
        class_name: str | None = None,
        args: Sequence[str | int | float] | None = None,
        conf: dict[Any, Any] | None = None,
        jars: Sequence[str] | None = None,
        py_files: Sequence[str] | None = None,
        files: Sequence[str] | None = None,
        driver_memory: str | None = None,
        driver_cores: int | str | None = None,
        executor_memory: str | None = None,
        executor_cores: int | str | None = None,
        num_executors: int | str | None = None,
        archives: Sequence[str] | None = None,
        queue: str | None = None,
        yarn_queue: str | None = None,
        executor_queue: str | None = None,
        name: str | None = None,
        proxy_user: str | None = None,
        livy_conn_id: str = "livy_default",
        livy_conn_auth_type: Any | None = None,
        livy_endpoint_prefix: str | None = None,
        polling_interval: int = 0,
        extra_options: dict[str, Any] | None = None,
        extra_headers: dict[str, Any] | None = None,
        retry_args: dict[str, Any] | None = None,
        deferrable: bool = airflow_conf.getboolean("operators", "default_deferrable", fallback=False),
        openlineage_inject_parent_job_info: bool = airflow_conf.getboolean(
            "openlineage", "spark_inject_parent_job_info", fallback=False
        ),
        openlineage_inject_transport_info: bool = airflow_conf.getboolean(
            "openlineage", "spark_inject_transport_info", fallback=False
        ),
        durable: bool | None = None,
        on_kill_action: str = KillAction.AUTO,
        **kwargs: Any,
    ) -> None:
        if durable is not None:  # only what the DAG gave: the mixin (or its fallback) has the default
            kwargs["durable"] = durable
        yarn_queue, executor_queue = resolve_queues(
            kwargs.get("task_id", ""),
            queue=queue,
            yarn_queue=yarn_queue,
            executor_queue=executor_queue,
            default_args=kwargs.get("default_args"),
            mapped=getattr(self, "_BaseOperator__from_mapped", False),  # set by Airflow when unmapping
        )
        if executor_queue is not None:  # otherwise BaseOperator's: default_args' queue, or the config's
            kwargs["queue"] = executor_queue
        super().__init__(**kwargs)
        self.spark_params: dict[str, Any] = {
            "file": file,
            "class_name": class_name,
            "args": args,
            "jars": jars,
            "py_files": py_files,
            "files": files,
            "driver_memory": driver_memory,
            "driver_cores": driver_cores,
            "executor_memory": executor_memory,
            "executor_cores": executor_cores,
            "num_executors": num_executors,
            "archives": archives,
            "queue": yarn_queue,
            "name": name,
            "conf": conf or {},
            "proxy_user": proxy_user,
        }
        self._livy_conn_id = livy_conn_id
        self._livy_conn_auth_type = livy_conn_auth_type
        self._livy_endpoint_prefix = livy_endpoint_prefix
        self._polling_interval = polling_interval
        self._extra_options = extra_options or {}
        self._extra_headers = extra_headers or {}
        self.retry_args = retry_args
        self.deferrable = deferrable
        self.openlineage_inject_parent_job_info = openlineage_inject_parent_job_info
        self.openlineage_inject_transport_info = openlineage_inject_transport_info
        self.on_kill_action = KillAction(on_kill_action)
        self._batch: DurableBatch | None = None
        self._timed_out = self._executing = False
        self._started = time.monotonic()

    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:
        """Map this operator, as ``BaseOperator.partial``; the scheduler routes it by ``executor_queue``."""
        partial = super().partial(**kwargs)
        default_queue = airflow_conf.get("operators", "default_queue", fallback="default")
        route_mapped_task(partial.kwargs, kwargs, default_queue)
        return partial

    @cached_property
    def hook(self) -> LivyHook:
        """The :class:`~.LivyHook` to Livy; its reads retry with ``retry_args``."""
        hook = _this_module().LivyHook(
            livy_conn_id=self._livy_conn_id,
            extra_headers=self._extra_headers,
            extra_options=self._extra_options,
            auth_type=self._livy_conn_auth_type,
            endpoint_prefix=self._livy_endpoint_prefix,
        )
        hook.retry_args = self.retry_args
        return hook

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Render the templates, then mask Spark conf values whose keys look like credentials."""
        super().render_template_fields(context, jinja_env)
        for value in credential_conf_values(self.spark_params.get("conf")):
            mask_secret(value)

    def execute(self, context: Context) -> Any:
        """Submit (or, after a crash, find) the batch, wait as configured, and return its id."""
        self._inject_openlineage_properties(context)
        self._started, self._executing = time.monotonic(), True
        try:
            return self.execute_resumable(context)
        except AirflowTaskTimeout:
            self._timed_out = True  # on_kill comes next: Airflow means this task to stop
            raise
        finally:
            self._executing = False

    # ---- ResumableJobMixin ----------------------------------------------------------------------

    def submit_job(self, context: Context) -> JsonValue:
        """Submit the batch (its record written first when durable); return its id, which the mixin stores."""
        batch = self._batch_of(context)
        batch.submit(self.spark_params)
        return batch.external_id()

    def get_job_status(self, external_id: JsonValue, context: Context) -> str:
        """
        Return the state of the batch an earlier try left, checked against Livy.

        That is Livy's state, or ``"gone"`` (Livy no longer holds it) or ``"rerun"`` (its result was
        delivered before the task was cleared): see :class:`~.PriorStatus`.
        """
        return self._batch_of(context).resume(external_id)

    def is_job_active(self, status: str) -> bool:
        """Whether to reconnect: ``status`` is a :class:`~.ResumeDecision` or a Livy state."""
        return ResumeDecision.of(status) is ResumeDecision.RECONNECT

    def is_job_succeeded(self, status: str) -> bool:
        """Whether to return the result at once: ``status`` is a :class:`~.ResumeDecision` or a Livy state."""
        return ResumeDecision.of(status) is ResumeDecision.RETURN_RESULT

    def poll_until_complete(self, external_id: JsonValue, context: Context) -> Any:
        """
        Wait for the batch as configured and return its result.

        Returning the result (not ``None``) makes the mixin's reconnect path return the batch id too.
        In deferrable mode this defers (raises ``TaskDeferred``) unless the batch already finished.
        """
        batch = self._batch_of(context)
        if not batch.follow(external_id).is_finished:
            if self.deferrable:
                self._defer_unless_finished(batch)
            elif self._polling_interval > 0:
                batch.wait(self._polling_interval)
        return self.get_job_result(batch.external_id(), context)

    def get_job_result(self, external_id: JsonValue, context: Context) -> Any:
        """Push the ``app_id`` XCom and return the batch id; once per try (the mixin may call it twice)."""
        batch = self._batch_of(context)
        batch.follow(external_id)
        if not batch.delivered_in_this_try:
            batch.result()
            app_id = batch.app_id()
            if (ti := context.get("ti")) is not None:
                ti.xcom_push(key="app_id", value=app_id)
            batch.mark_delivered()
        return batch.batch_id

    # ---- The released operator's other public methods -------------------------------------------

    def poll_for_termination(self, batch_id: int | str) -> None:
        """
        Poll Livy until the batch ends, write its log to the task log, raise if it did not succeed.

        :param batch_id: id of the batch to monitor.
        """
        batch = self._batch or self._new_batch(store=None, ti=None)
        batch.follow(batch_id)
        batch.wait(self._polling_interval)
        batch.result()

    @property
    def _batch_id(self) -> int | None:
        """The id of this try's batch, once known (provider 4.6.4's attribute)."""
        return self._batch.batch_id if self._batch is not None and self._batch.record is not None else None

    @_batch_id.setter
    def _batch_id(self, batch_id: int | None) -> None:
        self._batch = None
        if batch_id is not None:
            self._batch = self._new_batch(store=None, ti=None)
            self._batch.follow(batch_id)

    def on_kill(self) -> None:
        """Delete the batch if Airflow means the task to stop, keep it if the worker goes away."""
        if self._batch is not None:
            timed_out = self._timed_out or self._past_execution_timeout()
            self._batch.on_kill(timed_out=timed_out, executing=self._executing)

    def kill(self) -> None:
        """Delete this task's batch, unless Livy now uses its id for another batch."""
        if self._batch is not None:
            self._batch.delete(KillDecision(True, KillReason.KILL_CALLED))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """
        Finish the task once the trigger reported that the batch ended (or the wait timed out).

        A ``running`` event reports the application's links while the batch runs: they are pushed and
        the task defers again.
        """
        for line in event.get("log_lines") or []:
            self.log.info(line)
        batch = self._batch_of(context)
        batch.follow_deferred(event["batch_id"])
        batch.absorb_log_cursor(event.get("log_cursor"))
        if event.get("log_lines") is not None:
            batch.logs_shown()
        if event["status"] == "running":
            batch.record_seen(event.get("batch") or {})
            batch.show_new_log_lines()  # what Livy logged since the event, before the trigger goes on
            trigger = self._trigger_for(batch, int(event.get("redeferrals") or 0), report_links=False)
            self.defer(trigger=trigger, method_name="execute_complete")
        if event["status"] == "timeout":
            batch.delete(KillDecision(True, KillReason.TIMED_OUT))
            raise AirflowException(event["response"])
        batch.record_final_state(event.get("state"))
        if event["status"] != "success":
            self._defer_again_if_transient(batch, event)
            batch.result()  # a batch that ended: its log, once, and the error that says how it ended
            raise AirflowException(event["response"])
        self.log.info("%s completed with response %s", self.task_id, event["response"])
        return self.get_job_result(batch.external_id(), context)

    # ---- Glue ------------------------------------------------------------------------------------

    def _batch_of(self, context: Context) -> DurableBatch:
        """Return this try's :class:`DurableBatch`, kept in the task state store when ``durable``."""
        if self._batch is None:
            store = context.get("task_state_store") if self.durable else None
            self._batch = self._new_batch(store, context.get("ti"), loop=context.get("loop"))
        return self._batch

    def _new_batch(self, store: Any, ti: Any, loop: Any = None) -> DurableBatch:
        task = TaskRun.of(ti, self.retries, loop) if ti is not None else None
        if task is None and store is not None:
            self.log.warning(
                "The context's task instance does not identify a task instance (a test double?): the "
                "batch is submitted without a write-ahead name, so a crash before its id is stored "
                "cannot be recovered"
            )
        policy = KillPolicy(self.on_kill_action, lambda: airflow_state_of(ti), retry_follows(ti))
        return DurableBatch(
            self.hook,
            store=store,
            key=self.record_key,
            id_key=self.external_id_key,
            task=task,
            log=self.log,
            retry_args=self.retry_args,
            kill_policy=policy,
            publish_links=None if ti is None else lambda links: push_links(ti, links),
            follow_log=_follows_live_log(self.hook),
            state_from_batch=_reads_state_from_batch(self.hook),
        )

    def _past_execution_timeout(self) -> bool:
        """Whether ``execution_timeout`` has passed (Airflow 3.4's supervisor may SIGTERM for it)."""
        limit = self.execution_timeout.total_seconds() if self.execution_timeout is not None else None
        return limit is not None and time.monotonic() - self._started >= limit

    def _defer_unless_finished(self, batch: DurableBatch) -> None:
        """
        Defer unless the batch finished; while it starts, wait briefly for its links first.

        Links known before deferring spare the task a trip back to a worker to push them, and one
        trigger per try follows the log (Airflow 3.3's triggerer truncates a try's trigger log when the
        task defers again).
        """
        step = min(self._polling_interval, 0.5) if self._polling_interval > 0 else 0.5
        if batch.check() or batch.wait_for_links(self.LINKS_WAIT_SECONDS, step):
            return
        # No defer(timeout=...): the trigger's own deadline ends the wait with a "timeout" event,
        # so execute_complete can delete the batch instead of leaving it running.
        self.defer(trigger=self._trigger_for(batch), method_name="execute_complete")

    def _defer_again_if_transient(self, batch: DurableBatch, event: dict[str, Any]) -> None:
        """Wait again (a few times) when the trigger's wait failed for a transient reason."""
        redeferrals = int(event.get("redeferrals") or 0)
        finished = batch.follow(batch.external_id()).is_finished
        if event.get("transient") and not finished and redeferrals < self.MAX_REDEFERRALS:
            self.log.warning("Waiting again for Livy batch %s: %s", batch.batch_id, event["response"])
            trigger = self._trigger_for(batch, redeferrals=redeferrals + 1)
            self.defer(trigger=trigger, method_name="execute_complete")

    def _trigger_for(
        self, batch: DurableBatch, redeferrals: int = 0, *, report_links: bool | None = None
    ) -> LivyTrigger:
        record = batch.follow(batch.external_id())
        report_links = not record.links if report_links is None else report_links
        return _this_module().LivyTrigger(
            batch_id=record.batch_id,
            spark_params=self.spark_params,
            livy_conn_id=self._livy_conn_id,
            polling_interval=self._polling_interval,
            extra_options=self._extra_options,
            extra_headers=self._extra_headers,
            execution_timeout=self.execution_timeout,
            endpoint_prefix=self._livy_endpoint_prefix,
            auth_type=_async_auth_type(self._livy_conn_auth_type),
            batch_name=record.name,
            app_id=record.app_id,
            on_kill_action=self.on_kill_action.on_user_action.value,
            redeferrals=redeferrals,
            report_links=report_links,
            follow_log=not report_links,  # a trigger that ends at the links leaves the log to the worker
            log_cursor=record.log_cursor,
        )

    def _inject_openlineage_properties(self, context: Context) -> None:
        if not (self.openlineage_inject_parent_job_info or self.openlineage_inject_transport_info):
            return
        from airflow.providers.common.compat.openlineage.utils.spark import (
            inject_parent_job_information_into_spark_properties,
            inject_transport_information_into_spark_properties,
        )

        spark_conf = dict(self.spark_params.get("conf") or {})
        if self.openlineage_inject_parent_job_info:
            self.log.debug("Injecting parent job information into Spark properties")
            spark_conf = inject_parent_job_information_into_spark_properties(spark_conf, context)
        if self.openlineage_inject_transport_info:
            self.log.debug("Injecting transport information into Spark properties")
            spark_conf = inject_transport_information_into_spark_properties(spark_conf, context)
        self.spark_params["conf"] = spark_conf


def _async_auth_type(auth_type: Any) -> type | None:
    from airflow.providers.apache.livy.hooks.livy import async_auth_type

    return async_auth_type(auth_type)


def _reads_state_from_batch(hook: Any) -> bool:
    from airflow.providers.apache.livy.hooks.livy import reads_state_from_batch

    return reads_state_from_batch(hook)


def _follows_live_log(hook: Any) -> bool:
    from airflow.providers.apache.livy.hooks.livy import follows_live_log

    return follows_live_log(hook)
