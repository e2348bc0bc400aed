"""The operator killed (SIGKILL) at random moments while pods keep serving: nothing lost,
nothing counted twice.

Every restart restores the ledger from its checkpoint and books the gap in one interval, so
the report's tokens equal the simulators' ground truth and its money equals GPUs × covered
hours at $1 per GPU-hour plus the counters' energy × rate × PUE.
"""

from __future__ import annotations

import random
import time

import pytest
from cluster_rig import (
    Cluster,
    expected_amortization_usd,
    expected_electricity_usd,
)

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"
QWEN = "Qwen/Qwen2.5-7B-Instruct"
WATTS = 400.0


def build(cluster: Cluster) -> None:
    cluster.node("gpu-1", gpus=2, labels={"pool": "a"})
    cluster.exporter("gpu-1", gpus=2)
    cluster.inference_pod("vllm-0", "team-a", "gpu-1", backend="vllm", models=(LLAMA, QWEN), gpu=0)
    cluster.inference_pod("llama-0", "team-b", "gpu-1", backend="llamacpp", models=("l3",), gpu=1)
    cluster.profile("pool-a", {"pool": "a"})
    cluster.report("daily", "pool-a")


def traffic(cluster: Cluster, rng: random.Random, requests: int) -> None:
    vllm = cluster.pods[("team-a", "vllm-0")].server
    llama = cluster.pods[("team-b", "llama-0")].server
    for _ in range(requests):
        prompt = rng.randint(1, 4000)
        vllm.serve(
            prompt,
            rng.randint(1, 800),
            cached_tokens=rng.randint(0, prompt),
            model=rng.choice((LLAMA, QWEN)),
        )
        prompt = rng.randint(1, 2000)
        llama.serve(prompt, rng.randint(1, 300), cached_tokens=rng.randint(0, prompt))


def assert_money(cluster: Cluster, status: dict, start: float, end: float, gpus: float) -> None:
    amortization = expected_amortization_usd(gpus, start, end)
    kwh = cluster.energy_kwh()
    electricity = expected_electricity_usd(kwh)
    assert status["amortizationCostUSD"] == pytest.approx(amortization, rel=1e-6)
    assert status["energyKWh"] == pytest.approx(kwh, rel=1e-6)
    assert status["electricityCostUSD"] == pytest.approx(electricity, rel=1e-6)
    assert status["estimatedCostUSD"] == pytest.approx(amortization + electricity, rel=1e-6)
    by_model = sum(e["estimatedCostUSD"] for e in status["byModel"])
    by_ns = sum(e["estimatedCostUSD"] for e in status["byNamespace"])
    assert by_model == pytest.approx(status["estimatedCostUSD"], rel=1e-9)
    assert by_ns == pytest.approx(status["estimatedCostUSD"], rel=1e-9)


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_and_counts_nothing_twice(
    cluster: Cluster,
) -> None:
    rng = random.Random(20261127)
    build(cluster)
    op = cluster.operator("op-0")
    booked = cluster.wait_booked()  # coverage starts: watermarks only
    cluster.power(WATTS)
    kills = 6
    for round_ in range(kills):
        traffic(cluster, rng, rng.randint(3, 8))
        # let this process book at least one sample with traffic, then kill it mid-period
        booked = cluster.wait_booked(after=booked)
        traffic(cluster, rng, rng.randint(1, 4))
        cluster.wait_booked(after=booked)
        time.sleep(rng.uniform(0.0, 0.5))  # a random moment of the scrape period
        op.kill()
        traffic(cluster, rng, rng.randint(2, 6))  # served while no operator runs
        op = cluster.operator(f"op-{round_ + 1}")
        booked = cluster.wait_booked(after=cluster.booked_time())
    traffic(cluster, rng, 3)
    status = cluster.wait_tokens("daily")
    truth = cluster.truth()
    assert status["cachedInputTokens"] == truth["cached"]
    for ns in ("team-a", "team-b"):
        entry = next(e for e in status["byNamespace"] if e["namespace"] == ns)
        ns_truth = cluster.truth([ns])
        assert (entry["inputTokens"], entry["outputTokens"]) == (
            ns_truth["input"],
            ns_truth["output"],
        ), ns

    # freeze the figures: GPUs idle, one more booked sample, then the profile goes
    stopped = cluster.power(0.0)
    cluster.wait_booked(after=stopped)
    start = cluster.first_sample()
    end = cluster.retire_profile("pool-a")
    expected = expected_amortization_usd(2, start, end)
    status = cluster.wait_report(
        "daily",
        lambda s: s.get("amortizationCostUSD") == pytest.approx(expected, rel=1e-9),
        "the report's final figures",
    )
    ready = cluster.condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "CostProfileNotFound")
    assert (status["inputTokens"], status["outputTokens"]) == (truth["input"], truth["output"])
    assert_money(cluster, status, start, end, gpus=2)
    assert op.alive()
    logs = cluster.all_logs()
    assert "Traceback" not in logs
