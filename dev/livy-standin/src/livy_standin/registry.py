"""Livy's batch session manager, simulated: ids, names, retention GC, restarts, admin counters and journal."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .body import CreateBatchRequest
from .jobs import LOG_RING_SIZE, LOG_TAIL_IN_BATCH, TERMINAL_STATES, Batch, JobSpec

if TYPE_CHECKING:
    from .spark import SparkLauncher

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
FAULT_KEYS = frozenset({"kind", "method", "path", "status", "body", "content_type", "headers", "times"})
_FAULT_JSON = "application/json;charset=utf-8"
_FAULT_TEXT = "text/plain;charset=utf-8"
_DIGITS = re.compile(r"[0-9]+")
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


class ApiError(Exception):
    """An error reply: ``body`` is sent as JSON (a dict, or a bare string for parse errors)."""

    def __init__(self, status: int, body: object) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def version_at_least(version: str, major: int, minor: int) -> bool:
    """Whether Livy ``version`` (``0.7.1-incubating``) is ``major.minor`` or later; unparsable: yes."""
    found = re.match(r"(\d+)\.(\d+)", version)
    return found is None or (int(found[1]), int(found[2])) >= (major, minor)


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
    fault: int | None = None
    """The id of the scripted fault (``POST /admin/faults``) that answered it; ``None`` if Livy did."""

    def as_json(self) -> dict[str, Any]:
        """The entry as ``GET /admin/requests`` lists it."""
        return asdict(self)


@dataclass
class Fault:
    """A scripted error reply, as a gateway or proxy in front of Livy would send.

    It answers the next ``times`` requests that match; Livy never sees them (nothing is created,
    read or deleted).
    """

    id: int
    kind: str
    """The counter key it matches (``GET /batches/{name}``, ...): one of REQUEST_KINDS."""
    method: str | None
    """The method as sent (``HEAD`` is not ``GET`` here); ``None`` matches any method of the kind."""
    path: str | None
    """The exact path (no query) it matches; ``None`` matches any."""
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]
    times: int
    """How many more requests it answers."""
    served: int = 0

    def matches(self, method: str, kind: str, path: str) -> bool:
        """Whether the request ``method path`` (counted as ``kind``) gets this reply."""
        return (
            self.times > 0
            and kind == self.kind
            and self.method in (None, method)
            and self.path in (None, path)
        )

    def as_json(self) -> dict[str, Any]:
        """The fault as ``GET /admin/faults`` lists it (``body`` as text)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "body": self.body.decode("utf-8", "replace"),
            "content_type": self.content_type,
            "headers": dict(self.headers),
            "times": self.times,
            "served": self.served,
        }


def fault_from_spec(fault_id: int, spec: dict[str, Any]) -> Fault:
    """Check a fault as ``POST /admin/faults`` takes it; raise ApiError 400 naming the bad field."""
    unknown = sorted(set(spec) - FAULT_KEYS)
    if unknown:
        raise ApiError(400, msg(f"admin: unknown fault field {unknown[0]!r} (known: {sorted(FAULT_KEYS)})"))
    kind = spec.get("kind")
    if kind not in REQUEST_KINDS:
        raise ApiError(400, msg(f"admin: fault kind must be one of {list(REQUEST_KINDS)}, got {kind!r}"))
    method = spec.get("method")
    if method is not None:
        if not isinstance(method, str) or not method.isalpha():
            raise ApiError(400, msg(f"admin: fault method must be an HTTP method, got {method!r}"))
        method = method.upper()
        kind_method = kind.split(" ")[0]
        if kind != "other" and method not in (kind_method, "HEAD" if kind_method == "GET" else kind_method):
            raise ApiError(400, msg(f"admin: method {method} never counts as {kind!r}"))
    path = spec.get("path")
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        raise ApiError(400, msg(f"admin: fault path must start with '/', got {path!r}"))
    status = spec.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise ApiError(400, msg(f"admin: fault status must be an integer in 200..599, got {status!r}"))
    raw = spec.get("body", "")
    body = raw.encode() if isinstance(raw, str) else json.dumps(raw, separators=(",", ":")).encode()
    if status in (204, 304) and body:
        raise ApiError(400, msg(f"admin: a {status} reply has no body"))
    content_type = spec.get("content_type", _FAULT_TEXT if isinstance(raw, str) else _FAULT_JSON)
    if not isinstance(content_type, str) or not content_type or not content_type.isprintable():
        raise ApiError(400, msg(f"admin: fault content_type must be a header value, got {content_type!r}"))
    headers = spec.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k.isprintable() and v.isprintable() and ":" not in k
        for k, v in headers.items()
    ):
        raise ApiError(400, msg("admin: fault headers must be an object of header names to strings"))
    if {k.lower() for k in headers} & {"content-type", "content-length"}:
        raise ApiError(400, msg("admin: set content_type instead; Content-Length is computed"))
    times = spec.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ApiError(400, msg(f"admin: fault times must be an integer >= 1, got {times!r}"))
    return Fault(fault_id, kind, method, path, status, body, content_type, dict(headers), times)


