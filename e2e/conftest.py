"""The end-to-end suite: deploys manifests/ with kubectl and checks the CRs end to end.

It runs against whatever cluster ``--k8s-kubeconfig`` names (pytest-kubernetes' external
provider). Without one it starts the project's Kubernetes API emulator for the session and
points the provider at it, so the same tests run on a laptop, in CI and against a real cluster.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["infercost.testing.fixtures"]

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
