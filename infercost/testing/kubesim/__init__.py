"""A Kubernetes API emulator for tests: real HTTP, real client, documented apiserver semantics.

``from infercost.testing.kubesim import KubeSim``; see docs/kubesim.md.
"""

from __future__ import annotations

from .emulator import KubeSim, load_manifests
from .faults import Faults, RequestRecord
from .status import ApiError

__all__ = ["ApiError", "Faults", "KubeSim", "RequestRecord", "load_manifests"]
