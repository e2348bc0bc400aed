"""The scraper against simulated servers: keep-alive, isolation, timeouts, caps, error classes."""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import threading
import tracemalloc
import weakref
from collections.abc import Iterator

import pytest

from infercost.collect import errors
from infercost.collect.backends import read_tokens
from infercost.collect.errors import NotPrometheusTextError, ScrapeError
from infercost.collect.scraping import (
    FAILED,
    OK,
    STARTING,
    ScrapeCancelledError,
    Scraper,
    ScrapeTarget,
    pod_scrape_state,
)
from infercost.testing.kubefixtures import eventually
from infercost.testing.simservers.farm import ServerFarm
from infercost.testing.simservers.httpserver import Fault, PageServer
from infercost.testing.simservers.servers import LoopbackPool, bind

PAGE = b'# TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total{model_name="m"} 42\n'


@pytest.fixture(scope="module")
def farm() -> Iterator[ServerFarm]:
    with ServerFarm() as shared:
        yield shared


@pytest.fixture(params=["threaded", "farm"])
def serve(request, loopback_pool: LoopbackPool, farm: ServerFarm):  # type: ignore[no-untyped-def]
    """Start a page server; every test runs against both server implementations."""
    started: list = []  # type: ignore[type-arg]
    factory = PageServer if request.param == "threaded" else farm.add

    def start(page: bytes = PAGE, port: int = 8000):  # type: ignore[no-untyped-def]
        server = bind(loopback_pool, lambda ip: factory(ip, port, lambda: page))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
        loopback_pool.release(server.host)


def target(
    server,  # type: ignore[no-untyped-def]
    key: str = "t",
    path: str = "/metrics",
) -> ScrapeTarget:
    return ScrapeTarget(key, server.host, server.port, path)


