"""The CostProfile controller through the emulator and simulated exporters and servers.

Each test builds a small cluster in KubeSim (nodes, exporter and inference pods pointing at
simulated servers on loopback addresses, CostProfiles), then drives the sampler and the
reconciler directly on a FakeClock: one ``step()`` is one sample followed by a reconcile of
every profile, so the tests never wait for a scrape interval to pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from infercost.collect.discovery import parse_dcgm_url
from infercost.collect.scraping import Scraper, ScrapeResult, ScrapeTarget
from infercost.controllers.costprofile import CostProfileReconciler, clip_message
from infercost.controllers.operator import CUSTOM_RESOURCES
from infercost.controllers.sampling import Sampler, SamplerSettings
from infercost.kube.clock import FakeClock
from infercost.kube.controller import RETRY, RequeueAfter
from infercost.kube.events import EventRecorder, ObjectRef
from infercost.kube.health import HealthMetrics
from infercost.kube.informer import InformerFactory
from infercost.kube.rest import EVENTS, NODES, PODS, ApiError, RestClient
from infercost.kube.status import StatusWriter
from infercost.outputs.metrics import CostProfileCollector
from infercost.testing.kubefixtures import crd_dirs, eventually
from infercost.testing.kubesim import KubeSim
from infercost.testing.simservers.fixtures import SimServers
from infercost.testing.simservers.objects import make_dcgm_exporter_pod, make_node, make_pod
from infercost.testing.simservers.pages import GpuState
from infercost.testing.simservers.servers import SimDcgmExporter, SimInferenceServer

COSTPROFILES = CUSTOM_RESOURCES["CostProfile"]
NS = "ml"
INTERVAL = 30.0
STATUS_INTERVAL = 60.0


def profile_body(
    name: str,
    *,
    namespace: str = NS,
    selector: dict[str, str] | None = None,
    gpu_count: int = 4,
    price: float = 87_600.0,
    years: float = 2.0,
    maintenance: float = 0.1,
    tdp: float | None = None,
    rate: float = 0.10,
    pue: float = 1.5,
    gpu_model: str = "NVIDIA H100 80GB HBM3",
) -> dict[str, Any]:
    hardware: dict[str, Any] = {
        "gpuModel": gpu_model,
        "gpuCount": gpu_count,
        "purchasePriceUSD": price,
        "amortizationYears": years,
        "maintenancePercentPerYear": maintenance,
    }
    if tdp is not None:
        hardware["tdpWatts"] = tdp
    return {
        "apiVersion": "finops.infercost.ai/v1alpha1",
        "kind": "CostProfile",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "hardware": hardware,
            "electricity": {"ratePerKWh": rate, "pueFactor": pue},
            "nodeSelector": {"pool": "h100"} if selector is None else selector,
        },
    }


class SlowScraper(Scraper):
    """A real scraper whose every cycle takes ``seconds`` of fake time."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        super().__init__(concurrency=8, timeout_seconds=2.0)
        self.clock = clock
        self.seconds = seconds

    def scrape(self, targets: Sequence[ScrapeTarget]) -> list[ScrapeResult]:
        results = super().scrape(targets)
        self.clock.advance(self.seconds)
        return results


