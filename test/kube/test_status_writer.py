"""Status writes against the emulator: only changes, on SPEC §2's cadence, guarded by RV."""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry

from infercost.api import GROUP, VERSION
from infercost.kube.clock import FakeClock
from infercost.kube.controller import DONE, RETRY, Controller, RequeueAfter
from infercost.kube.health import HealthMetrics
from infercost.kube.informer import Informer
from infercost.kube.rest import Resource
from infercost.kube.status import Change, StatusRules, StatusWriter, WriteOutcome
from infercost.testing.kubefixtures import KubeEnv, eventually

REPORTS = Resource(GROUP, VERSION, "usagereports", "UsageReport", True)
NS = "default"
RULES = StatusRules.default(list_keys={"byNamespace": ("namespace",)})


def report(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "UsageReport",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"costProfileRef": "h100"},
    }


def status_writes(kube: KubeEnv) -> list:
    return [
        r
        for r in kube.sim.requests()
        if r.resource.startswith("usagereports") and r.subresource == "status" and r.verb == "patch"
    ]


class Model:
    """The 'engine' the test controller reads: figures it can change between resyncs."""

    def __init__(self) -> None:
        self.cost = 1.0
        self.tokens = 100
        self.namespaces = ["a"]
        self.lock = threading.Lock()

    def status(self, generation: int) -> dict[str, Any]:
        with self.lock:
            return {
                "period": "2026-11-27",
                "observedGeneration": generation,
                "inputTokens": self.tokens,
                "estimatedCostUSD": self.cost,
                "byNamespace": [
                    {
                        "namespace": ns,
                        "inputTokens": 1,
                        "outputTokens": 1,
                        "estimatedCostUSD": self.cost,
                    }
                    for ns in self.namespaces
                ],
            }


def test_zero_writes_for_unchanged_objects_and_the_write_cadence(kube: KubeEnv) -> None:
    clock = FakeClock()
    metrics = HealthMetrics(CollectorRegistry())
    for name in ("r1", "r2", "r3"):
        kube.rest.create(REPORTS, report(name), NS)
    inf = Informer(kube.rest, REPORTS, clock=clock)
    writer = StatusWriter(kube.rest, REPORTS, RULES, interval_seconds=60, clock=clock)
    model = Model()
    outcomes: list[WriteOutcome] = []

    def reconcile(key: str):
        obj = inf.store.get(key)
        if obj is None:
            return DONE
        result = writer.write(obj, model.status(obj["metadata"].get("generation", 1)))
        outcomes.append(result.outcome)
        if result.outcome is WriteOutcome.CONFLICT:
            return RETRY
        return DONE

    ctl = Controller(
        "reports",
        reconcile,
        primary=inf,
        workers=2,
        resync_seconds=30,
        clock=clock,
        metrics=metrics,
    )

    def reconciles() -> float:
        return sum(
            metrics.registry.get_sample_value(
                "infercost_reconcile_total", {"controller": "reports", "result": r}
            )
            or 0.0
            for r in ("success", "requeue", "error")
        )

    def resync() -> None:
        before = reconciles()
        # Both idle workers and the resync loop wait on the clock; only then is the resync loop
        # sure to be asleep (a worker alone would satisfy "someone waits") and woken by the
        # advance instead of starting a fresh 30 s after it.
        eventually(lambda: clock.waiters() == 3, what="the workers and the resync loop waiting")
        clock.advance(30)
        eventually(lambda: reconciles() >= before + 3, what="a resync's reconciles")

    inf.start()
    ctl.start()
    try:
        eventually(lambda: len(status_writes(kube)) == 3, what="first status writes")
        eventually(
            lambda: all(
                (o.get("status") or {}).get("inputTokens") == 100 for o in inf.store.objects()
            ),
            what="cache has the statuses",
        )
        for _ in range(4):
            resync()
        assert len(status_writes(kube)) == 3, "unchanged objects must never be written again"

        # Money moves by less than 1e-6: not a change at all.
        model.cost = 1.0000004
        resync()
        assert len(status_writes(kube)) == 3
        # Money moves for real, 150 s after the last write: written on this resync.
        model.cost = 1.25
        resync()
        eventually(lambda: len(status_writes(kube)) == 6, what="cadence writes")
        # It moves again 30 s later: deferred until 60 s have passed since that write.
        model.cost = 1.5
        resync()
        assert len(status_writes(kube)) == 6
        assert WriteOutcome.DEFERRED in outcomes
        resync()
        eventually(lambda: len(status_writes(kube)) == 9, what="deferred cadence writes")

        # An integer count changes: written at once, no waiting for the interval.
        model.tokens = 101
        resync()
        eventually(lambda: len(status_writes(kube)) == 12, what="significant writes")
        # A key of byNamespace appears: significant too.
        model.namespaces = ["a", "b"]
        resync()
        eventually(lambda: len(status_writes(kube)) == 15, what="key-set writes")
        for _ in range(2):
            resync()
        assert len(status_writes(kube)) == 15

        # A 409 (stale cache) is retried through the rate limiter and then succeeds.
        model.tokens = 102
        kube.sim.faults.conflict(resource="usagereports", name="r1")
        resync()
        eventually(lambda: WriteOutcome.CONFLICT in outcomes, what="the conflict")
        assert len(status_writes(kube)) == 18
        clock.advance(1)  # the rate limiter's first retry delay (5 ms) passes
        eventually(lambda: len(status_writes(kube)) == 19, what="the retried write")
        assert [r.status for r in status_writes(kube)].count(409) == 1
    finally:
        ctl.stop()
        inf.stop()
        ctl.join(5)
        inf.join(5)
    statuses = {
        o["metadata"]["name"]: o["status"]
        for o in (kube.rest.get(REPORTS, n, NS) for n in ("r1", "r2", "r3"))
    }
    assert all(s["inputTokens"] == 102 and s["estimatedCostUSD"] == 1.5 for s in statuses.values())


