"""Soak: one operator process against a simulated cluster for 30 minutes while faults cycle
(API faults, scrape faults, counter resets, pods re-created, a node rebooting), with traffic
all along. Its resident memory and thread count must stay flat; at the end the report's tokens
equal the ground truth and its amortization the covered GPU-hours.

Outside the default run: ``tox -e soak`` (or ``INFERCOST_SOAK=1``); ``INFERCOST_SOAK_SECONDS``
shortens it, ``INFERCOST_SOAK_REPORT`` names a JSON file for the measurements.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cluster_rig import Cluster, expected_amortization_usd

from infercost.engine.ledger import shard_of

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("INFERCOST_SOAK") != "1", reason="soak test: run with tox -e soak"
    ),
]

NODES = 4
BACKENDS = ("vllm", "llamacpp", "sglang", "tgi")
WARM_UP_SECONDS = 180.0
SAMPLE_EVERY_SECONDS = 10.0


def _proc_status(pid: int) -> tuple[int, int]:
    """(resident bytes, threads) of a process, from /proc."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["Threads"])


def _slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per hour."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 3600.0 if var else 0.0


def _faults(cluster: Cluster, rng: random.Random) -> list[tuple[str, Callable[[], None]]]:
    sim = cluster.sim
    shard = f"infercost-ledger-{shard_of('gpu-0', 16)}"

    def some_pod() -> tuple[str, str]:
        return rng.choice(sorted(cluster.pods))

    def scrape_fault(kind: str, **options: float) -> Callable[[], None]:
        def apply() -> None:
            server = cluster.pods[some_pod()].server
            server.set_fault(kind, **options)
            time.sleep(8.0)
            server.set_fault("none")

        return apply

    def exporter_fault() -> None:
        exporter = cluster.exporters[f"gpu-{rng.randrange(NODES)}"]
        exporter.set_fault("status", status=500)
        time.sleep(8.0)
        exporter.set_fault("none")

    def latency() -> None:
        sim.faults.latency_ms(100)
        time.sleep(8.0)
        sim.faults.clear()

    def quiesce(key: tuple[str, str]) -> None:
        """Stop the pod's traffic and let a sample read its counters: what a pod serves after
        its last scrape before a reset is lost to anyone, so the ground truth stops there."""
        cluster.pods[key].server.set_rate(0.0, 0.0)
        cluster.wait_booked(after=cluster.clock())

    def restart() -> None:
        key = some_pod()
        quiesce(key)
        cluster.restart_container(*key)
        cluster.pods[key].server.set_rate(40.0, 8.0)

    def recreate() -> None:
        key = some_pod()
        quiesce(key)
        entry = cluster.delete_pod(*key)
        cluster.recreate_pod(entry)
        entry.server.set_rate(40.0, 8.0)

    def reboot() -> None:
        node = f"gpu-{rng.randrange(NODES)}"
        cluster.reset_energy(node)
        cluster.reboot_node(node, rng.randrange(1, 10**6))

    return [
        ("drop watches", sim.faults.drop_watches),
        ("410 storm", lambda: [sim.faults.expire_resource_versions(), sim.faults.drop_watches()]),
        (
            "429 on relist",
            lambda: [
                sim.faults.respond("list", "pods", 429, count=2),
                sim.faults.expire_resource_versions(),
                sim.faults.drop_watches(),
            ],
        ),
        ("500 on checkpoint", lambda: sim.faults.respond("update", "configmaps", 500, count=3)),
        ("500 on status", lambda: sim.faults.respond("patch", "usagereports/status", 500, count=2)),
        ("409 on a shard", lambda: sim.faults.conflict("configmaps", shard)),
        ("409 on a report", lambda: sim.faults.conflict("usagereports", "daily")),
        ("API latency", latency),
        ("scrape timeout", scrape_fault("slow", delay_seconds=5.0)),
        ("scrape 503", scrape_fault("status", status=503)),
        ("scrape garbage", scrape_fault("garbage")),
        ("scrape 12 MB", scrape_fault("huge", size_bytes=12 * 1024 * 1024)),
        ("exporter 500", exporter_fault),
        ("container restart", restart),
        ("pod re-created", recreate),
        ("node reboot", reboot),
    ]


