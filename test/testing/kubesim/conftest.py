"""Fixtures for the emulator's own tests: an emulator with the test CRDs, and clients for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from infercost.testing.kubesim import KubeSim

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def sim() -> Iterator[KubeSim]:
    """An emulator with the widget/gadget test CRDs and a short bookmark interval."""
    with KubeSim(crd_dirs=[DATA], bookmark_interval=0.2, watch_history=64) as s:
        yield s


@pytest.fixture
def api(sim: KubeSim) -> Iterator[Any]:
    api_client = sim.api_client()
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def core(api: Any) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def co(api: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)
