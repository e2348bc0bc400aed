"""Targets that fail the ways real servers fail, all at once, each on its own node under its
own CostProfile: timeouts, refusals, 5xx, HTML, JSON, bodies cut short, a 50 MB body, NaN and
negative counters, binary junk, a pod refusing while its model loads, exporters answering 500
or HTML.

Each failure is counted in ``infercost_scrape_errors_total`` by target kind and reason and
named in its profile's ``MetricsScraped`` / ``DCGMReachable`` condition; a failing pod's report
keeps exactly the tokens of its last good scrape (nothing invented); the healthy targets are
unaffected; once the faults clear, every report reaches the ground truth.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import pytest
from cluster_rig import Cluster

from infercost.testing.simservers.httpserver import Fault
from infercost.testing.simservers.servers import SimInferenceServer

_PROMPT = re.compile(rb"^(vllm:prompt_tokens_total\{[^}]*\}) \S+$", re.MULTILINE)


def _with_prompt_counter(server: SimInferenceServer, value: bytes) -> Callable[[], bytes]:
    return lambda: _PROMPT.sub(rb"\1 " + value, server.page())


def _json(server: SimInferenceServer) -> Callable[[], bytes]:
    return lambda: b'{"status": "ok", "metrics": {"prompt_tokens": 12}}\n'


def _truncated(server: SimInferenceServer) -> Callable[[], bytes]:
    return lambda: server.page()[: len(server.page()) // 2].rstrip(b"\n") + b"vllm:gen"


# name → (how to break it, reason counted, words of the MetricsScraped message)
INFERENCE_FAULTS: dict[str, tuple[str, str, str]] = {
    "timeout": ("slow", "timeout", "timeout: no complete answer from"),
    "refused": ("stop", "refused", "connection refused by"),
    "status": ("status", "http_status", "HTTP 503"),
    "html": ("html", "not_prometheus_text", "the body looks like HTML"),
    "json": ("json", "not_prometheus_text", "the body is JSON"),
    "cut": ("disconnect", "other", "closed the connection in the middle of the body"),
    "truncated": ("truncated", "not_prometheus_text", "ends in the middle of a line"),
    "huge": ("huge", "too_large", "is larger than 10485760 bytes"),
    "nan": ("nan", "other", "has the impossible value nan"),
    "negative": ("negative", "other", "has the impossible value -"),
    "garbage": ("garbage", "not_prometheus_text", "binary data"),
}
DCGM_FAULTS: dict[str, tuple[Fault, str, str]] = {
    "dcgm-status": (Fault("status", status=500), "http_status", "HTTP 500"),
    "dcgm-html": (Fault("html"), "not_prometheus_text", "the body looks like HTML"),
}


def _break(server: SimInferenceServer, how: str) -> None:
    if how == "slow":
        server.set_fault("slow", delay_seconds=5.0)
    elif how == "stop":
        server.loading()
    elif how == "status":
        server.set_fault("status", status=503)
    elif how == "huge":
        server.set_fault("huge", size_bytes=50 * 1024 * 1024)
    elif how in ("html", "disconnect", "garbage"):
        server.set_fault(how)
    elif how == "json":
        server.http.render = _json(server)
    elif how == "truncated":
        server.http.render = _truncated(server)
    elif how == "nan":
        server.http.render = _with_prompt_counter(server, b"NaN")
    elif how == "negative":
        server.http.render = _with_prompt_counter(server, b"-42")
    else:
        raise AssertionError(how)


def _mend(server: SimInferenceServer) -> None:
    server.set_fault("none")
    server.http.render = server.page
    server.ready()


def _serve(server: SimInferenceServer, rng: random.Random) -> None:
    for _ in range(3):
        server.serve(rng.randint(1, 2000), rng.randint(1, 400))


@pytest.mark.slow
def test_scrape_faults_are_counted_named_and_invent_no_tokens(cluster: Cluster) -> None:
    rng = random.Random(17)
    names = ["ok", "loading", *INFERENCE_FAULTS, *DCGM_FAULTS]
    servers: dict[str, SimInferenceServer] = {}
    for name in names:
        cluster.node(f"n-{name}", gpus=1, labels={"pool": name})
        if name in ("ok", *DCGM_FAULTS):
            cluster.exporter(f"n-{name}", gpus=1)
        servers[name] = cluster.inference_pod(f"vllm-{name}", f"team-{name}", f"n-{name}")
        cluster.profile(name, {"pool": name}, gpu_count=1)
        cluster.report(name, name)
    servers["loading"].loading()
    op = cluster.operator("op", interval="1s", timeout="800ms")
    cluster.wait_booked()
    for name, server in servers.items():
        if name != "loading":
            _serve(server, rng)
    for name in names:
        if name != "loading":
            cluster.wait_tokens(name, [f"team-{name}"])
    before = {name: cluster.truth([f"team-{name}"]) for name in names}

    # everything breaks at once, then every pod serves more
    for name, (how, _, _) in INFERENCE_FAULTS.items():
        _break(servers[name], how)
    for name, (fault, _, _) in DCGM_FAULTS.items():
        cluster.exporters[f"n-{name}"].http.fault = fault
    for name, server in servers.items():
        if name != "loading":
            _serve(server, rng)

    def condition(profile: str, type_: str) -> dict:
        return cluster.condition(cluster.profile_status(profile), type_)

    for name, (_, _, words) in INFERENCE_FAULTS.items():
        cond = cluster.kube.eventually(
            lambda name=name: (
                (c := condition(name, "MetricsScraped")).get("status") == "False" and c
            ),
            timeout=60,
            what=f"MetricsScraped of {name}",
        )
        assert cond["reason"] == "ScrapeFailed"
        assert cond["message"].startswith(f"1/1 inference pods failing: pod team-{name}/vllm-")
        assert words in cond["message"], cond["message"]
    for name, (_, _, words) in DCGM_FAULTS.items():
        cond = cluster.kube.eventually(
            lambda name=name: (
                (c := condition(name, "DCGMReachable")).get("status") == "False" and c
            ),
            timeout=60,
            what=f"DCGMReachable of {name}",
        )
        assert cond["reason"] == "DCGMScrapeFailed"
        assert words in cond["message"], cond["message"]
        # the exporter's failure does not stop its node's inference pod being read
        cluster.wait_tokens(name, [f"team-{name}"])
        cluster.kube.eventually(
            lambda name=name: condition(name, "MetricsScraped").get("status") == "True",
            timeout=60,
            what=f"MetricsScraped of {name}",
        )
    loading = condition("loading", "MetricsScraped")
    assert (loading["status"], loading["message"]) == (
        "True",
        "0/1 inference pods scraped (1 starting)",
    )

    # the healthy targets are unaffected: their reports follow the ground truth
    cluster.wait_tokens("ok", ["team-ok"])
    cluster.kube.eventually(
        lambda: (
            condition("ok", "MetricsScraped").get("message") == "1/1 inference pods scraped"
            and condition("ok", "DCGMReachable").get("reason") == "DCGMHealthy"
        ),
        timeout=60,
        what="the healthy profile's conditions",
    )
    # a failing pod's report holds what its last good scrape showed: no token invented
    for name in INFERENCE_FAULTS:
        status = cluster.report_status(name)
        assert (status["inputTokens"], status["outputTokens"]) == (
            before[name]["input"],
            before[name]["output"],
        ), name
    for _, reason, _ in INFERENCE_FAULTS.values():
        assert op.metric("infercost_scrape_errors_total", target_kind="inference", reason=reason)
    for _, reason, _ in DCGM_FAULTS.values():
        assert op.metric("infercost_scrape_errors_total", target_kind="dcgm", reason=reason)
    assert op.alive()

    # the faults clear; the loading pod's model is up
    for name in INFERENCE_FAULTS:
        _mend(servers[name])
    for name in DCGM_FAULTS:
        cluster.exporters[f"n-{name}"].http.fault = Fault()
    servers["loading"].ready()
    cluster.kube.eventually(
        lambda: (
            condition("loading", "MetricsScraped").get("message") == "1/1 inference pods scraped"
        ),
        timeout=60,
        what="the loaded pod scraped",
    )
    for server in servers.values():
        _serve(server, rng)
    for name in names:
        cluster.wait_tokens(name, [f"team-{name}"])
    assert "Traceback" not in op.logs()
