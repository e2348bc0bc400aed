"""pytest fixtures: ``kubesim`` (one fresh emulator per test) and ``kubesim_session``.

Both install the repository's ``manifests/crd`` (when present) and the CRDs shipped in
``infercost/testing/crds`` and pre-create the ``default``, ``kube-system`` and
``infercost-system`` namespaces. Registered through ``infercost.testing.fixtures``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .emulator import KubeSim

SHIPPED_CRDS = Path(__file__).resolve().parent.parent / "crds"
REPO_ROOT = Path(__file__).resolve().parents[3]
FIXTURE_NAMESPACES = ("infercost-system",)


def default_crd_dirs() -> list[Path]:
    """The repository's CRDs (manifests/crd) if present, then the shipped test CRDs."""
    dirs = []
    repo_crds = REPO_ROOT / "manifests" / "crd"
    if repo_crds.is_dir():
        dirs.append(repo_crds)
    dirs.append(SHIPPED_CRDS)
    return dirs


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
def kubesim_session() -> Iterator[KubeSim]:
    """One emulator shared by a whole test session (tests must not assume an empty cluster)."""
    sim = _start()
    try:
        yield sim
    finally:
        sim.stop()
