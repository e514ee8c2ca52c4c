"""A loopback proxy in front of a real Livy that keeps the stand-in's request journal.

``python -m livy_standin.journal_proxy --upstream http://127.0.0.1:8998 --port 0 --port-file F``.
Every Livy API request is forwarded to the upstream Livy as it came (method, path, query, body, the
headers a client sets) and its reply sent back as Livy gave it; each is journaled as the stand-in
journals its own (``GET /admin/requests``, the same entries), so the e2e harness asserts on the
requests a real Livy saw. ``GET /admin/batches`` lists every batch created through the proxy, with the
Spark conf it was posted with and its state as Livy reports it now (``forgotten`` once Livy answers
404); ``GET /admin/stats`` counts as the stand-in does.

A POST whose Spark conf sets ``spark.standin.dropReply`` to ``true`` reaches Livy, but its reply is
dropped (the connection is closed with no answer), once per batch name, as a gateway that lost it: the
stand-in's own ``dropReply``. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import requests

from .__main__ import write_port_file
from .registry import REQUEST_KINDS, RequestRecord
from .server import check_loopback, classify

FORWARDED_HEADERS = ("Content-Type", "Accept", "X-Requested-By", "Authorization")
"""The request headers a Livy client sets that are passed on."""
DROP_REPLY_CONF = "spark.standin.dropReply"


class JournalingProxy(ThreadingHTTPServer):
    """The proxy server: forwards to ``upstream`` and journals every Livy API request."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], upstream: str) -> None:
        super().__init__(address, _Handler)
        self.upstream = upstream.rstrip("/")
        self.lock = threading.Lock()
        self.journal: list[RequestRecord] = []
        self.counts = dict.fromkeys(REQUEST_KINDS, 0)
        self.next_seq = 0
        self.created: list[dict[str, Any]] = []
        """Every batch created through the proxy, in order (an id Livy reused appears twice)."""
        self.dropped_names: set[str] = set()
        self.session = requests.Session()

    def arrive(self, kind: str) -> tuple[int, float, float]:
        """Count a request of ``kind``; its journal place and arrival times."""
        with self.lock:
            self.counts[kind] += 1
            self.next_seq += 1
            return self.next_seq - 1, time.time(), time.monotonic()

    def record(self, entry: RequestRecord) -> None:
        """Journal one answered (or dropped) request."""
        with self.lock:
            self.journal.append(entry)

    def remember_created(self, batch_id: int, body: dict[str, Any]) -> None:
        """A batch created through the proxy, with the body it was posted with."""
        with self.lock:
            self.created.append(
                {
                    "id": batch_id,
                    "name": body.get("name"),
                    "conf": dict(body.get("conf") or {}),
                    "queue": body.get("queue"),
                    "created_at": time.time(),
                    "state": "starting",
                    "appId": None,
                    "forgotten": False,
                }
            )

    def admin(self, method: str, path: str) -> tuple[int, Any]:
        """The admin endpoints the e2e harness reads."""
        if method == "GET" and path == "/admin/requests":
            with self.lock:
                return 200, [entry.as_json() for entry in sorted(self.journal, key=lambda e: e.seq)]
        if method == "GET" and path == "/admin/stats":
            with self.lock:
                return 200, {
                    "posts": self.counts["POST /batches"],
                    "batches_created": len(self.created),
                    "requests": dict(self.counts),
                }
        if method == "GET" and path == "/admin/batches":
            return 200, self._batches_now()
        return 404, {"msg": f"unknown admin endpoint {method} {path}"}

    def _batches_now(self) -> list[dict[str, Any]]:
        with self.lock:
            known = list(enumerate(dict(batch) for batch in self.created))
        for index, batch in known:
            if batch["forgotten"]:
                continue
            try:
                reply = self.session.get(f"{self.upstream}/batches/{batch['id']}", timeout=10)
            except requests.RequestException:
                continue  # Livy is down: what it last said stands
            if reply.status_code == 404:
                batch["forgotten"] = True  # Livy no longer holds it
            elif reply.status_code == 200 and reply.json().get("name") != batch["name"]:
                batch["forgotten"] = True  # its id now names another batch (a restart)
            elif reply.status_code == 200:
                batch["state"], batch["appId"] = reply.json().get("state"), reply.json().get("appId")
            else:
                continue  # any other reply says nothing about the batch
            with self.lock:
                self.created[index].update(
                    state=batch["state"], appId=batch["appId"], forgotten=batch["forgotten"]
                )
        return [batch for _, batch in known]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: JournalingProxy

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the journal is the record."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        split = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if split.path.startswith("/admin/"):
            status, payload = self.server.admin(self.command, split.path)
            self._send(status, json.dumps(payload).encode(), "application/json")
            return
        parts = [part for part in split.path.split("/") if part]
        kind = classify(self.command, parts)
        seq, arrived, monotonic = self.server.arrive(kind)
        posted = _json_object(body) if kind == "POST /batches" else {}
        name = posted.get("name") if isinstance(posted.get("name"), str) else None
        drop_asked = str((posted.get("conf") or {}).pop(DROP_REPLY_CONF, "")).lower() == "true"
        if drop_asked:  # the proxy's instruction, not Livy's: Livy gets the body without it
            body = json.dumps(posted).encode()
        try:
            reply = self.server.session.request(
                self.command,
                f"{self.server.upstream}{self.path}",
                data=body or None,
                headers={key: self.headers[key] for key in FORWARDED_HEADERS if key in self.headers},
                timeout=120,
            )
        except requests.RequestException:  # Livy is down (restarting): the client sees the connection drop
            self.server.record(
                RequestRecord(
                    seq, arrived, monotonic, self.command, split.path, split.query, kind, None, name, None
                )
            )
            self.close_connection = True
            return
        created_id = None
        if kind == "POST /batches" and reply.status_code == 201:
            created_id = reply.json().get("id")
            self.server.remember_created(created_id, posted)
        drop = drop_asked and created_id is not None and self._first_drop_of(name)
        record = RequestRecord(
            seq=seq,
            time=arrived,
            monotonic=monotonic,
            method=self.command,
            path=split.path,
            query=split.query,
            kind=kind,
            status=None if drop else reply.status_code,
            name=name,
            created_id=created_id,
        )
        self.server.record(record)
        if drop:
            self.close_connection = True
            return
        self._send(
            reply.status_code, reply.content, reply.headers.get("Content-Type"), reply.headers.get("Location")
        )

    def _first_drop_of(self, name: str | None) -> bool:
        """Whether to drop this reply: once per batch name (always without one), as the stand-in does."""
        with self.server.lock:
            if name is not None and name in self.server.dropped_names:
                return False
            if name is not None:
                self.server.dropped_names.add(name)
        return True

    def _send(self, status: int, body: bytes, content_type: str | None, location: str | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="livy_standin.journal_proxy", description=__doc__)
    parser.add_argument("--upstream", required=True, help="the real Livy's base URL (loopback)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    args = parser.parse_args(argv)
    check_loopback(args.host)
    check_loopback(urlsplit(args.upstream).hostname or "")
    server = JournalingProxy((args.host, args.port), args.upstream)
    if args.port_file:
        write_port_file(args.port_file, int(server.server_address[1]))

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.05)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