def test_write_sends_only_changed_fields_with_a_resource_version_precondition(
    kube: KubeEnv,
) -> None:
    created = kube.rest.create(REPORTS, report("r"), NS)
    metrics = HealthMetrics(CollectorRegistry())
    writer = StatusWriter(kube.rest, REPORTS, RULES, clock=FakeClock(), metrics=metrics)
    first = writer.write(
        created,
        {
            "inputTokens": 1,
            "estimatedCostUSD": 2.0,
            "period": "p",
            "lastUpdated": "2026-11-27T10:00:00Z",
        },
    )
    assert first.outcome is WriteOutcome.WRITTEN and first.change is Change.SIGNIFICANT
    series = {"kind": "UsageReport", "object": "r", "object_namespace": NS}
    assert (
        metrics.registry.get_sample_value("infercost_object_last_updated_timestamp_seconds", series)
        == 1795773600.0
    )
    obj = first.object
    second = writer.write(obj, {"inputTokens": 2, "estimatedCostUSD": 2.0, "period": "p"})
    assert second.outcome is WriteOutcome.WRITTEN
    assert kube.rest.get(REPORTS, "r", NS)["status"] == {
        "inputTokens": 2,
        "estimatedCostUSD": 2.0,
        "period": "p",
    }, "lastUpdated was removed by the patch (null), the rest kept"
    # Writing from the stale first object: the precondition fails with 409, nothing changes.
    stale = writer.write(created, {"inputTokens": 3, "period": "p"})
    assert stale.outcome is WriteOutcome.CONFLICT
    assert kube.rest.get(REPORTS, "r", NS)["status"]["inputTokens"] == 2
    # The same desired status while the cache lags behind our own write: no request at all.
    before = len(status_writes(kube))
    lagging = writer.write(obj, {"inputTokens": 2, "estimatedCostUSD": 2.0, "period": "p"})
    assert lagging.outcome is WriteOutcome.UNCHANGED and len(status_writes(kube)) == before
    kube.rest.delete(REPORTS, "r", NS)
    gone = writer.write(second.object, {"inputTokens": 9})
    assert gone.outcome is WriteOutcome.GONE
    assert (
        metrics.registry.get_sample_value("infercost_object_last_updated_timestamp_seconds", series)
        is None
    ), "a deleted object's series disappears"


def test_requeue_after_result_uses_the_queue_clock() -> None:
    clock = FakeClock()
    calls: list[str] = []
    ctl = Controller(
        "t",
        lambda key: calls.append(key) or RequeueAfter(10),
        clock=clock,
        metrics=HealthMetrics(CollectorRegistry()),
    )
    ctl.process("ns/x")
    assert calls == ["ns/x"] and ctl.queue.waiting() == 1
    clock.advance(10)
    assert ctl.queue.get(timeout=0) == "ns/x"
