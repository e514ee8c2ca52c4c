"""Simulated Spark batch jobs: a per-batch schedule read from ``conf`` and evaluated against the clock."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

LOG_RING_SIZE = 200  # livy.cache-log.size
LOG_TAIL_IN_BATCH = 10
STDOUT_MARKER = "stdout: "
STDERR_MARKER = "\nstderr: "
OUTCOMES = ("success", "dead", "killed")
TERMINAL_STATES = frozenset(OUTCOMES)
CONF_PREFIX = "spark.standin."
APP_ID_CLUSTER_TS = 1700000000000


class JobSpecError(ValueError):
    """A ``spark.standin.*`` conf value the stand-in cannot use."""


@dataclass(frozen=True)
class JobSpec:
    """How one simulated job behaves, from the batch's ``spark.standin.*`` conf keys."""

    starting_seconds: float = 0.2
    duration_seconds: float = 2.0
    outcome: str = "success"
    log_lines: int = 5
    drop_reply: bool = False
    reply_delay_seconds: float = 0.0

    @classmethod
    def from_conf(cls, conf: Mapping[str, str]) -> JobSpec:
        """Parse the ``spark.standin.*`` keys of ``conf``; raise JobSpecError on a bad or unknown key."""
        known = {
            "startingSeconds",
            "durationSeconds",
            "outcome",
            "logLines",
            "dropReply",
            "replyDelaySeconds",
        }
        keys = {k[len(CONF_PREFIX) :]: v for k, v in conf.items() if k.startswith(CONF_PREFIX)}
        unknown = sorted(set(keys) - known)
        if unknown:
            raise JobSpecError(f"unknown conf key {CONF_PREFIX}{unknown[0]} (known: {sorted(known)})")
        return cls(
            starting_seconds=_seconds(keys, "startingSeconds", cls.starting_seconds),
            duration_seconds=_seconds(keys, "durationSeconds", cls.duration_seconds),
            outcome=_outcome(keys.get("outcome", cls.outcome)),
            log_lines=_count(keys, "logLines", cls.log_lines),
            drop_reply=_flag(keys, "dropReply"),
            reply_delay_seconds=_seconds(keys, "replyDelaySeconds", cls.reply_delay_seconds),
        )


def _bad(key: str, value: str, want: str) -> JobSpecError:
    return JobSpecError(f"bad value for {CONF_PREFIX}{key}: {value!r} (want {want})")


def _seconds(keys: Mapping[str, str], key: str, default: float) -> float:
    raw = keys.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _bad(key, raw, "seconds >= 0") from None
    if not math.isfinite(value) or value < 0:
        raise _bad(key, raw, "seconds >= 0")
    return value


def _count(keys: Mapping[str, str], key: str, default: int) -> int:
    raw = keys.get(key)
    if raw is None:
        return default
    if not raw.strip().isdigit():
        raise _bad(key, raw, "an integer >= 0")
    return int(raw)


def _flag(keys: Mapping[str, str], key: str) -> bool:
    raw = keys.get(key, "false").strip().lower()
    if raw not in ("true", "false"):
        raise _bad(key, raw, "true or false")
    return raw == "true"


def _outcome(raw: str) -> str:
    if raw not in OUTCOMES:
        raise _bad("outcome", raw, " | ".join(OUTCOMES))
    return raw


@dataclass
class Batch:
    """One batch as the stand-in remembers it; every visible field is a function of the clock.

    Times are ``time.monotonic()`` values. ``created_wall`` is ``time.time()`` for humans.
    """

    id: int
    name: str | None
    epoch: int
    spec: JobSpec
    conf: dict[str, str]
    created: float
    created_wall: float
    zombie: bool = False
    queue: str | None = None
    """The YARN queue the request named (Livy passes it to spark-submit as ``--queue``)."""
    recovering_until: float | None = None
    log_lost: bool = False
    killed_at: float | None = None
    forgotten: str | None = None
    ring: int = LOG_RING_SIZE
    """Lines the log buffer holds (``livy.cache-log.size``)."""

    @property
    def run_start(self) -> float:
        """When the job leaves ``starting``."""
        return self.created + self.spec.starting_seconds

    @property
    def run_end(self) -> float:
        """When the job reaches its outcome."""
        return self.run_start + self.spec.duration_seconds

    def job_state(self, now: float) -> str:
        """The job's own state (what YARN would say), regardless of what Livy remembers."""
        if self.zombie:
            return "starting"
        if self.killed_at is not None and self.killed_at < self.run_end and now >= self.killed_at:
            return "killed"
        if now < self.run_start:
            return "starting"
        if now < self.run_end:
            return "running"
        return self.spec.outcome

    def state(self, now: float) -> str:
        """The state Livy reports: ``recovering`` after a recovery restart, else the job's state."""
        if self.recovering_until is not None and now < self.recovering_until and not self.zombie:
            return "recovering"
        return self.job_state(now)

    def finished_at(self) -> float | None:
        """When Livy sees the batch finish (the retention clock starts then); None for a zombie."""
        if self.zombie:
            return None
        return max(self.run_end, self.recovering_until or self.run_end)

    def kill(self, now: float) -> None:
        """Kill the job (DELETE, a graceful restart): ``killed`` from ``now`` unless it finished before."""
        if self.killed_at is None:
            self.killed_at = now

    def app_id(self, now: float) -> str | None:
        """The YARN-style application id, known once the job has entered ``running``."""
        if self.zombie or now < self.run_start:
            return None
        return f"application_{APP_ID_CLUSTER_TS + self.epoch}_{self.id:04d}"

    def lines_emitted(self, now: float) -> int:
        """How many job output lines exist at ``now`` (spread evenly over the running phase)."""
        total = self.spec.log_lines
        if now < self.run_start:
            return 0
        if now >= self.run_end or self.spec.duration_seconds <= 0:
            return total
        return min(total, math.floor(total * (now - self.run_start) / self.spec.duration_seconds))

    def log(self, now: float) -> list[str]:
        """The buffered log: marker, the last ``ring`` job lines, stderr marker (merged stream)."""
        if self.zombie or self.log_lost:
            return []
        emitted = self.lines_emitted(now)
        first = max(1, emitted - self.ring + 1)
        lines = [f"line {i} of batch {self.id}" for i in range(first, emitted + 1)]
        return [STDOUT_MARKER, *lines, STDERR_MARKER]
