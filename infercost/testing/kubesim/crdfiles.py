"""The CRD files an emulator installs by default: InferCost's own, rendered from
``infercost.api`` (exactly what ``manifests/crd`` holds: a test fails on drift), and the
third-party CRDs shipped in ``infercost/testing/crds`` (PrometheusRule).

Kept apart from the pytest fixtures so that code running from the wheel without pytest
(``infercost demo``) installs the same CRDs.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

SHIPPED_CRDS = Path(__file__).resolve().parent.parent / "crds"


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
