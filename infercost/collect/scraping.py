"""Concurrent HTTP GET of many metrics endpoints, each bounded in time and size.

A sampling cycle reads hundreds of pages. Every target gets one worker of a bounded pool
(default 32), its own deadline covering connect, headers and the whole body (default 5 s, kept
by a watchdog that shuts the socket down when it passes, so even a server that drips bytes
cannot hold a worker longer), and a body cap (default 10 MB, reading stops past it). Idle
keep-alive connections are reused per host across cycles. One slow or dead target therefore
never delays the others beyond taking one worker.

A caller may pass a reader per target kind (:data:`Reader`): the worker that fetched a page
reads it at once and the result carries only what the reader made of it, so a cycle never holds
more pages than it has fetches in flight (hundreds of ~100 KB pages would otherwise be held
until the last one arrives). A reader's :class:`ScrapeError` is the target's failure, as if the
fetch had failed.

Failures are returned, never raised, as :class:`ScrapeError` values with the reason codes of
:mod:`infercost.collect.errors`; counting them in metrics is the caller's job (this package does
not import the operator's health metrics). Only network, HTTP and body errors are failures: any
other exception is a bug and reaches the caller of :meth:`Scraper.scrape` unchanged.

:meth:`Scraper.cancel` (on shutdown) abandons a cycle at once: queued fetches never start,
sockets of running ones are shut down, and every :meth:`Scraper.scrape` waiting or still to
come raises :class:`ScrapeCancelledError`. Workers are daemon threads, so a fetch stuck where no
socket can be shut down (a DNS lookup) never holds the process past its exit.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import itertools
import mmap
import os
import queue
import socket
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Final

import attrs

from infercost.collect import errors
from infercost.collect.errors import ScrapeError

DEFAULT_CONCURRENCY: Final = 32
DEFAULT_TIMEOUT_SECONDS: Final = 5.0
DEFAULT_MAX_BODY_BYTES: Final = 10 * 1024 * 1024
MAX_IDLE_PER_HOST: Final = 2
_CHUNK = 64 * 1024
_ACCEPT = "text/plain;version=0.0.4;q=1,text/plain;q=0.5,*/*;q=0.1"

TARGET_INFERENCE: Final = "inference"
TARGET_DCGM: Final = "dcgm"
"""The kinds of target: the ``target_kind`` label of the scrape health series."""


@attrs.frozen
class ScrapeTarget:
    """What to GET. ``key`` is the caller's identity of the target (a pod UID, a node name);
    ``kind`` is the ``target_kind`` of the health metrics (``inference`` or ``dcgm``)."""

    key: Hashable
    host: str
    port: int
    path: str = "/metrics"
    kind: str = TARGET_INFERENCE

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"


@attrs.frozen
class ScrapeResult:
    target: ScrapeTarget
    body: bytes | None
    """The page as fetched; ``None`` on a failure, or once a reader has read it."""
    error: ScrapeError | None
    """Why the fetch failed, or why the reader rejected the page."""
    duration_seconds: float
    """The fetch alone (connect, request, the whole body), not the reading."""
    status: int | None = None
    reused_connection: bool = False
    page: object = None
    """What the target kind's reader made of the body (``None`` without a reader)."""

    @property
    def ok(self) -> bool:
        return self.error is None


STARTING: Final = "starting"
OK: Final = "ok"
FAILED: Final = "failed"


def pod_scrape_state(error: ScrapeError | None, ever_succeeded: bool) -> str:
    """``ok``, ``starting`` or ``failed`` for one scrape of an inference pod (SPEC §3.1).

    A refused connection before the pod's first successful scrape means the server is still
    loading its model: ``starting``, not an error. After one success, a refusal is a failure.
    """
    if error is None:
        return OK
    if error.reason == errors.REFUSED and not ever_succeeded:
        return STARTING
    return FAILED


