"""The CostProfile controller inside the operator: in-process and as an ``infercost run``
subprocess, against the emulator and simulated exporters and inference servers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from typing import Any

import attrs
import pytest
from prometheus_client import CollectorRegistry

from infercost.controllers.config import OperatorConfig
from infercost.controllers.operator import Operator
from infercost.testing.kubefixtures import KubeEnv, eventually
from infercost.testing.scenario import COSTPROFILES, Scenario, costprofile
from infercost.testing.simservers.fixtures import SimServers
from infercost.testing.simservers.servers import SimDcgmExporter

NS = "default"


def _profile(name: str, selector: dict[str, str] | None = None) -> dict[str, Any]:
    """Two L40S for 26 280 USD over 3 years: 1 USD/h; 0.10 USD/kWh."""
    return costprofile(
        name,
        selector={"pool": "l40s"} if selector is None else selector,
        gpu_model="NVIDIA L40S",
        gpu_count=2,
        purchase_price_usd=26_280.0,
        amortization_years=3,
        rate_per_kwh=0.10,
    )


def _cluster(kube: KubeEnv, sim_servers: SimServers) -> SimDcgmExporter:
    """One L40S node with an exporter (200 W + 150 W) and a llama.cpp pod that served tokens."""
    scenario = Scenario(kube.rest, sim_servers, sim=kube.sim)
    scenario.node("l40s-1", gpus=2, labels={"pool": "l40s"})
    exporter = scenario.exporter("l40s-1", gpus=2, watts=None)
    exporter.set_power(0, 200.0)
    exporter.set_power(1, 150.0)
    pod = scenario.inference("llama-0", node="l40s-1", backend="llamacpp")
    pod.serve(100, 40)
    return exporter


def _status(kube: KubeEnv, name: str) -> dict[str, Any]:
    return kube.rest.get(COSTPROFILES, name, NS).get("status") or {}


def _ready(kube: KubeEnv, name: str) -> dict[str, Any] | None:
    for cond in _status(kube, name).get("conditions") or ():
        if cond["type"] == "Ready":
            return cond
    return None


def test_operator_fills_a_new_profile_and_keeps_it_current(
    kube: KubeEnv, sim_servers: SimServers
) -> None:
    interval = 0.5
    exporter = _cluster(kube, sim_servers)
    config = OperatorConfig(
        kubeconfig=kube.sim.kubeconfig,
        metrics_bind=("127.0.0.1", 0),
        health_bind=("127.0.0.1", 0),
        leader_elect=False,
        scrape_interval=interval,
        scrape_timeout=0.4,
        status_interval=1.0,
    )
    operator = Operator(config, registry=CollectorRegistry(), identity="test")
    operator.start()
    try:
        eventually(lambda: operator.ready()[0], what="caches synced")
        kube.rest.create(COSTPROFILES, _profile("l40s"), NS)
        eventually(
            lambda: (_ready(kube, "l40s") or {}).get("status") == "True",
            timeout=10,
            what="Ready=True",
        )
        status = _status(kube, "l40s")
        assert status["powerSource"] == "DCGM"
        assert status["currentPowerDrawWatts"] == pytest.approx(350.0)
        assert status["amortizationRatePerHour"] == pytest.approx(1.0)
        assert status["inferencePods"] == 1 and status["matchedGPUs"] == 2

        exporter.set_power(1, 250.0)
        eventually(
            lambda: _status(kube, "l40s")["currentPowerDrawWatts"] == pytest.approx(450.0),
            timeout=10,
            what="the new power written after the status interval",
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

        eventually(gone, timeout=10, what="series of the deleted profile removed")
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
    kube.rest.create(COSTPROFILES, _profile("broken", selector={"bad key": "x"}), NS)
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
    assert settings.dcgm_namespaces == ("gpu-operator", "nvidia-gpu-operator", "kube-system")
    with pytest.raises(ValueError, match="--dcgm-selector"):
        SamplerSettings.from_config(attrs.evolve(base, dcgm_selectors=("app in (x",)))
