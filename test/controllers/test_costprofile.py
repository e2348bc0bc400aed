"""The CostProfile controller through the emulator and simulated exporters and servers.

Each test builds a small cluster with the scenario harness (:mod:`infercost.testing.scenario`:
nodes, exporter and inference pods pointing at simulated servers on loopback addresses,
CostProfiles), then drives the sampler and the reconciler of an in-process leader on a
FakeClock: one ``step()`` is one sample followed by a reconcile of every profile, so the tests
never wait for a scrape interval to pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from infercost.collect.discovery import parse_dcgm_url
from infercost.collect.scraping import Reader, Scraper, ScrapeResult, ScrapeTarget
from infercost.controllers.costprofile import clip_message
from infercost.controllers.sampling import Sample
from infercost.kube.clock import FakeClock
from infercost.kube.controller import RETRY, RequeueAfter
from infercost.kube.rest import ApiError
from infercost.testing.scenario import (
    COSTPROFILES,
    InProcessLeader,
    Scenario,
    costprofile,
    make_dcgm_exporter_pod,
    wait_until,
)
from infercost.testing.simservers.pages import GpuState
from infercost.testing.simservers.servers import SimInferenceServer

NS = "default"
INTERVAL = 30.0


def node(
    scenario: Scenario, name: str, gpus: int | None = 2, labels: dict[str, str] | None = None
) -> None:
    scenario.node(name, gpus=gpus, labels={"pool": "h100", **(labels or {})})


def inference(
    scenario: Scenario, name: str, node: str, backend: str = "vllm"
) -> SimInferenceServer:
    return scenario.inference(name, node=node, namespace=NS, backend=backend, gpus=1).server


def profile(
    scenario: Scenario,
    name: str,
    *,
    namespace: str = NS,
    selector: dict[str, str] | None = None,
    gpu_count: int = 4,
    tdp: float | None = None,
) -> None:
    """87 600 USD over 2 years + 10 % a year maintenance = 5 + 1 USD/h; 0.10 USD/kWh, PUE 1.5."""
    scenario.create(COSTPROFILES, profile_body(name, namespace, selector, gpu_count, tdp))


def profile_body(
    name: str,
    namespace: str = NS,
    selector: dict[str, str] | None = None,
    gpu_count: int = 4,
    tdp: float | None = None,
) -> dict[str, Any]:
    return costprofile(
        name,
        namespace=namespace,
        selector={"pool": "h100"} if selector is None else selector,
        gpu_count=gpu_count,
        purchase_price_usd=87_600.0,
        amortization_years=2.0,
        maintenance_percent_per_year=0.1,
        tdp_watts=tdp,
        rate_per_kwh=0.10,
        pue_factor=1.5,
    )


class SlowScraper(Scraper):
    """A real scraper whose every cycle takes ``seconds`` of fake time."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        super().__init__(concurrency=8, timeout_seconds=2.0)
        self.clock = clock
        self.seconds = seconds

    def scrape(
        self, targets: Sequence[ScrapeTarget], readers: Mapping[str, Reader] | None = None
    ) -> list[ScrapeResult]:
        results = super().scrape(targets, readers)
        self.clock.advance(self.seconds)
        return results


def approx(value: float) -> Any:
    return pytest.approx(value, rel=1e-9, abs=1e-6)


# -- healthy -----------------------------------------------------------------------------------