def test_fetches_the_body(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    with Scraper() as scraper:
        [result] = scraper.scrape([target(server)])
    assert result.ok and result.status == 200 and result.body == PAGE
    assert result.duration_seconds > 0
    assert server.request_paths == ["/metrics"]


def test_keep_alive_connections_are_reused_across_cycles(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    with Scraper() as scraper:
        results = [scraper.scrape([target(server)])[0] for _ in range(4)]
        assert scraper.idle_connections(server.host, server.port) == 1
    assert all(r.ok for r in results)
    assert [r.reused_connection for r in results] == [False, True, True, True]
    assert server.connections_accepted == 1 and server.requests_served == 4


def test_a_connection_the_server_closed_is_replaced_transparently(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    with Scraper() as scraper:
        assert scraper.scrape([target(server)])[0].ok
        server.stop()  # closes the idle keep-alive connection
        server.start()
        result = scraper.scrape([target(server)])[0]
    assert result.ok and result.body == PAGE
    assert server.connections_accepted == 2


def test_refused_and_the_starting_helper(serve, loopback_pool: LoopbackPool) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    server.loading()  # a server loading its model refuses connections
    with Scraper() as scraper:
        [result] = scraper.scrape([target(server)])
        assert result.error is not None and result.error.reason == errors.REFUSED
        assert "connection refused" in str(result.error)
        assert pod_scrape_state(result.error, ever_succeeded=False) == STARTING
        assert pod_scrape_state(result.error, ever_succeeded=True) == FAILED
        server.ready()
        [result] = scraper.scrape([target(server)])
        assert result.ok and pod_scrape_state(result.error, ever_succeeded=False) == OK


def test_timeout_covers_a_server_that_never_answers(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    server.fault = Fault("slow", delay_seconds=5.0)
    with Scraper(timeout_seconds=0.5) as scraper:
        [result] = scraper.scrape([target(server)])
    # The server would answer after 5 s; a timeout means the scraper gave up first.
    assert result.error is not None and result.error.reason == errors.TIMEOUT
    assert "within 0.5s" in str(result.error)


def test_timeout_covers_the_whole_body_of_a_server_that_drips(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(PAGE * 50)
    server.fault = Fault("slow", delay_seconds=0.1, drip_bytes=64)
    with Scraper(timeout_seconds=0.6) as scraper:
        [result] = scraper.scrape([target(server)])
    # Every piece arrives within 0.1 s, so only a deadline over the whole body can expire.
    assert result.error is not None and result.error.reason == errors.TIMEOUT


def test_one_slow_target_does_not_delay_the_others(serve) -> None:  # type: ignore[no-untyped-def]
    slow = serve()
    slow.fault = Fault("slow", delay_seconds=600.0)  # answers only when stopped
    fast = [serve() for _ in range(6)]
    targets = [target(slow, "slow"), *(target(s, f"fast{i}") for i, s in enumerate(fast))]
    results: list = []  # type: ignore[type-arg]
    with Scraper(concurrency=3, timeout_seconds=600.0) as scraper:
        scraping = threading.Thread(target=lambda: results.extend(scraper.scrape(targets)))
        scraping.start()
        try:
            # A finished fetch leaves its keep-alive connection idle: every fast target is
            # done while the slow one still holds its slot.
            eventually(
                lambda: all(scraper.idle_connections(s.host, s.port) == 1 for s in fast),
                what="every fast target scraped",
            )
            assert not results
        finally:
            slow.stop()
            scraping.join(30)
    assert [r.target.key for r in results] == [t.key for t in targets]
    assert results[0].error is not None
    assert all(r.ok for r in results[1:])


@pytest.mark.parametrize("code", [500, 503, 404])
def test_http_errors_carry_the_status(serve, code: int) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    server.fault = Fault("status", status=code)
    with Scraper() as scraper:
        [result] = scraper.scrape([target(server)])
    assert result.error is not None and result.error.reason == errors.HTTP_STATUS
    assert result.error.status == code and f"HTTP {code}" in str(result.error)


def test_unknown_path_is_a_404(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    with Scraper() as scraper:
        [result] = scraper.scrape([target(server, path="/nope")])
    assert result.error is not None and result.error.status == 404


def test_body_cap_by_content_length(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(PAGE * 100)
    with Scraper(max_body_bytes=1000) as scraper:
        [result] = scraper.scrape([target(server)])
    assert result.error is not None and result.error.reason == errors.TOO_LARGE
    assert "Content-Length" in str(result.error)


def test_body_cap_while_streaming_a_huge_body(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    server.fault = Fault("huge", size_bytes=12 * 1024 * 1024)
    with Scraper() as scraper:  # the default 10 MB cap
        [result] = scraper.scrape([target(server)])
    assert result.error is not None and result.error.reason == errors.TOO_LARGE
    assert str(10 * 1024 * 1024) in str(result.error)


def test_disconnect_in_the_middle_of_the_body(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(PAGE * 20)
    server.fault = Fault("disconnect")
    with Scraper() as scraper:
        [result] = scraper.scrape([target(server)])
    assert result.error is not None and result.error.reason == errors.OTHER
    assert "in the middle of the body" in str(result.error)


def test_a_server_that_does_not_speak_http(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    server.fault = Fault("not_http")
    with Scraper() as scraper:
        [result] = scraper.scrape([target(server)])
    assert result.error is not None and result.error.reason == errors.OTHER
    assert "valid HTTP" in str(result.error)


@pytest.mark.parametrize("kind", ["garbage", "html"])
def test_garbage_with_status_200_is_a_parse_error_not_zero_tokens(serve, kind: str) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    server.fault = Fault(kind)
    with Scraper() as scraper:
        [result] = scraper.scrape([target(server)])
    assert result.ok and result.body
    with pytest.raises(NotPrometheusTextError):
        read_tokens("vllm", result.body)


def test_an_unreachable_address_is_an_error_not_an_exception() -> None:
    with Scraper(timeout_seconds=1.0) as scraper:
        [result] = scraper.scrape([ScrapeTarget("x", "127.255.255.254", 1)])
    assert isinstance(result.error, ScrapeError)
    assert result.error.reason in (errors.REFUSED, errors.OTHER, errors.TIMEOUT)


def test_settings_are_validated_and_a_closed_scraper_refuses_work() -> None:
    for kwargs in ({"concurrency": 0}, {"timeout_seconds": 0}, {"max_body_bytes": 0}):
        with pytest.raises(ValueError):
            Scraper(**kwargs)  # type: ignore[arg-type]
    scraper = Scraper()
    scraper.close()
    scraper.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        scraper.scrape([])


def test_a_farm_serves_hundreds_of_endpoints_from_one_thread(
    farm: ServerFarm, loopback_pool: LoopbackPool
) -> None:
    threads_before = threading.active_count()
    servers = [bind(loopback_pool, lambda ip: farm.add(ip, 8000, lambda: PAGE)) for _ in range(300)]
    assert threading.active_count() == threads_before
    try:
        with Scraper(concurrency=32) as scraper:
            results = scraper.scrape([target(s, str(i)) for i, s in enumerate(servers)])
        assert all(r.ok and r.body == PAGE for r in results)
    finally:
        for server in servers:
            server.stop()
            loopback_pool.release(server.host)


def test_gzip_bodies_are_inflated_within_the_cap(loopback_pool: LoopbackPool) -> None:
    server = bind(loopback_pool, lambda ip: PageServer(ip, 8000, lambda: PAGE * 10))
    server.gzip = True
    try:
        with Scraper() as scraper:
            [result] = scraper.scrape([target(server)])
        assert result.ok and result.body == PAGE * 10
        with Scraper(max_body_bytes=len(PAGE) * 5) as scraper:  # compressed size fits, text not
            [result] = scraper.scrape([target(server)])
        assert result.error is not None and result.error.reason == errors.TOO_LARGE
    finally:
        server.stop()
        loopback_pool.release(server.host)


def test_cancel_abandons_a_cycle_stuck_on_targets_that_never_answer(serve) -> None:  # type: ignore[no-untyped-def]
    """Shutdown cannot wait for a dead target's timeout: cancel() ends the cycle at once, the
    fetch in flight loses its socket and the queued one never starts."""
    stuck, queued = serve(), serve()
    stuck.fault = queued.fault = Fault("slow", delay_seconds=3600.0)
    threads_before = set(threading.enumerate())
    scraper = Scraper(concurrency=1, timeout_seconds=600.0)
    outcome: list[BaseException | list] = []  # type: ignore[type-arg]

    def cycle() -> None:
        try:
            outcome.append(scraper.scrape([target(stuck, "a"), target(queued, "b")]))
        except ScrapeCancelledError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=cycle)
    thread.start()
    try:
        eventually(lambda: stuck.request_paths, what="the first fetch in flight")
        scraper.cancel()
        thread.join(30)
        assert not thread.is_alive()
        [error] = outcome
        assert isinstance(error, ScrapeCancelledError)
        assert "2 of 2 scrapes abandoned" in str(error)
        with pytest.raises(ScrapeCancelledError):
            scraper.scrape([target(queued, "b")])
    finally:
        scraper.close()
    started = set(threading.enumerate()) - threads_before
    assert not [t for t in started if t.name.startswith("scrape")], "close() ended the workers"
    assert queued.connections_accepted == 0, "a queued fetch never starts after cancel()"


class _BuggyScraper(Scraper):
    def _new_connection(self, target: ScrapeTarget):  # type: ignore[no-untyped-def]
        raise TypeError("a bug in the scraper")


def test_a_bug_is_raised_not_reported_as_a_scrape_error(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    with _BuggyScraper() as scraper, pytest.raises(TypeError, match="a bug in the scraper"):
        scraper.scrape([target(server)])


def test_a_cycle_keeps_nothing_of_its_pages_once_its_results_are_dropped(serve) -> None:  # type: ignore[no-untyped-def]
    """Between cycles the scraper holds no page: a body kept by a worker (or by the last
    cycle's bookkeeping) costs the operator every page of a cycle, ~100 KB per pod."""
    servers = [serve() for _ in range(4)]
    with Scraper(concurrency=2) as scraper:
        results = scraper.scrape([target(s, str(i)) for i, s in enumerate(servers)])
        assert all(r.body == PAGE for r in results)
        alive = [weakref.ref(r) for r in results]
        del results
        gc.collect()
        kept = [r() for r in alive if r() is not None]
        assert not kept, f"{len(kept)} results of a finished cycle are still referenced"


def test_a_reader_gets_each_page_and_its_result_replaces_the_body(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    good = ScrapeTarget("good", server.host, server.port)
    bad = ScrapeTarget("bad", server.host, server.port, kind="dcgm")

    def tokens(t: ScrapeTarget, body: bytes) -> object:
        return read_tokens("vllm", body)

    def dcgm(t: ScrapeTarget, body: bytes) -> object:
        raise NotPrometheusTextError(f"{t.key}: not a dcgm page ({len(body)} bytes)")

    with Scraper() as scraper:
        first, second = scraper.scrape([good, bad], {"inference": tokens, "dcgm": dcgm})
    assert first.ok and first.body is None and first.status == 200
    assert first.page == read_tokens("vllm", PAGE)
    assert not second.ok and second.body is None and second.page is None
    assert second.error is not None and second.error.reason == errors.NOT_PROMETHEUS_TEXT
    assert str(second.error) == f"bad: not a dcgm page ({len(PAGE)} bytes)"
    assert second.status == 200, "the fetch itself succeeded"


def test_a_reader_never_sees_a_failed_fetch(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()
    server.fault = Fault("status", status=503)
    seen: list[object] = []
    with Scraper() as scraper:
        [result] = scraper.scrape([target(server)], {"inference": lambda t, b: seen.append(b)})
    assert seen == []
    assert result.error is not None and result.error.reason == errors.HTTP_STATUS


def test_a_bug_in_a_reader_is_raised_by_scrape(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve()

    def buggy(t: ScrapeTarget, body: bytes) -> object:
        raise KeyError("a bug in a reader")

    with Scraper() as scraper, pytest.raises(KeyError, match="a bug in a reader"):
        scraper.scrape([target(server)], {"inference": buggy})


def test_pages_read_as_they_arrive_are_not_held_until_the_cycle_ends(
    loopback_pool: LoopbackPool,
) -> None:
    """A cycle holds the pages of its fetches in flight, not every page it fetched: with one
    worker, while the sixth page is read the five before it are gone (held until the end, six
    1 MB pages would be 6 MB)."""
    big = PAGE * (1_000_000 // len(PAGE))
    servers = [bind(loopback_pool, lambda ip: PageServer(ip, 8000, lambda: big)) for _ in range(6)]
    held: list[int] = []

    def measure(t: ScrapeTarget, body: bytes) -> object:
        held.append(tracemalloc.get_traced_memory()[0])
        return len(body)

    try:
        with Scraper(concurrency=1) as scraper:
            scraper.scrape([target(servers[0])])  # the worker thread and a connection exist
            gc.collect()
            tracemalloc.start()
            try:
                results = scraper.scrape(
                    [target(s, str(i)) for i, s in enumerate(servers)], {"inference": measure}
                )
            finally:
                tracemalloc.stop()
        assert [r.page for r in results] == [len(big)] * 6
        assert all(r.body is None for r in results)
        growth = max(held) - held[0]
        assert growth < 2 * len(big), f"{growth} bytes more held at the last read than the first"
    finally:
        for server in servers:
            server.stop()
            loopback_pool.release(server.host)


def _connections_to(port: int, host: str | None = None) -> int:
    """Sockets of this process connected to ``port`` on loopback (on ``host``, if given)."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=int(name))
        except OSError:
            continue  # not a socket, or already gone
        try:
            with contextlib.suppress(OSError):
                peer = sock.getpeername()
                count += isinstance(peer, tuple) and peer[1] == port and host in (None, peer[0])
        finally:
            sock.detach()
    return count


def test_idle_connections_are_closed_with_the_scraper(serve) -> None:  # type: ignore[no-untyped-def]
    """Idle keep-alive connections are kept as bare descriptors between cycles: reused by the
    next cycle, and closed when the scraper closes."""
    server = serve()
    scraper = Scraper()
    try:
        assert scraper.scrape([target(server)])[0].ok
        assert scraper.idle_connections(server.host, server.port) == 1
        assert _connections_to(server.port) == 1
        assert scraper.scrape([target(server)])[0].reused_connection
        assert _connections_to(server.port) == 1
    finally:
        scraper.close()
    assert _connections_to(server.port) == 0
    assert server.connections_accepted == 1


def test_idle_connections_to_servers_no_longer_scraped_are_closed(serve) -> None:  # type: ignore[no-untyped-def]
    """A pod that went away (or moved to a new address) leaves no descriptor open: the next
    cycle closes the idle connections to every server it did not scrape."""
    gone, staying = serve(), serve()
    with Scraper() as scraper:
        both = [target(gone, key="gone"), target(staying, key="staying")]
        assert all(r.ok for r in scraper.scrape(both))
        assert _connections_to(gone.port, gone.host) == 1
        assert _connections_to(staying.port, staying.host) == 1
        assert scraper.scrape([target(staying, key="staying")])[0].reused_connection
        assert scraper.idle_connections(gone.host, gone.port) == 0
        assert _connections_to(gone.port, gone.host) == 0
        assert scraper.idle_connections(staying.host, staying.port) == 1
        assert _connections_to(staying.port, staying.host) == 1
    assert staying.connections_accepted == 1


def test_keep_alive_is_per_port_when_servers_share_a_host(loopback_pool: LoopbackPool) -> None:
    """Several servers on one address (different ports) each keep their connection."""
    first = bind(loopback_pool, lambda ip: PageServer(ip, 0, lambda: PAGE))
    servers = [first] + [PageServer(first.host, 0, lambda: PAGE).start() for _ in range(3)]
    try:
        with Scraper() as scraper:
            for _ in range(3):
                results = scraper.scrape([target(s, key=str(s.port)) for s in servers])
                assert all(r.ok for r in results)
            assert [scraper.idle_connections(s.host, s.port) for s in servers] == [1, 1, 1, 1]
        assert [s.connections_accepted for s in servers] == [1, 1, 1, 1]
    finally:
        for server in servers:
            server.stop()
        loopback_pool.release(first.host)
