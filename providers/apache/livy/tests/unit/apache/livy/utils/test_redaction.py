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
"""The policy for Spark conf values (``utils/redaction.py``): keys may be shown, values never."""

from __future__ import annotations

import copy
from collections import OrderedDict
from types import MappingProxyType

import pytest

from airflow.providers.apache.livy.utils.redaction import (
    REDACTED,
    credential_conf_values,
    describe_batch_body,
    redact_spark_params,
)

SECRET = "s3-secret-key-value-123"


# ---- credential_conf_values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "spark.hadoop.fs.s3a.secret.key",
        "spark.hadoop.fs.s3a.access.key",
        "spark.hadoop.fs.s3a.accesskey",
        "spark.ssl.keyPassword",
        "spark.ssl.trustStorePasswd",
        "spark.kubernetes.authenticate.oauthToken",
        "spark.hadoop.fs.azure.account.oauth2.client.secret",
        "spark.yarn.credentials.file",
        "spark.hadoop.private.key",
        "SPARK.PASSWORD",
    ],
)
def test_values_under_credential_keys_are_returned(key):
    assert credential_conf_values({key: SECRET, "spark.executor.instances": "4"}) == [SECRET]


@pytest.mark.parametrize(
    "key",
    [
        "spark.executor.instances",
        "spark.app.name",
        "spark.sql.shuffle.partitions",
        "spark.keytab",
        "spark.authenticate",  # "true": masking it would hide every "true" in the task log
        "spark.yarn.principal",
        "spark.hadoop.google.cloud.auth.service.account.json.keyfile",  # a path, not the key
    ],
)
def test_values_under_other_keys_are_not(key):
    assert credential_conf_values({key: "value"}) == []


@pytest.mark.parametrize("value", ["", 42, 1.5, None, True, ["x"]])
def test_only_non_empty_strings_are_returned(value):
    assert credential_conf_values({"spark.password": value}) == []


@pytest.mark.parametrize("conf", [None, {}, MappingProxyType({"spark.token": "t0ken-value"})])
def test_credential_conf_values_takes_any_mapping(conf):
    assert credential_conf_values(conf) == list((conf or {}).values())


def test_every_credential_value_is_returned_in_order():
    conf = {"spark.a.password": "one", "spark.b": "public", "spark.c.token": "two", 7: "three"}
    assert credential_conf_values(conf) == ["one", "two"]


# ---- redact_spark_params ------------------------------------------------------------------------------


def test_every_conf_value_is_redacted_and_the_rest_kept():
    params = {
        "file": "s3://bucket/app.py",
        "args": ["--day", "2026-01-01"],
        "conf": {"spark.hadoop.fs.s3a.secret.key": SECRET, "spark.executor.instances": "4"},
    }
    original = copy.deepcopy(params)
    redacted = redact_spark_params(params)
    assert redacted == {
        "file": "s3://bucket/app.py",
        "args": ["--day", "2026-01-01"],
        "conf": {"spark.hadoop.fs.s3a.secret.key": REDACTED, "spark.executor.instances": REDACTED},
    }
    assert REDACTED == "***"
    assert SECRET not in repr(redacted)
    assert params == original
    assert redacted is not params


def test_a_mapping_conf_is_redacted_into_a_dict():
    redacted = redact_spark_params({"conf": OrderedDict([("spark.token", SECRET)])})
    assert redacted == {"conf": {"spark.token": REDACTED}}
    assert type(redacted["conf"]) is dict


@pytest.mark.parametrize(
    "params",
    [{}, {"file": "a.py"}, {"file": "a.py", "conf": None}, {"conf": "spark.x=1"}, {"conf": ["spark.x"]}],
)
def test_params_without_a_conf_mapping_are_copied_as_they_are(params):
    redacted = redact_spark_params(params)
    assert redacted == params
    assert redacted is not params


# ---- describe_batch_body ------------------------------------------------------------------------------


def test_describe_names_conf_keys_never_values():
    body = {
        "file": "s3://bucket/app.py",
        "className": "com.example.Main",
        "name": "etl-s1-abc",
        "proxyUser": "carol",
        "queue": "default",
        "args": ["--password", "arg-secret"],
        "conf": {"spark.z.secret": SECRET, "spark.a": "1"},
    }
    text = describe_batch_body(body)
    for shown in ("s3://bucket/app.py", "com.example.Main", "etl-s1-abc", "carol", "default"):
        assert shown in text
    assert "spark.a" in text
    assert "spark.z.secret" in text
    assert text.index("spark.a") < text.index("spark.z.secret")
    assert SECRET not in text
    assert "arg-secret" not in text
    assert "'1'" not in text


def test_describe_a_minimal_body():
    text = describe_batch_body({"file": "app.jar"})
    assert "app.jar" in text
    assert "conf" not in text
    assert "None" not in text


def test_describe_skips_empty_fields():
    text = describe_batch_body({"file": "app.jar", "name": None, "queue": "", "conf": {}})
    assert text == describe_batch_body({"file": "app.jar"})
