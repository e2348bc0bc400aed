"""pytest fixtures for :mod:`infercost.testing.scenario`.

``fake_clock`` (2026-11-27T12:00:00Z; a test module overrides it to start elsewhere), an
emulator on that clock, a :class:`~.scenario.Scenario` on it whose simulated servers read the
same clock, and an :class:`~.scenario.InProcessLeader` over the scenario. Every fixture stops
what it started.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from infercost.kube.clock import FakeClock
from infercost.testing.kubefixtures import crd_dirs
from infercost.testing.kubesim import KubeSim
from infercost.testing.scenario import InProcessLeader, Scenario
from infercost.testing.simservers.fixtures import SimServers

__all__ = ["fake_clock", "leader", "scenario", "scenario_sim"]


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC))


@pytest.fixture
def scenario_sim(fake_clock: FakeClock) -> Iterator[KubeSim]:
    """The emulator, stamping objects with the fake clock's time."""
    with KubeSim(
        crd_dirs=crd_dirs(), namespaces=("infercost-system",), clock=fake_clock.now
    ) as sim:
        yield sim


@pytest.fixture
def scenario(scenario_sim: KubeSim, sim_servers: SimServers, fake_clock: FakeClock) -> Scenario:
    return Scenario.on_emulator(scenario_sim, sim_servers, clock=fake_clock)


@pytest.fixture
def leader(scenario: Scenario, fake_clock: FakeClock) -> Iterator[InProcessLeader]:
    """Sampler and CostProfile reconciler with a 30 s scrape and 60 s status interval."""
    rig = InProcessLeader(scenario, fake_clock)
    try:
        yield rig
    finally:
        rig.close()
