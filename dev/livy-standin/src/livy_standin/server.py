"""The HTTP server: Livy's batch REST API plus ``/admin`` test controls, on a loopback address."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from .body import BodyError, parse_create_request
from .jobs import LOG_RING_SIZE, JobSpec, JobSpecError
from .registry import ApiError, Arrival, Registry, RequestRecord, is_id_segment, java_int, msg
from .spark import SparkLauncher

DEFAULT_LIVY_VERSION = "0.9.0-incubating"
MAX_BODY = 16 * 1024 * 1024
CSRF_MESSAGE = "Missing Required Header for CSRF protection."
SAFE_METHODS = frozenset({"GET", "OPTIONS", "HEAD"})
_JSON = "application/json;charset=utf-8"


def check_loopback(host: str) -> str:
    """Return ``host`` as an IPv4 loopback address; raise ValueError for anything else."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"host must be an IPv4 loopback address, got {host!r}") from None
    if addr.version != 4 or not addr.is_loopback:
        raise ValueError(f"host must be an IPv4 loopback address, got {host!r}")
    return host


def csrf_page(path: str) -> bytes:
    """Jetty's container error page, as Livy's CsrfFilter ``sendError(400, ...)`` produces."""
    return (
        '<html>\n<head>\n<meta http-equiv="Content-Type" content="text/html;charset=ISO-8859-1"/>\n'
        f"<title>Error 400 {CSRF_MESSAGE}</title>\n</head>\n<body><h2>HTTP ERROR 400</h2>\n"
        f"<p>Problem accessing {path}. Reason:\n<pre>    {CSRF_MESSAGE}</pre></p>"
        '<hr><a href="http://eclipse.org/jetty">Powered by Jetty://</a><hr/>\n</body>\n</html>\n'
    ).encode("iso-8859-1", "replace")


