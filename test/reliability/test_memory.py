"""A target that answers every scrape with a body far over the 10 MB cap must cost the operator
process one cycle's worth of memory, not a little more each time: measured from /proc on the
operator's own process, over tens of oversized scrapes."""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster_rig import Cluster

from infercost.testing.kubefixtures import eventually

OVERSIZED_SCRAPES = 30


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_oversized_bodies_do_not_grow_the_process(cluster: Cluster) -> None:
    cluster.node("gpu-1", gpus=1, labels={"pool": "a"})
    cluster.exporter("gpu-1", gpus=1)
    server = cluster.inference_pod("vllm-0", "team-a", "gpu-1", gpu=0)
    cluster.profile("pool-a", {"pool": "a"}, gpu_count=1)
    op = cluster.operator("op", interval="1s", timeout="800ms")
    cluster.wait_booked()
    server.set_fault("huge", size_bytes=20 * 1024 * 1024)

    def scraped(count: int) -> bool:
        assert op.alive(), op.logs()[-3000:]
        return server.http.requests_served >= count

    start = server.http.requests_served
    eventually(lambda: scraped(start + 5), timeout=120, interval=0.2, what="5 oversized scrapes")
    before = rss_mb(op.pid)
    eventually(
        lambda: scraped(start + 5 + OVERSIZED_SCRAPES),
        timeout=300,
        interval=0.2,
        what=f"{OVERSIZED_SCRAPES} more oversized scrapes",
    )
    after = rss_mb(op.pid)
    assert op.metric("infercost_scrape_errors_total", target_kind="inference", reason="too_large")
    # each scrape reads up to the 10 MB cap; two cycles' worth of slack for the allocator
    assert after - before < 20.0, f"RSS grew from {before:.1f} to {after:.1f} MB"
