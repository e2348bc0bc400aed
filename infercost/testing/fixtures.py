"""pytest fixtures shared by test/ and e2e/ (registered from their conftest.py)."""

from __future__ import annotations
from infercost.testing.kubesim.fixtures import kubesim, kubesim_session  # noqa: F401
from infercost.testing.kubefixtures import kube  # noqa: F401
from infercost.testing.simservers.fixtures import *  # noqa: F403