def test_soak_memory_and_threads_stay_flat_and_totals_exact(cluster: Cluster) -> None:
    duration = float(os.environ.get("INFERCOST_SOAK_SECONDS", "1800"))
    rng = random.Random(31)
    for i in range(NODES):
        cluster.node(f"gpu-{i}", gpus=2, labels={"pool": "a"})
        cluster.exporter(f"gpu-{i}", gpus=2)
    for i in range(NODES * 2):
        backend = BACKENDS[i % len(BACKENDS)]
        model = ("sim-model",) if backend in ("llamacpp", "tgi") else ("sim/a", "sim/b")
        node = f"gpu-{i % NODES}"
        cluster.inference_pod(
            f"{backend}-{i}", f"team-{i % 3}", node, backend=backend, models=model, gpu=i // NODES
        )
    cluster.profile("pool-a", {"pool": "a"}, gpu_count=2 * NODES)
    cluster.report("daily", "pool-a")
    cluster.report("weekly", "pool-a", schedule="weekly")
    op = cluster.operator("soak", interval="1s", timeout="800ms", status_interval="5s")
    cluster.wait_booked()
    cluster.power(300.0)
    for entry in cluster.pods.values():
        entry.server.set_rate(40.0, 8.0)

    faults = _faults(cluster, rng)
    started = time.monotonic()
    samples: list[tuple[float, int, int]] = []
    applied: list[str] = []
    next_sample = started
    while (elapsed := time.monotonic() - started) < duration:
        if time.monotonic() >= next_sample:
            assert op.alive(), op.logs()[-4000:]
            rss, threads = _proc_status(op.pid)
            samples.append((elapsed, rss, threads))
            next_sample += SAMPLE_EVERY_SECONDS
        name, apply = faults[len(applied) % len(faults)]
        apply()
        applied.append(name)
        time.sleep(rng.uniform(5.0, 15.0))
    cluster.sim.faults.clear()

    for entry in cluster.pods.values():
        entry.server.set_rate(0.0, 0.0)
    cluster.wait_tokens("daily", timeout=120)
    cluster.wait_tokens("weekly", timeout=120)
    stopped = cluster.power(0.0)
    cluster.wait_booked(after=stopped)
    start = cluster.first_sample()
    end = cluster.retire_profile("pool-a")
    expected = expected_amortization_usd(2 * NODES, start, end)
    cluster.wait_report(
        "daily",
        lambda s: s.get("amortizationCostUSD") == pytest.approx(expected, rel=1e-6),
        "the amortization of the covered GPU-hours",
        timeout=120,
    )

    steady = [(t, rss, th) for t, rss, th in samples if t >= min(WARM_UP_SECONDS, duration / 3)]
    rss_slope = _slope_per_hour([(t, float(rss)) for t, rss, _ in steady])
    thread_slope = _slope_per_hour([(t, float(th)) for t, _, th in steady])
    third = max(1, len(steady) // 3)
    summary = {
        "seconds": round(duration),
        "faults_applied": len(applied),
        "samples": len(samples),
        "rss_mb_first": round(steady[0][1] / 2**20, 1),
        "rss_mb_last": round(steady[-1][1] / 2**20, 1),
        "rss_mb_max": round(max(r for _, r, _ in steady) / 2**20, 1),
        "rss_slope_mb_per_hour": round(rss_slope / 2**20, 2),
        "threads_min": min(th for _, _, th in steady),
        "threads_max": max(th for _, _, th in steady),
        "threads_slope_per_hour": round(thread_slope, 2),
        "truth_input_tokens": cluster.truth()["input"],
    }
    print("soak:", json.dumps(summary))
    if os.environ.get("INFERCOST_SOAK_REPORT"):
        Path(os.environ["INFERCOST_SOAK_REPORT"]).write_text(json.dumps(summary, indent=1))
    assert op.alive()
    # flat: whatever the first steady third held, the last third holds no more than that
    # plus a margin (allocator and cache noise), and the trend over the run is small
    early = steady[:third]
    late = steady[-third:]
    assert max(r for _, r, _ in late) <= max(r for _, r, _ in early) + 16 * 2**20, summary
    assert max(th for _, _, th in late) <= max(th for _, _, th in early) + 2, summary
    assert abs(rss_slope) < 24 * 2**20, summary
