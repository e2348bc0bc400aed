"""What happens to pods and nodes, with the operator running or down: counter resets, a pod
re-created under the same name while the operator is down, a node removed, a node rebooted
(new bootID, energy counters from 0), a day that ends while the operator is down.

Tokens equal the simulators' ground truth exactly; amortization equals GPUs × covered hours;
energy equals what the exporters' counters gained.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest
from cluster_rig import (
    OPERATOR_NS,
    Cluster,
    expected_amortization_usd,
    expected_electricity_usd,
)
from test_restarts import assert_money

from infercost.kube.rest import CONFIGMAPS

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
WATTS = 350.0


def serve(cluster: Cluster, rng: random.Random, *pods: tuple[str, str], requests: int = 3) -> None:
    for key in pods:
        server = cluster.pods[key].server
        for _ in range(requests):
            prompt = rng.randint(1, 3000)
            server.serve(prompt, rng.randint(1, 500), cached_tokens=rng.randint(0, prompt))


def final_figures(cluster: Cluster, report: str, gpus: float) -> tuple[dict, float, float]:
    """Tokens at the ground truth, GPUs idle, the profile retired: the report's frozen status
    with the covered span (first sample, last booked sample)."""
    cluster.wait_tokens(report)
    stopped = cluster.power(0.0)
    cluster.wait_booked(after=stopped)
    start = cluster.first_sample()
    end = cluster.retire_profile("pool-a")
    expected = expected_amortization_usd(gpus, start, end)
    status = cluster.wait_report(
        report,
        lambda s: s.get("amortizationCostUSD") == pytest.approx(expected, rel=1e-9),
        "the report's final figures",
    )
    truth = cluster.truth()
    assert (status["inputTokens"], status["outputTokens"]) == (truth["input"], truth["output"])
    assert status["cachedInputTokens"] == truth["cached"]
    return status, start, end


@pytest.mark.slow
def test_counter_resets_and_a_pod_recreated_under_its_name_while_down(cluster: Cluster) -> None:
    rng = random.Random(3)
    vllm, llama = ("team-a", "vllm-0"), ("team-b", "llama-0")
    cluster.node("gpu-1", gpus=2, labels={"pool": "a"})
    cluster.exporter("gpu-1", gpus=2)
    cluster.inference_pod(*reversed(vllm), "gpu-1", backend="vllm", gpu=0)
    cluster.inference_pod(*reversed(llama), "gpu-1", backend="llamacpp", models=("l3",), gpu=1)
    cluster.profile("pool-a", {"pool": "a"})
    cluster.report("daily", "pool-a")
    op = cluster.operator("op-0")
    booked = cluster.wait_booked()
    cluster.power(WATTS)
    serve(cluster, rng, vllm, llama, requests=6)
    booked = cluster.wait_booked(after=booked)

    # the vLLM container restarts: restartCount + 1, counters back to 0, new *_created
    cluster.restart_container(*vllm)
    serve(cluster, rng, vllm, requests=1)
    # llama.cpp restarts inside its container (no restartCount change, no *_created series):
    # its counters drop below the watermark, which is the only sign of the reset
    cluster.pods[llama].server.reset()
    cluster.pods[llama].server.serve(10, 5)
    booked = cluster.wait_booked(after=booked)
    serve(cluster, rng, vllm, llama, requests=4)
    cluster.wait_tokens("daily")
    assert op.terminate() == 0

    # while the operator is down: vllm-0 is deleted and created again under the same name
    # (a new UID, a new server process); llama-0's container restarts and serves more than
    # its watermark, so only its restartCount tells the reset
    entry = cluster.delete_pod(*vllm)
    cluster.recreate_pod(entry)
    serve(cluster, rng, vllm, requests=3)
    cluster.restart_container(*llama)
    cluster.pods[llama].server.serve(60_000, 20_000, cached_tokens=1_000)
    op = cluster.operator("op-1")
    cluster.wait_booked(after=cluster.booked_time())
    serve(cluster, rng, vllm, llama, requests=2)
    status, start, end = final_figures(cluster, "daily", gpus=2)
    assert_money(cluster, status, start, end, gpus=2)
    by_ns = {e["namespace"]: e for e in status["byNamespace"]}
    for ns in ("team-a", "team-b"):
        truth = cluster.truth([ns])
        assert (by_ns[ns]["inputTokens"], by_ns[ns]["outputTokens"]) == (
            truth["input"],
            truth["output"],
        )
    assert op.alive()


@pytest.mark.slow
def test_a_node_rebooted_and_a_node_removed(cluster: Cluster) -> None:
    rng = random.Random(5)
    one, two = ("team-a", "vllm-1"), ("team-b", "vllm-2")
    for node in ("gpu-1", "gpu-2"):
        cluster.node(node, gpus=2, labels={"pool": "a"})
        cluster.exporter(node, gpus=2)
    cluster.inference_pod(*reversed(one), "gpu-1", gpu=0)
    cluster.inference_pod(*reversed(two), "gpu-2", gpu=0)
    cluster.profile("pool-a", {"pool": "a"}, gpu_count=4)
    cluster.report("daily", "pool-a")
    op = cluster.operator("op-0")
    booked = cluster.wait_booked()
    cluster.power(WATTS)
    serve(cluster, rng, one, two, requests=4)
    booked = cluster.wait_booked(after=booked)

    # gpu-1 reboots: a new bootID, its GPUs' energy counters start from 0, its pod's
    # container restarts with fresh token counters
    cluster.reset_energy("gpu-1")
    cluster.reboot_node("gpu-1", 1)
    cluster.restart_container(*one)
    serve(cluster, rng, one, two, requests=2)
    booked = cluster.wait_booked(after=booked)
    serve(cluster, rng, one, two, requests=2)

    # gpu-2 is removed: its last tokens are scraped, its GPUs go quiet, then it is gone
    cluster.wait_tokens("daily")
    quiet = cluster.power_node("gpu-2", 0.0)
    cluster.wait_booked(after=quiet)
    cluster.remove_node("gpu-2")
    serve(cluster, rng, one, requests=3)
    status, start, end = final_figures(cluster, "daily", gpus=4)

    # the pool's four GPUs cost $4 per hour whether a node is there or not (the missing
    # node's GPUs are pool idle): exact
    amortization = expected_amortization_usd(4, start, end)
    assert status["amortizationCostUSD"] == pytest.approx(amortization, rel=1e-6)
    # gpu-2's energy is its counters' gain; gpu-1's reboot interval is estimated from the
    # power readings at both ends × the interval, so its total may differ from the counters
    # by what the GPUs draw between a counter reading and the sample's timestamp
    kwh = cluster.energy_kwh()
    slack_kwh = 2 * WATTS * 1.0 / 3.6e6  # one second of gpu-1's two GPUs
    assert status["energyKWh"] == pytest.approx(kwh, abs=slack_kwh)
    assert status["energyKWh"] > cluster.energy_kwh(["gpu-2"])
    assert status["electricityCostUSD"] == pytest.approx(
        expected_electricity_usd(status["energyKWh"]), rel=1e-9
    )
    assert status["estimatedCostUSD"] == pytest.approx(
        amortization + status["electricityCostUSD"], rel=1e-6
    )
    assert op.alive()


def _seconds_to_next_midnight(now: float) -> float:
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), dt.UTC)
    return midnight.timestamp() - now


@pytest.mark.slow
def test_a_day_that_ends_while_the_operator_is_down(cluster: Cluster) -> None:
    rng = random.Random(9)
    pod = ("team-a", "vllm-0")
    # the operator (and the simulators, on the same clock) start at 23:59:50 UTC
    cluster.clock.offset_seconds = _seconds_to_next_midnight(cluster.clock()) - 10.0
    cluster.node("gpu-1", gpus=2, labels={"pool": "a"})
    cluster.exporter("gpu-1", gpus=2)
    cluster.inference_pod(*reversed(pod), "gpu-1", gpu=0)
    cluster.profile("pool-a", {"pool": "a"})
    cluster.report("daily", "pool-a")
    cluster.operator("op-0").wait_ready()
    booked = cluster.wait_booked()
    first_day = dt.datetime.fromtimestamp(booked, dt.UTC).date()
    cluster.power(WATTS)
    serve(cluster, rng, pod, requests=4)
    booked = cluster.wait_booked(after=booked)
    before = cluster.wait_tokens("daily")
    assert before["period"] == first_day.isoformat()
    midnight = booked + _seconds_to_next_midnight(booked)
    assert midnight - booked < 10, "the first process must stop before midnight"
    cluster.operators[0].kill()
    last_before = cluster.booked_time()
    assert last_before is not None and last_before < midnight

    # down for two minutes across midnight, serving all along
    serve(cluster, rng, pod, requests=5)
    cluster.clock.shift(120.0)
    serve(cluster, rng, pod, requests=2)
    cluster.operator("op-1")
    cluster.wait_booked(after=midnight)
    serve(cluster, rng, pod, requests=2)

    truth = cluster.truth()
    second_day = first_day + dt.timedelta(days=1)
    status = cluster.wait_report(
        "daily",
        lambda s: (
            s.get("period") == second_day.isoformat()
            and [h["period"] for h in s.get("history") or ()] == [first_day.isoformat()]
            and s["inputTokens"] + s["history"][0]["inputTokens"] == truth["input"]
            and s["outputTokens"] + s["history"][0]["outputTokens"] == truth["output"]
        ),
        "the closed day in history and every token in one of the two days",
    )
    closed = status["history"][0]
    # the closed day got what was booked before the outage plus part of the gap, no more
    assert before["inputTokens"] <= closed["inputTokens"] < truth["input"]
    month = f"{first_day:%Y-%m}"
    closed_objects = [
        cm["metadata"]["name"]
        for cm in cluster.rest.list(CONFIGMAPS, OPERATOR_NS)["items"]
        if cm["metadata"]["name"].endswith(month)
    ]
    assert closed_objects, "the closed day is written to its monthly checkpoint object"

    # money: both days together are GPUs × covered hours plus the counters' energy
    stopped = cluster.power(0.0)
    cluster.wait_booked(after=stopped)
    start = cluster.first_sample()
    end = cluster.retire_profile("pool-a")
    amortization = expected_amortization_usd(2, start, end)
    electricity = expected_electricity_usd(cluster.energy_kwh())
    expected_total = amortization + electricity
    status = cluster.wait_report(
        "daily",
        lambda s: (
            s["estimatedCostUSD"] + s["history"][0]["estimatedCostUSD"]
            == pytest.approx(expected_total, rel=1e-6)
        ),
        "both days' money adding up to the recomputation",
    )
    day_one = status["history"][0]["estimatedCostUSD"]
    # the first day holds its share of the amortization up to midnight, and no more money
    # than that plus all the energy
    assert day_one >= expected_amortization_usd(2, start, midnight) * (1 - 1e-9)
    assert day_one <= expected_amortization_usd(2, start, midnight) + electricity
    assert cluster.condition(status, "Ready")["reason"] == "CostProfileNotFound"
