"""Simulated servers: exact formats, ground truth on an injected clock, resets, faults."""

from __future__ import annotations

import threading

import pytest

from infercost.collect import errors
from infercost.collect.backends import Role, read_tokens
from infercost.collect.dcgm import read_dcgm
from infercost.collect.discovery import discover_exporters, discover_inference
from infercost.collect.scraping import Scraper, ScrapeTarget
from infercost.kube.transforms import transform_pod
from infercost.testing.simservers.fixtures import SimServers
from infercost.testing.simservers.objects import make_dcgm_exporter_pod, make_pod
from infercost.testing.simservers.servers import LoopbackPool, SimClock

BACKEND_OF = {"vllm-v0": "vllm"}


@pytest.fixture(params=["sim_servers", "sim_farm_servers"])
def any_servers(request: pytest.FixtureRequest) -> SimServers:
    """Threaded servers and the asyncio farm behave the same."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def scrape(server: object) -> bytes:
    target = ScrapeTarget("t", server.host, server.port, server.http.paths[0])  # type: ignore[attr-defined]
    with Scraper(timeout_seconds=5) as scraper:
        [result] = scraper.scrape([target])
    assert result.ok, result.error
    assert result.body is not None
    return result.body


def totals(body: bytes, backend: str) -> dict[tuple[str | None, str], float]:
    page = read_tokens(BACKEND_OF.get(backend, backend), body)
    return {(m, r.value): v for (m, r), v in page.totals().items()}


@pytest.mark.parametrize(
    "backend", ["vllm", "vllm-v0", "llamacpp", "sglang", "tgi", "triton", "lmdeploy", "nim"]
)
def test_every_backend_serves_its_counters_over_http(sim_servers: SimServers, backend: str) -> None:
    server = sim_servers.inference(backend, models=["m1"])
    server.serve(1000, 200, cached_tokens=300)
    server.serve(50, 7)
    truth = server.truth()
    assert truth == {("m1", "input"): 1050, ("m1", "cached"): 300, ("m1", "output"): 207}
    got = totals(scrape(server), backend)
    model = None if backend in ("llamacpp", "tgi") else "m1"
    assert got[(model, "input")] == truth[("m1", "input")]
    assert got[(model, "output")] == truth[("m1", "output")]
    if backend in ("vllm", "llamacpp"):
        assert got[(model, "cached")] == 300
    # auto-detection agrees with the configured backend
    assert read_tokens("auto", scrape(server)).backend == BACKEND_OF.get(backend, backend)


def test_rates_follow_the_injected_clock(sim_servers: SimServers, sim_clock: SimClock) -> None:
    server = sim_servers.inference("vllm", models=["a", "b"], engines=2)
    server.set_rate(100.5, 20, cached_per_second=10, model="a", engine=1)
    sim_clock.advance(10)
    truth = server.truth()
    assert truth[("a", "input")] == 1005 and truth[("a", "output")] == 200
    assert truth[("b", "input")] == 0
    page = read_tokens("vllm", scrape(server))
    engine1 = [r for r in page.readings if ("engine", "1") in r.labels and r.model == "a"]
    assert {r.series: r.value for r in engine1}["vllm:prompt_tokens_total"] == 1005
    sim_clock.advance(2)
    assert server.truth()[("a", "input")] == 1206


def test_reset_zeroes_counters_moves_created_and_keeps_truth(
    sim_servers: SimServers, sim_clock: SimClock
) -> None:
    server = sim_servers.inference("vllm", models=["m"])
    server.serve(500, 50)
    before = read_tokens("vllm", scrape(server))
    sim_clock.advance(60)
    server.reset()
    server.serve(10, 1)
    after = read_tokens("vllm", scrape(server))
    assert after.totals()[("m", Role.INPUT)] == 10
    assert {r.created for r in after.readings} != {r.created for r in before.readings}
    assert server.truth()[("m", "input")] == 510
    server.bump_created(5)
    bumped = read_tokens("vllm", scrape(server))
    assert bumped.totals() == after.totals()
    assert bumped.readings[0].created == pytest.approx(after.readings[0].created + 5)  # type: ignore[operator]


def test_loading_refuses_then_serves(any_servers: SimServers) -> None:
    server = any_servers.inference("llamacpp", models=["m"])
    server.loading()
    target = ScrapeTarget("t", server.host, server.port)
    with Scraper() as scraper:
        assert scraper.scrape([target])[0].error.reason == errors.REFUSED  # type: ignore[union-attr]
        server.ready()
        assert scraper.scrape([target])[0].ok


def test_faults_are_switchable(sim_servers: SimServers) -> None:
    server = sim_servers.inference("vllm", models=["m"])
    target = ScrapeTarget("t", server.host, server.port)
    with Scraper(timeout_seconds=2) as scraper:
        server.set_fault("status", status=500)
        assert scraper.scrape([target])[0].error.status == 500  # type: ignore[union-attr]
        server.set_fault("garbage")
        assert scraper.scrape([target])[0].body.startswith(b"\x00\x01")  # type: ignore[union-attr]
        server.set_fault()
        assert scraper.scrape([target])[0].ok
    with pytest.raises(ValueError, match="unknown fault"):
        server.set_fault("explode")


def test_dcgm_energy_integrates_the_power_curve(
    any_servers: SimServers, sim_clock: SimClock
) -> None:
    exporter = any_servers.dcgm(gpus=2, node="gpu-node-7")
    start = exporter.energy_mj(0)
    exporter.set_power(0, 400.0)
    exporter.set_power(1, lambda t: 100.0 + (t % 60))  # a sawtooth
    sim_clock.advance(30)
    assert exporter.energy_mj(0) - start == pytest.approx(400 * 30 * 1000)
    exporter.assign(0, "team-a", "vllm-0")
    gpus = read_dcgm(scrape(exporter)).gpus
    assert gpus[0].power_watts == pytest.approx(400)
    assert gpus[0].holders[0].pod == "vllm-0" and gpus[1].holders == ()
    assert gpus[0].hostname == "gpu-node-7"
    assert gpus[0].energy_mj == int(exporter.energy_mj(0))
    exporter.reset_energy(0)
    assert read_dcgm(scrape(exporter)).gpus[0].energy_mj == 0


def test_dcgm_label_variants(sim_servers: SimServers) -> None:
    lower = sim_servers.dcgm(gpus=1, node="n1", hostname_label="hostname", pod_mapping=False)
    gpu = read_dcgm(scrape(lower)).gpus[0]
    assert gpu.hostname == "n1" and not gpu.pod_mapping


def test_emulated_pods_point_at_simulated_servers_end_to_end(sim_servers: SimServers) -> None:
    vllm = sim_servers.inference("vllm", models=["llama"])
    llama = sim_servers.inference("llamacpp", models=["ignored"])
    exporter = sim_servers.dcgm(gpus=2, node="n1")
    vllm.serve(123, 45)
    llama.serve(67, 8, cached_tokens=7)
    pods = [
        make_pod("vllm-0", ip=vllm.host, node="n1", annotations={"infercost.ai/backend": "vllm"}),
        make_pod(
            "chat-5d8f9c7b6-abcde",
            ip=llama.host,
            node="n1",
            labels={"inference.llmkube.dev/runtime": "llamacpp"},
            owner=("ReplicaSet", "chat-5d8f9c7b6"),
            template_hash="5d8f9c7b6",
        ),
        make_dcgm_exporter_pod("n1", exporter.host),
    ]
    cached = [transform_pod(p) for p in pods]  # discovery reads the informer's compact form
    found = discover_inference(cached, {"n1"})
    exporters = discover_exporters(cached, {"n1"})
    targets = [t.scrape_target() for t in found.targets] + [
        e.scrape_target() for e in exporters.targets
    ]
    with Scraper() as scraper:
        results = scraper.scrape(targets)
    assert all(r.ok for r in results), [r.error for r in results]
    by_pod = {t.pod.name: (t, r) for t, r in zip(found.targets, results, strict=False)}
    target, result = by_pod["chat-5d8f9c7b6-abcde"]
    page = read_tokens(target.backend, result.body)  # type: ignore[arg-type]
    assert page.backend == "llamacpp" and target.model == "chat"
    assert page.totals()[(None, Role.INPUT)] == 67
    target, result = by_pod["vllm-0"]
    assert read_tokens(target.backend, result.body).totals()[("llama", Role.OUTPUT)] == 45  # type: ignore[arg-type]
    assert len(read_dcgm(results[-1].body).gpus) == 2  # type: ignore[arg-type]


def test_loopback_pool_hands_out_distinct_addresses() -> None:
    pool = LoopbackPool(second_octet=200)
    ips = [pool.allocate() for _ in range(600)]
    assert len(set(ips)) == 600
    assert all(ip.startswith("127.200.") for ip in ips)
    pool.release(ips[0])
    with pytest.raises(ValueError):
        LoopbackPool(second_octet=0)


def test_everything_shuts_down_cleanly(loopback_pool: LoopbackPool, sim_clock: SimClock) -> None:
    servers = SimServers(loopback_pool, sim_clock)
    server = servers.inference("vllm")
    slow = servers.inference("tgi", models=["m"])
    slow.set_fault("slow", delay_seconds=30)
    with Scraper(timeout_seconds=0.3) as scraper:
        scraper.scrape(
            [ScrapeTarget("a", server.host, server.port), ScrapeTarget("b", slow.host, slow.port)]
        )
        servers.stop_all()
        result = scraper.scrape([ScrapeTarget("a", server.host, server.port)])[0]
    assert result.error is not None
    assert not [t for t in threading.enumerate() if t.name.startswith("simserver-")]
