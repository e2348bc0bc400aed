"""Thousands of simulated endpoints on one asyncio loop.

:class:`PageServer` spends a thread per server; a simulated cluster of 2 000 inference pods and
500 exporters needs something lighter. A :class:`ServerFarm` runs one event loop in one thread
and serves any number of ``host:port`` endpoints from it. Each :class:`FarmServer` has the
same surface as :class:`PageServer` (``fault``, ``loading()``/``ready()``, counters), so the
simulated servers and exporters accept either (``http_factory=farm.add``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from infercost.testing.simservers.httpserver import HTML_PAGE, NO_FAULT, Fault

T = TypeVar("T")
_REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}
_IDLE_TIMEOUT = 30.0


class ServerFarm:
    """One event loop thread serving many endpoints. Close it to stop them all."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="simserver-farm", daemon=True)
        self._thread.start()
        self.servers: list[FarmServer] = []
        self._closed = False

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def add(
        self,
        host: str,
        port: int,
        render: Callable[[], bytes],
        *,
        paths: tuple[str, ...] = ("/metrics",),
        content_type: str = "text/plain; version=0.0.4; charset=utf-8",
    ) -> FarmServer:
        """A new endpoint (not yet listening: call ``start()``)."""
        if self._closed:
            raise RuntimeError("the server farm is closed")
        server = FarmServer(self, host, port, render, paths=paths, content_type=content_type)
        self.servers.append(server)
        return server

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for server in self.servers:
            server.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> ServerFarm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FarmServer:
    """One endpoint of a farm; the same public surface as ``PageServer``."""

    def __init__(
        self,
        farm: ServerFarm,
        host: str,
        port: int,
        render: Callable[[], bytes],
        *,
        paths: tuple[str, ...],
        content_type: str,
    ):
        self.farm = farm
        self.host = host
        self.port = port
        self.render = render
        self.paths = paths
        self.content_type = content_type
        self.fault: Fault = NO_FAULT
        self.connections_accepted = 0
        self.requests_served = 0
        self.request_paths: list[str] = []
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle (thread-safe) --------------------------------------------------------------

    def start(self) -> FarmServer:
        if self._server is None:
            self.farm.call(self._start())
        return self

    def stop(self) -> None:
        if self._server is not None or self._writers or self._tasks:
            self.farm.call(self._stop())

    def loading(self) -> None:
        self.stop()

    def ready(self) -> None:
        self.start()

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.paths[0]}"

    async def _start(self) -> None:
        server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True, backlog=128
        )
        self.port = server.sockets[0].getsockname()[1]
        self._server = server

    async def _stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    # -- serving ------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), _IDLE_TIMEOUT)
                except (TimeoutError, ConnectionError):
                    return
                if not line:
                    return
                close = False
                while True:
                    header = await reader.readline()
                    if header in (b"\r\n", b"\n", b""):
                        break
                    if header.lower().startswith(b"connection:") and b"close" in header.lower():
                        close = True
                parts = line.split()
                path = parts[1].decode("latin-1") if len(parts) >= 2 else "/"
                if not await self._respond(writer, path) or close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _send(
        self, writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str
    ) -> None:
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        writer.write(head + body)
        await writer.drain()

    async def _respond(self, writer: asyncio.StreamWriter, path: str) -> bool:
        """Answer one request; False when the connection must close afterwards."""
        self.requests_served += 1
        self.request_paths.append(path)
        fault = self.fault
        if fault.kind == "slow" and fault.delay_seconds and not fault.drip_bytes:
            await asyncio.sleep(fault.delay_seconds)
        if fault.kind == "not_http":
            writer.write(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
            await writer.drain()
            return False
        if fault.kind == "status":
            await self._send(writer, fault.status, b"error\n", "text/plain")
            return True
        if path.split("?", 1)[0] not in self.paths:
            await self._send(writer, 404, b"404 page not found\n", "text/plain; charset=utf-8")
            return True
        if fault.kind == "garbage":
            await self._send(writer, 200, bytes(range(256)) * 8, "application/octet-stream")
            return True
        if fault.kind == "html":
            await self._send(writer, 200, HTML_PAGE, "text/html")
            return True
        if fault.kind == "huge":
            line = b'filler_metric{pad="' + b"x" * 100 + b'"} 1\n'
            block = line * (65536 // len(line))
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
            )
            sent = 0
            while sent < fault.size_bytes:
                writer.write(block)
                await writer.drain()
                sent += len(block)
            return False
        body = self.render()
        if fault.kind == "disconnect":
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: {self.content_type}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode("latin-1")
            writer.write(head + body[: len(body) // 2])
            await writer.drain()
            return False
        if fault.kind == "slow" and fault.drip_bytes:
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: {self.content_type}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode("latin-1")
            writer.write(head)
            for i in range(0, len(body), fault.drip_bytes):
                await asyncio.sleep(fault.delay_seconds)
                writer.write(body[i : i + fault.drip_bytes])
                await writer.drain()
            return True
        await self._send(writer, 200, body, self.content_type)
        return True
