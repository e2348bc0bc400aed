"""The sampler: what one sample holds (the data the CostProfile controller and the ledger
read), the "starting" memory per pod, health series, and the loop's timing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from infercost.collect.backends import Role
from infercost.collect.scraping import FAILED, OK, STARTING
from infercost.controllers.sampling import PodCounts, Sample, Sampler, SamplerSettings
from infercost.engine.costmodel import ExporterState
from infercost.kube.clock import FakeClock
from infercost.kube.informer import InformerFactory
from infercost.testing.scenario import (
    COSTPROFILES,
    InProcessLeader,
    Scenario,
    make_pod,
    wait_until,
)

NS = "ml"
H100 = {"pool": "h100"}


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 27, 23, 59, 30, tzinfo=UTC))


def profile(scenario: Scenario, name: str, selector: dict[str, str] | None = None) -> None:
    scenario.costprofile(
        name,
        namespace=NS,
        selector=H100 if selector is None else selector,
        gpu_model="H100",
        gpu_count=8,
        purchase_price_usd=1000,
        rate_per_kwh=0.1,
    )


def test_a_sample_holds_what_the_ledger_books(
    scenario: Scenario, leader: InProcessLeader, fake_clock: FakeClock
) -> None:
    scenario.node("gpu-1", boot_id="boot-a", gpus=2, labels=H100)
    scenario.node("cpu-1", labels={"pool": "cpu"}, gpus=None)
    exporter = scenario.exporter("gpu-1", gpus=2, watts=None)
    exporter.set_power(0, 410.0)
    exporter.set_power(1, 90.0)
    exporter.assign(0, NS, "vllm-0")
    vllm = scenario.inference(
        "vllm-0", node="gpu-1", namespace=NS, models=["llama", "qwen"], engines=2
    )
    vllm.serve(100, 30, model="llama")
    vllm.server.serve(50, 10, model="qwen", engine=1)
    scenario.pod(make_pod("trainer", namespace="research", ip=None, node="gpu-1", gpus=1))
    scenario.inference("on-cpu-node", node="cpu-1", namespace=NS, gpus=0)
    scenario.pod(
        make_pod(
            "misconfigured",
            namespace=NS,
            node="gpu-1",
            annotations={"infercost.ai/backend": "vllm", "infercost.ai/metrics-port": "nope"},
        )
    )
    profile(scenario, "h100")

    sample = leader.sampler.sample_once()
    assert sample.sequence == 1
    kept = leader.sampler.latest()
    assert kept is not None and (kept.sequence, kept.time) == (sample.sequence, sample.time)
    assert any(p.page is not None for p in sample.pods), "listeners get the token readings"
    assert kept.pods == (), "the sample kept until the next keeps only failed pods"
    whole, slim = sample.profile("ml/h100"), kept.profile("ml/h100")
    assert whole is not None and slim is not None
    assert slim.counts == whole.counts == PodCounts(pods=1, starting=0)
    assert [str(p.pod) for p in slim.pod_problems] == ["ml/misconfigured"]
    assert slim.power_readings() == whole.power_readings()
    assert slim.exporter_statuses() == whole.exporter_statuses()
    assert slim.node_gpus() == whole.node_gpus() and slim.membership == whole.membership
    assert sample.holdings() and not kept.holdings(), "the ledger took the holders"
    assert any(r.holders for r in sample.nodes["gpu-1"].readings)
    assert kept.nodes["gpu-1"].readings == (), "of the GPU readings, the power is kept"
    assert [p.watts for p in kept.nodes["gpu-1"].power()] == [410.0, 90.0]
    assert sample.time == datetime(2026, 11, 27, 23, 59, 30, tzinfo=UTC)
    assert sample.monotonic == fake_clock.monotonic()
    assert sample.completed == sample.time
    assert sample.completed_monotonic == fake_clock.monotonic()
    assert list(sample.nodes) == ["gpu-1"], "only nodes a profile owns are sampled"

    state = sample.profiles["ml/h100"]
    assert state.spec is not None and state.spec.hardware.gpu_count == 8
    assert state.invalid is None and state.generation == state.spec_generation == 1
    meta = scenario.rest.get(COSTPROFILES, "h100", NS)["metadata"]
    assert state.uid == meta["uid"]
    assert state.creation_timestamp == datetime(2026, 11, 27, 23, 59, 30, tzinfo=UTC)

    node = sample.nodes["gpu-1"]
    assert node.boot_id == "boot-a" and node.gpu_capacity == 2 and node.uid
    assert node.owner == "ml/h100" and node.gpus == 2
    assert node.exporter is not None and node.exporter.state is ExporterState.ANSWERED
    assert [(g.gpu, g.power_watts) for g in node.readings] == [("0", 410.0), ("1", 90.0)]
    assert node.gpu_ids == tuple(g.uuid for g in node.readings)
    assert all(g.energy_mj is not None and g.energy_mj > 0 for g in node.readings)
    assert node.readings[0].holders[0].pod == "vllm-0"
    holders = {h.pod.name: h for h in node.holdings.holdings}
    assert set(holders) == {"vllm-0"}, "DCGM names the holders of every GPU of the node"
    assert holders["vllm-0"].source == "dcgm" and holders["vllm-0"].inference
    assert dict(holders["vllm-0"].shares) == {node.readings[0].uuid: 1.0}
    assert node.holdings.unheld_uuids == (node.readings[1].uuid,)

    [scrape] = sample.pods
    target = scrape.target
    assert scrape.state == OK and target.pod.name == "vllm-0" and target.node == "gpu-1"
    assert target.pod.uid == vllm.uid, "readings are keyed by pod UID"
    assert target.start_time == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    assert target.phase == "Running" and target.restart_count == 0
    page = scrape.page
    assert page is not None
    engines = {
        (r.model, dict(r.labels).get("engine")) for r in page.readings if Role.INPUT in r.roles
    }
    assert engines == {("llama", "0"), ("llama", "1"), ("qwen", "0"), ("qwen", "1")}
    assert page.totals()[("llama", Role.INPUT)] == 100
    assert page.totals()[("qwen", Role.OUTPUT)] == 10
    assert scenario.truth()[(NS, "vllm-0", "llama")] == {"input": 100, "cached": 0, "output": 30}
    assert [str(p.pod) for p in sample.pod_problems] == ["ml/misconfigured"]

    cached = {p.key: p.uid for p in leader.pods.store.objects()}
    assert sample.pod_uids == frozenset(cached.values()), "every cached pod, on any node"
    assert cached["ml/on-cpu-node"] in sample.pod_uids
    assert sample.node_names == {"gpu-1", "cpu-1"}

    view = sample.profile("ml/h100")
    assert view is not None
    assert view.node_gpus() == {"gpu-1": 2}
    assert [str(p.pod) for p in view.pod_problems] == ["ml/misconfigured"]
    assert {n: [g.watts for g in gs] for n, gs in view.power_readings().items()} == {
        "gpu-1": [410.0, 90.0]
    }
    assert sample.profile("ml/unknown") is None


def test_holders_by_limits_hold_a_share_of_every_gpu_of_the_node(
    scenario: Scenario, leader: InProcessLeader
) -> None:
    # Time-sliced: 8 schedulable nvidia.com/gpu on 4 physical GPUs, no DCGM exporter.
    scenario.node("gpu-1", gpus=4, replicas=2, labels=H100)
    scenario.inference("vllm-0", node="gpu-1", namespace=NS, gpus=1)
    scenario.pod(
        make_pod("queued", namespace="research", ip=None, node="gpu-1", phase="Pending", gpus=2)
    )
    scenario.pod(
        make_pod("finished", namespace="research", node="gpu-1", phase="Succeeded", gpus=4)
    )
    profile(scenario, "h100")
    node = leader.sampler.sample_once().nodes["gpu-1"]
    assert node.gpu_capacity == 8 and node.gpu_replicas == 2 and node.gpus == 4
    ids = ("gpu-1/gpu0", "gpu-1/gpu1", "gpu-1/gpu2", "gpu-1/gpu3")
    assert node.gpu_ids == ids, "GPUs known only by index get stable ids"
    holders = {h.pod.name: h for h in node.holdings.holdings}
    assert set(holders) == {"vllm-0", "queued"}, "Succeeded pods hold nothing"
    # limit ÷ max(node GPUs 4, Σ limits 3) of every GPU
    assert dict(holders["vllm-0"].shares) == dict.fromkeys(ids, 0.25)
    assert dict(holders["queued"].shares) == dict.fromkeys(ids, 0.5)
    assert holders["vllm-0"].inference and holders["vllm-0"].pod.uid
    assert not holders["queued"].inference, "a Pending pod holds GPUs but serves nothing"

    # Oversubscribed (Σ limits 7 > 4 GPUs): limit ÷ Σ limits.
    scenario.pod(make_pod("notebook", namespace="research", ip=None, node="gpu-1", gpus=4))
    node = leader.sampler.sample_once().nodes["gpu-1"]
    shares = {h.pod.name: h.shares["gpu-1/gpu0"] for h in node.holdings.holdings}
    assert shares == {"vllm-0": 1 / 7, "queued": 2 / 7, "notebook": 4 / 7}


def test_an_invalid_edit_keeps_the_last_valid_spec_and_the_nodes(
    scenario: Scenario, leader: InProcessLeader
) -> None:
    scenario.node("gpu-1", labels=H100)
    profile(scenario, "h100")
    profile(scenario, "broken", selector={"not a key!": "x"})
    sample = leader.sampler.sample_once()
    broken = sample.profiles["ml/broken"]
    assert broken.spec is None and broken.spec_generation is None
    assert broken.invalid is not None and "spec.nodeSelector" in broken.invalid
    assert sample.membership.profile("ml/broken") is None, "never valid: claims no node"

    scenario.edit_costprofile(
        "h100", {"nodeSelector": {"not a key!": "x"}, "hardware": {"gpuCount": 2}}, NS
    )
    sample = leader.sampler.sample_once()
    state = sample.profiles["ml/h100"]
    assert state.generation == 2 and state.invalid is not None
    assert "spec.nodeSelector" in state.invalid
    assert state.spec is not None and state.spec.hardware.gpu_count == 8
    assert state.spec_generation == 1
    assert sample.nodes["gpu-1"].owner == "ml/h100", "the last valid selector keeps the node"

    scenario.edit_costprofile(
        "h100", {"nodeSelector": {"not a key!": None}, "hardware": {"gpuCount": 4}}, NS
    )
    state = leader.sampler.sample_once().profiles["ml/h100"]
    assert state.invalid is None and state.spec is not None
    assert state.spec.hardware.gpu_count == 4 and state.spec_generation == 3


def test_restart_count_is_unknown_when_the_serving_container_cannot_be_told(
    scenario: Scenario, leader: InProcessLeader
) -> None:
    scenario.node("gpu-1", labels=H100)
    scenario.inference(
        "two-containers",
        node="gpu-1",
        namespace=NS,
        containers=["server", "proxy"],
        restart_counts={"server": 1, "proxy": 3},
    )
    profile(scenario, "h100")
    [scrape] = leader.sampler.sample_once().pods
    assert scrape.target.container is None and scrape.target.restart_count is None
    assert scrape.target.pod_restarts == 4


def test_without_dcgm_mapping_holders_come_from_gpu_limits(
    scenario: Scenario, leader: InProcessLeader
) -> None:
    scenario.node("gpu-1", gpus=4, labels=H100)
    scenario.exporter("gpu-1", gpus=4, pod_mapping=False)
    scenario.pod(make_pod("notebook", namespace="research", ip=None, node="gpu-1", gpus=2))
    profile(scenario, "h100")
    node = leader.sampler.sample_once().nodes["gpu-1"]
    [holding] = node.holdings.holdings
    assert (holding.pod.name, holding.gpus, holding.source, holding.inference) == (
        "notebook",
        2.0,
        "limits",
        False,
    )
    assert node.gpu_ids == tuple(g.uuid for g in node.readings), "DCGM names the GPUs"
    assert dict(holding.shares) == dict.fromkeys(node.gpu_ids, 0.5)


def test_refusals_mean_starting_until_the_first_success_of_each_container_run(
    scenario: Scenario, leader: InProcessLeader
) -> None:
    scenario.node("gpu-1", labels=H100)
    pod = scenario.inference("sglang-0", node="gpu-1", namespace=NS, backend="sglang", gpus=0)
    pod.server.loading()
    profile(scenario, "h100")

    def state() -> str:
        return leader.sampler.sample_once().pods[0].state

    def kept() -> tuple[PodCounts, list[str]]:
        """What status is computed from until the next sample: counts, failing pods."""
        sample = leader.sampler.latest()
        view = sample.profile("ml/h100") if sample is not None else None
        assert view is not None
        return view.counts, [f"{p.target.pod}: {p.error}" for p in view.pods]

    assert state() == STARTING
    assert kept() == (PodCounts(pods=1, starting=1), [])
    pod.server.ready()
    assert state() == OK
    assert kept() == (PodCounts(pods=1, starting=0), [])
    pod.server.loading()
    assert state() == FAILED, "refused after a success: the server went away"
    counts, failing = kept()
    assert counts == PodCounts(pods=1, starting=0)
    assert len(failing) == 1 and failing[0].startswith("ml/sglang-0: ")
    # the container restarts: loading again is "starting" until it answers
    scenario.restart(pod)
    assert state() == STARTING
    errors = leader.health(
        "infercost_scrape_errors_total", {"target_kind": "inference", "reason": "refused"}
    )
    assert errors == 1, "only the refusal after a success is an error"


def test_dcgm_port_is_the_fallback_for_exporters_without_a_named_port(
    scenario: Scenario, fake_clock: FakeClock
) -> None:
    leader = InProcessLeader(scenario, fake_clock, dcgm_port=9555)
    try:
        scenario.node("gpu-1", labels=H100)
        scenario.exporter("gpu-1", gpus=2, port=9555, port_name=None)
        profile(scenario, "h100")
        node = leader.sampler.sample_once().nodes["gpu-1"]
        assert node.exporter is not None and node.exporter.state is ExporterState.ANSWERED
        assert len(node.readings) == 2
    finally:
        leader.close()


def test_the_loop_wakes_early_on_a_new_profile_and_survives_a_listener_bug(
    scenario: Scenario, fake_clock: FakeClock
) -> None:
    # An interval no test run could reach by accident: a sample with the new profile's node
    # well before it proves the early wake.
    interval = 3600.0
    leader = InProcessLeader(scenario, fake_clock, interval_seconds=interval)
    samples: list[Sample] = []

    def broken(_: Sample) -> None:
        raise RuntimeError("a listener bug")

    leader.sampler.add_listener(broken)
    leader.sampler.add_listener(samples.append)
    try:
        scenario.node("gpu-1", labels=H100)
        started = fake_clock.monotonic()
        leader.sampler.start()
        wait_until(lambda: samples, what="the first sample")
        assert samples[0].membership.owners == {} and samples[0].monotonic == started
        profile(scenario, "h100")

        def owned() -> bool:
            fake_clock.advance(0.5)  # at most one early sample per second
            return any(s.membership.owners for s in samples)

        wait_until(owned, what="the early sample")
        early = next(s for s in samples if s.membership.owners)
        assert early.monotonic - started < interval / 10, "woken by the profile"
        assert leader.sampler.alive()
    finally:
        leader.sampler.stop()
        assert leader.sampler.join(5), "the sampling thread ended"
        leader.close()


def test_the_loop_keeps_its_period(scenario: Scenario, fake_clock: FakeClock) -> None:
    leader = InProcessLeader(scenario, fake_clock, interval_seconds=30.0)
    samples: list[Sample] = []
    leader.sampler.add_listener(samples.append)
    start = fake_clock.monotonic()
    try:
        leader.sampler.start()
        for k in range(1, 5):
            wait_until(lambda k=k: len(samples) >= k, what=f"sample {k}")
            wait_until(lambda: fake_clock.waiters() >= 1, what="the sampler waiting")
            fake_clock.advance(30.0)
        wait_until(lambda: len(samples) >= 5, what="sample 5")
    finally:
        leader.sampler.stop()
        assert leader.sampler.join(5)
        leader.close()
    assert [s.monotonic - start for s in samples] == [0.0, 30.0, 60.0, 90.0, 120.0]
    assert [s.sequence for s in samples] == [1, 2, 3, 4, 5]


def test_the_first_sample_follows_the_caches_sync_with_a_clock_that_never_moves(
    scenario: Scenario, fake_clock: FakeClock
) -> None:
    """Started before its caches have synced, the sampler takes its first sample as soon as
    they have, even though nobody moves its (fake) clock."""
    scenario.node("gpu-1", gpus=2, labels=H100)
    scenario.inference("vllm-0", node="gpu-1", namespace=NS).serve(120, 40)
    profile(scenario, "h100")
    informers = InformerFactory(scenario.rest)
    sampler = Sampler(
        pods=informers.pods(),
        nodes=informers.nodes(),
        profiles=informers.informer(COSTPROFILES),
        settings=SamplerSettings(timeout_seconds=2.0, concurrency=4),
        clock=fake_clock,
    )
    published = threading.Event()
    samples: list[Sample] = []

    def listen(sample: Sample) -> None:
        samples.append(sample)
        published.set()

    sampler.add_listener(listen)
    sampler.start()
    try:
        informers.start()
        assert published.wait(30), "no sample after the caches synced"
        [first] = samples
        assert first.time == fake_clock.now(), "the clock never moved"
        assert list(first.nodes) == ["gpu-1"]
        assert [p.target.pod.name for p in first.pods] == ["vllm-0"]
        assert first.pods[0].state == OK
    finally:
        sampler.stop()
        assert sampler.join(10), "the sampling thread ended"
        informers.stop()
        informers.join(5)


def test_a_sampler_stopped_before_its_caches_sync_ends(
    scenario: Scenario, fake_clock: FakeClock
) -> None:
    informers = InformerFactory(scenario.rest)  # never started: the caches never sync
    sampler = Sampler(
        pods=informers.pods(),
        nodes=informers.nodes(),
        profiles=informers.informer(COSTPROFILES),
        settings=SamplerSettings(),
        clock=fake_clock,
    )
    sampler.start()
    sampler.stop()
    assert sampler.join(10), "the sampling thread ended without a sample"
    assert sampler.latest() is None


def test_builders_make_what_the_api_server_accepts(scenario: Scenario) -> None:
    # The harness's own builders, through the emulator's admission (schema validation).
    report = scenario.usagereport("daily", namespace=NS, profile="h100", namespaces=["ml"])
    budget = scenario.tokenbudget(
        "ml", namespace=NS, scope="ml", monthly_limit_usd=500, thresholds=[(80, "warning")]
    )
    assert report["spec"]["costProfileRef"] == "h100"
    assert budget["spec"]["alertThresholds"] == [{"percent": 80, "severity": "warning"}]
    node = scenario.node("ts-1", gpus=2, replicas=4)
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "8"
    assert node["metadata"]["labels"]["nvidia.com/gpu.replicas"] == "4"
