"""Ledger keeper and UsageReports through the emulator and simulated servers: tokens equal the
simulators' ground truth exactly, costs equal an independent recomputation, and nothing is
lost across a restart (checkpoint → new keeper → restore)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from infercost.kube.clock import FakeClock
from infercost.kube.rest import NODES, PODS
from infercost.testing.kubefixtures import KubeEnv
from infercost.testing.ledgerrig import COSTPROFILES, USAGEREPORTS, LedgerRig
from infercost.testing.simservers.fixtures import SimServers
from infercost.testing.simservers.objects import make_dcgm_exporter_pod, make_node, make_pod

OPERATOR_NS = "infercost-system"
NS = "infra"
# 2 GPUs, $52,560 over 3 years: exactly $1 per GPU-hour
PRICE = 52_560.0
RATE, PUE = 0.12, 1.25


def _create_pod(kube: KubeEnv, pod: dict[str, Any]) -> None:
    ns = pod["metadata"]["namespace"]
    kube.sim.create_namespace(ns)
    kube.rest.create(PODS, pod, ns)
    kube.rest.merge_patch(PODS, pod["metadata"]["name"], {"status": pod["status"]}, ns, "status")


@pytest.fixture
def clock(sim_servers: SimServers) -> FakeClock:
    return FakeClock(dt.datetime.fromtimestamp(sim_servers.clock(), dt.UTC))


@pytest.fixture
def rig(kube: KubeEnv, clock: FakeClock) -> Iterator[LedgerRig]:
    r = LedgerRig(kube.rest, clock)
    try:
        yield r
    finally:
        r.close()


def _cluster_profile_and_report(kube: KubeEnv) -> None:
    kube.rest.create(
        COSTPROFILES,
        {
            "apiVersion": "finops.infercost.ai/v1alpha1",
            "kind": "CostProfile",
            "metadata": {"name": "pool-a", "namespace": NS},
            "spec": {
                "hardware": {"gpuModel": "H100", "gpuCount": 2, "purchasePriceUSD": PRICE},
                "electricity": {"ratePerKWh": RATE, "pueFactor": PUE},
                "nodeSelector": {"pool": "a"},
            },
        },
        NS,
    )
    kube.rest.create(
        USAGEREPORTS,
        {
            "apiVersion": "finops.infercost.ai/v1alpha1",
            "kind": "UsageReport",
            "metadata": {"name": "daily", "namespace": NS},
            "spec": {"costProfileRef": "pool-a"},
        },
        NS,
    )


def _cluster(kube: KubeEnv, servers: SimServers) -> tuple[Any, Any]:
    kube.sim.create_namespace(NS)
    kube.rest.create(NODES, make_node("gpu-1", gpus=2, labels={"pool": "a"}))
    exporter = servers.dcgm(gpus=2, node="gpu-1")
    exporter.set_power(0, 400.0)
    exporter.set_power(1, 100.0)
    exporter.assign(0, "team-a", "vllm-0")
    exporter.assign(1, "team-b", "train-0")
    _create_pod(kube, make_dcgm_exporter_pod("gpu-1", exporter.host))
    vllm = servers.inference("vllm", models=["meta-llama/Llama-3.3-70B-Instruct", "qwen"])
    _create_pod(
        kube,
        make_pod(
            "vllm-0",
            namespace="team-a",
            ip=vllm.host,
            node="gpu-1",
            annotations={"infercost.ai/backend": "vllm"},
            gpus=1,
        ),
    )
    _create_pod(kube, make_pod("train-0", namespace="team-b", ip=None, node="gpu-1", gpus=1))
    _cluster_profile_and_report(kube)
    return exporter, vllm


def test_report_tokens_equal_ground_truth_and_costs_a_recomputation(
    kube: KubeEnv, sim_servers: SimServers, rig: LedgerRig, clock: FakeClock
) -> None:
    exporter, vllm = _cluster(kube, sim_servers)
    rig.wait_cached(pods=3)
    rig.sampler.sample_once()  # coverage starts: watermarks only
    energy0 = [exporter.energy_mj(0), exporter.energy_mj(1)]
    before = vllm.truth()
    llama = "meta-llama/Llama-3.3-70B-Instruct"
    for step in range(10):
        vllm.serve(1000 + step, 200, cached_tokens=100, model=llama)
        vllm.serve(300, 50, model="qwen")
        rig.sample(30.0, sim_servers.clock)
    after = vllm.truth()
    status = rig.report(NS, "daily")

    truth_in = sum(after[(m, "input")] - before[(m, "input")] for m in (llama, "qwen"))
    truth_out = sum(after[(m, "output")] - before[(m, "output")] for m in (llama, "qwen"))
    assert status["inputTokens"] == truth_in
    assert status["outputTokens"] == truth_out
    assert status["cachedInputTokens"] == 1000

    # independent recomputation: 300 s of two GPUs at $1/GPU-hour, energy from the counters
    kwh = (exporter.energy_mj(0) - energy0[0] + exporter.energy_mj(1) - energy0[1]) / 3.6e9
    hours = 300 / 3600
    expected = 2 * hours * 1.0 + kwh * RATE * PUE
    assert status["estimatedCostUSD"] == pytest.approx(expected, rel=1e-6)
    assert status["energyKWh"] == pytest.approx(kwh, rel=1e-6)
    by_ns = {e["namespace"]: e for e in status["byNamespace"]}
    assert set(by_ns) == {"team-a", "team-b"}
    assert sum(e["estimatedCostUSD"] for e in status["byModel"]) == pytest.approx(
        status["estimatedCostUSD"], rel=1e-9
    )
    # team-b's training pod holds GPU 1: its hour share and GPU 1's energy
    kwh1 = (exporter.energy_mj(1) - energy0[1]) / 3.6e9
    assert by_ns["team-b"]["estimatedCostUSD"] == pytest.approx(hours + kwh1 * RATE * PUE, rel=1e-6)
    models = {(e["model"], e["namespace"]) for e in status["byModel"]}
    assert models == {(llama, "team-a"), ("qwen", "team-a"), ("(non-inference)", "team-b")}
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "ReportComputed")
    families = {c["model"]: c for c in status["cloudComparison"]}
    assert any("equivalentTo" in c and llama in c["equivalentTo"] for c in families.values())


def test_restart_from_the_checkpoint_loses_nothing(
    kube: KubeEnv, sim_servers: SimServers, rig: LedgerRig, clock: FakeClock
) -> None:
    _, vllm = _cluster(kube, sim_servers)
    rig.wait_cached(pods=3)
    rig.sampler.sample_once()
    before = vllm.truth()
    for _ in range(3):
        vllm.serve(500, 100, model="qwen")
        rig.sample(30.0, sim_servers.clock)
    rig.close()
    # the operator is down for ten minutes while traffic goes on
    vllm.serve(7000, 900, model="qwen")
    clock.advance(600)
    sim_servers.clock.advance(600)
    second = LedgerRig(kube.rest, clock)
    try:
        vllm.serve(10, 1, model="qwen")
        second.sample(30.0, sim_servers.clock)
        status = second.report(NS, "daily")
    finally:
        second.close()
    after = vllm.truth()
    assert status["inputTokens"] == after[("qwen", "input")] - before[("qwen", "input")]
    assert status["outputTokens"] == after[("qwen", "output")] - before[("qwen", "output")]
    # 3 × 30 s + 600 s + 30 s of two GPUs at $1/GPU-hour, plus energy
    hours = (90 + 600 + 30) / 3600
    assert status["amortizationCostUSD"] == pytest.approx(2 * hours, rel=1e-9)


def test_days_that_end_while_the_operator_is_down_close_into_history(
    kube: KubeEnv, sim_servers: SimServers, rig: LedgerRig, clock: FakeClock
) -> None:
    _, vllm = _cluster(kube, sim_servers)
    rig.wait_cached(pods=3)
    rig.sample()
    vllm.serve(1000, 100, model="qwen")
    rig.sample(30.0, sim_servers.clock)
    first = rig.report(NS, "daily")
    assert first["period"] == "2026-11-27"
    assert first["history"] == []
    rig.close()
    # down across two midnights (2026-11-27 00:01 → 2026-11-29 12:00)
    clock.advance(2 * 86400 + 12 * 3600)
    sim_servers.clock.advance(2 * 86400 + 12 * 3600)
    vllm.serve(500, 50, model="qwen")
    with LedgerRig(kube.rest, clock) as second:
        second.sample(30.0, sim_servers.clock)
        status = second.report(NS, "daily")
    assert status["period"] == "2026-11-29"
    periods = [h["period"] for h in status["history"]]
    assert periods == ["2026-11-28", "2026-11-27"]
    # the gap's tokens are split by time over the three days; none is lost
    total = status["inputTokens"] + sum(h["inputTokens"] for h in status["history"])
    assert total == 1500
    # a whole closed day of two GPUs at $1/GPU-hour plus its energy
    day = next(h for h in status["history"] if h["period"] == "2026-11-28")
    assert day["estimatedCostUSD"] > 48.0


def test_a_failed_booking_is_retried_whole_by_the_next_sample(
    kube: KubeEnv, sim_servers: SimServers, rig: LedgerRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, vllm = _cluster(kube, sim_servers)
    rig.wait_cached(pods=3)
    rig.sample()
    before = vllm.truth()
    vllm.serve(800, 80, model="qwen")
    rig.sample(30.0, sim_servers.clock)

    real_book = type(rig.keeper.ledger).book
    failures = []

    def broken(self, observation):  # type: ignore[no-untyped-def]
        if not failures:
            failures.append(observation.time)
            real_book(self, observation)  # mutates part of the state, then fails
            raise RuntimeError("simulated bug in booking")
        return real_book(self, observation)

    monkeypatch.setattr(type(rig.keeper.ledger), "book", broken)
    vllm.serve(300, 30, model="qwen")
    rig.sample(30.0, sim_servers.clock)  # fails: rolled back to the checkpoint
    vllm.serve(100, 10, model="qwen")
    rig.sample(30.0, sim_servers.clock)  # books both intervals
    assert failures
    status = rig.report(NS, "daily")
    after = vllm.truth()
    assert status["inputTokens"] == after[("qwen", "input")] - before[("qwen", "input")]
    assert status["amortizationCostUSD"] == pytest.approx(2 * 90 / 3600, rel=1e-9)


def test_the_family_annotation_names_the_cloud_equivalent_of_a_fine_tune(
    kube: KubeEnv, sim_servers: SimServers, rig: LedgerRig
) -> None:
    kube.sim.create_namespace(NS)
    kube.rest.create(NODES, make_node("gpu-9", gpus=1, labels={"pool": "a"}))
    server = sim_servers.inference("vllm", models=["acme/support-bot-v7"])
    _create_pod(
        kube,
        make_pod(
            "bot-0",
            namespace="team-c",
            ip=server.host,
            node="gpu-9",
            annotations={
                "infercost.ai/backend": "vllm",
                "infercost.ai/open-weight-family": "llama-3.3-70b",
            },
            gpus=1,
        ),
    )
    _cluster_profile_and_report(kube)
    rig.wait_cached(pods=1)
    rig.sample()
    server.serve(10_000, 2_000, model="acme/support-bot-v7")
    rig.sample(30.0, sim_servers.clock)
    status = rig.report(NS, "daily")
    equivalents = [c for c in status["cloudComparison"] if "equivalentTo" in c]
    assert equivalents
    assert all(c["equivalentTo"] == ["acme/support-bot-v7"] for c in equivalents)
