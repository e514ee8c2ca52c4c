"""Fixtures: a fresh stand-in server per test on 127.0.0.1 (free port), and a client bound to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from standin_helpers import Client

from livy_standin import LivyStandin


@pytest.fixture
def standin() -> Iterator[LivyStandin]:
    with LivyStandin(host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
def http(standin: LivyStandin) -> Iterator[Client]:
    with requests.Session() as session:
        yield Client(standin.url, session)
