"""
Test-only DAG: try 1 SIGKILLs its own task process as soon as Livy's reply to ``POST /batches`` arrived.

That is the worst moment for a worker to die: Livy has created the batch, but the batch id never
reached the task state store (only the write-ahead record with the batch's name did). The retry must
find the batch by its name instead of submitting a second one.

The kill sits at the HTTP layer (``requests.Session.send``, which the synchronous hook sends through),
not on a hook method, so it does not depend on how the provider names its methods.
"""

from __future__ import annotations

import os
import signal
from typing import Any
from urllib.parse import urlsplit

import requests
from livy_e2e_dag import spark_pi_dag

from airflow.providers.apache.livy.operators.livy import LivyOperator


class LivyOperatorDyingAfterPost(LivyOperator):
    """On try 1, SIGKILL the task process once a ``POST /batches`` was answered 201."""

    def execute(self, context: Any) -> Any:
        if context["ti"].try_number == 1:
            send = requests.Session.send

            def send_then_die(session: requests.Session, request: Any, **kwargs: Any) -> Any:
                response = send(session, request, **kwargs)
                path = urlsplit(request.url or "").path
                if request.method == "POST" and path.endswith("/batches") and response.status_code == 201:
                    os.kill(os.getpid(), signal.SIGKILL)
                return response  # for a POST /batches: never reached

            requests.Session.send = send_then_die  # type: ignore[method-assign,assignment]
        return super().execute(context)


livy_crash_after_post = spark_pi_dag("livy_crash_after_post", LivyOperatorDyingAfterPost)
