"""Fixtures of the reliability suite: a :class:`~cluster_rig.Cluster` per test, whose operator
processes are killed at teardown whatever happened."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_rig import Cluster, ShiftedClock

from infercost.testing.kubefixtures import KubeEnv
from infercost.testing.simservers.fixtures import SimServers


@pytest.fixture
def cluster(kube: KubeEnv, sim_servers: SimServers, tmp_path: Path) -> Iterator[Cluster]:
    built = Cluster(kube, sim_servers, ShiftedClock(), tmp_path / "logs")
    try:
        yield built
    finally:
        built.close()