class Cluster:
    """KubeSim + informers + sampler + reconciler, all time on one FakeClock."""

    def __init__(
        self,
        sim: KubeSim,
        clock: FakeClock,
        servers: SimServers,
        *,
        profile_namespaces: tuple[str, ...] = (),
        dcgm_urls: tuple[str, ...] = (),
        scrape_seconds: float = 0.0,
    ) -> None:
        self.sim = sim
        self.clock = clock
        self.servers = servers
        self.rest = RestClient(sim.api_client())
        self.informers = InformerFactory(self.rest)
        self.pods = self.informers.pods()
        self.nodes = self.informers.nodes()
        self.profiles = self.informers.informer(COSTPROFILES)
        self.metrics = HealthMetrics(CollectorRegistry())
        self.sampler = Sampler(
            pods=self.pods,
            nodes=self.nodes,
            profiles=self.profiles,
            settings=SamplerSettings(
                interval_seconds=INTERVAL,
                timeout_seconds=2.0,
                concurrency=8,
                dcgm_urls=tuple(parse_dcgm_url(u) for u in dcgm_urls),
                profile_namespaces=profile_namespaces,
            ),
            clock=clock,
            metrics=self.metrics,
            scraper_factory=lambda: SlowScraper(clock, scrape_seconds),
        )
        self.collector = CostProfileCollector()
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)
        self.writer = StatusWriter(
            self.rest,
            COSTPROFILES,
            interval_seconds=STATUS_INTERVAL,
            clock=clock,
            metrics=self.metrics,
        )
        self.events = EventRecorder(self.rest, clock=clock)
        self.reconciler = CostProfileReconciler(
            profiles=self.profiles,
            sampler=self.sampler,
            writer=self.writer,
            events=self.events,
            collector=self.collector,
            clock=clock,
            scrape_interval=INTERVAL,
            profile_namespaces=profile_namespaces,
            object_ref=lambda obj: ObjectRef.of(obj, COSTPROFILES),
        )
        self.informers.start()
        eventually(self.informers.has_synced, what="caches synced")

    def close(self) -> None:
        self.informers.stop()
        self.sampler.close()

    # -- cluster content ---------------------------------------------------------------------

    def node(self, name: str, gpus: int | None = 2, labels: dict[str, str] | None = None) -> None:
        self.rest.create(
            NODES, make_node(name, gpus=gpus, labels={"pool": "h100", **(labels or {})})
        )
        eventually(lambda: self.nodes.store.get(name) is not None, what=f"node {name} cached")

    def pod(self, pod: dict[str, Any]) -> dict[str, Any]:
        meta = pod["metadata"]
        ns, name = meta["namespace"], meta["name"]
        if ns not in ("default", NS):
            self.sim.create_namespace(ns)
        created = self.rest.create(PODS, pod, ns)
        patched = self.rest.merge_patch(PODS, name, {"status": pod["status"]}, ns, "status")
        rv = patched["metadata"]["resourceVersion"]
        eventually(
            lambda: (
                (p := self.pods.store.get(f"{ns}/{name}")) is not None and p.resource_version == rv
            ),
            what=f"pod {ns}/{name} cached",
        )
        return created

    def exporter(
        self, node: str, gpus: int | list[GpuState] = 2, watts: float = 300.0, **kw: Any
    ) -> SimDcgmExporter:
        exporter = self.servers.dcgm(gpus=gpus, node=node)
        for gpu in exporter.gpus:
            exporter.set_power(gpu.index, watts)
        self.pod(make_dcgm_exporter_pod(node, exporter.host, **kw))
        return exporter

    def inference(self, name: str, node: str, backend: str = "vllm") -> SimInferenceServer:
        server = self.servers.inference(backend)
        self.pod(
            make_pod(
                name,
                namespace=NS,
                ip=server.host,
                node=node,
                annotations={"infercost.ai/backend": backend},
                gpus=1,
            )
        )
        return server

    def profile(self, name: str, **kw: Any) -> None:
        body = profile_body(name, **kw)
        ns = body["metadata"]["namespace"]
        if ns != NS:
            self.sim.create_namespace(ns)
        self.rest.create(COSTPROFILES, body, ns)
        self.settle(f"{ns}/{name}")

    def patch_spec(self, name: str, spec: dict[str, Any], namespace: str = NS) -> None:
        self.rest.merge_patch(COSTPROFILES, name, {"spec": spec}, namespace)
        self.settle(f"{namespace}/{name}")

    # -- driving -----------------------------------------------------------------------------

    def settle(self, key: str) -> None:
        """Wait until the informer cache holds the server's current version of ``key``."""
        ns, _, name = key.partition("/")

        def current() -> bool:
            try:
                server_rv = self.rest.get(COSTPROFILES, name, ns)["metadata"]["resourceVersion"]
            except Exception:
                return self.profiles.store.get(key) is None
            cached = self.profiles.store.get(key)
            return cached is not None and cached["metadata"]["resourceVersion"] == server_rv

        eventually(current, what=f"{key} cached")

    def reconcile(self, key: str) -> Any:
        self.settle(key)
        result = self.reconciler.reconcile(key)
        self.settle(key)
        return result

    def step(self, *, sample: bool = True) -> dict[str, Any]:
        if sample:
            self.sampler.sample_once()
        return {key: self.reconcile(key) for key in sorted(self.profiles.store.list_keys())}

    def status(self, name: str, namespace: str = NS) -> dict[str, Any]:
        return self.rest.get(COSTPROFILES, name, namespace).get("status") or {}

    def condition(self, name: str, type_: str, namespace: str = NS) -> dict[str, Any]:
        for cond in self.status(name, namespace).get("conditions") or ():
            if cond["type"] == type_:
                return cond
        raise AssertionError(f"{namespace}/{name} has no {type_} condition")

    def status_patches(self, name: str | None = None) -> int:
        return sum(
            1
            for r in self.sim.requests()
            if r.method == "PATCH"
            and "/costprofiles/" in r.path
            and r.path.endswith("/status")
            and (name is None or r.path.endswith(f"/{name}/status"))
        )

    def events_of(self, name: str) -> list[tuple[str, str, str]]:
        items = self.rest.list(EVENTS, NS)["items"]
        return [
            (e["type"], e["reason"], e["message"])
            for e in items
            if e["involvedObject"]["name"] == name
        ]

    def last_updated_series(self, name: str, namespace: str = NS) -> float | None:
        return self.metrics.registry.get_sample_value(
            "infercost_object_last_updated_timestamp_seconds",
            {"kind": "CostProfile", "object": name, "object_namespace": namespace},
        )

    def sim_event_count(self, name: str, reason: str) -> int:
        """How many times an Event of ``reason`` was recorded on ``name`` (repeats included)."""
        items = self.rest.list(EVENTS, NS)["items"]
        return sum(
            int(e.get("count") or 1)
            for e in items
            if e["involvedObject"]["name"] == name and e["reason"] == reason
        )

    def series(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        from prometheus_client import generate_latest

        text = generate_latest(self.registry).decode()
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC))


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[KubeSim]:
    with KubeSim(
        crd_dirs=crd_dirs(), namespaces=("infercost-system", NS), clock=clock.now
    ) as server:
        yield server