class _Watchdog:
    """Shuts down the sockets of fetches that outlive their deadline."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self._heap: list[tuple[float, int, socket.socket]] = []
        self._cond = threading.Condition()
        self._counter = itertools.count()
        self._closed = False
        self._aborted = False
        self._thread = threading.Thread(target=self._run, name="scrape-watchdog", daemon=True)
        self._thread.start()

    def watch(self, deadline: float, sock: socket.socket) -> int:
        token = next(self._counter)
        with self._cond:
            if self._aborted:
                # registered after abort_all(): this fetch is abandoned too
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                return token
            heapq.heappush(self._heap, (deadline, token, sock))
            self._cond.notify()
        return token

    def release(self, token: int) -> None:
        """The fetch is past the step ``token`` watched; its entry goes (the heap holds at
        most one entry per fetch in flight)."""
        with self._cond:
            for i, (_, t, _) in enumerate(self._heap):
                if t == token:
                    last = self._heap.pop()
                    if i < len(self._heap):
                        self._heap[i] = last
                        heapq.heapify(self._heap)
                    break

    def abort_all(self) -> None:
        """Shut down every watched socket now and every one watched later (the fetches
        fail at once)."""
        with self._cond:
            self._aborted = True
            socks = [sock for _, _, sock in self._heap]
            self._heap = []
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, _, sock = self._heap[0]
                wait = deadline - self._clock()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


Reader = Callable[[ScrapeTarget, bytes], object]
"""Reads a fetched page of a target: returns what the caller keeps of it, raises
:class:`ScrapeError` for a page that cannot be read."""


class _OverdueError(Exception):
    pass


class ScrapeCancelledError(Exception):
    """:meth:`Scraper.cancel` was called: the cycle's results are abandoned."""


# What a fetch can fail with that is the target's doing (or the network's), not a bug.
_FETCH_ERRORS = (OSError, http.client.HTTPException, _OverdueError)


class _Cycle:
    """The fetches of one :meth:`Scraper.scrape` call: done when all are, or when cancelled.

    Workers hand each result to its slot and keep no reference to it; :meth:`take` moves the
    results out. So once the caller drops them, nothing of the cycle's pages stays reachable
    (a worker may still hold the emptied cycle until its next job)."""

    def __init__(self, size: int, readers: Mapping[str, Reader]) -> None:
        self.readers = readers
        self.cancelled = False
        self.abandoned = 0
        """Fetches not finished when the cycle was cancelled."""
        self._results: list[ScrapeResult | None] = [None] * size
        self._bug: Exception | None = None
        self._pending = size
        self._cond = threading.Condition()

    def finish(self, index: int, result: ScrapeResult) -> None:
        with self._cond:
            self._results[index] = result
            # the caller is woken inside this block: the frame must not hold the result then
            del result
            self._one_done()

    def fail(self, exc: Exception) -> None:
        """A fetch raised something that is not a scrape failure (a bug)."""
        with self._cond:
            if self._bug is None:
                self._bug = exc
            del exc
            self._one_done()

    def _one_done(self) -> None:
        self._pending -= 1
        if self._pending <= 0:
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self.cancelled = True
            self.abandoned = self._pending
            self._cond.notify_all()

    def wait(self) -> None:
        """Block until every fetch ended or the cycle was cancelled."""
        with self._cond:
            while self._pending > 0 and not self.cancelled:
                self._cond.wait()

    def take(self) -> list[ScrapeResult]:
        """The results, in the order of the targets; the cycle keeps none of them (nor the
        exception of a bug, re-raised here)."""
        with self._cond:
            results, self._results = self._results, []
            bug, self._bug = self._bug, None
        if bug is not None:
            raise bug
        return [r for r in results if r is not None]


