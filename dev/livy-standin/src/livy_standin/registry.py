"""Livy's batch session manager, simulated: ids, names, retention GC, restarts, admin counters and journal."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .body import CreateBatchRequest
from .jobs import LOG_TAIL_IN_BATCH, TERMINAL_STATES, Batch, JobSpec

REQUEST_KINDS = (
    "POST /batches",
    "GET /batches",
    "GET /batches/{id}",
    "GET /batches/{name}",
    "GET /batches/{id}/state",
    "GET /batches/{name}/state",
    "GET /batches/{id}/log",
    "GET /batches/{name}/log",
    "DELETE /batches/{id}",
    "DELETE /batches/{name}",
    "GET /version",
    "other",
)
JOURNAL_LIMIT = 100_000
"""The request journal keeps the newest this many requests."""
_DIGITS = re.compile(r"[0-9]+")
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


class ApiError(Exception):
    """An error reply: ``body`` is sent as JSON (a dict, or a bare string for parse errors)."""

    def __init__(self, status: int, body: object) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def msg(text: str) -> dict[str, str]:
    """Livy's ResponseMessage body."""
    return {"msg": text}


def java_int(text: str) -> int:
    """``Integer.parseInt``: raise ApiError 400 ``For input string: "..."`` on anything else."""
    if re.fullmatch(r"[+-]?[0-9]+", text):
        value = int(text)
        if _INT_MIN <= value <= _INT_MAX:
            return value
    raise ApiError(400, msg(f'For input string: "{text}"'))


def wrap_int32(value: int) -> int:
    """Java int overflow, for ``from + size``."""
    return (value - _INT_MIN) % 2**32 + _INT_MIN


def scala_slice(items: list[Any], start: int, until: int) -> list[Any]:
    """Scala ``seq.view(from, until)``: clamp both ends, empty when ``until <= from``."""
    lo, hi = max(start, 0), min(until, len(items))
    return items[lo:hi] if hi > lo else []


def is_id_segment(segment: str) -> bool:
    """Livy treats an all-digit path segment as an id and anything else as a name."""
    return bool(_DIGITS.fullmatch(segment))


@dataclass(frozen=True)
class Arrival:
    """A request as it arrived: its place in the journal, when, and its counter key."""

    seq: int
    time: float
    monotonic: float
    kind: str


@dataclass(frozen=True)
class RequestRecord:
    """One journal entry (``GET /admin/requests``): a Livy API request and how it was answered."""

    seq: int
    """Arrival order, from 0; it keeps counting across ``reset_stats``."""
    time: float
    """Wall-clock arrival time (unix seconds)."""
    monotonic: float
    """Arrival time on the registry's clock (``time.monotonic`` unless a test injects another)."""
    method: str
    path: str
    """The path as sent, without the query string."""
    query: str
    kind: str
    """The counter key of ``/admin/stats``, e.g. ``GET /batches/{id}/state``."""
    status: int | None
    """The status sent; ``None`` when the connection was closed with no reply (``dropReply``)."""
    name: str | None
    """``POST /batches``: the ``name`` of a body that could be read; else ``None``."""
    created_id: int | None
    """``POST /batches``: the id of the batch it created (also for a dropped reply); else ``None``."""

    def as_json(self) -> dict[str, Any]:
        """The entry as ``GET /admin/requests`` lists it."""
        return asdict(self)


@dataclass
class Created:
    """A successful creation: the batch, and whether to drop the reply."""

    batch: Batch
    drop_reply: bool


