"""pytest fixtures for the Kubernetes machinery: an emulator plus a raw REST client.

``kube`` gives a fresh :class:`KubeEnv` per test: a running KubeSim with InferCost's CRDs and
the ``infercost-system`` namespace, a :class:`~infercost.kube.rest.RestClient` on it, and
:meth:`KubeEnv.eventually` to wait (bounded, polling) for the asynchronous effects of watches
and background threads, which is the only kind of waiting these tests do on real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infercost.kube.rest import RestClient
from infercost.testing.kubesim import KubeSim
from infercost.testing.kubesim.fixtures import default_crd_dirs

__all__ = ["KubeEnv", "crd_dirs", "eventually", "kube"]


def crd_dirs() -> list[Path]:
    """InferCost's CRDs, then the shipped test CRDs."""
    return default_crd_dirs()


def eventually(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


class KubeEnv:
    def __init__(self, sim: KubeSim) -> None:
        self.sim = sim
        self.rest = RestClient(sim.api_client())

    def new_rest(self, user_agent: str | None = None) -> RestClient:
        return RestClient(self.sim.api_client(), user_agent=user_agent)

    eventually = staticmethod(eventually)


@pytest.fixture
def kube() -> Iterator[KubeEnv]:
    """A fresh emulator (bookmarks every second) and a REST client on it."""
    sim = KubeSim(crd_dirs=crd_dirs(), namespaces=("infercost-system",), bookmark_interval=1.0)
    sim.start()
    try:
        yield KubeEnv(sim)
    finally:
        sim.stop()
