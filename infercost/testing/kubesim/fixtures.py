"""pytest fixtures: ``kubesim`` (one fresh emulator per test) and ``kubesim_session``.

Both install InferCost's CRDs (rendered from ``infercost.api``, which is exactly what
``manifests/crd`` holds: a test fails on drift) and the CRDs shipped in
``infercost/testing/crds``, and pre-create the ``default``, ``kube-system`` and
``infercost-system`` namespaces. Registered through ``infercost.testing.fixtures``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..threadguard import allow_threads
from .crdfiles import SHIPPED_CRDS, default_crd_dirs, infercost_crd_dir
from .emulator import KubeSim

__all__ = ["SHIPPED_CRDS", "default_crd_dirs", "infercost_crd_dir", "kubesim", "kubesim_session"]

FIXTURE_NAMESPACES = ("infercost-system",)


def _start(bookmark_interval: float = 5.0) -> KubeSim:
    return KubeSim(
        crd_dirs=default_crd_dirs(),
        namespaces=FIXTURE_NAMESPACES,
        bookmark_interval=bookmark_interval,
    ).start()


@pytest.fixture
def kubesim() -> Iterator[KubeSim]:
    """A fresh emulator for one test."""
    sim = _start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="session")
def kubesim_session(pytestconfig: pytest.Config) -> Iterator[KubeSim]:
    """One emulator shared by a whole test session (tests must not assume an empty cluster).

    Its threads outlive each test on purpose, so the thread-leak guard lets them be.
    """
    sim = _start()
    allow_threads(pytestconfig, sim.thread_name)
    try:
        yield sim
    finally:
        sim.stop()