def test_healthy_profile_status_figures_conditions_and_series(
    scenario: Scenario,
    leader: InProcessLeader,
) -> None:
    for name in ("gpu-1", "gpu-2"):
        node(scenario, name)
        scenario.exporter(name, watts=300.0)
    node(scenario, "cpu-1", gpus=None, labels={"pool": "cpu"})
    server = inference(scenario, "vllm-a", "gpu-1")
    server.serve(1000, 200)
    profile(scenario, "h100")

    result = leader.step()["default/h100"]
    assert isinstance(result, RequeueAfter) and result.seconds <= INTERVAL

    status = leader.status("h100")
    # 87 600 USD over 2 years + 10 % a year maintenance = 5 + 1 USD/h;
    # 4 GPUs × 300 W = 1.2 kW × 0.10 USD/kWh × PUE 1.5 = 0.18 USD/h
    assert status["amortizationRatePerHour"] == approx(6.0)
    assert status["electricityCostPerHour"] == approx(0.18)
    assert status["hourlyCostUSD"] == approx(6.18)
    assert status["currentPowerDrawWatts"] == approx(1200.0)
    assert status["powerSource"] == "DCGM"
    assert status["matchedNodes"] == ["gpu-1", "gpu-2"]
    assert status["matchedGPUs"] == 4 and status["gpusReporting"] == 4
    assert status["inferencePods"] == 1
    assert status["observedGeneration"] == 1
    assert status["lastUpdated"] == "2026-11-27T12:00:00Z", "the sample time"

    ready = leader.condition("h100", "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "CostComputed")
    assert "2 node(s) and 4 GPU(s)" in ready["message"]
    assert ready["observedGeneration"] == 1
    dcgm = leader.condition("h100", "DCGMReachable")
    assert (dcgm["status"], dcgm["reason"]) == ("True", "DCGMHealthy")
    scraped = leader.condition("h100", "MetricsScraped")
    assert scraped["status"] == "True" and scraped["message"] == "1/1 inference pods scraped"

    labels = (
        ("costprofile", "h100"),
        ("costprofile_namespace", NS),
        ("gpu_model", "NVIDIA H100 80GB HBM3"),
    )
    series = leader.series()
    assert series[("infercost_costprofile_hourly_cost_usd", labels)] == approx(6.18)
    assert series[("infercost_costprofile_amortization_per_hour_usd", labels)] == approx(6.0)
    assert series[("infercost_costprofile_electricity_per_hour_usd", labels)] == approx(0.18)
    assert series[("infercost_costprofile_power_watts", labels)] == approx(1200.0)
    sources = {
        dict(k[1])["source"]: v
        for k, v in series.items()
        if k[0] == "infercost_costprofile_power_source"
    }
    assert sources == {"DCGM": 1.0, "Partial": 0.0, "TDP": 0.0, "None": 0.0}
    gpu_series = [k for k in series if k[0] == "infercost_gpu_power_watts"]
    assert len(gpu_series) == 4
    assert {dict(k[1])["node"] for k in gpu_series} == {"gpu-1", "gpu-2"}
    assert all(series[k] == 300.0 for k in gpu_series)

    reasons = [(t, r) for t, r, _ in leader.events_of("h100")]
    assert reasons == [("Normal", "CostComputed")], "first Ready is news; healthy DCGM is not"

    health = leader.metrics.registry
    assert (
        health.get_sample_value(
            "infercost_scrape_duration_seconds_count", {"target_kind": "inference"}
        )
        == 1
    )
    assert (
        health.get_sample_value("infercost_scrape_duration_seconds_count", {"target_kind": "dcgm"})
        == 2
    )


def test_nothing_changed_means_no_status_writes(
    scenario: Scenario,
    leader: InProcessLeader,
    fake_clock: FakeClock,
) -> None:
    node(scenario, "gpu-1")
    scenario.exporter("gpu-1")
    inference(scenario, "vllm-a", "gpu-1")
    profile(scenario, "h100")
    leader.step()
    assert leader.status_patches("h100") == 1
    for _ in range(5):
        fake_clock.advance(INTERVAL)
        leader.step()
    assert leader.status_patches("h100") == 0 + 1, "same figures, same conditions: no write"
    assert leader.status("h100")["lastUpdated"] == "2026-11-27T12:00:00Z"


def test_last_updated_and_its_series_tell_fresh_from_frozen(
    scenario: Scenario,
    leader: InProcessLeader,
    fake_clock: FakeClock,
) -> None:
    node(scenario, "gpu-1")
    scenario.exporter("gpu-1")
    profile(scenario, "h100")
    leader.step()
    ready_since = leader.condition("h100", "Ready")["lastTransitionTime"]
    # 19 samples over 9.5 minutes find nothing new: no write, but every one of them confirms
    # the figures, and the series says so.
    for _ in range(19):
        fake_clock.advance(INTERVAL)
        leader.step()
        assert leader.last_updated_series("h100") == fake_clock.time()
    assert leader.status_patches("h100") == 1
    assert leader.status("h100")["lastUpdated"] == "2026-11-27T12:00:00Z"
    # 10 status intervals after the written data time, lastUpdated alone is refreshed.
    fake_clock.advance(INTERVAL)
    leader.step()
    assert leader.status_patches("h100") == 2
    status = leader.status("h100")
    assert status["lastUpdated"] == "2026-11-27T12:10:00Z"
    assert leader.condition("h100", "Ready")["lastTransitionTime"] == ready_since
    # The sampler stops: the status turns Stale, and neither lastUpdated nor the series moves.
    confirmed = fake_clock.time()
    fake_clock.advance(4 * INTERVAL)
    leader.step(sample=False)
    assert leader.condition("h100", "Ready")["reason"] == "Stale"
    assert leader.status("h100")["lastUpdated"] == "2026-11-27T12:10:00Z"
    assert leader.last_updated_series("h100") == confirmed


def test_a_new_leader_exports_last_updated_from_its_first_sample_without_writing(
    scenario: Scenario, fake_clock: FakeClock
) -> None:
    first = InProcessLeader(scenario, fake_clock)
    try:
        node(scenario, "gpu-1")
        scenario.exporter("gpu-1")
        profile(scenario, "h100")
        first.step()
    finally:
        first.close()
    fake_clock.advance(INTERVAL)
    second = InProcessLeader(scenario, fake_clock)  # a new process, with fresh metrics
    try:
        assert second.last_updated_series("h100") is None
        second.step()
        assert second.status_patches("h100") == 1, "the old leader's status still holds"
        assert second.last_updated_series("h100") == fake_clock.time()
    finally:
        second.close()


def test_money_changes_wait_for_the_status_interval_counts_do_not(
    scenario: Scenario,
    leader: InProcessLeader,
    fake_clock: FakeClock,
) -> None:
    node(scenario, "gpu-1")
    exporter = scenario.exporter("gpu-1", watts=300.0)
    profile(scenario, "h100", gpu_count=2)
    leader.step()
    assert leader.status_patches() == 1
    exporter.set_power(0, 400.0)
    fake_clock.advance(INTERVAL)
    leader.step()
    assert leader.status_patches() == 1, "money only: deferred within --status-interval"
    assert leader.status("h100")["currentPowerDrawWatts"] == approx(600.0)
    fake_clock.advance(INTERVAL)
    leader.step()
    assert leader.status_patches() == 2
    assert leader.status("h100")["currentPowerDrawWatts"] == approx(700.0)
    assert leader.status("h100")["lastUpdated"] == "2026-11-27T12:01:00Z"
    inference(scenario, "vllm-a", "gpu-1")
    fake_clock.advance(1)
    leader.step()
    assert leader.status_patches() == 3, "a count changed: written at once"
    assert leader.status("h100")["inferencePods"] == 1


# -- DCGMReachable -----------------------------------------------------------------------------


def test_partial_names_the_node_without_an_exporter(
    scenario: Scenario,
    leader: InProcessLeader,
    fake_clock: FakeClock,
) -> None:
    node(scenario, "gpu-1")
    node(scenario, "gpu-2")
    first = scenario.exporter("gpu-1", watts=250.0)
    profile(scenario, "h100")
    leader.step()
    status = leader.status("h100")
    assert status["powerSource"] == "Partial"
    assert status["gpusReporting"] == 2 and status["matchedGPUs"] == 4
    # no tdpWatts: the missing GPUs count the mean of the measured ones
    assert status["currentPowerDrawWatts"] == approx(1000.0)
    dcgm = leader.condition("h100", "DCGMReachable")
    assert (dcgm["status"], dcgm["reason"]) == ("Unknown", "DCGMPartial")
    assert "node gpu-2: no DCGM exporter found" in dcgm["message"]
    assert "gpu-1" not in dcgm["message"].split("GPUs report power through DCGM;")[1]
    assert "count the mean power of the measured GPUs" in dcgm["message"]
    events = leader.events_of("h100")
    assert ("Warning", "DCGMPartial") in [(t, r) for t, r, _ in events]
    # the mean moves with the readings, the message does not: no write within the interval
    writes = leader.status_patches()
    first.set_power(0, 270.0)
    fake_clock.advance(INTERVAL)
    leader.step()
    assert leader.status_patches() == writes

    scenario.exporter("gpu-2", watts=250.0)
    fake_clock.advance(INTERVAL)
    leader.step()
    dcgm = leader.condition("h100", "DCGMReachable")
    assert dcgm["reason"] == "DCGMHealthy"
    assert ("Normal", "DCGMHealthy") in [(t, r) for t, r, _ in leader.events_of("h100")]


def test_scrape_failed_carries_the_exporter_error_and_uses_tdp(
    scenario: Scenario,
    leader: InProcessLeader,
    fake_clock: FakeClock,
) -> None:
    node(scenario, "gpu-1")
    exporter = scenario.exporter("gpu-1")
    exporter.set_fault("status", status=500)
    profile(scenario, "h100", gpu_count=2, tdp=700.0)
    leader.step()
    status = leader.status("h100")
    assert status["powerSource"] == "TDP"
    assert status["currentPowerDrawWatts"] == approx(1400.0)
    assert status["gpusReporting"] == 0
    dcgm = leader.condition("h100", "DCGMReachable")
    assert (dcgm["status"], dcgm["reason"]) == ("False", "DCGMScrapeFailed")
    assert "HTTP 500" in dcgm["message"] and exporter.host in dcgm["message"]
    assert "tdpWatts 700 W" in dcgm["message"]
    assert (
        leader.health(
            "infercost_scrape_errors_total", {"target_kind": "dcgm", "reason": "http_status"}
        )
        == 1
    )

    exporter.stop()  # now the connection is refused
    fake_clock.advance(INTERVAL)
    leader.step()
    dcgm = leader.condition("h100", "DCGMReachable")
    assert dcgm["reason"] == "DCGMScrapeFailed"
    assert "connection refused" in dcgm["message"]


def test_not_found_without_any_exporter_and_no_tdp_is_zero_watts(
    scenario: Scenario,
    leader: InProcessLeader,
) -> None:
    node(scenario, "gpu-1")
    profile(scenario, "h100", gpu_count=2)
    leader.step()
    status = leader.status("h100")
    assert status["powerSource"] == "None"
    assert status["currentPowerDrawWatts"] == 0
    assert status["electricityCostPerHour"] == 0
    dcgm = leader.condition("h100", "DCGMReachable")
    assert (dcgm["status"], dcgm["reason"]) == ("False", "DCGMNotFound")
    assert "node gpu-1: no DCGM exporter found" in dcgm["message"]
    assert "set spec.hardware.tdpWatts" in dcgm["message"]
    assert leader.condition("h100", "Ready")["status"] == "True", "cost is still computed"


def test_not_found_when_the_exporter_has_no_readings_for_the_node(
    scenario: Scenario,
    leader: InProcessLeader,
) -> None:
    node(scenario, "gpu-1")
    scenario.exporter("gpu-1", gpus=0)
    profile(scenario, "h100", gpu_count=2, tdp=500.0)
    leader.step()
    dcgm = leader.condition("h100", "DCGMReachable")
    assert dcgm["reason"] == "DCGMNotFound"
    assert "answered without power readings for this node" in dcgm["message"]
    assert leader.status("h100")["powerSource"] == "TDP"


def test_not_found_when_a_dcgm_url_reports_other_nodes(
    scenario: Scenario, fake_clock: FakeClock
) -> None:
    remote = scenario.servers.dcgm(gpus=2, node="elsewhere")
    leader = InProcessLeader(scenario, fake_clock, dcgm_urls=(parse_dcgm_url(remote.url),))
    try:
        node(scenario, "gpu-1")
        profile(scenario, "h100", gpu_count=2)
        leader.step()
        dcgm = leader.condition("h100", "DCGMReachable")
        assert dcgm["reason"] == "DCGMNotFound"
        assert leader.status("h100")["gpusReporting"] == 0
    finally:
        leader.close()


def test_not_found_when_no_node_matches(scenario: Scenario, leader: InProcessLeader) -> None:
    node(scenario, "gpu-1")
    profile(scenario, "a100", selector={"pool": "a100"}, gpu_count=8)
    leader.step()
    status = leader.status("a100")
    assert status["matchedNodes"] == [] and status["matchedGPUs"] == 0
    assert status["amortizationRatePerHour"] == approx(6.0), "all of it pool idle"
    assert status["powerSource"] == "None"
    dcgm = leader.condition("a100", "DCGMReachable")
    assert dcgm["reason"] == "DCGMNotFound"
    assert "no node matches the nodeSelector" in dcgm["message"]
    ready = leader.condition("a100", "Ready")
    assert ready["status"] == "True" and "matches no node" in ready["message"]


def test_profiles_owning_no_node_draw_no_power_even_with_tdp(
    scenario: Scenario,
    leader: InProcessLeader,
    fake_clock: FakeClock,
) -> None:
    node(scenario, "gpu-1")
    scenario.exporter("gpu-1", watts=300.0)
    profile(scenario, "owner", gpu_count=2, tdp=700.0)
    fake_clock.advance(1)
    profile(scenario, "overlap", gpu_count=2, tdp=700.0)
    profile(scenario, "nomatch", selector={"pool": "a100"}, gpu_count=8, tdp=700.0)
    leader.step()
    assert leader.status("owner")["currentPowerDrawWatts"] == approx(600.0)
    series = leader.series()
    for name in ("overlap", "nomatch"):
        status = leader.status(name)
        assert status["currentPowerDrawWatts"] == 0 and status["electricityCostPerHour"] == 0
        assert status["powerSource"] == "None" and status["matchedGPUs"] == 0
        labels = {"costprofile": name, "costprofile_namespace": NS}
        exported = {
            k[0] + dict(k[1]).get("source", ""): v
            for k, v in series.items()
            if labels.items() <= dict(k[1]).items()
        }
        assert exported["infercost_costprofile_power_watts"] == 0
        assert exported["infercost_costprofile_power_sourceNone"] == 1
        assert exported["infercost_costprofile_power_sourceTDP"] == 0


def test_duplicate_exporters_on_one_node_count_each_gpu_once(
    scenario: Scenario,
    leader: InProcessLeader,
) -> None:
    node(scenario, "gpu-1")
    uuids = ["GPU-11111111-2222-4333-8444-555555555555", "GPU-66666666-7777-4888-8999-aaaaaaaaaaaa"]
    for copy in ("a", "b"):
        gpus = [GpuState(index=i, uuid=u, power_watts=200.0) for i, u in enumerate(uuids)]
        scenario.exporter("gpu-1", gpus=gpus, watts=200.0, name=f"dcgm-exporter-{copy}")
    profile(scenario, "h100", gpu_count=2)
    leader.step()
    status = leader.status("h100")
    assert status["gpusReporting"] == 2
    assert status["currentPowerDrawWatts"] == approx(400.0)
    assert leader.condition("h100", "DCGMReachable")["reason"] == "DCGMHealthy"
    gpu_series = [k for k in leader.series() if k[0] == "infercost_gpu_power_watts"]
    assert sorted(dict(k[1])["uuid"] for k in gpu_series) == uuids


def test_an_exporter_outside_the_dcgm_namespaces_is_ignored_counted_and_named_once(
    scenario: Scenario,
    leader: InProcessLeader,
    fake_clock: FakeClock,
) -> None:
    node(scenario, "gpu-1")
    uuids = ["GPU-11111111-2222-4333-8444-555555555555", "GPU-66666666-7777-4888-8999-aaaaaaaaaaaa"]
    real = scenario.exporter(
        "gpu-1", gpus=[GpuState(index=i, uuid=u) for i, u in enumerate(uuids)], watts=1300.0
    )
    real.assign(0, NS, "vllm-a")
    # A tenant's pod labelled like an exporter, with the same UUIDs, lower power and a fake
    # holder: it sorts before gpu-operator, so without the namespace check its rows would win.
    fake = scenario.exporter(
        "gpu-1",
        gpus=[GpuState(index=i, uuid=u) for i, u in enumerate(uuids)],
        watts=620.0,
        name="not-an-exporter",
        namespace="aaa",
    )
    fake.assign(0, "aaa", "freeloader")
    fake.assign(1, "aaa", "freeloader")
    inference(scenario, "vllm-a", "gpu-1")
    profile(scenario, "h100", gpu_count=2)
    published: list[Sample] = []  # whole, as the ledger gets them
    leader.sampler.add_listener(published.append)
    for _ in range(3):
        leader.step()
        fake_clock.advance(INTERVAL)

    status = leader.status("h100")
    assert status["currentPowerDrawWatts"] == approx(2600.0)
    assert status["gpusReporting"] == 2 and status["powerSource"] == "DCGM"
    sample = published[-1]
    holders = {h.pod.name: dict(h.shares) for h in sample.holdings()}
    assert holders == {"vllm-a": {uuids[0]: 1.0}}, "no fake holder shifts cost"
    assert (
        leader.health(
            "infercost_scrape_errors_total",
            {"target_kind": "dcgm", "reason": "untrusted_namespace"},
        )
        == 3
    ), "counted on every sample that ignores it"
    warnings = [m for t, r, m in leader.events_of("h100") if r == "UntrustedExporter"]
    assert len(warnings) == 1 and "aaa/not-an-exporter" in warnings[0]
    assert "--dcgm-namespaces" in warnings[0]
    assert leader.event_count("h100", "UntrustedExporter") == 1, "named once"


def test_more_gpus_than_gpu_count_is_said_in_ready(
    scenario: Scenario,
    leader: InProcessLeader,
) -> None:
    node(scenario, "gpu-1", gpus=8)
    scenario.exporter("gpu-1", gpus=8, watts=100.0)
    profile(scenario, "h100", gpu_count=4)
    leader.step()
    ready = leader.condition("h100", "Ready")
    assert ready["status"] == "True"
    assert "matches 8 GPUs but gpuCount is 4" in ready["message"]
    assert leader.status("h100")["matchedGPUs"] == 8


# -- MetricsScraped ----------------------------------------------------------------------------


def test_metrics_scraped_false_with_k_of_n_and_the_first_error(
    scenario: Scenario,
    leader: InProcessLeader,
    fake_clock: FakeClock,
) -> None:
    node(scenario, "gpu-1")
    scenario.exporter("gpu-1")
    good = inference(scenario, "vllm-a", "gpu-1")
    bad = inference(scenario, "vllm-b", "gpu-1")
    loading = inference(scenario, "vllm-c", "gpu-1")
    loading.loading()
    bad.set_fault("html")
    good.serve(10, 5)
    profile(scenario, "h100")
    leader.step()
    scraped = leader.condition("h100", "MetricsScraped")
    assert scraped["status"] == "False"
    assert scraped["message"].startswith("1/3 inference pods failing: pod default/vllm-b: ")
    assert scraped["message"].endswith("(1 starting)")
    assert leader.status("h100")["inferencePods"] == 3
    assert ("Warning", "ScrapeFailed") in [(t, r) for t, r, _ in leader.events_of("h100")]
    assert (
        leader.health(
            "infercost_scrape_errors_total",
            {"target_kind": "inference", "reason": "not_prometheus_text"},
        )
        == 1
    )
    assert (
        leader.health(
            "infercost_scrape_errors_total", {"target_kind": "inference", "reason": "refused"}
        )
        is None
    ), "a pod loading its model is not an error"

    bad.set_fault("none")
    loading.ready()
    fake_clock.advance(INTERVAL)
    leader.step()
    scraped = leader.condition("h100", "MetricsScraped")
    assert (scraped["status"], scraped["message"]) == ("True", "3/3 inference pods scraped")
    loading.loading()  # refused after a success: a failure now
    fake_clock.advance(INTERVAL)
    leader.step()
    scraped = leader.condition("h100", "MetricsScraped")
    assert scraped["status"] == "False" and "connection refused" in scraped["message"]


# -- Ready: overlap, invalid spec, stale, spec change ------------------------------------------


def test_overlapping_profiles_older_wins_younger_gets_overlap(
    scenario: Scenario,
    leader: InProcessLeader,
    fake_clock: FakeClock,
) -> None:
    node(scenario, "gpu-1")
    node(scenario, "gpu-2", labels={"zone": "b"})
    scenario.exporter("gpu-1")
    scenario.exporter("gpu-2")
    profile(scenario, "old")
    fake_clock.advance(5)
    profile(scenario, "young")
    fake_clock.advance(5)
    profile(scenario, "zone-b", selector={"pool": "h100", "zone": "b"})
    leader.step()

    assert leader.status("old")["matchedNodes"] == ["gpu-1", "gpu-2"]
    young = leader.condition("young", "Ready")
    assert (young["status"], young["reason"]) == ("False", "Overlap")
    assert "gpu-1, gpu-2" in young["message"] and "default/old" in young["message"]
    assert leader.status("young")["matchedNodes"] == []
    assert leader.status("young")["matchedGPUs"] == 0
    assert ("Warning", "Overlap") in [(t, r) for t, r, _ in leader.events_of("young")]
    assert leader.condition("zone-b", "Ready")["reason"] == "Overlap"

    scenario.rest.delete(COSTPROFILES, "old", NS)
    wait_until(lambda: leader.profiles.store.get("default/old") is None, what="old deleted")
    leader.reconcile("default/old")  # what the delete event enqueues
    fake_clock.advance(INTERVAL)
    leader.step()
    assert leader.condition("young", "Ready")["reason"] == "CostComputed"
    assert leader.status("young")["matchedNodes"] == ["gpu-1", "gpu-2"]
    series = leader.series()
    assert not [k for k in series if ("costprofile", "old") in k[1]], "deleted: no series"
    assert [k for k in series if ("costprofile", "young") in k[1]]


def test_overlap_tie_broken_by_namespace_then_name(
    scenario: Scenario,
    leader: InProcessLeader,
) -> None:
    node(scenario, "gpu-1")
    # same creationTimestamp (the fake clock does not move): namespace, then name decide
    profile(scenario, "zeta", namespace="aaa")
    profile(scenario, "alpha", namespace="bbb")
    profile(scenario, "beta", namespace="aaa")
    leader.step()
    assert leader.status("beta", "aaa")["matchedNodes"] == ["gpu-1"]
    assert leader.condition("zeta", "Ready", "aaa")["reason"] == "Overlap"
    overlap = leader.condition("alpha", "Ready", "bbb")
    assert overlap["reason"] == "Overlap" and "aaa/beta" in overlap["message"]


def test_partial_overlap_names_the_lost_nodes_in_ready(
    scenario: Scenario,
    leader: InProcessLeader,
    fake_clock: FakeClock,
) -> None:
    node(scenario, "gpu-1", labels={"zone": "a"})
    node(scenario, "gpu-2", labels={"zone": "b"})
    profile(scenario, "zone-a", selector={"zone": "a"}, gpu_count=2)
    fake_clock.advance(1)
    profile(scenario, "all", gpu_count=4)
    leader.step()
    ready = leader.condition("all", "Ready")
    assert ready["status"] == "True"
    assert "gpu-1 also match the older CostProfile default/zone-a" in ready["message"]
    assert leader.status("all")["matchedNodes"] == ["gpu-2"]


def test_invalid_spec_names_the_field_and_never_crashes(
    scenario: Scenario,
    leader: InProcessLeader,
    fake_clock: FakeClock,
) -> None:
    node(scenario, "gpu-1")
    profile(scenario, "bad", selector={"not a key!": "x"})
    result = leader.step()["default/bad"]
    assert isinstance(result, RequeueAfter)
    ready = leader.condition("bad", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"].startswith("invalid spec: spec.nodeSelector")
    assert "Traceback" not in ready["message"]
    status = leader.status("bad")
    assert status["observedGeneration"] == 1 and "hourlyCostUSD" not in status
    assert status["lastUpdated"] == "2026-11-27T12:00:00Z"
    assert "last valid spec" not in ready["message"], "it never had one"
    assert ("Warning", "InvalidSpec") in [(t, r) for t, r, _ in leader.events_of("bad")]
    assert not [k for k in leader.series() if ("costprofile", "bad") in k[1]]
    # an invalid profile claims no node
    fake_clock.advance(1)
    profile(scenario, "good")
    leader.step()
    assert leader.status("good")["matchedNodes"] == ["gpu-1"]
    # fixing it
    scenario.rest.replace(
        COSTPROFILES,
        {
            **scenario.rest.get(COSTPROFILES, "bad", NS),
            "spec": profile_body("bad", selector={"pool": "h100", "zone": "x"})["spec"],
        },
        NS,
    )
    leader.settle("default/bad")
    fake_clock.advance(1)
    leader.step()
    ready = leader.condition("bad", "Ready")
    assert ready["reason"] == "CostComputed" and ready["observedGeneration"] == 2


def test_an_invalid_edit_drops_what_the_status_can_no_longer_vouch_for(
    scenario: Scenario,
    leader: InProcessLeader,
    fake_clock: FakeClock,
) -> None:
    node(scenario, "gpu-1")
    scenario.exporter("gpu-1")
    inference(scenario, "vllm-a", "gpu-1")
    profile(scenario, "h100", gpu_count=2)
    leader.step()
    assert {c["type"] for c in leader.status("h100")["conditions"]} == {
        "Ready",
        "DCGMReachable",
        "MetricsScraped",
    }
    scenario.edit_costprofile("h100", {"nodeSelector": {"bad key!": "x"}})
    fake_clock.advance(INTERVAL)
    leader.step()
    status = leader.status("h100")
    assert [c["type"] for c in status["conditions"]] == ["Ready"], "DCGM and scrape dropped"
    ready = leader.condition("h100", "Ready")
    assert (ready["reason"], ready["observedGeneration"]) == ("InvalidSpec", 2)
    assert "spec.nodeSelector" in ready["message"]
    assert "last valid spec (generation 1)" in ready["message"], "booking goes on with it"
    assert status["observedGeneration"] == 2
    assert status["lastUpdated"] == "2026-11-27T12:00:30Z", "the time of the latest sample"
    assert not set(status) & {
        "hourlyCostUSD",
        "amortizationRatePerHour",
        "electricityCostPerHour",
        "currentPowerDrawWatts",
        "powerSource",
        "matchedNodes",
        "matchedGPUs",
        "gpusReporting",
        "inferencePods",
    }


def test_spec_change_updates_observed_generation_and_rates(
    scenario: Scenario,
    leader: InProcessLeader,
    fake_clock: FakeClock,
) -> None:
    node(scenario, "gpu-1")
    scenario.exporter("gpu-1", watts=500.0)
    profile(scenario, "h100", gpu_count=2)
    leader.step()
    assert leader.status("h100")["electricityCostPerHour"] == approx(0.15)
    before = leader.status_patches()
    scenario.edit_costprofile("h100", {"electricity": {"ratePerKWh": 0.20}})
    leader.step(sample=False)  # the spec is read at once; power from the last sample
    status = leader.status("h100")
    assert status["observedGeneration"] == 2
    assert status["electricityCostPerHour"] == approx(0.30)
    assert status["hourlyCostUSD"] == approx(6.30)
    assert leader.condition("h100", "Ready")["observedGeneration"] == 2
    assert leader.status_patches() == before + 1

    # a new selector waits for a sample of the new nodes before it shows them
    node(scenario, "gpu-9", labels={"pool": "other"})
    scenario.edit_costprofile("h100", {"nodeSelector": {"pool": "other"}})
    result = leader.step(sample=False)["default/h100"]
    assert isinstance(result, RequeueAfter)
    assert leader.status("h100")["observedGeneration"] == 2
    fake_clock.advance(1)
    leader.step()
    status = leader.status("h100")
    assert status["observedGeneration"] == 3 and status["matchedNodes"] == ["gpu-9"]


def test_stale_when_the_collector_stops(
    scenario: Scenario,
    leader: InProcessLeader,
    fake_clock: FakeClock,
) -> None:
    node(scenario, "gpu-1")
    scenario.exporter("gpu-1")
    profile(scenario, "h100", gpu_count=2)
    result = leader.step()["default/h100"]
    assert leader.condition("h100", "Ready")["status"] == "True"
    assert isinstance(result, RequeueAfter)
    fake_clock.advance(3 * INTERVAL - 1)
    leader.step(sample=False)
    assert leader.condition("h100", "Ready")["status"] == "True", "within 3 intervals"
    fake_clock.advance(2)
    leader.step(sample=False)
    ready = leader.condition("h100", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Stale")
    assert "2026-11-27T12:00:00Z" in ready["message"]
    assert leader.status("h100")["hourlyCostUSD"] == approx(6.09), "last figures kept"
    assert ("Warning", "Stale") in [(t, r) for t, r, _ in leader.events_of("h100")]
    leader.step()
    assert leader.condition("h100", "Ready")["reason"] == "CostComputed"


def test_a_cycle_slower_than_one_and_a_half_intervals_never_flaps_ready(
    scenario: Scenario, fake_clock: FakeClock
) -> None:
    # Every cycle takes 51 s of a 30 s interval; the sampler starts the next one at once, so a
    # sample completes every 51 s. Just before the next completes, the latest sample started
    # 93 s ago (over 3 intervals) but completed only 42 s ago: its data is current.
    leader = InProcessLeader(
        scenario, fake_clock, scraper_factory=lambda: SlowScraper(fake_clock, 1.7 * INTERVAL)
    )
    try:
        node(scenario, "gpu-1")
        scenario.exporter("gpu-1")
        profile(scenario, "h100", gpu_count=2)
        for _ in range(4):
            leader.sampler.sample_once()
            fake_clock.advance(1.4 * INTERVAL)
            result = leader.step(sample=False)["default/h100"]
            ready = leader.condition("h100", "Ready")
            assert (ready["status"], ready["reason"]) == ("True", "CostComputed")
            assert isinstance(result, RequeueAfter)
        assert [r for _, r, _ in leader.events_of("h100")] == ["CostComputed"]
        assert leader.status_patches("h100") == 1, "no flap, no write"
        # Three intervals after the last completion it is stale all the same.
        fake_clock.advance(1.7 * INTERVAL)
        leader.step(sample=False)
        assert leader.condition("h100", "Ready")["reason"] == "Stale"
    finally:
        leader.close()


def test_a_new_profile_without_any_sample_turns_stale(
    scenario: Scenario,
    leader: InProcessLeader,
    fake_clock: FakeClock,
) -> None:
    node(scenario, "gpu-1")
    profile(scenario, "h100")
    result = leader.step(sample=False)["default/h100"]
    assert isinstance(result, RequeueAfter) and result.seconds <= INTERVAL
    assert leader.status("h100") == {}, "nothing to say yet"
    fake_clock.advance(3 * INTERVAL + 1)
    leader.step(sample=False)
    ready = leader.condition("h100", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Stale")
    assert "no sample of this profile's nodes" in ready["message"]


def test_profiles_outside_profile_namespaces_are_ignored(
    scenario: Scenario, fake_clock: FakeClock
) -> None:
    leader = InProcessLeader(scenario, fake_clock, profile_namespaces=(NS,))
    try:
        node(scenario, "gpu-1")
        profile(scenario, "elsewhere", namespace="other")
        fake_clock.advance(1)
        profile(scenario, "h100")
        leader.step()
        fake_clock.advance(4 * INTERVAL)
        leader.step()
        assert leader.status("elsewhere", "other") == {}, "no status is written"
        assert leader.status("h100")["matchedNodes"] == ["gpu-1"], "it claims no node either"
        assert not [k for k in leader.series() if ("costprofile", "elsewhere") in k[1]]
    finally:
        leader.close()


def test_deleted_profile_series_disappear(scenario: Scenario, leader: InProcessLeader) -> None:
    node(scenario, "gpu-1")
    scenario.exporter("gpu-1")
    profile(scenario, "h100", gpu_count=2)
    leader.step()
    assert [k for k in leader.series() if ("costprofile", "h100") in k[1]]
    scenario.rest.delete(COSTPROFILES, "h100", NS)
    wait_until(lambda: leader.profiles.store.get("default/h100") is None, what="deleted")
    assert leader.step(sample=False) == {}
    leader.reconcile("default/h100")
    assert not [k for k in leader.series() if ("costprofile", "h100") in k[1]]
    assert (
        leader.health(
            "infercost_object_last_updated_timestamp_seconds",
            {"kind": "CostProfile", "object": "h100", "object_namespace": NS},
        )
        is None
    )


def test_events_are_not_repeated_while_nothing_changes(
    scenario: Scenario,
    leader: InProcessLeader,
    fake_clock: FakeClock,
) -> None:
    node(scenario, "gpu-1")
    profile(scenario, "h100", gpu_count=2)
    for _ in range(4):
        leader.step()
        fake_clock.advance(INTERVAL)
    events = leader.events_of("h100")
    assert sorted(r for _, r, _ in events) == ["CostComputed", "DCGMNotFound"]


def test_an_exporter_pod_that_is_not_running_is_a_scrape_failure(
    scenario: Scenario,
    leader: InProcessLeader,
) -> None:
    node(scenario, "gpu-1")
    scenario.pod(make_dcgm_exporter_pod("gpu-1", "127.0.0.1", phase="Pending"))
    profile(scenario, "h100", gpu_count=2)
    leader.step()
    dcgm = leader.condition("h100", "DCGMReachable")
    assert dcgm["reason"] == "DCGMScrapeFailed"
    assert "gpu-operator/nvidia-dcgm-exporter-gpu-1 is not running" in dcgm["message"]


def test_long_condition_messages_are_clipped_at_a_boundary() -> None:
    problems = "; ".join(
        f"node gpu-{i:03d}: no DCGM exporter found on the node" for i in range(400)
    )
    clipped = clip_message("no GPU power readings: " + problems)
    assert len(clipped) <= 2048 and clipped.endswith("on the node; …")
    assert clip_message("short") == "short"


def test_a_conflicting_write_retries_and_an_api_error_raises(
    scenario: Scenario,
    leader: InProcessLeader,
) -> None:
    node(scenario, "gpu-1")
    profile(scenario, "h100", gpu_count=2)
    leader.sampler.sample_once()
    scenario.sim.faults.conflict("costprofiles", "h100", NS)
    assert leader.reconcile("default/h100") == RETRY
    assert leader.status("h100") == {}, "nothing written over a newer object"
    assert not [(t, r) for t, r, _ in leader.events_of("h100")], "no Event for a lost write"
    assert isinstance(leader.reconcile("default/h100"), RequeueAfter)
    assert leader.condition("h100", "Ready")["reason"] == "CostComputed"
    scenario.edit_costprofile("h100", {"hardware": {"gpuCount": 4}})
    scenario.sim.faults.respond("patch", "costprofiles", 500)
    with pytest.raises(ApiError):
        leader.reconcile("default/h100")  # the controller retries it through the rate limiter
    leader.reconcile("default/h100")
    assert leader.status("h100")["observedGeneration"] == 2