class Scraper:
    """Bounded-concurrency scraper with per-host keep-alive pools. Thread-safe; reuse it."""

    def __init__(
        self,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        user_agent: str = "infercost",
        clock: Callable[[], float] = time.monotonic,
    ):
        if concurrency < 1:
            raise ValueError(f"scrape concurrency must be at least 1, got {concurrency}")
        if not timeout_seconds > 0:
            raise ValueError(f"scrape timeout must be positive, got {timeout_seconds}")
        if max_body_bytes < 1:
            raise ValueError(f"body cap must be positive, got {max_body_bytes}")
        self.concurrency = concurrency
        self.timeout_seconds = timeout_seconds
        self.max_body_bytes = max_body_bytes
        self.user_agent = user_agent
        self._clock = clock
        self._jobs: queue.SimpleQueue[tuple[_Cycle, int, ScrapeTarget] | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._cycles: set[_Cycle] = set()
        # Idle keep-alive connections per (host, port), kept between cycles as bare file
        # descriptors: an idle HTTPConnection would also keep its last response and parsed
        # headers (~2 KB), a socket object a few hundred bytes more per target.
        self._idle: _Idle = {}
        self._idle_finalizer = weakref.finalize(self, _close_idle, self._idle)
        self._lock = threading.Lock()
        self._watchdog = _Watchdog(clock)
        self._cancelled = False
        self._closed = False

    def __enter__(self) -> Scraper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cancel(self) -> None:
        """Abandon every fetch: queued ones never start, running ones have their socket shut
        down, and :meth:`scrape` raises :class:`ScrapeCancelledError` now and from then on."""
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            cycles = list(self._cycles)
        for cycle in cycles:
            cycle.cancel()
        self._watchdog.abort_all()

    def close(self) -> None:
        """Cancel what is in flight, stop the workers and close idle connections.

        Waits for each worker at most the scrape timeout (its fetch ends by then)."""
        if self._closed:
            return
        self.cancel()
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        for _ in workers:
            self._jobs.put(None)
        for worker in workers:
            worker.join(self.timeout_seconds + 1.0)
        self._watchdog.close()
        with self._lock:
            _close_idle(self._idle)

    def scrape(
        self, targets: Sequence[ScrapeTarget], readers: Mapping[str, Reader] | None = None
    ) -> list[ScrapeResult]:
        """Fetch every target concurrently; results come back in the order of ``targets``.

        ``readers`` maps a target kind to the :data:`Reader` of its pages: each page is read by
        the worker that fetched it, right away, and dropped (see :meth:`scrape_one`).

        Raises :class:`ScrapeCancelledError` when :meth:`cancel` is called before or while it runs,
        and re-raises an exception that is not a network or HTTP failure (a bug)."""
        cycle = _Cycle(len(targets), readers or {})
        with self._lock:
            if self._closed:
                raise RuntimeError("the scraper is closed")
            if self._cancelled:
                raise ScrapeCancelledError("the scraper was cancelled")
            self._cycles.add(cycle)
            for index, target in enumerate(targets):
                self._jobs.put((cycle, index, target))
            while len(self._workers) < min(self.concurrency, len(targets)):
                self._start_worker()
        try:
            cycle.wait()
        finally:
            with self._lock:
                self._cycles.discard(cycle)
        if cycle.cancelled:
            raise ScrapeCancelledError(f"{cycle.abandoned} of {len(targets)} scrapes abandoned")
        self._close_idle_except({(t.host, t.port) for t in targets})
        return cycle.take()

    def _close_idle_except(self, wanted: set[tuple[str, int]]) -> None:
        """Close the idle connections to every server a cycle no longer scrapes (a deleted pod,
        a pod with a new address): without this, every pod that ever went away would keep a
        descriptor open for as long as the operator runs."""
        with self._lock:
            gone = [server for server in self._idle if server not in wanted]
            for server in gone:
                for fd in self._idle.pop(server):
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def _start_worker(self) -> None:
        worker = threading.Thread(
            target=self._work, name=f"scrape-{len(self._workers)}", daemon=True
        )
        self._workers.append(worker)
        worker.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            cycle, index, target = job
            del job
            read = cycle.readers.get(target.kind)
            if not cycle.cancelled:  # a cancelled cycle's queued fetches never start
                try:
                    cycle.finish(index, self.scrape_one(target, read))
                except Exception as exc:  # a bug: handed to the caller of scrape()
                    cycle.fail(exc)
            # what a worker holds while it waits for its next job is kept alive as long
            del cycle, target, read

    def idle_connections(self, host: str, port: int) -> int:
        with self._lock:
            return len(self._idle.get((host, port), ()))

    # -- one target -------------------------------------------------------------------------

    def scrape_one(self, target: ScrapeTarget, read: Reader | None = None) -> ScrapeResult:
        """Fetch one target; with ``read``, the result holds what ``read`` made of the body
        (or its :class:`ScrapeError`) instead of the body, which is dropped on return."""
        start = self._clock()
        deadline = start + self.timeout_seconds
        conn, reused = self._acquire(target)
        status: int | None = None
        try:
            try:
                status, body, keep = self._request(conn, target, deadline)
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                if not reused or self._clock() >= deadline:
                    raise
                # the server closed an idle keep-alive connection: retry once on a new one
                conn.close()
                conn, reused = self._new_connection(target), False
                status, body, keep = self._request(conn, target, deadline)
        except ScrapeError as exc:
            conn.close()
            # without the traceback, the error no longer holds the failed read's buffers
            error = exc.with_traceback(None)
            return ScrapeResult(target, None, error, self._clock() - start, status, reused)
        except _FETCH_ERRORS as exc:
            conn.close()
            error = self._classify(exc, target, deadline)
            return ScrapeResult(target, None, error, self._clock() - start, status, reused)
        except BaseException:
            conn.close()
            raise
        if keep:
            self._release(target, conn)
        else:
            conn.close()
        duration = self._clock() - start
        if read is None:
            return ScrapeResult(target, body, None, duration, status, reused)
        try:
            page = read(target, body)
        except ScrapeError as exc:
            error = exc.with_traceback(None)
            return ScrapeResult(target, None, error, duration, status, reused)
        return ScrapeResult(target, None, None, duration, status, reused, page)

    def _new_connection(self, target: ScrapeTarget) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(target.host, target.port, timeout=self.timeout_seconds)

    def _acquire(self, target: ScrapeTarget) -> tuple[http.client.HTTPConnection, bool]:
        fd = -1
        with self._lock:
            server = (target.host, target.port)
            idle = self._idle.get(server)
            if idle:
                fd, rest = idle[0], idle[1:]
                if rest:
                    self._idle[server] = rest
                else:
                    del self._idle[server]
        conn = self._new_connection(target)
        if fd < 0:
            return conn, False
        try:
            conn.sock = socket.socket(fileno=fd)
        except OSError:  # the descriptor no longer names a socket
            os.close(fd)
            return conn, False
        return conn, True

    def _release(self, target: ScrapeTarget, conn: http.client.HTTPConnection) -> None:
        """Keep the socket of a finished exchange for the next cycle, as its bare descriptor
        (the connection object, its response and the socket object go)."""
        sock, conn.sock = conn.sock, None
        if sock is None:
            return
        with self._lock:
            server = (target.host, target.port)
            idle = self._idle.get(server, ())
            if len(idle) < MAX_IDLE_PER_HOST and not self._closed:
                self._idle[server] = (*idle, sock.detach())
                return
        sock.close()

    def _connect(self, target: ScrapeTarget, deadline: float) -> socket.socket:
        """Connect under the watchdog, so that the deadline and :meth:`cancel` also cut short
        a connection attempt that gets no answer (only the name lookup of a ``--dcgm-url``
        host name cannot be cut short)."""
        last: OSError | None = None
        for family, kind, proto, _, address in socket.getaddrinfo(
            target.host, target.port, 0, socket.SOCK_STREAM
        ):
            sock = socket.socket(family, kind, proto)
            token = self._watchdog.watch(deadline, sock)
            try:
                sock.settimeout(self._remaining(deadline))
                sock.connect(address)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            except BaseException:
                sock.close()
                raise
            finally:
                self._watchdog.release(token)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise last or OSError(f"no address for {target.host}")

    def _remaining(self, deadline: float) -> float:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise _OverdueError
        return remaining

    def _request(
        self, conn: http.client.HTTPConnection, target: ScrapeTarget, deadline: float
    ) -> tuple[int, bytes, bool]:
        conn.timeout = self._remaining(deadline)
        if conn.sock is None:
            conn.sock = self._connect(target, deadline)
        sock = conn.sock
        token = self._watchdog.watch(deadline, sock)
        response: http.client.HTTPResponse | None = None
        try:
            sock.settimeout(self._remaining(deadline))
            conn.request(
                "GET",
                target.path,
                headers={
                    "Accept": _ACCEPT,
                    "Accept-Encoding": "identity",
                    "User-Agent": self.user_agent,
                },
            )
            response = conn.getresponse()
            status = response.status
            if status != 200:
                raise ScrapeError(
                    f"HTTP {status} {response.reason} from {target.url}",
                    reason=errors.HTTP_STATUS,
                    status=status,
                )
            length = response.getheader("Content-Length")
            known = int(length) if length and length.strip().isdigit() else None
            if known is not None and known > self.max_body_bytes:
                raise _too_large(target, known, self.max_body_bytes)
            # The body is read into one buffer: of the announced length, else an anonymous
            # mapping of the cap's size whose pages exist only as they fill and go back to the
            # system with it. Read as a list of chunks, every oversized body left the
            # allocator's heap a few MB larger for good (an exporter answering 50 MB each
            # cycle grew the process by hundreds of MB).
            space: bytearray | mmap.mmap = (
                bytearray(known) if known is not None else mmap.mmap(-1, self.max_body_bytes + 1)
            )
            size = 0
            while True:
                if size > self.max_body_bytes:
                    raise _too_large(target, None, self.max_body_bytes)
                sock.settimeout(self._remaining(deadline))
                with memoryview(space) as view:
                    got = response.readinto(view[size : size + _CHUNK])
                if not got:
                    break
                size += got
            self._remaining(deadline)
            with memoryview(space) as view:
                body = bytes(view[:size])
            if isinstance(space, mmap.mmap):
                space.close()
            if known is not None and size < known:
                raise http.client.IncompleteRead(body, known - size)
            keep = not response.will_close
            encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
            if encoding == "gzip":
                body = _gunzip(body, target, self.max_body_bytes)
            elif encoding != "identity":
                raise ScrapeError(
                    f"{target.url} answered with unsupported Content-Encoding {encoding!r}",
                    reason=errors.OTHER,
                )
            return status, body, keep
        finally:
            self._watchdog.release(token)
            if response is not None:
                # marks the exchange done (the connection can be reused) or, on an error,
                # releases the socket's file object so that closing the connection closes it
                response.close()

    def _classify(self, exc: Exception, target: ScrapeTarget, deadline: float) -> ScrapeError:
        where = target.url
        if self._cancelled:
            return ScrapeError(f"scrape of {where} abandoned at shutdown", reason=errors.OTHER)
        if isinstance(exc, _OverdueError | TimeoutError) or self._clock() >= deadline:
            return ScrapeError(
                f"timeout: no complete answer from {where} within {self.timeout_seconds:g}s",
                reason=errors.TIMEOUT,
            )
        if isinstance(exc, ConnectionRefusedError):
            return ScrapeError(f"connection refused by {where}", reason=errors.REFUSED)
        if isinstance(exc, http.client.IncompleteRead):
            return ScrapeError(
                f"{where} closed the connection in the middle of the body "
                f"after {len(exc.partial)} bytes"
                + (f" of {len(exc.partial) + exc.expected}" if exc.expected else ""),
                reason=errors.OTHER,
            )
        if isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError):
            return ScrapeError(
                f"{where} closed the connection without an answer", reason=errors.OTHER
            )
        if isinstance(exc, http.client.HTTPException):
            return ScrapeError(
                f"{where} did not answer with valid HTTP ({type(exc).__name__}: {exc})",
                reason=errors.OTHER,
            )
        if isinstance(exc, OSError):
            detail = exc.strerror or str(exc) or type(exc).__name__
            return ScrapeError(f"cannot reach {where}: {detail}", reason=errors.OTHER)
        return ScrapeError(f"{where}: {type(exc).__name__}: {exc}", reason=errors.OTHER)


def _gunzip(data: bytes, target: ScrapeTarget, cap: int) -> bytes:
    """Decompress a gzip body some servers send unasked, without inflating past ``cap``."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, cap + 1)
    except zlib.error as exc:
        raise ScrapeError(
            f"{target.url} sent a corrupt gzip body: {exc}", reason=errors.OTHER
        ) from None
    if len(out) > cap or inflater.unconsumed_tail:
        raise _too_large(target, None, cap)
    return out


def _too_large(target: ScrapeTarget, length: int | None, cap: int) -> ScrapeError:
    told = f" (Content-Length {length})" if length is not None else ""
    return ScrapeError(
        f"the body of {target.url} is larger than {cap} bytes{told}", reason=errors.TOO_LARGE
    )


_Idle = dict[tuple[str, int], tuple[int, ...]]
"""Idle keep-alive connections: their descriptors per (host, port)."""


def _close_idle(idle: _Idle) -> None:
    """Close every idle connection (also when a scraper is dropped without :meth:`close`:
    bare descriptors have no socket object to close them)."""
    for fds in list(idle.values()):
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
    idle.clear()