class Registry:
    """All server-side state, guarded by one lock (which also serializes POSTs, as Livy does)."""

    def __init__(
        self, retain_seconds: float, gc_interval: float, clock: Callable[[], float] = time.monotonic
    ):
        self.lock = threading.RLock()
        self.clock = clock
        self.retain_seconds = retain_seconds
        self.gc_interval = gc_interval
        self.config_changed = threading.Event()
        self.base_url = ""
        self.epoch = 0
        self.next_id = 0
        self.live: dict[int, Batch] = {}
        self.by_name: dict[str, Batch] = {}
        self.history: list[Batch] = []
        self.dropped_names: set[str] = set()
        self.counts: dict[str, int] = {}
        self.batches_created = 0
        self.journal: deque[RequestRecord] = deque(maxlen=JOURNAL_LIMIT)
        self.next_seq = 0
        self.journal_floor = 0
        self.reset_stats()

    # --- counters and journal ---------------------------------------------------------------------
    def count(self, kind: str) -> None:
        """Count one received request of ``kind`` (one of REQUEST_KINDS)."""
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def arrive(self, kind: str) -> Arrival:
        """Count one received request of ``kind`` and give it its journal place and arrival times."""
        with self.lock:
            self.count(kind)
            arrival = Arrival(self.next_seq, time.time(), self.clock(), kind)
            self.next_seq += 1
            return arrival

    def record(self, entry: RequestRecord) -> None:
        """Journal an answered (or dropped) request; one that arrived before the last reset is left out."""
        with self.lock:
            if entry.seq >= self.journal_floor:
                self.journal.append(entry)

    def requests(self) -> list[dict[str, Any]]:
        """The journal, in arrival order (the newest JOURNAL_LIMIT requests since the last reset)."""
        with self.lock:
            entries = sorted(self.journal, key=lambda entry: entry.seq)
        return [entry.as_json() for entry in entries]

    def reset_stats(self) -> dict[str, str]:
        """Zero every counter and empty the request journal."""
        with self.lock:
            self.counts = dict.fromkeys(REQUEST_KINDS, 0)
            self.batches_created = 0
            self.journal.clear()
            self.journal_floor = self.next_seq
        return msg("reset")

    def stats(self) -> dict[str, Any]:
        """The admin counters."""
        with self.lock:
            return {
                "posts": self.counts["POST /batches"],
                "batches_created": self.batches_created,
                "requests": dict(self.counts),
            }

    # --- Livy API ---------------------------------------------------------------------------------
    def create(self, req: CreateBatchRequest, spec: JobSpec) -> Created:
        """Register a batch like SessionManager.register; raise ApiError for the §2b rejections."""
        with self.lock:
            batch_id = self.next_id
            self.next_id += 1
            name = req.name
            if name is not None and (name == "" or name.isdigit()):
                raise ApiError(400, msg(f"Rejected, Reason: Invalid session name: {name}"))
            if name is not None and name in self.by_name:
                raise ApiError(
                    400, msg(f"Rejected, Reason: Duplicate session name: Some({name}) for session {batch_id}")
                )
            batch = self._register(batch_id, req, spec)
            if batch.zombie:
                raise ApiError(400, msg("Rejected, Reason: requirement failed: File is required."))
            self.batches_created += 1
            drop = spec.drop_reply and (name is None or name not in self.dropped_names)
            if drop and name is not None:
                self.dropped_names.add(name)
            return Created(batch, drop)

    def _register(self, batch_id: int, req: CreateBatchRequest, spec: JobSpec) -> Batch:
        batch = Batch(
            id=batch_id,
            name=req.name,
            epoch=self.epoch,
            spec=spec,
            conf=dict(req.conf),
            created=self.clock(),
            created_wall=time.time(),
            zombie=req.file is None,
        )
        self.live[batch_id] = batch
        if batch.name is not None:
            self.by_name[batch.name] = batch
        self.history.append(batch)
        return batch

    def lookup(self, segment: str) -> Batch:
        """Resolve a path segment (digits = id, else name); raise ApiError 400/404 as Livy does."""
        with self.lock:
            found = self.live.get(java_int(segment)) if is_id_segment(segment) else self.by_name.get(segment)
        if found is None:
            raise ApiError(404, msg(f"Session '{segment}' not found."))
        return found

    def delete(self, segment: str) -> dict[str, str]:
        """DELETE: kill the job (if active) and forget the batch at once."""
        with self.lock:
            batch = self.lookup(segment)
            now = self.clock()
            if batch.killed_at is None and batch.job_state(now) in ("starting", "running"):
                batch.killed_at = now
            self._forget(batch, "delete")
        return msg("deleted")

    def list_view(self, start: int, size: int) -> dict[str, Any]:
        """GET /batches: ``total`` is every batch in memory, the page is a clamped slice."""
        with self.lock:
            now = self.clock()
            batches = list(self.live.values())
            page = scala_slice(batches, start, wrap_int32(start + size))
            return {"from": start, "total": len(batches), "sessions": [self._view(b, now) for b in page]}

    def view(self, batch: Batch, now: float | None = None) -> dict[str, Any]:
        """The Batch object, keys in Livy's order (owner and proxyUser null: no auth, no impersonation)."""
        with self.lock:
            return self._view(batch, self.clock() if now is None else now)

    def _view(self, batch: Batch, now: float) -> dict[str, Any]:
        app_id = batch.app_id(now)
        fake = f"{self.base_url}/fake-cluster/{app_id}" if app_id else None
        return {
            "id": batch.id,
            "name": batch.name,
            "owner": None,
            "proxyUser": None,
            "state": batch.state(now),
            "appId": app_id,
            "appInfo": {
                "driverLogUrl": f"{fake}/driver-log" if fake else None,
                "sparkUiUrl": f"{fake}/spark-ui" if fake else None,
                "executorLogUrls": None,
            },
            "log": batch.log(now)[-LOG_TAIL_IN_BATCH:],
        }

    @staticmethod
    def log_view(batch: Batch, lines: list[str], start: int | None, size: int | None) -> dict[str, Any]:
        """GET /batches/{id}/log: SessionServlet.serializeLogs."""
        size_ = 100 if size is None else size
        if size_ < 0:
            size_ = len(lines)
        from_ = -1 if start is None else start
        if from_ < 0:
            from_ = max(0, len(lines) - size_)
        page = scala_slice(lines, from_, wrap_int32(from_ + size_))
        return {"id": batch.id, "from": from_, "total": len(lines), "log": page}

    # --- GC, restart, admin -----------------------------------------------------------------------
    def collect_garbage(self) -> list[int]:
        """Forget batches that finished more than ``retain_seconds`` ago; return their ids."""
        with self.lock:
            now = self.clock()
            expired = [
                b
                for b in self.live.values()
                if (done := b.finished_at()) is not None and now >= done and now - done > self.retain_seconds
            ]
            for batch in expired:
                self._forget(batch, "gc")
            return [b.id for b in expired]

    def _forget(self, batch: Batch, reason: str) -> None:
        self.live.pop(batch.id, None)
        if batch.name is not None and self.by_name.get(batch.name) is batch:
            del self.by_name[batch.name]
        batch.forgotten = reason

    def forget(self, batch_id: int) -> dict[str, Any]:
        """Admin: forget one batch now, as GC would."""
        with self.lock:
            batch = self.live.get(batch_id)
            if batch is None:
                raise ApiError(404, msg(f"Session '{batch_id}' not found."))
            self._forget(batch, "admin")
        return {"msg": "forgotten", "id": batch_id}

    def restart(
        self, recovery: bool, recovering_seconds: float, keep_finished: bool = False, graceful: bool = False
    ) -> dict[str, Any]:
        """Simulate a Livy restart, with or without session recovery (see the README)."""
        with self.lock:
            now = self.clock()
            self.epoch += 1
            for batch in list(self.live.values()):
                if recovery:
                    self._recover(batch, now, recovering_seconds, keep_finished)
                else:
                    if graceful and batch.job_state(now) in ("starting", "running"):
                        batch.killed_at = now
                    self._forget(batch, "restart")
            if not recovery:
                self.next_id = 0
            return {"msg": "restarted", "epoch": self.epoch, "recovery": recovery, "next_id": self.next_id}

    def _recover(self, batch: Batch, now: float, recovering_seconds: float, keep_finished: bool) -> None:
        """Recovery: dead/killed and zombies were never (or no longer) in the state store; logs are lost."""
        batch.log_lost = True
        visible = batch.state(now)
        if batch.zombie or (visible in ("dead", "killed") and not keep_finished):
            self._forget(batch, "restart")
        elif not (keep_finished and visible in TERMINAL_STATES):
            batch.recovering_until = now + recovering_seconds

    def configure(self, retain_seconds: float | None, gc_interval: float | None) -> dict[str, float]:
        """Admin: change retention and GC interval at run time."""
        with self.lock:
            if retain_seconds is not None:
                self.retain_seconds = retain_seconds
            if gc_interval is not None:
                self.gc_interval = gc_interval
            self.config_changed.set()
            return self.config()

    def config(self) -> dict[str, float]:
        """The current retention settings."""
        return {"retain_seconds": self.retain_seconds, "gc_interval": self.gc_interval}

    def admin_batches(self) -> list[dict[str, Any]]:
        """Every batch ever created, including forgotten ones, with the job's own state."""
        with self.lock:
            now = self.clock()
            return [self._admin_entry(b, now) for b in self.history]

    @staticmethod
    def _admin_entry(batch: Batch, now: float) -> dict[str, Any]:
        return {
            "id": batch.id,
            "name": batch.name,
            "state": batch.state(now) if batch.forgotten is None else batch.job_state(now),
            "appId": batch.app_id(now),
            "conf": dict(batch.conf),
            "created_at": batch.created_wall,
            "forgotten": batch.forgotten is not None,
            "forgotten_reason": batch.forgotten,
            "epoch": batch.epoch,
            "zombie": batch.zombie,
        }
