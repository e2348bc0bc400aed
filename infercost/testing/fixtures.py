"""pytest fixtures shared by test/ and e2e/ (registered from their conftest.py)."""

from __future__ import annotations

from infercost.testing.kubefixtures import kube
from infercost.testing.kubesim.fixtures import kubesim, kubesim_session
from infercost.testing.scenariofixtures import fake_clock, leader, scenario, scenario_sim
from infercost.testing.simservers.fixtures import (
    loopback_pool,
    sim_clock,
    sim_farm_servers,
    sim_servers,
)

__all__ = [
    "fake_clock",
    "kube",
    "kubesim",
    "kubesim_session",
    "leader",
    "loopback_pool",
    "scenario",
    "scenario_sim",
    "sim_clock",
    "sim_farm_servers",
    "sim_servers",
]
