"""The CostProfile controller inside the operator: in-process and as an ``infercost run``
subprocess, against the emulator and simulated exporters and inference servers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from prometheus_client import CollectorRegistry

from infercost.controllers.config import OperatorConfig
from infercost.controllers.operator import CUSTOM_RESOURCES, Operator
from infercost.controllers.sampling import shared_sampler
from infercost.kube.clock import FakeClock
from infercost.kube.rest import NODES, PODS
from infercost.testing.kubefixtures import KubeEnv, eventually
from infercost.testing.simservers.fixtures import SimServers
from infercost.testing.simservers.objects import make_dcgm_exporter_pod, make_node, make_pod

COSTPROFILES = CUSTOM_RESOURCES["CostProfile"]
NS = "default"


def _profile(name: str, rate: float = 0.10) -> dict[str, Any]:
    return {
        "apiVersion": "finops.infercost.ai/v1alpha1",
        "kind": "CostProfile",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "hardware": {
                "gpuModel": "NVIDIA L40S",
                "gpuCount": 2,
                "purchasePriceUSD": 26_280.0,
                "amortizationYears": 3,
            },
            "electricity": {"ratePerKWh": rate, "pueFactor": 1.0},
            "nodeSelector": {"pool": "l40s"},
        },
    }


def _create_pod(kube: KubeEnv, pod: dict[str, Any]) -> None:
    ns = pod["metadata"]["namespace"]
    kube.sim.create_namespace(ns)  # idempotent
    kube.rest.create(PODS, pod, ns)
    kube.rest.merge_patch(PODS, pod["metadata"]["name"], {"status": pod["status"]}, ns, "status")


def _cluster(kube: KubeEnv, sim_servers: SimServers) -> tuple[Any, Any]:
    kube.rest.create(NODES, make_node("l40s-1", gpus=2, labels={"pool": "l40s"}))
    exporter = sim_servers.dcgm(gpus=2, node="l40s-1")
    exporter.set_power(0, 200.0)
    exporter.set_power(1, 150.0)
    _create_pod(kube, make_dcgm_exporter_pod("l40s-1", exporter.host))
    server = sim_servers.inference("llamacpp")
    server.serve(100, 40)
    _create_pod(
        kube,
        make_pod(
            "llama-0",
            ip=server.host,
            node="l40s-1",
            annotations={"infercost.ai/backend": "llamacpp"},
            gpus=1,
        ),
    )
    return exporter, server


def _status(kube: KubeEnv, name: str) -> dict[str, Any]:
    return kube.rest.get(COSTPROFILES, name, NS).get("status") or {}


def _ready(kube: KubeEnv, name: str) -> dict[str, Any] | None:
    for cond in _status(kube, name).get("conditions") or ():
        if cond["type"] == "Ready":
            return cond
    return None


def test_operator_fills_a_new_profile_within_two_intervals_and_keeps_it_current(
    kube: KubeEnv, sim_servers: SimServers
) -> None:
    exporter, _ = _cluster(kube, sim_servers)
    config = OperatorConfig(
        kubeconfig=kube.sim.kubeconfig,
        metrics_bind=("127.0.0.1", 0),
        health_bind=("127.0.0.1", 0),
        leader_elect=False,
        scrape_interval=600.0,
        scrape_timeout=10.0,
        status_interval=1.0,
    )
    # The operator runs on a fake clock: only the test moves its time.
    clock = FakeClock(datetime.now(UTC))

    def driven(predicate: Any, what: str, step_seconds: float) -> None:
        """Move the operator's time on, step by step, until ``predicate`` holds."""

        def step() -> bool:
            if predicate():
                return True
            clock.advance(step_seconds)
            return False

        eventually(step, timeout=30, what=what)

    operator = Operator(config, registry=CollectorRegistry(), identity="test", clock=clock)
    operator.start()
    try:
        eventually(lambda: operator.ready()[0], what="caches synced")
        sampler = shared_sampler(operator.context)
        # Small steps: the sampler checks its caches every 0.05 s; the next periodic sample, 600 s
        # away, stays out of reach.
        driven(lambda: sampler.latest() is not None, "the first sample", 0.05)
        # A new profile wakes the sampler early (at most once a second): with that second
        # passed, the profile is filled from the very next sample, with no time passing at all,
        # let alone two scrape intervals.
        clock.advance(1.0)
        kube.rest.create(COSTPROFILES, _profile("l40s"), NS)
        eventually(
            lambda: (_ready(kube, "l40s") or {}).get("status") == "True",
            timeout=30,
            what="Ready=True without the clock moving",
        )
        status = _status(kube, "l40s")
        assert status["powerSource"] == "DCGM"
        assert status["currentPowerDrawWatts"] == pytest.approx(350.0)
        assert status["amortizationRatePerHour"] == pytest.approx(1.0)
        assert status["inferencePods"] == 1 and status["matchedGPUs"] == 2

        exporter.set_power(1, 250.0)
        driven(
            lambda: _status(kube, "l40s")["currentPowerDrawWatts"] == pytest.approx(450.0),
            what="the new power written after the next sample and the status interval",
            step_seconds=10.0,
        )
        addr = operator.addresses[0]
        with urllib.request.urlopen(f"http://{addr[0]}:{addr[1]}/metrics", timeout=5) as r:
            body = r.read().decode()
        assert (
            'infercost_costprofile_power_watts{costprofile="l40s",costprofile_namespace="default",'
            'gpu_model="NVIDIA L40S"} 450.0' in body
        )
        assert 'infercost_costprofile_power_source{costprofile="l40s"' in body
        assert "infercost_scrape_duration_seconds_count" in body

        kube.rest.delete(COSTPROFILES, "l40s", NS)

        def gone() -> bool:
            with urllib.request.urlopen(f"http://{addr[0]}:{addr[1]}/metrics", timeout=5) as r:
                return 'costprofile="l40s"' not in r.read().decode()

        driven(gone, what="series of the deleted profile removed", step_seconds=10.0)
    finally:
        operator.request_stop()
        assert operator.shutdown() == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_infercost_run_subprocess_writes_costprofile_status(
    kube: KubeEnv, sim_servers: SimServers
) -> None:
    _cluster(kube, sim_servers)
    kube.rest.create(COSTPROFILES, _profile("l40s"), NS)
    bad = _profile("broken")
    bad["spec"]["nodeSelector"] = {"bad key": "x"}
    kube.rest.create(COSTPROFILES, bad, NS)
    metrics = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERCOST_")}
    env.pop("KUBECONFIG", None)
    env.update(
        {
            "INFERCOST_KUBECONFIG": kube.sim.kubeconfig,
            "INFERCOST_HEALTH_BIND": f"127.0.0.1:{_free_port()}",
            "INFERCOST_SCRAPE_INTERVAL": "500ms",
            "INFERCOST_SCRAPE_TIMEOUT": "400ms",
            "INFERCOST_STATUS_INTERVAL": "1s",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "infercost", "run", "--metrics-bind", f"127.0.0.1:{metrics}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        eventually(
            lambda: (_ready(kube, "l40s") or {}).get("reason") == "CostComputed",
            timeout=30,
            what="the profile's status",
        )
        status = _status(kube, "l40s")
        assert status["matchedNodes"] == ["l40s-1"]
        assert status["hourlyCostUSD"] == pytest.approx(1.0 + 0.35 * 0.10)
        broken = eventually(lambda: _ready(kube, "broken"), timeout=10, what="InvalidSpec")
        assert broken["reason"] == "InvalidSpec"
        assert "spec.nodeSelector" in broken["message"]
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as r:
            body = r.read().decode()
        assert 'infercost_costprofile_hourly_cost_usd{costprofile="l40s"' in body
        assert 'costprofile="broken"' not in body
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in out + err
    # Every component stopped within its share of the shutdown budget.
    assert "did not stop in time" not in out + err


def test_config_is_what_the_sampler_uses() -> None:
    """The flags reach the sampler (and a bad selector is a one-line startup error)."""
    from infercost.controllers.sampling import SamplerSettings

    base = OperatorConfig(scrape_interval=2.0, scrape_timeout=1.0, scrape_concurrency=4)
    settings = SamplerSettings.from_config(
        attrs.evolve(base, dcgm_port=9500, profile_namespaces=("ml",))
    )
    assert settings.interval_seconds == 2.0 and settings.timeout_seconds == 1.0
    assert settings.concurrency == 4 and settings.dcgm_port == 9500
    assert settings.profile_namespaces == ("ml",)
    with pytest.raises(ValueError, match="--dcgm-selector"):
        SamplerSettings.from_config(attrs.evolve(base, dcgm_selectors=("app in (x)",)))
