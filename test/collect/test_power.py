"""From exporter scrapes to resolve_power inputs: statuses per node, readings by UUID."""

from __future__ import annotations

from pathlib import Path

from infercost.collect import errors
from infercost.collect.discovery import discover_exporters, parse_dcgm_url
from infercost.collect.errors import ScrapeError
from infercost.collect.power import gather_dcgm
from infercost.collect.scraping import ScrapeResult
from infercost.controllers.wording import DCGMReason, dcgm_reachable
from infercost.engine.costmodel import ExporterState, resolve_power
from infercost.kube.transforms import transform_pod
from infercost.testing.simservers.objects import make_dcgm_exporter_pod
from infercost.testing.simservers.pages import GpuState, render_dcgm

DATA = Path(__file__).resolve().parents[1] / "data" / "metrics"


def ok(target, body: bytes) -> ScrapeResult:  # type: ignore[no-untyped-def]
    return ScrapeResult(target.scrape_target(), body, None, 0.01, 200)


def failed(target, reason: str, message: str) -> ScrapeResult:  # type: ignore[no-untyped-def]
    return ScrapeResult(target.scrape_target(), None, ScrapeError(message, reason=reason), 5.0)


def test_statuses_and_readings_per_node() -> None:
    pods = [
        make_dcgm_exporter_pod("n1", "127.0.6.1"),
        make_dcgm_exporter_pod("n1", "127.0.6.2", name="duplicate-exporter"),
        make_dcgm_exporter_pod("n2", "127.0.6.3"),
        make_dcgm_exporter_pod("n3", "127.0.6.4"),
        make_dcgm_exporter_pod("n4", "127.0.6.5", phase="Pending"),
    ]
    discovery = discover_exporters(map(transform_pod, pods), {"n1", "n2", "n3", "n4", "n5"})
    page = (DATA / "dcgm-pod-mapping.txt").read_bytes()
    results = []
    for target in discovery.targets:
        if target.node == "n1":
            results.append(ok(target, page))  # both duplicates answer the same GPUs
        elif target.node == "n2":
            results.append(failed(target, errors.TIMEOUT, "timeout after 5s"))
        else:
            results.append(ok(target, (DATA / "bad-html-error.html").read_bytes()))
    collected = gather_dcgm(discovery, results)
    assert len(collected.gpus["n1"]) == 4  # deduplicated by UUID across both exporters
    assert collected.statuses["n1"].state is ExporterState.ANSWERED
    assert "timeout after 5s" in collected.statuses["n2"].error  # type: ignore[operator]
    assert "not Prometheus text" in collected.statuses["n3"].error  # type: ignore[operator]
    assert "is not running" in collected.statuses["n4"].error  # type: ignore[operator]
    assert "n5" not in collected.statuses
    assert len(collected.errors) == 2

    nodes = {"n1": 4, "n2": 4, "n3": 2, "n4": 2, "n5": 2}
    power = resolve_power(nodes, 14, collected.statuses_for(nodes), collected.power(nodes), 700)
    reachable = dcgm_reachable(power)
    assert reachable.reason is DCGMReason.PARTIAL
    assert power.gpus_reporting == 4
    assert "node n5: no DCGM exporter found" in reachable.message
    assert "node n2: DCGM exporter failed" in reachable.message


def test_of_two_exporters_reporting_one_gpu_the_oldest_pod_wins() -> None:
    uuid = "GPU-11111111-2222-4333-8444-555555555555"
    old = make_dcgm_exporter_pod("n1", "127.0.6.1", name="zz-old")
    old["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    young = make_dcgm_exporter_pod("n1", "127.0.6.2", name="aa-young")
    young["metadata"]["creationTimestamp"] = "2026-11-01T00:00:00Z"
    discovery = discover_exporters(map(transform_pod, [young, old]), {"n1"})
    pages = {
        "127.0.6.1": render_dcgm([GpuState(0, uuid, power_watts=300.0)], hostname="n1"),
        "127.0.6.2": render_dcgm([GpuState(0, uuid, power_watts=90.0)], hostname="n1"),
    }
    collected = gather_dcgm(discovery, [ok(t, pages[t.host]) for t in discovery.targets])
    [reading] = collected.gpus["n1"]
    assert reading.power_watts == 300.0, "zz-old sorts last by name but is the older pod"


def test_dcgm_url_targets_place_readings_by_hostname_and_share_their_failure() -> None:
    discovery = discover_exporters([], {"gpu-node-1", "gpu-node-3", "other"})
    good = parse_dcgm_url("http://127.0.7.1:9400/metrics")
    bad = parse_dcgm_url("http://127.0.7.2:9400/metrics")
    collected = gather_dcgm(
        discovery,
        [],
        [good, bad],
        [
            ok(good, (DATA / "dcgm-pod-mapping.txt").read_bytes()),
            failed(bad, errors.REFUSED, "connection refused"),
        ],
    )
    assert set(collected.gpus) == {"gpu-node-1"}
    statuses = collected.statuses_for(["gpu-node-1", "other"])
    assert statuses["gpu-node-1"].state is ExporterState.ANSWERED
    assert statuses["other"].state is ExporterState.FAILED
    assert "127.0.7.2" in statuses["other"].error  # type: ignore[operator]
