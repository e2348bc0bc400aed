"""The end-to-end suite: deploys manifests/ with kubectl and checks the CRs end to end.

It runs against whatever cluster ``--k8s-kubeconfig`` names (pytest-kubernetes' external
provider). Without one it starts the project's Kubernetes API emulator for the session and
points the provider at it, so the same tests run on a laptop, in CI and against a real cluster.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

pytest_plugins = ["infercost.testing.fixtures"]

REPO = Path(__file__).resolve().parents[1]
KINDS = ("costprofiles", "usagereports", "tokenbudgets")

_SIM_KEY = pytest.StashKey[object]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("k8s_kubeconfig", None) or config.getoption(
        "k8s_kubeconfig_override", None
    ):
        return
    from infercost.testing.kubesim import KubeSim

    sim = KubeSim(namespaces=("infercost-system",)).start()
    config.stash[_SIM_KEY] = sim
    config.option.k8s_provider = "external"
    config.option.k8s_kubeconfig = str(sim.kubeconfig)


def pytest_unconfigure(config: pytest.Config) -> None:
    sim = config.stash.get(_SIM_KEY, None)
    if sim is not None:
        sim.stop()  # type: ignore[attr-defined]


def pytest_report_header(config: pytest.Config) -> str:
    if config.stash.get(_SIM_KEY, None) is not None:
        return "cluster: InferCost's Kubernetes API emulator (pass --k8s-kubeconfig for a real one)"
    return f"cluster: {config.getoption('k8s_kubeconfig')}"


@pytest.fixture
def cluster(k8s):  # type: ignore[no-untyped-def]
    """The cluster, ready, with the CRDs installed."""
    k8s.create()
    k8s.kubectl(["apply", "-k", str(REPO / "manifests" / "crd")], as_dict=False)
    for plural in KINDS:
        k8s.kubectl(
            [
                "wait",
                "--for=condition=Established",
                f"crd/{plural}.finops.infercost.ai",
                "--timeout=30s",
            ],
            as_dict=False,
        )
    return k8s


@pytest.fixture
def namespace(cluster):  # type: ignore[no-untyped-def]
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    cluster.kubectl(["create", "namespace", name], as_dict=False)
    yield name
    cluster.kubectl(["delete", "namespace", name, "--wait=false"], as_dict=False)
