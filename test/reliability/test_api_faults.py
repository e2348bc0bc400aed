"""The API server misbehaves (through the emulator's ``/_kubesim/faults``, over HTTP): dropped
watches, 410 storms, 429 and 500 bursts, 409 on writes, latency. The operator process keeps
running, its caches converge (a pod and a report created during the storm are picked up),
every report reaches the ground truth, and its metrics show what happened."""

from __future__ import annotations

import json
import random
import urllib.request
from typing import Any

import pytest
from cluster_rig import TEST_AGENT, Cluster

from infercost.engine.ledger import shard_of
from infercost.testing.kubefixtures import eventually

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def fault(cluster: Cluster, doc: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{cluster.sim.url}/_kubesim/faults",
        data=json.dumps(doc).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200, doc


def clear_faults(cluster: Cluster) -> None:
    request = urllib.request.Request(f"{cluster.sim.url}/_kubesim/faults", method="DELETE")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def served_to_operator(cluster: Cluster, verb: str, resource: str, status: int) -> list[Any]:
    return [
        r
        for r in cluster.sim.requests()
        if r.verb == verb
        and r.resource == resource
        and r.status == status
        and r.user_agent.startswith("infercost/")
        and TEST_AGENT not in r.user_agent
    ]


def serve(cluster: Cluster, rng: random.Random, requests: int = 3) -> None:
    for entry in list(cluster.pods.values()):
        for _ in range(requests):
            entry.server.serve(rng.randint(1, 2000), rng.randint(1, 400))


@pytest.mark.slow
def test_api_faults_are_survived_and_no_update_is_lost(cluster: Cluster) -> None:
    rng = random.Random(13)
    cluster.node("gpu-1", gpus=2, labels={"pool": "a"})
    cluster.exporter("gpu-1", gpus=2)
    cluster.inference_pod("vllm-0", "team-a", "gpu-1", gpu=0)
    cluster.profile("pool-a", {"pool": "a"})
    cluster.report("daily", "pool-a")
    op = cluster.operator("op")
    booked = cluster.wait_booked()
    serve(cluster, rng)

    # watches end three times; the informers re-watch from where they were
    for _ in range(3):
        fault(cluster, {"dropWatches": True})
        serve(cluster, rng)
        booked = cluster.wait_booked(after=booked)

    # a 410 storm: every resourceVersion expires under the open watches, five times running
    for _ in range(5):
        fault(cluster, {"expireResourceVersions": True})
        fault(cluster, {"dropWatches": True})
    # the relists that follow meet 429s first
    fault(cluster, {"respond": {"verb": "list", "resource": "pods", "code": 429, "count": 2}})
    fault(cluster, {"expireResourceVersions": True})
    fault(cluster, {"dropWatches": True})
    # a pod starts during the storm: once the caches converge its whole counter counts
    cluster.inference_pod("vllm-1", "team-b", "gpu-1", gpu=1, started_at=cluster.clock() + 1)
    serve(cluster, rng)
    booked = cluster.wait_booked(after=booked)

    # writes fail: checkpoint updates and status patches answer 500, then 409
    fault(
        cluster, {"respond": {"verb": "update", "resource": "configmaps", "code": 500, "count": 4}}
    )
    fault(
        cluster,
        {"respond": {"verb": "patch", "resource": "usagereports/status", "code": 500, "count": 3}},
    )
    fault(cluster, {"conflict": {"resource": "usagereports", "name": "daily"}})
    shard = f"infercost-ledger-{shard_of('gpu-1', 16)}"
    fault(cluster, {"conflict": {"resource": "configmaps", "name": shard}})
    serve(cluster, rng)
    booked = cluster.wait_booked(after=booked)

    # every request is slow; a report created now still gets its figures
    fault(cluster, {"latencyMs": 150})
    cluster.report("weekly", "pool-a", schedule="weekly")
    serve(cluster, rng)
    cluster.wait_booked(after=booked)
    clear_faults(cluster)

    serve(cluster, rng)
    daily = cluster.wait_tokens("daily")
    weekly = cluster.wait_tokens("weekly")
    truth = cluster.truth()
    for status in (daily, weekly):
        assert {e["namespace"] for e in status["byNamespace"]} == {"team-a", "team-b"}
        assert cluster.condition(status, "Ready")["reason"] == "ReportComputed"
    assert cluster.truth(["team-b"])["input"] > 0 and daily["inputTokens"] == truth["input"]

    # the process survived, healthy, and says what it went through
    assert op.alive()
    assert op.http(op.health_port, "/healthz")[0] == 200
    for resource in (
        "pods",
        "nodes",
        "costprofiles.finops.infercost.ai",
        "usagereports.finops.infercost.ai",
    ):
        assert op.metric("infercost_watch_restarts_total", resource=resource) >= 1, resource
    errors = op.metric("infercost_reconcile_total", controller="usagereport", result="error")
    assert errors >= 1, "the 500s on status writes are reconcile errors"
    # the apiserver saw the faults answered and then the same calls succeed
    assert len(served_to_operator(cluster, "list", "pods", 429)) == 2
    assert served_to_operator(cluster, "list", "pods", 200)
    assert len(served_to_operator(cluster, "update", "configmaps", 500)) == 4
    assert len(served_to_operator(cluster, "update", "configmaps", 409)) >= 1
    assert len(served_to_operator(cluster, "patch", "usagereports.finops.infercost.ai", 500)) == 3
    checkpointed = op.metric("infercost_ledger_last_checkpoint_timestamp_seconds")
    last = eventually(cluster.booked_time, what="the checkpoint")
    assert checkpointed >= last - 5.0
    # nothing crashed: the only failures logged are the failed status writes' ApiErrors, each
    # in one line (the cluster's answer needs no traceback)
    assert "Traceback" not in op.stderr_path.read_text()
    events = op.log_events()
    assert not [e for e in events if "exception" in e]
    failures = {e["error"].split(":")[0] for e in events if e["event"] == "reconcile failed"}
    assert failures == {"ApiError"}
    assert "ledger checkpoint failed; will retry with the next sample" in op.logs()
    restarts = [e for e in events if e.get("event") == "watch restarted"]
    assert {"expired", "HTTP 429"} <= {e.get("reason") for e in restarts}