@pytest.fixture
def cluster(sim: KubeSim, clock: FakeClock, sim_servers: SimServers) -> Iterator[Cluster]:
    c = Cluster(sim, clock, sim_servers)
    try:
        yield c
    finally:
        c.close()


def approx(value: float) -> Any:
    return pytest.approx(value, rel=1e-9, abs=1e-6)


# -- healthy -----------------------------------------------------------------------------------


def test_healthy_profile_status_figures_conditions_and_series(cluster: Cluster) -> None:
    for node in ("gpu-1", "gpu-2"):
        cluster.node(node)
        cluster.exporter(node, watts=300.0)
    cluster.node("cpu-1", gpus=None, labels={"pool": "cpu"})
    server = cluster.inference("vllm-a", "gpu-1")
    server.serve(1000, 200)
    cluster.profile("h100")

    result = cluster.step()["ml/h100"]
    assert isinstance(result, RequeueAfter) and result.seconds <= INTERVAL

    status = cluster.status("h100")
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

    ready = cluster.condition("h100", "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "CostComputed")
    assert "2 node(s) and 4 GPU(s)" in ready["message"]
    assert ready["observedGeneration"] == 1
    dcgm = cluster.condition("h100", "DCGMReachable")
    assert (dcgm["status"], dcgm["reason"]) == ("True", "DCGMHealthy")
    scraped = cluster.condition("h100", "MetricsScraped")
    assert scraped["status"] == "True" and scraped["message"] == "1/1 inference pods scraped"

    labels = (
        ("costprofile", "h100"),
        ("costprofile_namespace", NS),
        ("gpu_model", "NVIDIA H100 80GB HBM3"),
    )
    series = cluster.series()
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

    reasons = [(t, r) for t, r, _ in cluster.events_of("h100")]
    assert reasons == [("Normal", "CostComputed")], "first Ready is news; healthy DCGM is not"

    health = cluster.metrics.registry
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


def test_nothing_changed_means_no_status_writes(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.exporter("gpu-1")
    cluster.inference("vllm-a", "gpu-1")
    cluster.profile("h100")
    cluster.step()
    assert cluster.status_patches("h100") == 1
    for _ in range(5):
        cluster.clock.advance(INTERVAL)
        cluster.step()
    assert cluster.status_patches("h100") == 0 + 1, "same figures, same conditions: no write"
    assert cluster.status("h100")["lastUpdated"] == "2026-11-27T12:00:00Z"


def test_last_updated_and_its_series_tell_fresh_from_frozen(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.exporter("gpu-1")
    cluster.profile("h100")
    cluster.step()
    ready_since = cluster.condition("h100", "Ready")["lastTransitionTime"]
    # 19 samples over 9.5 minutes find nothing new: no write, but every one of them confirms
    # the figures, and the series says so.
    for _ in range(19):
        cluster.clock.advance(INTERVAL)
        cluster.step()
        assert cluster.last_updated_series("h100") == cluster.clock.time()
    assert cluster.status_patches("h100") == 1
    assert cluster.status("h100")["lastUpdated"] == "2026-11-27T12:00:00Z"
    # 10 status intervals after the written data time, lastUpdated alone is refreshed.
    cluster.clock.advance(INTERVAL)
    cluster.step()
    assert cluster.status_patches("h100") == 2
    status = cluster.status("h100")
    assert status["lastUpdated"] == "2026-11-27T12:10:00Z"
    assert cluster.condition("h100", "Ready")["lastTransitionTime"] == ready_since
    # The sampler stops: the status turns Stale, and neither lastUpdated nor the series moves.
    confirmed = cluster.clock.time()
    cluster.clock.advance(4 * INTERVAL)
    cluster.step(sample=False)
    assert cluster.condition("h100", "Ready")["reason"] == "Stale"
    assert cluster.status("h100")["lastUpdated"] == "2026-11-27T12:10:00Z"
    assert cluster.last_updated_series("h100") == confirmed


def test_a_new_leader_exports_last_updated_from_its_first_sample_without_writing(
    sim: KubeSim, clock: FakeClock, sim_servers: SimServers
) -> None:
    first = Cluster(sim, clock, sim_servers)
    try:
        first.node("gpu-1")
        first.exporter("gpu-1")
        first.profile("h100")
        first.step()
    finally:
        first.close()
    clock.advance(INTERVAL)
    second = Cluster(sim, clock, sim_servers)  # a new process, with fresh metrics
    try:
        assert second.last_updated_series("h100") is None
        second.step()
        assert second.status_patches("h100") == 1, "the old leader's status still holds"
        assert second.last_updated_series("h100") == clock.time()
    finally:
        second.close()


def test_money_changes_wait_for_the_status_interval_counts_do_not(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    exporter = cluster.exporter("gpu-1", watts=300.0)
    cluster.profile("h100", gpu_count=2)
    cluster.step()
    assert cluster.status_patches() == 1
    exporter.set_power(0, 400.0)
    cluster.clock.advance(INTERVAL)
    cluster.step()
    assert cluster.status_patches() == 1, "money only: deferred within --status-interval"
    assert cluster.status("h100")["currentPowerDrawWatts"] == approx(600.0)
    cluster.clock.advance(INTERVAL)
    cluster.step()
    assert cluster.status_patches() == 2
    assert cluster.status("h100")["currentPowerDrawWatts"] == approx(700.0)
    assert cluster.status("h100")["lastUpdated"] == "2026-11-27T12:01:00Z"
    cluster.inference("vllm-a", "gpu-1")
    cluster.clock.advance(1)
    cluster.step()
    assert cluster.status_patches() == 3, "a count changed: written at once"
    assert cluster.status("h100")["inferencePods"] == 1


# -- DCGMReachable -----------------------------------------------------------------------------


def test_partial_names_the_node_without_an_exporter(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.node("gpu-2")
    first = cluster.exporter("gpu-1", watts=250.0)
    cluster.profile("h100")
    cluster.step()
    status = cluster.status("h100")
    assert status["powerSource"] == "Partial"
    assert status["gpusReporting"] == 2 and status["matchedGPUs"] == 4
    # no tdpWatts: the missing GPUs count the mean of the measured ones
    assert status["currentPowerDrawWatts"] == approx(1000.0)
    dcgm = cluster.condition("h100", "DCGMReachable")
    assert (dcgm["status"], dcgm["reason"]) == ("Unknown", "DCGMPartial")
    assert "node gpu-2: no DCGM exporter found" in dcgm["message"]
    assert "gpu-1" not in dcgm["message"].split("GPUs report power through DCGM;")[1]
    assert "count the mean power of the measured GPUs" in dcgm["message"]
    events = cluster.events_of("h100")
    assert ("Warning", "DCGMPartial") in [(t, r) for t, r, _ in events]
    # the mean moves with the readings, the message does not: no write within the interval
    writes = cluster.status_patches()
    first.set_power(0, 270.0)
    cluster.clock.advance(INTERVAL)
    cluster.step()
    assert cluster.status_patches() == writes

    cluster.exporter("gpu-2", watts=250.0)
    cluster.clock.advance(INTERVAL)
    cluster.step()
    dcgm = cluster.condition("h100", "DCGMReachable")
    assert dcgm["reason"] == "DCGMHealthy"
    assert ("Normal", "DCGMHealthy") in [(t, r) for t, r, _ in cluster.events_of("h100")]


def test_scrape_failed_carries_the_exporter_error_and_uses_tdp(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    exporter = cluster.exporter("gpu-1")
    exporter.set_fault("status", status=500)
    cluster.profile("h100", gpu_count=2, tdp=700.0)
    cluster.step()
    status = cluster.status("h100")
    assert status["powerSource"] == "TDP"
    assert status["currentPowerDrawWatts"] == approx(1400.0)
    assert status["gpusReporting"] == 0
    dcgm = cluster.condition("h100", "DCGMReachable")
    assert (dcgm["status"], dcgm["reason"]) == ("False", "DCGMScrapeFailed")
    assert "HTTP 500" in dcgm["message"] and exporter.host in dcgm["message"]
    assert "tdpWatts 700 W" in dcgm["message"]
    assert (
        cluster.metrics.registry.get_sample_value(
            "infercost_scrape_errors_total", {"target_kind": "dcgm", "reason": "http_status"}
        )
        == 1
    )

    exporter.stop()  # now the connection is refused
    cluster.clock.advance(INTERVAL)
    cluster.step()
    dcgm = cluster.condition("h100", "DCGMReachable")
    assert dcgm["reason"] == "DCGMScrapeFailed"
    assert "connection refused" in dcgm["message"]


def test_not_found_without_any_exporter_and_no_tdp_is_zero_watts(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.profile("h100", gpu_count=2)
    cluster.step()
    status = cluster.status("h100")
    assert status["powerSource"] == "None"
    assert status["currentPowerDrawWatts"] == 0
    assert status["electricityCostPerHour"] == 0
    dcgm = cluster.condition("h100", "DCGMReachable")
    assert (dcgm["status"], dcgm["reason"]) == ("False", "DCGMNotFound")
    assert "node gpu-1: no DCGM exporter found" in dcgm["message"]
    assert "set spec.hardware.tdpWatts" in dcgm["message"]
    assert cluster.condition("h100", "Ready")["status"] == "True", "cost is still computed"


def test_not_found_when_the_exporter_has_no_readings_for_the_node(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.exporter("gpu-1", gpus=0)
    cluster.profile("h100", gpu_count=2, tdp=500.0)
    cluster.step()
    dcgm = cluster.condition("h100", "DCGMReachable")
    assert dcgm["reason"] == "DCGMNotFound"
    assert "answered without power readings for this node" in dcgm["message"]
    assert cluster.status("h100")["powerSource"] == "TDP"


def test_not_found_when_a_dcgm_url_reports_other_nodes(
    sim: KubeSim, clock: FakeClock, sim_servers: SimServers
) -> None:
    remote = sim_servers.dcgm(gpus=2, node="elsewhere")
    cluster = Cluster(sim, clock, sim_servers, dcgm_urls=(remote.url,))
    try:
        cluster.node("gpu-1")
        cluster.profile("h100", gpu_count=2)
        cluster.step()
        dcgm = cluster.condition("h100", "DCGMReachable")
        assert dcgm["reason"] == "DCGMNotFound"
        assert cluster.status("h100")["gpusReporting"] == 0
    finally:
        cluster.close()


def test_not_found_when_no_node_matches(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.profile("a100", selector={"pool": "a100"}, gpu_count=8)
    cluster.step()
    status = cluster.status("a100")
    assert status["matchedNodes"] == [] and status["matchedGPUs"] == 0
    assert status["amortizationRatePerHour"] == approx(6.0), "all of it pool idle"
    assert status["powerSource"] == "None"
    dcgm = cluster.condition("a100", "DCGMReachable")
    assert dcgm["reason"] == "DCGMNotFound"
    assert "no node matches the nodeSelector" in dcgm["message"]
    ready = cluster.condition("a100", "Ready")
    assert ready["status"] == "True" and "matches no node" in ready["message"]


def test_profiles_owning_no_node_draw_no_power_even_with_tdp(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.exporter("gpu-1", watts=300.0)
    cluster.profile("owner", gpu_count=2, tdp=700.0)
    cluster.clock.advance(1)
    cluster.profile("overlap", gpu_count=2, tdp=700.0)
    cluster.profile("nomatch", selector={"pool": "a100"}, gpu_count=8, tdp=700.0)
    cluster.step()
    assert cluster.status("owner")["currentPowerDrawWatts"] == approx(600.0)
    series = cluster.series()
    for name in ("overlap", "nomatch"):
        status = cluster.status(name)
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


def test_duplicate_exporters_on_one_node_count_each_gpu_once(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    uuids = ["GPU-11111111-2222-4333-8444-555555555555", "GPU-66666666-7777-4888-8999-aaaaaaaaaaaa"]
    for copy in ("a", "b"):
        gpus = [GpuState(index=i, uuid=u, power_watts=200.0) for i, u in enumerate(uuids)]
        cluster.exporter("gpu-1", gpus=gpus, watts=200.0, name=f"dcgm-exporter-{copy}")
    cluster.profile("h100", gpu_count=2)
    cluster.step()
    status = cluster.status("h100")
    assert status["gpusReporting"] == 2
    assert status["currentPowerDrawWatts"] == approx(400.0)
    assert cluster.condition("h100", "DCGMReachable")["reason"] == "DCGMHealthy"
    gpu_series = [k for k in cluster.series() if k[0] == "infercost_gpu_power_watts"]
    assert sorted(dict(k[1])["uuid"] for k in gpu_series) == uuids


def test_an_exporter_outside_the_dcgm_namespaces_is_ignored_counted_and_named_once(
    cluster: Cluster,
) -> None:
    cluster.node("gpu-1")
    uuids = ["GPU-11111111-2222-4333-8444-555555555555", "GPU-66666666-7777-4888-8999-aaaaaaaaaaaa"]
    real = cluster.exporter(
        "gpu-1", gpus=[GpuState(index=i, uuid=u) for i, u in enumerate(uuids)], watts=1300.0
    )
    real.assign(0, NS, "vllm-a")
    # A tenant's pod labelled like an exporter, with the same UUIDs, lower power and a fake
    # holder: it sorts before gpu-operator, so without the namespace check its rows would win.
    fake = cluster.exporter(
        "gpu-1",
        gpus=[GpuState(index=i, uuid=u) for i, u in enumerate(uuids)],
        watts=620.0,
        name="not-an-exporter",
        namespace="aaa",
    )
    fake.assign(0, "aaa", "freeloader")
    fake.assign(1, "aaa", "freeloader")
    cluster.inference("vllm-a", "gpu-1")
    cluster.profile("h100", gpu_count=2)
    for _ in range(3):
        cluster.step()
        cluster.clock.advance(INTERVAL)

    status = cluster.status("h100")
    assert status["currentPowerDrawWatts"] == approx(2600.0)
    assert status["gpusReporting"] == 2 and status["powerSource"] == "DCGM"
    sample = cluster.sampler.latest()
    assert sample is not None
    holders = {h.pod.name: dict(h.shares) for h in sample.holdings()}
    assert holders == {"vllm-a": {uuids[0]: 1.0}}, "no fake holder shifts cost"
    assert (
        cluster.metrics.registry.get_sample_value(
            "infercost_scrape_errors_total",
            {"target_kind": "dcgm", "reason": "untrusted_namespace"},
        )
        == 3
    ), "counted on every sample that ignores it"
    warnings = [m for t, r, m in cluster.events_of("h100") if r == "UntrustedExporter"]
    assert len(warnings) == 1 and "aaa/not-an-exporter" in warnings[0]
    assert "--dcgm-namespaces" in warnings[0]
    assert cluster.sim_event_count("h100", "UntrustedExporter") == 1, "named once"


def test_more_gpus_than_gpu_count_is_said_in_ready(cluster: Cluster) -> None:
    cluster.node("gpu-1", gpus=8)
    cluster.exporter("gpu-1", gpus=8, watts=100.0)
    cluster.profile("h100", gpu_count=4)
    cluster.step()
    ready = cluster.condition("h100", "Ready")
    assert ready["status"] == "True"
    assert "matches 8 GPUs but gpuCount is 4" in ready["message"]
    assert cluster.status("h100")["matchedGPUs"] == 8


# -- MetricsScraped ----------------------------------------------------------------------------


def test_metrics_scraped_false_with_k_of_n_and_the_first_error(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.exporter("gpu-1")
    good = cluster.inference("vllm-a", "gpu-1")
    bad = cluster.inference("vllm-b", "gpu-1")
    loading = cluster.inference("vllm-c", "gpu-1")
    loading.loading()
    bad.set_fault("html")
    good.serve(10, 5)
    cluster.profile("h100")
    cluster.step()
    scraped = cluster.condition("h100", "MetricsScraped")
    assert scraped["status"] == "False"
    assert scraped["message"].startswith("1/3 inference pods failing: pod ml/vllm-b: ")
    assert scraped["message"].endswith("(1 starting)")
    assert cluster.status("h100")["inferencePods"] == 3
    assert ("Warning", "ScrapeFailed") in [(t, r) for t, r, _ in cluster.events_of("h100")]
    assert (
        cluster.metrics.registry.get_sample_value(
            "infercost_scrape_errors_total",
            {"target_kind": "inference", "reason": "not_prometheus_text"},
        )
        == 1
    )
    assert (
        cluster.metrics.registry.get_sample_value(
            "infercost_scrape_errors_total", {"target_kind": "inference", "reason": "refused"}
        )
        is None
    ), "a pod loading its model is not an error"

    bad.set_fault("none")
    loading.ready()
    cluster.clock.advance(INTERVAL)
    cluster.step()
    scraped = cluster.condition("h100", "MetricsScraped")
    assert (scraped["status"], scraped["message"]) == ("True", "3/3 inference pods scraped")
    loading.loading()  # refused after a success: a failure now
    cluster.clock.advance(INTERVAL)
    cluster.step()
    scraped = cluster.condition("h100", "MetricsScraped")
    assert scraped["status"] == "False" and "connection refused" in scraped["message"]


# -- Ready: overlap, invalid spec, stale, spec change ------------------------------------------


def test_overlapping_profiles_older_wins_younger_gets_overlap(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.node("gpu-2", labels={"zone": "b"})
    cluster.exporter("gpu-1")
    cluster.exporter("gpu-2")
    cluster.profile("old")
    cluster.clock.advance(5)
    cluster.profile("young")
    cluster.clock.advance(5)
    cluster.profile("zone-b", selector={"pool": "h100", "zone": "b"})
    cluster.step()

    assert cluster.status("old")["matchedNodes"] == ["gpu-1", "gpu-2"]
    young = cluster.condition("young", "Ready")
    assert (young["status"], young["reason"]) == ("False", "Overlap")
    assert "gpu-1, gpu-2" in young["message"] and "ml/old" in young["message"]
    assert cluster.status("young")["matchedNodes"] == []
    assert cluster.status("young")["matchedGPUs"] == 0
    assert ("Warning", "Overlap") in [(t, r) for t, r, _ in cluster.events_of("young")]
    assert cluster.condition("zone-b", "Ready")["reason"] == "Overlap"

    cluster.rest.delete(COSTPROFILES, "old", NS)
    eventually(lambda: cluster.profiles.store.get("ml/old") is None, what="old deleted")
    cluster.reconcile("ml/old")  # what the delete event enqueues
    cluster.clock.advance(INTERVAL)
    cluster.step()
    assert cluster.condition("young", "Ready")["reason"] == "CostComputed"
    assert cluster.status("young")["matchedNodes"] == ["gpu-1", "gpu-2"]
    series = cluster.series()
    assert not [k for k in series if ("costprofile", "old") in k[1]], "deleted: no series"
    assert [k for k in series if ("costprofile", "young") in k[1]]


def test_overlap_tie_broken_by_namespace_then_name(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    # same creationTimestamp (the fake clock does not move): namespace, then name decide
    cluster.profile("zeta", namespace="aaa")
    cluster.profile("alpha", namespace="bbb")
    cluster.profile("beta", namespace="aaa")
    cluster.step()
    assert cluster.status("beta", "aaa")["matchedNodes"] == ["gpu-1"]
    assert cluster.condition("zeta", "Ready", "aaa")["reason"] == "Overlap"
    overlap = cluster.condition("alpha", "Ready", "bbb")
    assert overlap["reason"] == "Overlap" and "aaa/beta" in overlap["message"]


def test_partial_overlap_names_the_lost_nodes_in_ready(cluster: Cluster) -> None:
    cluster.node("gpu-1", labels={"zone": "a"})
    cluster.node("gpu-2", labels={"zone": "b"})
    cluster.profile("zone-a", selector={"zone": "a"}, gpu_count=2)
    cluster.clock.advance(1)
    cluster.profile("all", gpu_count=4)
    cluster.step()
    ready = cluster.condition("all", "Ready")
    assert ready["status"] == "True"
    assert "gpu-1 also match the older CostProfile ml/zone-a" in ready["message"]
    assert cluster.status("all")["matchedNodes"] == ["gpu-2"]


def test_invalid_spec_names_the_field_and_never_crashes(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.profile("bad", selector={"not a key!": "x"})
    result = cluster.step()["ml/bad"]
    assert isinstance(result, RequeueAfter)
    ready = cluster.condition("bad", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"].startswith("invalid spec: spec.nodeSelector")
    assert "Traceback" not in ready["message"]
    status = cluster.status("bad")
    assert status["observedGeneration"] == 1 and "hourlyCostUSD" not in status
    assert status["lastUpdated"] == "2026-11-27T12:00:00Z"
    assert "last valid spec" not in ready["message"], "it never had one"
    assert ("Warning", "InvalidSpec") in [(t, r) for t, r, _ in cluster.events_of("bad")]
    assert not [k for k in cluster.series() if ("costprofile", "bad") in k[1]]
    # an invalid profile claims no node
    cluster.clock.advance(1)
    cluster.profile("good")
    cluster.step()
    assert cluster.status("good")["matchedNodes"] == ["gpu-1"]
    # fixing it
    cluster.rest.replace(
        COSTPROFILES,
        {
            **cluster.rest.get(COSTPROFILES, "bad", NS),
            "spec": profile_body("bad", selector={"pool": "h100", "zone": "x"})["spec"],
        },
        NS,
    )
    cluster.settle("ml/bad")
    cluster.clock.advance(1)
    cluster.step()
    ready = cluster.condition("bad", "Ready")
    assert ready["reason"] == "CostComputed" and ready["observedGeneration"] == 2


def test_an_invalid_edit_drops_what_the_status_can_no_longer_vouch_for(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.exporter("gpu-1")
    cluster.inference("vllm-a", "gpu-1")
    cluster.profile("h100", gpu_count=2)
    cluster.step()
    assert {c["type"] for c in cluster.status("h100")["conditions"]} == {
        "Ready",
        "DCGMReachable",
        "MetricsScraped",
    }
    cluster.patch_spec("h100", {"nodeSelector": {"bad key!": "x"}})
    cluster.clock.advance(INTERVAL)
    cluster.step()
    status = cluster.status("h100")
    assert [c["type"] for c in status["conditions"]] == ["Ready"], "DCGM and scrape dropped"
    ready = cluster.condition("h100", "Ready")
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


def test_spec_change_updates_observed_generation_and_rates(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.exporter("gpu-1", watts=500.0)
    cluster.profile("h100", gpu_count=2)
    cluster.step()
    assert cluster.status("h100")["electricityCostPerHour"] == approx(0.15)
    before = cluster.status_patches()
    cluster.patch_spec("h100", {"electricity": {"ratePerKWh": 0.20}})
    cluster.step(sample=False)  # the spec is read at once; power from the last sample
    status = cluster.status("h100")
    assert status["observedGeneration"] == 2
    assert status["electricityCostPerHour"] == approx(0.30)
    assert status["hourlyCostUSD"] == approx(6.30)
    assert cluster.condition("h100", "Ready")["observedGeneration"] == 2
    assert cluster.status_patches() == before + 1

    # a new selector waits for a sample of the new nodes before it shows them
    cluster.node("gpu-9", labels={"pool": "other"})
    cluster.patch_spec("h100", {"nodeSelector": {"pool": "other"}})
    result = cluster.step(sample=False)["ml/h100"]
    assert isinstance(result, RequeueAfter)
    assert cluster.status("h100")["observedGeneration"] == 2
    cluster.clock.advance(1)
    cluster.step()
    status = cluster.status("h100")
    assert status["observedGeneration"] == 3 and status["matchedNodes"] == ["gpu-9"]


def test_stale_when_the_collector_stops(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.exporter("gpu-1")
    cluster.profile("h100", gpu_count=2)
    result = cluster.step()["ml/h100"]
    assert cluster.condition("h100", "Ready")["status"] == "True"
    assert isinstance(result, RequeueAfter)
    cluster.clock.advance(3 * INTERVAL - 1)
    cluster.step(sample=False)
    assert cluster.condition("h100", "Ready")["status"] == "True", "within 3 intervals"
    cluster.clock.advance(2)
    cluster.step(sample=False)
    ready = cluster.condition("h100", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Stale")
    assert "2026-11-27T12:00:00Z" in ready["message"]
    assert cluster.status("h100")["hourlyCostUSD"] == approx(6.09), "last figures kept"
    assert ("Warning", "Stale") in [(t, r) for t, r, _ in cluster.events_of("h100")]
    cluster.step()
    assert cluster.condition("h100", "Ready")["reason"] == "CostComputed"


def test_a_cycle_slower_than_one_and_a_half_intervals_never_flaps_ready(
    sim: KubeSim, clock: FakeClock, sim_servers: SimServers
) -> None:
    # Every cycle takes 51 s of a 30 s interval; the sampler starts the next one at once, so a
    # sample completes every 51 s. Just before the next completes, the latest sample started
    # 93 s ago (over 3 intervals) but completed only 42 s ago: its data is current.
    cluster = Cluster(sim, clock, sim_servers, scrape_seconds=1.7 * INTERVAL)
    try:
        cluster.node("gpu-1")
        cluster.exporter("gpu-1")
        cluster.profile("h100", gpu_count=2)
        for _ in range(4):
            cluster.sampler.sample_once()
            cluster.clock.advance(1.4 * INTERVAL)
            result = cluster.step(sample=False)["ml/h100"]
            ready = cluster.condition("h100", "Ready")
            assert (ready["status"], ready["reason"]) == ("True", "CostComputed")
            assert isinstance(result, RequeueAfter)
        assert [r for _, r, _ in cluster.events_of("h100")] == ["CostComputed"]
        assert cluster.status_patches("h100") == 1, "no flap, no write"
        # Three intervals after the last completion it is stale all the same.
        cluster.clock.advance(1.7 * INTERVAL)
        cluster.step(sample=False)
        assert cluster.condition("h100", "Ready")["reason"] == "Stale"
    finally:
        cluster.close()


def test_a_new_profile_without_any_sample_turns_stale(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.profile("h100")
    result = cluster.step(sample=False)["ml/h100"]
    assert isinstance(result, RequeueAfter) and result.seconds <= INTERVAL
    assert cluster.status("h100") == {}, "nothing to say yet"
    cluster.clock.advance(3 * INTERVAL + 1)
    cluster.step(sample=False)
    ready = cluster.condition("h100", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Stale")
    assert "no sample of this profile's nodes" in ready["message"]


def test_profiles_outside_profile_namespaces_are_ignored(
    sim: KubeSim, clock: FakeClock, sim_servers: SimServers
) -> None:
    cluster = Cluster(sim, clock, sim_servers, profile_namespaces=(NS,))
    try:
        cluster.node("gpu-1")
        cluster.profile("elsewhere", namespace="other")
        cluster.clock.advance(1)
        cluster.profile("h100")
        cluster.step()
        cluster.clock.advance(4 * INTERVAL)
        cluster.step()
        assert cluster.status("elsewhere", "other") == {}, "no status is written"
        assert cluster.status("h100")["matchedNodes"] == ["gpu-1"], "it claims no node either"
        assert not [k for k in cluster.series() if ("costprofile", "elsewhere") in k[1]]
    finally:
        cluster.close()


def test_deleted_profile_series_disappear(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.exporter("gpu-1")
    cluster.profile("h100", gpu_count=2)
    cluster.step()
    assert [k for k in cluster.series() if ("costprofile", "h100") in k[1]]
    cluster.rest.delete(COSTPROFILES, "h100", NS)
    eventually(lambda: cluster.profiles.store.get("ml/h100") is None, what="deleted")
    assert cluster.step(sample=False) == {}
    cluster.reconcile("ml/h100")
    assert not [k for k in cluster.series() if ("costprofile", "h100") in k[1]]
    assert (
        cluster.metrics.registry.get_sample_value(
            "infercost_object_last_updated_timestamp_seconds",
            {"kind": "CostProfile", "object": "h100", "object_namespace": NS},
        )
        is None
    )


def test_events_are_not_repeated_while_nothing_changes(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.profile("h100", gpu_count=2)
    for _ in range(4):
        cluster.step()
        cluster.clock.advance(INTERVAL)
    events = cluster.events_of("h100")
    assert sorted(r for _, r, _ in events) == ["CostComputed", "DCGMNotFound"]


def test_an_exporter_pod_that_is_not_running_is_a_scrape_failure(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.pod(make_dcgm_exporter_pod("gpu-1", "127.0.0.1", phase="Pending"))
    cluster.profile("h100", gpu_count=2)
    cluster.step()
    dcgm = cluster.condition("h100", "DCGMReachable")
    assert dcgm["reason"] == "DCGMScrapeFailed"
    assert "gpu-operator/nvidia-dcgm-exporter-gpu-1 is not running" in dcgm["message"]


def test_long_condition_messages_are_clipped_at_a_boundary() -> None:
    problems = "; ".join(
        f"node gpu-{i:03d}: no DCGM exporter found on the node" for i in range(400)
    )
    clipped = clip_message("no GPU power readings: " + problems)
    assert len(clipped) <= 2048 and clipped.endswith("on the node; …")
    assert clip_message("short") == "short"


def test_a_conflicting_write_retries_and_an_api_error_raises(cluster: Cluster) -> None:
    cluster.node("gpu-1")
    cluster.profile("h100", gpu_count=2)
    cluster.sampler.sample_once()
    cluster.sim.faults.conflict("costprofiles", "h100", NS)
    assert cluster.reconcile("ml/h100") == RETRY
    assert cluster.status("h100") == {}, "nothing written over a newer object"
    assert not [(t, r) for t, r, _ in cluster.events_of("h100")], "no Event for a lost write"
    assert isinstance(cluster.reconcile("ml/h100"), RequeueAfter)
    assert cluster.condition("h100", "Ready")["reason"] == "CostComputed"
    cluster.patch_spec("h100", {"hardware": {"gpuCount": 4}})
    cluster.sim.faults.respond("patch", "costprofiles", 500)
    with pytest.raises(ApiError):
        cluster.reconcile("ml/h100")  # the controller retries it through the rate limiter
    cluster.reconcile("ml/h100")
    assert cluster.status("h100")["observedGeneration"] == 2