@dataclass
class Created:
    """A successful creation: the batch, and whether to drop the reply."""

    batch: Batch
    drop_reply: bool


class Registry:
    """All server-side state, guarded by one lock (which also serializes POSTs, as Livy does)."""

    def __init__(
        self,
        retain_seconds: float,
        gc_interval: float,
        clock: Callable[[], float] = time.monotonic,
        livy_version: str = "0.9.0-incubating",
        log_ring: int = LOG_RING_SIZE,
    ):
        self.lock = threading.RLock()
        self.log_ring = log_ring
        """Lines each batch's log buffer holds (``livy.cache-log.size``)."""
        self.rejected = "Rejected, Reason: " if version_at_least(livy_version, 0, 8) else ""
        """What Livy 0.8+ puts in front of a refusal's text (§2b); 0.7 and older put nothing."""
        self.executor_log_urls = version_at_least(livy_version, 0, 9)
        """Whether ``appInfo`` has ``executorLogUrls`` (0.9+, §2)."""
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
        self.faults: list[Fault] = []
        self.next_fault_id = 0
        self.launcher: SparkLauncher | None = None
        """Set (``--spark``): each batch runs a real spark-submit instead of a simulated job."""
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
        """Zero every counter, empty the request journal and drop the pending faults."""
        with self.lock:
            self.counts = dict.fromkeys(REQUEST_KINDS, 0)
            self.batches_created = 0
            self.journal.clear()
            self.journal_floor = self.next_seq
            self.faults.clear()
        return msg("reset")

    # --- scripted faults --------------------------------------------------------------------------
    def add_fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Script an error reply (see :func:`fault_from_spec`); faults match in the order added."""
        with self.lock:
            fault = fault_from_spec(self.next_fault_id, spec)
            self.next_fault_id += 1
            self.faults.append(fault)
            return fault.as_json()

    def take_fault(self, method: str, kind: str, path: str) -> Fault | None:
        """The first pending fault matching the request, used up once; ``None`` if Livy answers it."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, kind, path):
                    fault.times -= 1
                    fault.served += 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def pending_faults(self) -> list[dict[str, Any]]:
        """The faults that still answer requests, in matching order."""
        with self.lock:
            return [fault.as_json() for fault in self.faults]

    def clear_faults(self) -> dict[str, Any]:
        """Drop every pending fault."""
        with self.lock:
            dropped = len(self.faults)
            self.faults.clear()
        return {"msg": "cleared", "dropped": dropped}

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
                raise ApiError(400, msg(f"{self.rejected}Invalid session name: {name}"))
            if name is not None and name in self.by_name:
                raise ApiError(
                    400, msg(f"{self.rejected}Duplicate session name: Some({name}) for session {batch_id}")
                )
            batch = self._register(batch_id, req, spec)
            if batch.zombie:
                raise ApiError(400, msg(f"{self.rejected}requirement failed: File is required."))
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
            queue=req.extra.get("queue"),
            ring=self.log_ring,
        )
        if self.launcher is not None and not batch.zombie:
            batch = self.launcher.launch(batch, req)
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
                batch.kill(now)
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
        ended = batch.job_state(now) in TERMINAL_STATES  # YARN drops the driver log URL then
        return {
            "id": batch.id,
            "name": batch.name,
            "owner": None,
            "proxyUser": None,
            "state": batch.state(now),
            "appId": app_id,
            "appInfo": {
                "driverLogUrl": f"{fake}/driver-log" if fake and not ended else None,
                "sparkUiUrl": f"{fake}/spark-ui" if fake else None,
                **({"executorLogUrls": None} if self.executor_log_urls else {}),
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
                        batch.kill(now)
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
            "queue": batch.queue,
            "created_at": batch.created_wall,
            "forgotten": batch.forgotten is not None,
            "forgotten_reason": batch.forgotten,
            "epoch": batch.epoch,
            "zombie": batch.zombie,
        }
