"""Inference-pod scrapes: ok/starting/failed per pod, with their token pages and errors."""

from __future__ import annotations

from pathlib import Path

from infercost.collect import errors
from infercost.collect.backends import Role
from infercost.collect.discovery import discover_inference
from infercost.collect.errors import ScrapeError
from infercost.collect.inference import read_pods, token_reader
from infercost.collect.scraping import Scraper, ScrapeResult
from infercost.kube.transforms import transform_pod
from infercost.testing.simservers.httpserver import PageServer
from infercost.testing.simservers.objects import make_pod
from infercost.testing.simservers.servers import LoopbackPool, bind

DATA = Path(__file__).resolve().parents[1] / "data" / "metrics"


def targets():  # type: ignore[no-untyped-def]
    pods = [
        make_pod(
            name,
            ip=f"127.0.8.{i + 1}",
            annotations={"infercost.ai/backend": backend},
            owner=("ReplicaSet", f"{name}-5d8f9c7b6"),
            template_hash="5d8f9c7b6",
        )
        for i, (name, backend) in enumerate(
            [("a-llama", "llamacpp"), ("b-vllm", "vllm"), ("c-new", "vllm"), ("d-bad", "vllm")]
        )
    ]
    return discover_inference([transform_pod(p) for p in pods]).targets


def test_states_pages_and_errors() -> None:
    found = targets()
    refused = ScrapeError("connection refused by x", reason=errors.REFUSED)
    results = [
        ScrapeResult(found[0].scrape_target(), (DATA / "llamacpp.txt").read_bytes(), None, 0.01),
        ScrapeResult(found[1].scrape_target(), (DATA / "vllm-0.11.txt").read_bytes(), None, 0.02),
        ScrapeResult(found[2].scrape_target(), None, refused, 0.001),
        ScrapeResult(found[3].scrape_target(), (DATA / "bad-json.json").read_bytes(), None, 0.01),
    ]
    scrapes = read_pods(found, results, ever_succeeded=lambda uid: uid == found[3].pod.uid)
    assert [s.state for s in scrapes] == ["ok", "ok", "starting", "failed"]
    llama = scrapes[0]
    assert llama.page is not None
    assert llama.model_of(None) == "a-llama"  # the Deployment name, from the ReplicaSet
    assert llama.page.totals()[(None, Role.INPUT)] == 96641 + 18000
    assert scrapes[3].error is not None
    assert scrapes[3].error.reason == errors.NOT_PROMETHEUS_TEXT
    assert str(scrapes[3].error).startswith("pod default/d-bad: not Prometheus text")


# (backend annotation, page): good pages of every format, edge cases, and bodies that must fail
PAGES = [
    ("vllm", "vllm-0.11.txt"),
    ("auto", "vllm-multi-engine.txt"),
    ("llamacpp", "llamacpp.txt"),
    ("auto", "tgi.txt"),
    ("triton", "triton-trtllm.txt"),
    ("vllm", "edge-cases.txt"),
    ("vllm", "edge-cases-crlf.txt"),
    ("vllm", "openmetrics.txt"),
    ("vllm", "bad-truncated.txt"),
    ("vllm", "bad-json.json"),
    ("vllm", "bad-html-error.html"),
    ("llamacpp", "bad-llamacpp-quoted-json.txt"),
    ("auto", "bad-binary.bin"),
    ("sglang", "vllm-0.6.txt"),
]


def test_pages_read_by_the_scrape_workers_give_the_same_scrapes(
    loopback_pool: LoopbackPool,
) -> None:
    """Reading each page in the worker that fetched it (the sampler's way) changes nothing a
    user sees: the same states, token readings with their ``*_created`` values, and errors
    with their reasons, as reading every body after the cycle."""
    servers = [
        bind(loopback_pool, lambda ip, f=f: PageServer(ip, 8000, (DATA / f).read_bytes))
        for _, f in PAGES
    ]
    try:
        found = discover_inference(
            [
                transform_pod(
                    make_pod(
                        f"pod-{i}",
                        ip=server.host,
                        annotations={
                            "infercost.ai/backend": backend,
                            "infercost.ai/metrics-port": "8000",
                        },
                    )
                )
                for i, ((backend, _), server) in enumerate(zip(PAGES, servers, strict=True))
            ]
        ).targets
        scrape_targets = [t.scrape_target() for t in found]
        with Scraper() as scraper:
            as_bodies = scraper.scrape(scrape_targets)
            as_read = scraper.scrape(scrape_targets, {"inference": token_reader(found)})
        assert all(r.body is not None for r in as_bodies)
        assert all(r.body is None for r in as_read)
        before, after = read_pods(found, as_bodies), read_pods(found, as_read)
    finally:
        for server in servers:
            server.stop()
            loopback_pool.release(server.host)
    assert [s.state for s in after] == [s.state for s in before]
    assert [s.page for s in after] == [s.page for s in before]
    assert [(str(s.error), s.error and s.error.reason) for s in after] == [
        (str(s.error), s.error and s.error.reason) for s in before
    ]
    by_page = {PAGES[int(s.target.pod.name.split("-")[1])][1]: s for s in after}
    assert by_page["vllm-0.11.txt"].state == "ok" and by_page["bad-json.json"].state == "failed"
    page = by_page["vllm-0.11.txt"].page
    assert page is not None and page.readings
    assert all(r.created is not None for r in page.readings), "vLLM's *_created values are read"
    reasons = {f: s.error.reason for f, s in by_page.items() if s.error is not None}
    assert reasons["bad-json.json"] == errors.NOT_PROMETHEUS_TEXT
    assert reasons["vllm-0.6.txt"] == errors.MISSING_METRICS
