"""pytest fixtures for simulated inference servers and DCGM exporters.

``sim_servers`` is a factory whose servers are all stopped at the end of the test::

    def test_x(sim_servers, sim_clock):
        vllm = sim_servers.inference("vllm", models=["m"])
        vllm.serve(100, 20)
        pod = make_pod("vllm-0", ip=vllm.host, annotations={"infercost.ai/backend": "vllm"})
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from infercost.testing.simservers.farm import ServerFarm
from infercost.testing.simservers.servers import (
    LoopbackPool,
    SimClock,
    SimDcgmExporter,
    SimInferenceServer,
    bind,
)

__all__ = ["SimServers", "loopback_pool", "sim_clock", "sim_farm_servers", "sim_servers"]


class SimServers:
    """Starts simulated servers on distinct loopback addresses and stops them all at the end."""

    def __init__(self, pool: LoopbackPool, clock: SimClock, farm: ServerFarm | None = None):
        self.pool = pool
        self.clock = clock
        self.farm = farm
        self.started: list[SimInferenceServer | SimDcgmExporter] = []

    def inference(self, backend: str, **options: Any) -> SimInferenceServer:
        options.setdefault("clock", self.clock)
        if self.farm is not None:
            options.setdefault("http_factory", self.farm.add)
        holder: list[SimInferenceServer] = []

        def make(ip: str) -> Any:
            server = SimInferenceServer(backend, ip, **options)
            holder.append(server)
            return server.http

        bind(self.pool, make)
        self.started.append(holder[-1])
        return holder[-1]

    def dcgm(self, **options: Any) -> SimDcgmExporter:
        options.setdefault("clock", self.clock)
        if self.farm is not None:
            options.setdefault("http_factory", self.farm.add)
        holder: list[SimDcgmExporter] = []

        def make(ip: str) -> Any:
            exporter = SimDcgmExporter(ip, **options)
            holder.append(exporter)
            return exporter.http

        bind(self.pool, make)
        self.started.append(holder[-1])
        return holder[-1]

    def stop_all(self) -> None:
        for server in reversed(self.started):
            server.stop()
            self.pool.release(server.host)
        self.started.clear()


@pytest.fixture(scope="session")
def loopback_pool() -> LoopbackPool:
    return LoopbackPool()


@pytest.fixture
def sim_clock() -> SimClock:
    return SimClock()


@pytest.fixture
def sim_farm_servers(loopback_pool: LoopbackPool, sim_clock: SimClock) -> Iterator[SimServers]:
    """Like ``sim_servers``, but every server shares one event loop (for many servers)."""
    with ServerFarm() as farm:
        servers = SimServers(loopback_pool, sim_clock, farm)
        try:
            yield servers
        finally:
            servers.stop_all()


@pytest.fixture
def sim_servers(loopback_pool: LoopbackPool, sim_clock: SimClock) -> Iterator[SimServers]:
    servers = SimServers(loopback_pool, sim_clock)
    try:
        yield servers
    finally:
        servers.stop_all()
