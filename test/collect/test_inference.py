"""Inference-pod scrapes: ok/starting/failed per pod and the MetricsScraped summary."""

from __future__ import annotations

from pathlib import Path

from infercost.collect import errors
from infercost.collect.backends import Role
from infercost.collect.discovery import discover_inference
from infercost.collect.errors import ScrapeError
from infercost.collect.inference import read_pods, summarize
from infercost.collect.scraping import ScrapeResult
from infercost.kube.transforms import transform_pod
from infercost.testing.simservers.objects import make_pod

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


def test_states_pages_and_summary() -> None:
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
    summary = summarize(scrapes)
    assert not summary.ok and summary.failing == 1 and summary.starting == 1
    assert summary.message.startswith("1/4 inference pods failing: pod default/d-bad: not Prom")
    assert summary.message.endswith("(1 starting)")


def test_summary_when_all_is_well() -> None:
    assert summarize([]).ok and summarize([]).message == "no inference pods"
    found = targets()[:1]
    ok = ScrapeResult(found[0].scrape_target(), (DATA / "llamacpp.txt").read_bytes(), None, 0.1)
    summary = summarize(read_pods(found, [ok]))
    assert summary.ok and summary.message == "1/1 inference pods scraped"
