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
    from infercost.testing.threadguard import allow_threads

    sim = KubeSim(namespaces=("infercost-system",)).start()
    config.stash[_SIM_KEY] = sim
    allow_threads(config, sim.thread_name)
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
def cluster(k8s, pytestconfig):  # type: ignore[no-untyped-def]
    """The cluster, ready, with the CRDs installed (on the emulator also the PrometheusRule
    CRD, which a real cluster gets from the Prometheus Operator)."""
    k8s.create()
    k8s.kubectl(["apply", "-k", str(REPO / "manifests" / "crd")], as_dict=False)
    if pytestconfig.stash.get(_SIM_KEY, None) is not None:
        crd = REPO / "infercost" / "testing" / "crds" / "monitoring.coreos.com_prometheusrules.yaml"
        k8s.kubectl(["apply", "-f", str(crd)], as_dict=False)
        k8s.kubectl(
            ["wait", "--for=condition=Established", "crd/prometheusrules.monitoring.coreos.com"],
            as_dict=False,
        )
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
