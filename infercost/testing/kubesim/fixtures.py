"""pytest fixtures: ``kubesim`` (one fresh emulator per test) and ``kubesim_session``.

Both install InferCost's CRDs (rendered from ``infercost.api``, which is exactly what
``manifests/crd`` holds: a test fails on drift) and the CRDs shipped in
``infercost/testing/crds``, and pre-create the ``default``, ``kube-system`` and
``infercost-system`` namespaces. Registered through ``infercost.testing.fixtures``.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..threadguard import allow_threads
from .emulator import KubeSim

SHIPPED_CRDS = Path(__file__).resolve().parent.parent / "crds"
FIXTURE_NAMESPACES = ("infercost-system",)


@functools.cache
def infercost_crd_dir() -> Path:
    """A directory holding InferCost's CRDs as ``hack/gen-crds`` renders them.

    Rendered from the models rather than read from the source tree, so the fixtures work the
    same from an installed package (tox) as from a checkout.
    """
    from infercost.api.crds import render_crds

    directory = Path(tempfile.mkdtemp(prefix="infercost-crds-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    for name, text in render_crds().items():
        (directory / name).write_text(text)
    return directory


def default_crd_dirs() -> list[Path]:
    """InferCost's CRDs, then the shipped test CRDs (PrometheusRule)."""
    return [infercost_crd_dir(), SHIPPED_CRDS]


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
