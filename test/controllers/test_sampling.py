"""The sampler: what one sample holds (the data the CostProfile controller and the ledger
read), the "starting" memory per pod, health series, and the loop's timing."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from infercost.collect.backends import Role
from infercost.collect.scraping import FAILED, OK, STARTING
from infercost.controllers.operator import CUSTOM_RESOURCES
from infercost.controllers.sampling import Sample, Sampler, SamplerSettings
from infercost.engine.costmodel import ExporterState
from infercost.kube.clock import Clock, FakeClock, RealClock
from infercost.kube.health import HealthMetrics
from infercost.kube.informer import InformerFactory
from infercost.kube.rest import NODES, PODS, RestClient
from infercost.testing.kubefixtures import crd_dirs, eventually
from infercost.testing.kubesim import KubeSim
from infercost.testing.simservers.fixtures import SimServers
from infercost.testing.simservers.objects import make_dcgm_exporter_pod, make_node, make_pod

COSTPROFILES = CUSTOM_RESOURCES["CostProfile"]
NS = "ml"


class Env:
    def __init__(self, sim: KubeSim, servers: SimServers, clock: Clock, **settings: Any) -> None:
        self.sim = sim
        self.servers = servers
        self.rest = RestClient(sim.api_client())
        self.informers = InformerFactory(self.rest)
        self.metrics = HealthMetrics(CollectorRegistry())
        options: dict[str, Any] = {"interval_seconds": 30.0, "timeout_seconds": 2.0}
        options.update(settings)
        self.sampler = Sampler(
            pods=self.informers.pods(),
            nodes=self.informers.nodes(),
            profiles=self.informers.informer(COSTPROFILES),
            settings=SamplerSettings(**options),
            clock=clock,
            metrics=self.metrics,
        )
        self.informers.start()
        eventually(self.informers.has_synced, what="caches synced")

    def close(self) -> None:
        self.sampler.stop()
        self.sampler.join(5)
        self.informers.stop()

    def node(self, name: str, labels: dict[str, str] | None = None, **kw: Any) -> None:
        self.rest.create(NODES, make_node(name, labels={"pool": "h100", **(labels or {})}, **kw))
        eventually(lambda: self.informers.nodes().store.get(name) is not None, what=name)

    def pod(self, pod: dict[str, Any]) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        self.sim.create_namespace(ns)
        self.rest.create(PODS, pod, ns)
        rv = self.rest.merge_patch(PODS, name, {"status": pod["status"]}, ns, "status")["metadata"][
            "resourceVersion"
        ]
        store = self.informers.pods().store
        eventually(
            lambda: (p := store.get(f"{ns}/{name}")) is not None and p.resource_version == rv,
            what=f"pod {name}",
        )

    def profile(self, name: str, selector: dict[str, str] | None = None) -> None:
        body = {
            "apiVersion": "finops.infercost.ai/v1alpha1",
            "kind": "CostProfile",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "hardware": {"gpuModel": "H100", "gpuCount": 8, "purchasePriceUSD": 1000},
                "electricity": {"ratePerKWh": 0.1},
                "nodeSelector": {"pool": "h100"} if selector is None else selector,
            },
        }
        self.rest.create(COSTPROFILES, body, NS)
        store = self.informers.informer(COSTPROFILES).store
        eventually(lambda: store.get(f"{NS}/{name}") is not None, what=name)

    def edit_spec(self, name: str, spec: dict[str, Any]) -> None:
        rv = self.rest.merge_patch(COSTPROFILES, name, {"spec": spec}, NS)["metadata"][
            "resourceVersion"
        ]
        store = self.informers.informer(COSTPROFILES).store
        eventually(
            lambda: (p := store.get(f"{NS}/{name}")) and p["metadata"]["resourceVersion"] == rv,
            what=f"{name} edited",
        )


@pytest.fixture
def sim() -> Iterator[KubeSim]:
    with KubeSim(crd_dirs=crd_dirs(), namespaces=(NS,)) as server:
        yield server


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock(datetime(2026, 11, 27, 23, 59, 30, tzinfo=UTC))


@pytest.fixture
def env(sim: KubeSim, sim_servers: SimServers, fake: FakeClock) -> Iterator[Env]:
    e = Env(sim, sim_servers, fake)
    try:
        yield e
    finally:
        e.close()


def test_a_sample_holds_what_the_ledger_books(env: Env, fake: FakeClock) -> None:
    env.node("gpu-1", boot_id="boot-a", gpus=2)
    env.node("cpu-1", labels={"pool": "cpu"}, gpus=None)
    exporter = env.servers.dcgm(gpus=2, node="gpu-1")
    exporter.set_power(0, 410.0)
    exporter.set_power(1, 90.0)
    exporter.assign(0, NS, "vllm-0")
    env.pod(make_dcgm_exporter_pod("gpu-1", exporter.host))
    vllm = env.servers.inference("vllm", models=["llama", "qwen"], engines=2)
    vllm.serve(100, 30, model="llama", engine=0)
    vllm.serve(50, 10, model="qwen", engine=1)
    env.pod(
        make_pod(
            "vllm-0",
            namespace=NS,
            ip=vllm.host,
            node="gpu-1",
            annotations={"infercost.ai/backend": "vllm"},
            gpus=1,
        )
    )
    env.pod(make_pod("trainer", namespace="research", ip=None, node="gpu-1", gpus=1))
    other = env.servers.inference("vllm")
    env.pod(
        make_pod(
            "on-cpu-node",
            namespace=NS,
            ip=other.host,
            node="cpu-1",
            annotations={"infercost.ai/backend": "vllm"},
        )
    )
    env.pod(
        make_pod(
            "misconfigured",
            namespace=NS,
            node="gpu-1",
            annotations={"infercost.ai/backend": "vllm", "infercost.ai/metrics-port": "nope"},
        )
    )
    env.profile("h100")

    sample = env.sampler.sample_once()
    assert env.sampler.latest() is sample and sample.sequence == 1
    assert sample.time == datetime(2026, 11, 27, 23, 59, 30, tzinfo=UTC)
    assert sample.monotonic == fake.monotonic()
    assert sample.completed == sample.time and sample.completed_monotonic == fake.monotonic()
    assert list(sample.nodes) == ["gpu-1"], "only nodes a profile owns are sampled"

    state = sample.profiles["ml/h100"]
    assert state.spec is not None and state.spec.hardware.gpu_count == 8
    assert state.invalid is None and state.generation == state.spec_generation == 1
    meta = env.rest.get(COSTPROFILES, "h100", NS)["metadata"]
    assert state.uid == meta["uid"]
    assert state.creation_timestamp == datetime.fromisoformat(meta["creationTimestamp"])

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
    assert target.pod.uid, "readings are keyed by pod UID"
    assert target.start_time == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    assert target.phase == "Running" and target.restart_count == 0
    page = scrape.page
    assert page is not None
    engines = {
        (r.model, dict(r.labels).get("engine")) for r in page.readings if Role.INPUT in r.roles
    }
    assert engines == {("llama", "0"), ("llama", "1"), ("qwen", "0"), ("qwen", "1")}
    assert page.totals()[("llama", Role.INPUT)] == 100
    assert [str(p.pod) for p in sample.pod_problems] == ["ml/misconfigured"]

    cached = {p.key: p.uid for p in env.informers.pods().store.objects()}
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


def test_holders_by_limits_hold_a_share_of_every_gpu_of_the_node(env: Env) -> None:
    # Time-sliced: 8 schedulable nvidia.com/gpu on 4 physical GPUs, no DCGM exporter.
    env.node("gpu-1", gpus=8, labels={"nvidia.com/gpu.replicas": "2"})
    server = env.servers.inference("vllm")
    env.pod(
        make_pod(
            "vllm-0",
            namespace=NS,
            ip=server.host,
            node="gpu-1",
            annotations={"infercost.ai/backend": "vllm"},
            gpus=1,
        )
    )
    env.pod(
        make_pod("queued", namespace="research", ip=None, node="gpu-1", phase="Pending", gpus=2)
    )
    env.pod(make_pod("finished", namespace="research", node="gpu-1", phase="Succeeded", gpus=4))
    env.profile("h100")
    node = env.sampler.sample_once().nodes["gpu-1"]
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
    env.pod(make_pod("notebook", namespace="research", ip=None, node="gpu-1", gpus=4))
    node = env.sampler.sample_once().nodes["gpu-1"]
    shares = {h.pod.name: h.shares["gpu-1/gpu0"] for h in node.holdings.holdings}
    assert shares == {"vllm-0": 1 / 7, "queued": 2 / 7, "notebook": 4 / 7}


def test_an_invalid_edit_keeps_the_last_valid_spec_and_the_nodes(env: Env) -> None:
    env.node("gpu-1")
    env.profile("h100")
    env.profile("broken", selector={"not a key!": "x"})
    sample = env.sampler.sample_once()
    broken = sample.profiles["ml/broken"]
    assert broken.spec is None and broken.spec_generation is None
    assert broken.invalid is not None and "spec.nodeSelector" in broken.invalid
    assert sample.membership.profile("ml/broken") is None, "never valid: claims no node"

    env.edit_spec("h100", {"nodeSelector": {"not a key!": "x"}, "hardware": {"gpuCount": 2}})
    sample = env.sampler.sample_once()
    state = sample.profiles["ml/h100"]
    assert state.generation == 2 and state.invalid is not None
    assert "spec.nodeSelector" in state.invalid
    assert state.spec is not None and state.spec.hardware.gpu_count == 8
    assert state.spec_generation == 1
    assert sample.nodes["gpu-1"].owner == "ml/h100", "the last valid selector keeps the node"

    env.edit_spec("h100", {"nodeSelector": {"not a key!": None}, "hardware": {"gpuCount": 4}})
    state = env.sampler.sample_once().profiles["ml/h100"]
    assert state.invalid is None and state.spec is not None
    assert state.spec.hardware.gpu_count == 4 and state.spec_generation == 3


def test_restart_count_is_unknown_when_the_serving_container_cannot_be_told(env: Env) -> None:
    env.node("gpu-1")
    server = env.servers.inference("vllm")
    env.pod(
        make_pod(
            "two-containers",
            namespace=NS,
            ip=server.host,
            node="gpu-1",
            annotations={"infercost.ai/backend": "vllm"},
            containers=["server", "proxy"],
            restart_counts={"server": 1, "proxy": 3},
        )
    )
    env.profile("h100")
    [scrape] = env.sampler.sample_once().pods
    assert scrape.target.container is None and scrape.target.restart_count is None
    assert scrape.target.pod_restarts == 4


def test_without_dcgm_mapping_holders_come_from_gpu_limits(env: Env) -> None:
    env.node("gpu-1", gpus=4)
    exporter = env.servers.dcgm(gpus=4, node="gpu-1", pod_mapping=False)
    env.pod(make_dcgm_exporter_pod("gpu-1", exporter.host))
    env.pod(make_pod("notebook", namespace="research", ip=None, node="gpu-1", gpus=2))
    env.profile("h100")
    node = env.sampler.sample_once().nodes["gpu-1"]
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
    env: Env,
) -> None:
    env.node("gpu-1")
    server = env.servers.inference("sglang")
    server.loading()
    pod = make_pod(
        "sglang-0",
        namespace=NS,
        ip=server.host,
        node="gpu-1",
        annotations={"infercost.ai/backend": "sglang"},
    )
    env.pod(pod)
    env.profile("h100")

    def state() -> str:
        return env.sampler.sample_once().pods[0].state

    assert state() == STARTING
    server.ready()
    assert state() == OK
    server.loading()
    assert state() == FAILED, "refused after a success: the server went away"
    # the container restarts: loading again is "starting" until it answers
    env.rest.merge_patch(
        PODS,
        "sglang-0",
        {"status": {"containerStatuses": [{"name": "server", "restartCount": 1}]}},
        NS,
        "status",
    )
    eventually(
        lambda: env.informers.pods().store.get(f"{NS}/sglang-0").restart_count == 1,
        what="restart seen",
    )
    assert state() == STARTING
    errors = env.metrics.registry.get_sample_value(
        "infercost_scrape_errors_total", {"target_kind": "inference", "reason": "refused"}
    )
    assert errors == 1, "only the refusal after a success is an error"


def test_dcgm_port_is_the_fallback_for_exporters_without_a_named_port(
    sim: KubeSim, sim_servers: SimServers, fake: FakeClock
) -> None:
    env = Env(sim, sim_servers, fake, dcgm_port=9555)
    try:
        env.node("gpu-1")
        exporter = env.servers.dcgm(gpus=2, node="gpu-1", port=9555)
        env.pod(make_dcgm_exporter_pod("gpu-1", exporter.host, port_name=None, port=9555))
        env.profile("h100")
        node = env.sampler.sample_once().nodes["gpu-1"]
        assert node.exporter is not None and node.exporter.state is ExporterState.ANSWERED
        assert len(node.readings) == 2
    finally:
        env.close()


def test_the_loop_samples_every_interval_and_wakes_early_on_a_new_profile(
    sim: KubeSim, sim_servers: SimServers
) -> None:
    env = Env(sim, sim_servers, RealClock(), interval_seconds=5.0, timeout_seconds=1.0)
    samples: list[Sample] = []
    seen = threading.Event()

    def listener(sample: Sample) -> None:
        samples.append(sample)
        seen.set()

    def broken(_: Sample) -> None:
        raise RuntimeError("a listener bug")

    env.sampler.add_listener(broken)
    env.sampler.add_listener(listener)
    try:
        env.node("gpu-1")
        env.sampler.start()
        eventually(lambda: samples, timeout=5, what="the first sample")
        assert samples[0].membership.owners == {}
        started = time.monotonic()
        env.profile("h100")
        eventually(
            lambda: any(s.membership.owners for s in samples), timeout=5, what="early sample"
        )
        assert time.monotonic() - started < 4.0, "woken by the new profile, not the interval"
        assert env.sampler.alive()
    finally:
        env.close()
    count = len(samples)
    time.sleep(0.2)
    assert len(samples) == count, "stopped"


def test_the_loop_keeps_its_period(sim: KubeSim, sim_servers: SimServers) -> None:
    env = Env(sim, sim_servers, RealClock(), interval_seconds=0.2, timeout_seconds=0.1)
    times: list[float] = []
    sequences: list[int] = []
    env.sampler.add_listener(lambda s: (times.append(s.monotonic), sequences.append(s.sequence)))
    try:
        env.sampler.start()
        eventually(lambda: len(times) >= 5, timeout=10, what="five samples")
    finally:
        env.close()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.15 <= g <= 1.0 for g in gaps[:4]), gaps
    assert sequences == list(range(1, len(sequences) + 1))
