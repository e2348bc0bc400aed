"""A small threaded HTTP/1.1 server on a loopback address, with the faults real servers show.

One :class:`PageServer` serves one page (produced by a callable at request time) on one
``host:port``. Faults are switched on and off at run time:

- ``slow``: wait before answering, or drip the body in pieces;
- ``status``: answer with an HTTP error code;
- ``garbage``: 200 with binary junk; ``html``: 200 with an HTML error page;
- ``disconnect``: announce the full length, send half the body, close;
- ``not_http``: answer bytes that are not HTTP at all;
- ``huge``: stream a (valid-looking) body of a given size;
- ``loading``: stop listening, so connections are refused (a server loading its model).

The server counts accepted connections and requests, so tests can check keep-alive reuse.
``stop()`` closes the listener and every open connection and joins the handler threads.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import http.server
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable

import attrs

FAULT_KINDS = frozenset(
    {"none", "slow", "status", "garbage", "html", "disconnect", "not_http", "huge"}
)


@attrs.frozen
class Fault:
    kind: str = "none"
    delay_seconds: float = 0.0
    status: int = 500
    size_bytes: int = 0
    drip_bytes: int = 0

    def __attrs_post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")


NO_FAULT = Fault()
HTML_PAGE = (
    b"<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n"
    b"<center><h1>502 Bad Gateway</h1></center>\n</body>\n</html>\n"
)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], owner: PageServer):
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # clients that hang up (timeouts, body caps) are part of the scenarios, not errors
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "simserver/1"
    timeout = 30.0
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.owner._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._closed(self.connection)

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        owner = self.server.owner
        owner._count_request(self.path)
        fault = owner.fault
        slow = fault.kind == "slow" and fault.delay_seconds and not fault.drip_bytes
        if slow and owner._stopping.wait(fault.delay_seconds):
            return
        if fault.kind == "not_http":
            self.wfile.write(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
            self.close_connection = True
            return
        if fault.kind == "status":
            self._send(fault.status, b"error\n", "text/plain")
            return
        if self.path.split("?", 1)[0] not in owner.paths:
            self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
            return
        if fault.kind == "garbage":
            self._send(200, bytes(range(256)) * 8, "application/octet-stream")
            return
        if fault.kind == "html":
            self._send(200, HTML_PAGE, "text/html")
            return
        if fault.kind == "huge":
            self._stream_huge(fault.size_bytes)
            return
        body = owner.render()
        if fault.kind == "disconnect":
            self.send_response(200)
            self.send_header("Content-Type", owner.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault.kind == "slow" and fault.drip_bytes:
            self.send_response(200)
            self.send_header("Content-Type", owner.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(0, len(body), fault.drip_bytes):
                if owner._stopping.wait(fault.delay_seconds):
                    return
                try:
                    self.wfile.write(body[i : i + fault.drip_bytes])
                    self.wfile.flush()
                except OSError:
                    return
            return
        self._send(200, body, owner.content_type)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if status == 200 and self.server.owner.gzip:
            body = gzip.compress(body)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            self.close_connection = True

    def _stream_huge(self, size: int) -> None:
        line = b'filler_metric{pad="' + b"x" * 100 + b'"} 1\n'
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        block = line * (65536 // len(line))
        sent = 0
        try:
            while sent < size and not self.server.owner._stopping.is_set():
                self.wfile.write(block)
                sent += len(block)
        except OSError:
            return


class PageServer:
    """Serves ``render()`` at ``paths`` on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        host: str,
        port: int,
        render: Callable[[], bytes],
        *,
        paths: tuple[str, ...] = ("/metrics",),
        content_type: str = "text/plain; version=0.0.4; charset=utf-8",
    ):
        self.host = host
        self.port = port
        self.render = render
        self.paths = paths
        self.content_type = content_type
        self.fault: Fault = NO_FAULT
        self.gzip = False
        """Compress 200 answers with gzip (as some servers do even when not asked)."""
        self.connections_accepted = 0
        self.requests_served = 0
        self.request_paths: list[str] = []
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> PageServer:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"simserver-{self.host}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close every open connection."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            open_now = list(self._open)
        for conn in open_now:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self._lock:
                if not self._open:
                    break
            time.sleep(0.01)

    def loading(self) -> None:
        """Refuse connections (the port is closed) until :meth:`ready`."""
        self.stop()

    def ready(self) -> None:
        self.start()

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.paths[0]}"

    # -- bookkeeping --------------------------------------------------------------------------

    def _opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.add(conn)
            self.connections_accepted += 1

    def _closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.discard(conn)

    def _count_request(self, path: str) -> None:
        with self._lock:
            self.requests_served += 1
            self.request_paths.append(path)


def bind_error_is_address_in_use(exc: OSError) -> bool:
    return exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL)
