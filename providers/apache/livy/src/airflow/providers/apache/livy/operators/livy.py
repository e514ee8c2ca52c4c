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
Operator that runs a Spark batch through Apache Livy.

On Airflow 3.3+ it is crash-safe (``durable=True``, the default): a record kept in the task state
store before the batch is submitted lets every retry find the batch an earlier try created, so a
worker that dies at any moment never causes a second batch. See ``docs/operators.rst``.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import aiohttp
import requests
from airflow.configuration import conf as airflow_conf
from airflow.exceptions import AirflowException

from airflow.providers.apache.livy.exceptions import (
    LivyBatchNotFound,
    LivyDuplicateBatchName,
    LivyError,
    LivyHttpError,
)
from airflow.providers.apache.livy.hooks.livy import (
    BatchOutcome,
    LivyHook,
    batch_outcome,
    validate_batch_id,
)
from airflow.providers.apache.livy.triggers.livy import LivyTrigger
from airflow.providers.apache.livy.utils.batch_record import BatchRecord, NotOurRecord, batch_name
from airflow.providers.apache.livy.version_compat import (
    HAS_RESUMABLE_JOB_MIXIN,
    BaseOperator,
    JsonValue,
    ResumableJobMixin,
    mask_secret,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

RESULT_DELIVERED = "<result already delivered>"
"""Synthetic status: an earlier try returned this batch's result, so this try is a re-run."""
BATCH_GONE = "<batch unknown to Livy>"
"""Synthetic status: Livy knows the batch neither by id nor by name."""
NO_USABLE_RECORD = "<no usable record>"
"""Synthetic status: the stored value is not a record this provider wrote."""
DELIVERED_IN_THIS_RUN = "<result delivered in this run>"
"""Synthetic status, counted as succeeded: a try of this run returned the result, then died."""
_SYNTHETIC_STATUSES = frozenset({RESULT_DELIVERED, BATCH_GONE, NO_USABLE_RECORD, DELIVERED_IN_THIS_RUN})

_SENSITIVE_CONF_KEY = re.compile(r"secret|password|passwd|token|credential|access\.?key|private|auth", re.I)


class LivyOperator(ResumableJobMixin, BaseOperator):
    """
    Submit a Spark application to Apache Livy as a batch and (optionally) wait for it.

    .. seealso::
        For more information on how to use this operator, take a look at the guide:
        :ref:`howto/operator:LivyOperator`

    Three ways to wait, all durable on Airflow 3.3+:

    * ``polling_interval > 0``, ``deferrable=False``: poll from the worker until the batch ends;
    * ``deferrable=True``: wait in the triggerer;
    * ``polling_interval=0``, ``deferrable=False``: fire and forget, return once Livy accepted it.

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
    :param queue: name of the YARN queue to which the application is submitted. (templated)
    :param name: name of this session. With ``durable=True`` it is the readable prefix of the unique
        batch name (``<name>-s<submission>-<digest>``); otherwise it is sent as it is. (templated)
    :param conf: Spark configuration properties; values are never logged. (templated)
    :param proxy_user: user to impersonate when running the job. (templated)
    :param livy_conn_id: reference to a pre-defined Livy Connection.
    :param livy_conn_auth_type: the ``requests`` auth class for the Livy connection.
    :param livy_endpoint_prefix: path prefix in front of ``/batches``.
    :param polling_interval: seconds between polls; ``0`` returns once the batch is submitted.
    :param extra_options: options passed to ``requests`` / ``aiohttp`` (e.g. ``timeout``, ``verify``).
    :param extra_headers: headers sent with every request to Livy.
    :param retry_args: tenacity arguments for reads; 5xx replies and connection errors are retried,
        a POST never is.
    :param deferrable: wait in the triggerer instead of the worker.
    :param openlineage_inject_parent_job_info: inject OpenLineage parent job information into the
        Spark conf.
    :param openlineage_inject_transport_info: inject OpenLineage transport information into the
        Spark conf.
    :param durable: keep the batch across worker crashes (Airflow 3.3+; default ``True``).
        ``False`` submits a new batch on every try, as before AIP-103.
    """

    template_fields: Sequence[str] = ("spark_params",)
    template_fields_renderers = {"spark_params": "json"}
    external_id_key = "livy_batch_id"

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
        **kwargs: Any,
    ) -> None:
        if durable is not None and not HAS_RESUMABLE_JOB_MIXIN:
            warnings.warn(
                "LivyOperator(durable=...) has no effect before Airflow 3.3: there is no task state "
                "store, so every try submits a new batch.",
                UserWarning,
                stacklevel=2,
            )
        super().__init__(durable=True if durable is None else durable, **kwargs)
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
            "queue": queue,
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

        self._batch_id: int | str | None = None
        self._record: BatchRecord | None = None
        self._store: Any = None
        self._logs_dumped_for: int | None = None
        self._delivered_batch: int | None = None

    @cached_property
    def hook(self) -> LivyHook:
        """The :class:`LivyHook` this operator talks to Livy through."""
        return LivyHook(
            livy_conn_id=self._livy_conn_id,
            extra_headers=self._extra_headers,
            extra_options=self._extra_options,
            auth_type=self._livy_conn_auth_type,
            endpoint_prefix=self._livy_endpoint_prefix,
        )

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Render the templates, then mask Spark conf values whose keys look like credentials."""
        super().render_template_fields(context, jinja_env)
        for key, value in (self.spark_params.get("conf") or {}).items():
            if _SENSITIVE_CONF_KEY.search(str(key)) and isinstance(value, str) and value:
                mask_secret(value)

    def execute(self, context: Context) -> Any:
        """Submit (or, after a crash, find) the batch, wait as configured, and return its id."""
        if self.deferrable:
            self._async_auth_type()  # fail before submitting if the triggerer could not authenticate
        self._inject_openlineage_properties(context)
        return self.execute_resumable(context)

    # ---- ResumableJobMixin ----------------------------------------------------------------------

    def submit_job(self, context: Context) -> JsonValue:
        """
        Submit the batch and return its external id (a record of ours, or the bare id if not durable).

        Durable: the record with the batch's unique name is persisted *before* the POST, so a retry
        can find the batch by name whatever happens to this worker or to the POST's reply.
        """
        self._store = self._durable_store(context)
        if self._store is None:
            batch_id = self.hook.submit_batch(self._post_body(self.spark_params.get("name")))["id"]
            self._track(BatchRecord(name=None, batch_id=batch_id))
            return batch_id
        previous = self._load_record()
        if previous is not None and self._is_live_legacy_zero(previous, context):
            self.log.info("Reconnecting to batch 0, stored by an earlier try")
            return previous.to_json()
        record = self._next_submission(previous, context)
        self._save(record)
        try:
            batch = self._create_or_find(record.name or "")
        except LivyHttpError as rejection:
            if rejection.http_status < 500:
                self._abandon_rejected(record)
            raise
        record.batch_id = validate_batch_id(batch["id"])
        record.app_id = batch.get("appId") if isinstance(batch.get("appId"), str) else None
        self._track(record)
        return record.to_json()

    def get_job_status(self, external_id: JsonValue, context: Context) -> str:
        """
        Return the Livy state of the stored batch, checking first that it still is our batch.

        Returns a synthetic status when Livy's state must not decide: the value is not ours, Livy
        knows the batch neither by id nor by name, or the result was already delivered (before a
        clear: submit again; in this run: counted as succeeded, so the same result is returned).
        """
        self._store = self._durable_store(context)
        record = self._parse_stored(external_id)
        if record is None:
            return NO_USABLE_RECORD
        self._track(record)
        if record.delivered_try is not None:
            if self._delivered_before_a_clear(record, context):
                self.log.info(
                    "%s delivered its result in try %s, and the task was cleared since: this run "
                    "submits a new batch",
                    record.describe(),
                    record.delivered_try,
                )
                return RESULT_DELIVERED
            self.log.info(
                "%s delivered its result in try %s, which died before Airflow recorded it: "
                "returning the same result",
                record.describe(),
                record.delivered_try,
            )
            return DELIVERED_IN_THIS_RUN
        if record.final_state is not None:
            self.log.info("%s finished in state %s (remembered)", record.describe(), record.final_state)
            return record.final_state
        batch = self._locate(record)
        if batch is None:
            self.log.warning("Livy does not know %s any more; submitting a new batch", record.describe())
            return BATCH_GONE
        state = _state_of(batch, record)
        if batch_outcome(state) is not BatchOutcome.ACTIVE:
            self._remember_outcome(record, batch)
        return state

    def is_job_active(self, status: str) -> bool:
        """Whether the batch is still running (any non-terminal Livy state, unknown ones included)."""
        return status not in _SYNTHETIC_STATUSES and batch_outcome(status) is BatchOutcome.ACTIVE

    def is_job_succeeded(self, status: str) -> bool:
        """Whether the batch finished in Livy's ``success`` state (or its result was already delivered)."""
        if status in _SYNTHETIC_STATUSES:
            return status == DELIVERED_IN_THIS_RUN
        return batch_outcome(status) is BatchOutcome.SUCCEEDED

    def poll_until_complete(self, external_id: JsonValue, context: Context) -> Any:
        """
        Wait for the batch as configured and return its result.

        Returning the result (not ``None``) makes the mixin's reconnect path return the batch id too.
        In deferrable mode this defers (raises ``TaskDeferred``) unless the batch already finished.
        """
        record = self._record_of(external_id)
        if record.final_state is None:
            if self.deferrable:
                self._defer_unless_finished(record)
            elif self._polling_interval > 0:
                self._wait_until_finished(record)
        if record.final_state is not None:
            self._dump_logs_once(record)
            self._raise_if_failed(record)
        return self.get_job_result(record.to_json(), context)

    def get_job_result(self, external_id: JsonValue, context: Context) -> Any:
        """
        Push the ``app_id`` XCom and return the batch id; mark the result delivered.

        Idempotent within a try: the mixin may call it after :meth:`poll_until_complete` did.
        """
        record = self._record_of(external_id)
        if self._delivered_batch is not None and self._delivered_batch == record.batch_id:
            return record.batch_id
        if record.final_state is not None:
            self._dump_logs_once(record)
        elif record.app_id is None:
            record.app_id = _app_id(self._read_own_batch(record))
        context["ti"].xcom_push(key="app_id", value=record.app_id)
        record.delivered_try = context["ti"].try_number
        self._save(record)
        self._delivered_batch = record.batch_id
        return record.batch_id

    # ---- Released public helpers ----------------------------------------------------------------

    def poll_for_termination(self, batch_id: int | str) -> None:
        """
        Poll Livy until the batch ends, write its log to the task log, raise if it did not succeed.

        :param batch_id: id of the batch to monitor.
        """
        wanted = validate_batch_id(batch_id)
        record = self._record
        if record is None or record.batch_id != wanted:
            record = BatchRecord(name=None, batch_id=wanted)
        self._wait_until_finished(record)
        self._dump_logs_once(record)
        self._raise_if_failed(record)

    def on_kill(self) -> None:
        """Delete this task's batch when the task is killed."""
        self.kill()

    def kill(self) -> None:
        """Delete this task's batch, unless Livy now uses its id for another batch."""
        if self._batch_id is None:
            return
        record = self._record or BatchRecord(name=None, batch_id=validate_batch_id(self._batch_id))
        if record.batch_id is None:
            return
        if record.name is not None:
            try:
                batch = self.hook.get_batch(record.batch_id)
            except LivyBatchNotFound:
                self.log.info("%s is already gone; nothing to delete", record.describe())
                return
            if not self._is_same_batch(record, batch):
                self.log.warning(
                    "Not deleting Livy batch %s: it is now %r, not ours (Livy reused the id)",
                    record.batch_id,
                    batch.get("name"),
                )
                return
        self.hook.delete_batch(record.batch_id)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Finish the task once the trigger reported that the batch ended (or the wait timed out)."""
        for line in event.get("log_lines") or []:
            self.log.info(line)
        self._store = self._durable_store(context)
        record = self._record_after_deferral(validate_batch_id(event["batch_id"]))
        if event.get("log_lines") is not None:
            self._logs_dumped_for = record.batch_id
        if event["status"] == "timeout":
            self.kill()
            raise AirflowException(event["response"])
        if event["status"] != "success":
            if event.get("state") in ("dead", "killed", "error"):
                record.final_state = event["state"]
                self._save(record)
            raise AirflowException(event["response"])
        if event.get("state") == "success":  # without polling the trigger reports no state
            record.final_state = "success"
        if record.app_id is None:
            record.app_id = self._app_id_if_known(record)
        self._save(record)
        self.log.info("%s completed with response %s", self.task_id, event["response"])
        return self.get_job_result(record.to_json(), context)

    # ---- The durable record ----------------------------------------------------------------------

    def _durable_store(self, context: Context) -> Any:
        """The task state store if this run is durable, else ``None``."""
        return context.get("task_state_store") if self.durable else None

    def _load_record(self) -> BatchRecord | None:
        return None if self._store is None else self._parse_stored(self._store.get(self.external_id_key))

    def _save(self, record: BatchRecord) -> None:
        if self._store is not None:
            self._store.set(self.external_id_key, record.to_json())

    def _parse_stored(self, value: Any) -> BatchRecord | None:
        """Read a stored value; one that is not ours is logged and treated as nothing stored."""
        if value is None:
            return None
        try:
            return BatchRecord.from_stored(value)
        except NotOurRecord as reason:
            self.log.warning(
                "Ignoring the value stored under %r (%s); treating it as nothing stored",
                self.external_id_key,
                reason,
            )
            return None

    def _record_of(self, external_id: JsonValue) -> BatchRecord:
        """
        The record behind an external id this operator produced.

        The mixin hands back the value it read from the store; if this try has since learned more
        about the same submission (its id, found by name), the tracked record wins.
        """
        record = BatchRecord.from_stored(external_id)
        if self._record is not None and self._record.same_submission(record):
            return self._record
        self._track(record)
        return record

    def _record_after_deferral(self, batch_id: int) -> BatchRecord:
        stored = self._load_record()
        record = (
            stored
            if stored is not None and stored.batch_id == batch_id
            else BatchRecord(name=None, batch_id=batch_id)
        )
        self._track(record)
        return record

    def _track(self, record: BatchRecord) -> None:
        self._record = record
        self._batch_id = record.batch_id

    def _delivered_before_a_clear(self, record: BatchRecord, context: Context) -> bool:
        """
        Whether ``record``'s result was delivered before the task was last cleared (a re-run).

        A result delivered by the first try since the last clear, or a later one, belongs to this
        run: the try that delivered it died before Airflow recorded its success.
        """
        first_try = self._first_try_since_clear(context)
        return first_try is None or record.delivered_try is None or record.delivered_try < first_try

    def _first_try_since_clear(self, context: Context) -> int | None:
        """
        The first try number since the task was last cleared (``1`` if it never was).

        Clearing a task sets ``max_tries = try_number + retries``, so this is
        ``max_tries - retries + 1``, as Airflow's task runner computes it. ``None`` if unknown.
        """
        max_tries = getattr(context["ti"], "max_tries", None)
        if not isinstance(max_tries, int):
            return None
        return max(1, max_tries - (self.retries or 0) + 1)

    def _is_live_legacy_zero(self, previous: BatchRecord, context: Context) -> bool:
        """
        Whether ``previous`` is batch id 0 as stored by provider 4.6.4, still running or succeeded.

        The mixin skips a stored ``0`` (it tests truthiness), but 0 is the first id after every
        Livy start, so it is checked here instead.
        """
        if not (previous.is_legacy and previous.batch_id == 0):
            return False
        status = self.get_job_status(0, context)
        return self.is_job_active(status) or self.is_job_succeeded(status)

    def _next_submission(self, previous: BatchRecord | None, context: Context) -> BatchRecord:
        """
        The record of the submission to make now.

        A write-ahead record whose POST never produced a batch keeps its name: posting under the same
        name lets Livy's duplicate-name check stop a second batch if that POST arrives after all.
        """
        if previous is not None and previous.awaits_creation:
            return previous
        submission = 1 if previous is None or previous.is_legacy else previous.submission + 1
        ti = context["ti"]
        name = batch_name(
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            map_index=-1 if ti.map_index is None else ti.map_index,
            submission=submission,
            first_try=self._first_try_since_clear(context) or ti.try_number or 1,
            prefix=self.spark_params.get("name"),
        )
        return BatchRecord(name=name, submission=submission)

    # ---- Talking to Livy -------------------------------------------------------------------------

    def _post_body(self, name: str | None) -> dict[str, Any]:
        return self.hook.build_post_batch_body(**{**self.spark_params, "name": name})

    def _create_or_find(self, name: str, *, posts_left: int = 2) -> dict[str, Any]:
        """
        POST the batch under ``name``; if the POST's fate is unknown, find the batch by name.

        Never posts under another name: a duplicate-name rejection or a lost reply is resolved by
        ``GET /batches/{name}``, and a batch that does not exist there is posted again under the
        same name (Livy refuses a second batch with that name).
        """
        try:
            return self.hook.submit_batch(self._post_body(name))
        except LivyDuplicateBatchName:
            reason = "Livy already holds a batch with this name (an earlier POST registered it)"
        except (requests.ConnectionError, requests.Timeout) as error:
            reason = f"the reply to the POST was lost ({type(error).__name__})"
        self.log.warning("Submitting batch %r: %s; looking it up by name", name, reason)
        found = self._find_by_name(name)
        if found is not None:
            self.log.info("Found batch %r as batch %s; adopting it", name, found.get("id"))
            return found
        if posts_left <= 1:
            raise AirflowException(
                f"Could not submit Livy batch {name!r}: {reason}, and no batch has this name"
            )
        return self._create_or_find(name, posts_left=posts_left - 1)

    def _abandon_rejected(self, record: BatchRecord) -> None:
        """
        Mark a submission Livy refused (4xx) as failed, and delete the zombie it may have left.

        Livy runs some checks (file, conf) only after registering the batch, so a refused POST can
        leave a batch stuck in ``starting`` under our name. A retry must not adopt it: the record
        is marked failed (the retry submits under the next name) and the zombie is deleted.
        """
        record.final_state = "error"
        self._save(record)
        zombie = self._find_by_name(record.name) if record.name else None
        if zombie is not None and isinstance(zombie.get("id"), int):
            self.log.warning("Deleting batch %s that Livy left behind after refusing it", zombie["id"])
            self.hook.delete_batch(zombie["id"])

    def _find_by_name(self, name: str) -> dict[str, Any] | None:
        try:
            return self.hook.get_batch_by_name(name, retry_args=self.retry_args)
        except LivyBatchNotFound:
            return None

    def _locate(self, record: BatchRecord) -> dict[str, Any] | None:
        """
        Return Livy's batch for ``record`` after checking its identity, or ``None`` if Livy lost it.

        A batch under the stored id but with another name (Livy restarted and reused the id) is
        never adopted; the batch is then looked up by its name.
        """
        if record.batch_id is None:
            return self._adopt_by_name(record)
        try:
            batch = self.hook.get_batch(record.batch_id, retry_args=self.retry_args)
        except LivyBatchNotFound:
            self.log.warning(
                "Livy no longer knows %s (garbage-collected after it finished, deleted, or Livy "
                "restarted); looking it up by name",
                record.describe(),
            )
            return self._adopt_by_name(record)
        if self._is_same_batch(record, batch):
            record.app_id = record.app_id or _app_id(batch)
            return batch
        self.log.warning(
            "Livy's batch %s is now %r, not %s: Livy restarted and reused the id. Leaving it alone.",
            record.batch_id,
            batch.get("name"),
            record.describe(),
        )
        return self._adopt_by_name(record)

    def _adopt_by_name(self, record: BatchRecord) -> dict[str, Any] | None:
        if record.name is None:
            return None
        batch = self._find_by_name(record.name)
        if batch is None:
            return None
        record.batch_id = validate_batch_id(batch.get("id"))
        record.app_id = _app_id(batch)
        self._track(record)
        self._save(record)
        self.log.info("Found batch %r under id %s", record.name, record.batch_id)
        return batch

    @staticmethod
    def _is_same_batch(record: BatchRecord, batch: dict[str, Any]) -> bool:
        """Whether Livy's ``batch`` is the one ``record`` describes (by name, then by app id)."""
        if record.name is not None and "name" in batch and batch["name"] != record.name:
            return False
        app_id = _app_id(batch)
        return not (record.app_id and app_id and app_id != record.app_id)

    def _read_own_batch(self, record: BatchRecord) -> dict[str, Any]:
        """Read the batch and check it still is ours; raise if Livy lost it or reused its id."""
        if record.batch_id is None:
            raise AirflowException(f"{record.describe()} has no Livy id")
        batch = self.hook.get_batch(record.batch_id, retry_args=self.retry_args)
        if not self._is_same_batch(record, batch):
            raise AirflowException(
                f"Livy batch {record.batch_id} is now {batch.get('name')!r}, not {record.describe()}: "
                "Livy restarted and reused the id, and our batch is lost"
            )
        _state_of(batch, record)
        return batch

    def _wait_until_finished(self, record: BatchRecord) -> None:
        self.log.info(
            "Waiting for %s to finish, polling every %s s", record.describe(), self._polling_interval
        )
        while True:
            batch = self._read_own_batch(record)
            if batch_outcome(batch["state"]) is not BatchOutcome.ACTIVE:
                self.log.info("%s finished in state %s", record.describe(), batch["state"])
                self._remember_outcome(record, batch)
                return
            self.log.info("%s is %s", record.describe(), batch["state"])
            time.sleep(self._polling_interval)

    def _remember_outcome(self, record: BatchRecord, batch: dict[str, Any]) -> None:
        """Cache the terminal state and app id, so they survive Livy forgetting the batch."""
        record.final_state = batch["state"]
        record.app_id = _app_id(batch) or record.app_id
        self._save(record)

    def _dump_logs_once(self, record: BatchRecord) -> None:
        if record.batch_id is None or self._logs_dumped_for == record.batch_id:
            return
        self._logs_dumped_for = record.batch_id
        try:
            self.hook.dump_batch_logs(record.batch_id)
        except LivyError as error:
            self.log.warning("The log of %s is not available: %s", record.describe(), error)

    def _raise_if_failed(self, record: BatchRecord) -> None:
        if record.final_state != "success":
            raise AirflowException(f"Livy {record.describe()} did not succeed: it ended {record.final_state}")

    def _app_id_if_known(self, record: BatchRecord) -> str | None:
        try:
            return _app_id(self._read_own_batch(record))
        except LivyBatchNotFound:
            return None

    def _defer_unless_finished(self, record: BatchRecord) -> None:
        batch = self._read_own_batch(record)
        if batch_outcome(batch["state"]) is not BatchOutcome.ACTIVE:
            self._remember_outcome(record, batch)
            return
        # No defer(timeout=...): the trigger's own deadline ends the wait with a "timeout" event,
        # so execute_complete can delete the batch instead of leaving it running.
        self.defer(
            trigger=LivyTrigger(
                batch_id=record.batch_id if record.batch_id is not None else "",
                spark_params=self.spark_params,
                livy_conn_id=self._livy_conn_id,
                polling_interval=self._polling_interval,
                extra_options=self._extra_options,
                extra_headers=self._extra_headers,
                execution_timeout=self.execution_timeout,
                endpoint_prefix=self._livy_endpoint_prefix,
                auth_type=self._async_auth_type(),
                batch_name=record.name,
            ),
            method_name="execute_complete",
        )

    def _async_auth_type(self) -> type | None:
        """
        The ``aiohttp`` auth class the triggerer must use for ``livy_conn_auth_type``.

        ``livy_conn_auth_type`` is a ``requests`` auth class (the worker submits with ``requests``);
        only basic auth has an ``aiohttp`` counterpart.
        """
        auth_type = self._livy_conn_auth_type
        if auth_type is None:
            return None
        if auth_type is requests.auth.HTTPBasicAuth:
            return aiohttp.BasicAuth
        raise AirflowException(
            f"deferrable=True waits through aiohttp, which has no counterpart of {auth_type!r}; use "
            "livy_conn_auth_type=None or requests.auth.HTTPBasicAuth, or deferrable=False"
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


def _state_of(batch: dict[str, Any], record: BatchRecord) -> str:
    """The batch's state; a reply without one is an error that names the batch."""
    state = batch.get("state")
    if not isinstance(state, str):
        raise AirflowException(f"Livy's reply for {record.describe()} has no state: {str(batch)[:200]}")
    return state


def _app_id(batch: dict[str, Any]) -> str | None:
    app_id = batch.get("appId")
    return app_id if isinstance(app_id, str) and app_id else None