def classify(method: str, parts: list[str]) -> str:
    """The counter key for a request: ``{id}`` or ``{name}`` by the path segment's kind."""
    if parts == ["version"] and method == "GET":
        return "GET /version"
    if parts[:1] != ["batches"]:
        return "other"
    if len(parts) == 1:
        return f"{method} /batches" if method in ("GET", "POST") else "other"
    kind = "{id}" if is_id_segment(parts[1]) else "{name}"
    if len(parts) == 2 and method in ("GET", "DELETE"):
        return f"{method} /batches/{kind}"
    if len(parts) == 3 and method == "GET" and parts[2] in ("state", "log"):
        return f"GET /batches/{kind}/{parts[2]}"
    return "other"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    """The listen backlog: hundreds of triggers connect at once (socketserver's default is 5)."""

    def __init__(self, address: tuple[str, int], registry: Registry, csrf: bool, version: str, quiet: bool):
        super().__init__(address, _Handler)
        self.registry = registry
        self.csrf = csrf
        self.livy_version = version
        self.quiet = quiet
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Track open connections, so that stop() can cut kept-alive ones too."""
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget a finished connection."""
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open connection (a stopped server must not answer on kept-alive ones)."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Reply(Exception):
    """Raised to send a finished reply from deep inside a route."""

    def __init__(
        self,
        status: int,
        body: object,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.content_type = content_type


class _DropReply(Exception):
    """Close the connection without any reply."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "livy-standin"
    sys_version = ""
    # The journal entry of the current request (set by _route and _create; admin requests have none).
    _arrival: Arrival | None = None
    _posted_name: str | None = None
    _created_id: int | None = None
    _fault_id: int | None = None

    @property
    def app(self) -> _HTTPServer:
        return cast(_HTTPServer, self.server)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    # --- plumbing ---------------------------------------------------------------------------------
    def _handle(self) -> None:
        # One handler serves every request of a kept-alive connection: start each one afresh.
        self._arrival = None
        self._posted_name = None
        self._created_id = None
        self._fault_id = None
        try:
            reply = self._dispatch()
        except _DropReply:
            self.close_connection = True
            self._log("dropped (connection closed, no reply)")
            self._journal(None)
            return
        # Journaled before the reply goes out: a client that has the reply finds the entry.
        self._journal(reply.status)
        try:
            self._send(reply.status, reply.body, reply.headers, reply.content_type)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            self._log(f"{reply.status} (client gone)")

    def _journal(self, status: int | None) -> None:
        """Journal the request, unless it was an admin one (those are neither counted nor journaled)."""
        arrival = self._arrival
        if arrival is None:
            return
        split = urlsplit(self.path)
        self.app.registry.record(
            RequestRecord(
                seq=arrival.seq,
                time=arrival.time,
                monotonic=arrival.monotonic,
                method=self.command,
                path=split.path,
                query=split.query,
                kind=arrival.kind,
                status=status,
                name=self._posted_name,
                created_id=self._created_id,
                fault=self._fault_id,
            )
        )

    def _dispatch(self) -> _Reply:
        """Run the route; every outcome but a dropped reply comes back as a _Reply."""
        try:
            self._route(self._read_body())
        except _Reply as reply:
            return reply
        except ApiError as err:
            return _Reply(err.status, err.body)
        except _DropReply:
            raise
        except Exception as exc:
            if not self.app.quiet:
                traceback.print_exc()
            self.close_connection = True
            return _Reply(500, msg(f"{type(exc).__name__}: {exc}"))
        return _Reply(500, msg("no reply"))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            raise _Reply(413, msg("request body too large"))
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(
        self,
        status: int,
        body: object,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        if isinstance(body, bytes):
            payload, ctype = body, "text/html;charset=iso-8859-1"
        else:
            payload, ctype = json.dumps(body, separators=(",", ":")).encode(), _JSON
        ctype = content_type or ctype
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _log(self, outcome: str) -> None:
        if not self.app.quiet:
            sys.stderr.write(f"livy-standin {self.command} {self.path} -> {outcome}\n")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One short line per request: method, path, status."""
        self._log(str(code))

    def log_message(self, format: str, *args: Any) -> None:
        """Protocol-level errors from http.server, unless quiet."""
        if not self.app.quiet:
            sys.stderr.write("livy-standin " + (format % args) + "\n")

    # --- routing ----------------------------------------------------------------------------------
    def _route(self, body: bytes) -> None:
        split = urlsplit(self.path)
        parts = [unquote(p) for p in split.path.strip("/").split("/")] if split.path.strip("/") else []
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        method = "GET" if self.command == "HEAD" else self.command
        if parts[:1] == ["admin"]:
            self._admin(method, parts[1:], body)
            return
        registry = self.app.registry
        self._arrival = registry.arrive(classify(method, parts))
        # A scripted fault stands for a gateway in front of Livy: it answers before Livy (or its CSRF
        # filter) sees the request.
        fault = registry.take_fault(self.command, self._arrival.kind, split.path)
        if fault is not None:
            self._fault_id = fault.id
            raise _Reply(fault.status, fault.body, fault.headers, fault.content_type)
        if self.app.csrf and self.command not in SAFE_METHODS and "X-Requested-By" not in self.headers:
            raise _Reply(400, csrf_page(split.path))
        if parts == ["version"]:
            self._only(method, "GET")
            raise _Reply(200, self._version())
        if parts[:1] != ["batches"] or len(parts) > 3:
            raise _Reply(
                404, msg(f'Requesting "{self.command} {split.path}" on servlet but only have batches')
            )
        self._batches(method, parts[1:], query, body)

    def _only(self, method: str, *allowed: str) -> None:
        if method not in allowed:
            raise _Reply(405, msg(f"{method} not allowed"), {"Allow": ", ".join(allowed)})

    def _version(self) -> dict[str, str]:
        return {
            "version": self.app.livy_version,
            "user": "livy-standin",
            "revision": "0000000000000000000000000000000000000000",
            "branch": "livy-standin",
            "date": "2024-01-01T00:00:00Z",
            "url": "livy-standin",
        }

    def _batches(self, method: str, rest: list[str], query: dict[str, str], body: bytes) -> None:
        registry = self.app.registry
        if not rest:
            self._only(method, "GET", "POST")
            if method == "POST":
                self._create(body)
            start = java_int(query["from"]) if "from" in query else 0
            size = java_int(query["size"]) if "size" in query else 100
            raise _Reply(200, registry.list_view(start, size))
        segment = rest[0]
        if len(rest) == 1:
            self._only(method, "GET", "DELETE")
            if method == "DELETE":
                raise _Reply(200, registry.delete(segment))
            raise _Reply(200, registry.view(registry.lookup(segment)))
        self._only(method, "GET")
        batch = registry.lookup(segment)
        now = registry.clock()
        if rest[1] == "state":
            raise _Reply(200, {"id": batch.id, "state": batch.state(now)})
        if rest[1] == "log":
            log_from = java_int(query["from"]) if "from" in query else None
            log_size = java_int(query["size"]) if "size" in query else None
            raise _Reply(200, registry.log_view(batch, batch.log(now), log_from, log_size))
        raise _Reply(404, msg(f'Requesting "{self.command} {self.path}" on servlet "/batches"'))

    def _create(self, body: bytes) -> None:
        try:
            req = parse_create_request(body)
        except BodyError as exc:
            raise _Reply(400, str(exc)) from None
        self._posted_name = req.name
        try:
            spec = JobSpec.from_conf(req.conf)
        except JobSpecError as exc:
            raise _Reply(400, msg(f"livy-standin: {exc}")) from None
        created = self.app.registry.create(req, spec)
        self._created_id = created.batch.id
        if spec.reply_delay_seconds > 0:
            time.sleep(spec.reply_delay_seconds)
        if created.drop_reply:
            raise _DropReply
        view = self.app.registry.view(created.batch)
        raise _Reply(201, view, {"Location": f"/batches/{created.batch.id}"})

    # --- admin ------------------------------------------------------------------------------------
    def _admin(self, method: str, rest: list[str], body: bytes) -> None:
        registry = self.app.registry
        if method == "GET" and rest == ["stats"]:
            raise _Reply(200, registry.stats())
        if method == "GET" and rest == ["batches"]:
            raise _Reply(200, registry.admin_batches())
        if method == "GET" and rest == ["config"]:
            raise _Reply(200, registry.config())
        if method == "GET" and rest == ["requests"]:
            raise _Reply(200, registry.requests())
        if method == "GET" and rest == ["faults"]:
            raise _Reply(200, registry.pending_faults())
        if method == "GET" and rest == ["spark"]:
            raise _Reply(200, registry.launcher.launches() if registry.launcher is not None else [])
        if method == "DELETE" and rest == ["faults"]:
            raise _Reply(200, registry.clear_faults())
        if method != "POST":
            raise _Reply(404, msg(f"unknown admin endpoint {method} /admin/{'/'.join(rest)}"))
        args = _admin_args(body)
        if rest == ["restart"]:
            raise _Reply(
                200,
                registry.restart(
                    recovery=_bool(args, "recovery"),
                    recovering_seconds=_number(args, "recoveringSeconds", 2.0),
                    keep_finished=_bool(args, "keepFinished"),
                    graceful=_bool(args, "graceful"),
                ),
            )
        if rest[:1] == ["forget"] and len(rest) == 2 and is_id_segment(rest[1]):
            raise _Reply(200, registry.forget(int(rest[1])))
        if rest == ["reset-stats"]:
            raise _Reply(200, registry.reset_stats())
        if rest == ["faults"]:
            raise _Reply(200, registry.add_fault(args))
        if rest == ["config"]:
            retain = _number(args, "retain_seconds", None)
            interval = _number(args, "gc_interval", None)
            raise _Reply(200, registry.configure(retain, interval))
        raise _Reply(404, msg(f"unknown admin endpoint POST /admin/{'/'.join(rest)}"))


def _admin_args(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Reply(400, msg(f"admin body is not JSON: {exc}")) from None
    if not isinstance(doc, dict):
        raise _Reply(400, msg("admin body must be a JSON object"))
    return doc


def _bool(args: dict[str, Any], key: str) -> bool:
    value = args.get(key, False)
    if not isinstance(value, bool):
        raise _Reply(400, msg(f"admin: {key} must be true or false"))
    return value


def _number(args: dict[str, Any], key: str, default: float | None) -> Any:
    value = args.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _Reply(400, msg(f"admin: {key} must be a number >= 0"))
    return float(value)


class LivyStandin:
    """A stand-in Livy server on a loopback address, serving from a background thread.

    ``quiet`` (default True) silences the one-line-per-request log on stderr. ``stop()`` then
    ``start()`` again is an outage: same port, same batches (unlike ``restart()``, a Livy restart).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        retain_seconds: float = 600.0,
        gc_interval: float = 60.0,
        csrf: bool = False,
        livy_version: str = DEFAULT_LIVY_VERSION,
        quiet: bool = True,
        spark: SparkLauncher | None = None,
        log_ring: int = LOG_RING_SIZE,
    ) -> None:
        self.host = check_loopback(host)
        self._requested_port = port
        self.csrf = csrf
        self.livy_version = livy_version
        self.quiet = quiet
        self.registry = Registry(retain_seconds, gc_interval, livy_version=livy_version, log_ring=log_ring)
        self.registry.launcher = spark  # real spark-submit jobs; its owner closes it (SparkLauncher.close)
        self._httpd: _HTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        """The bound port (after ``start()``)."""
        if self._httpd is None:
            raise RuntimeError("LivyStandin is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> LivyStandin:
        """Bind, then serve and run the GC in daemon threads."""
        if self._httpd is not None:
            raise RuntimeError("LivyStandin is already started")
        self._httpd = _HTTPServer(
            (self.host, self._requested_port), self.registry, self.csrf, self.livy_version, self.quiet
        )
        self._requested_port = self.port  # a later start() after stop() comes back on the same port
        self.registry.base_url = self.url
        self._stopping.clear()
        self._threads = [
            threading.Thread(
                target=self._httpd.serve_forever, args=(0.02,), name="livy-standin-http", daemon=True
            ),
            threading.Thread(target=self._gc_loop, name="livy-standin-gc", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        self.registry.config_changed.set()
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        for thread in self._threads:
            thread.join(timeout=5)

    def _gc_loop(self) -> None:
        last = time.monotonic()
        while not self._stopping.is_set():
            interval = max(self.registry.gc_interval, 0.01)
            woke = self.registry.config_changed.wait(max(0.0, last + interval - time.monotonic()))
            if self._stopping.is_set():
                return
            if woke:
                self.registry.config_changed.clear()
                continue
            self.registry.collect_garbage()
            last = time.monotonic()

    def __enter__(self) -> LivyStandin:
        """Start (if needed) and return self."""
        if self._httpd is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop."""
        self.stop()

    # --- in-process equivalents of the /admin endpoints --------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Same as GET /admin/stats."""
        return self.registry.stats()

    def batches(self) -> list[dict[str, Any]]:
        """Same as GET /admin/batches."""
        return self.registry.admin_batches()

    def restart(
        self,
        recovery: bool = False,
        recovering_seconds: float = 2.0,
        keep_finished: bool = False,
        graceful: bool = False,
    ) -> dict[str, Any]:
        """Same as POST /admin/restart."""
        return self.registry.restart(recovery, recovering_seconds, keep_finished, graceful)

    def forget(self, batch_id: int) -> dict[str, Any]:
        """Same as POST /admin/forget/{id} (raises ApiError 404 if unknown)."""
        return self.registry.forget(batch_id)

    def requests(self) -> list[dict[str, Any]]:
        """Same as GET /admin/requests: the request journal, in arrival order."""
        return self.registry.requests()

    def reset_stats(self) -> None:
        """Same as POST /admin/reset-stats (counters, journal and pending faults)."""
        self.registry.reset_stats()

    def add_fault(
        self,
        kind: str,
        status: int,
        body: object = "",
        *,
        method: str | None = None,
        path: str | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> dict[str, Any]:
        """Same as POST /admin/faults: answer the next ``times`` requests of ``kind`` with this reply.

        ``body`` is sent as UTF-8 text if a string, else as JSON; raises ApiError 400 on a bad field.
        """
        spec: dict[str, Any] = {"kind": kind, "status": status, "body": body, "times": times}
        optional = {"method": method, "path": path, "content_type": content_type, "headers": headers}
        spec.update({key: value for key, value in optional.items() if value is not None})
        return self.registry.add_fault(spec)

    def faults(self) -> list[dict[str, Any]]:
        """Same as GET /admin/faults: the faults that still answer requests."""
        return self.registry.pending_faults()

    def clear_faults(self) -> dict[str, Any]:
        """Same as DELETE /admin/faults."""
        return self.registry.clear_faults()

    def configure(self, retain_seconds: float | None = None, gc_interval: float | None = None) -> None:
        """Same as POST /admin/config."""
        self.registry.configure(retain_seconds, gc_interval)
