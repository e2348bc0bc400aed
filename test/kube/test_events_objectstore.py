"""Event aggregation and the ConfigMap object store, against the emulator."""

from __future__ import annotations

import threading

import pytest

from infercost.kube.clock import FakeClock
from infercost.kube.events import COMBINED_PREFIX, EventRecorder, ObjectRef
from infercost.kube.objectstore import (
    ObjectConflictError,
    ObjectStore,
    ObjectTooLargeError,
)
from infercost.kube.rest import EVENTS, PODS
from infercost.testing.kubefixtures import KubeEnv

REF = ObjectRef("finops.infercost.ai/v1alpha1", "TokenBudget", "team-a", "default", "uid-1")


def events(kube: KubeEnv) -> list[dict]:
    return kube.rest.list(EVENTS, "default")["items"]


def test_repeats_become_one_event_with_count(kube: KubeEnv) -> None:
    clock = FakeClock()
    rec = EventRecorder(kube.rest, host="replica-1", clock=clock)
    assert rec.warning(REF, "AlertsDisabled", "PrometheusRule CRD not installed") is True
    clock.advance(30)
    rec.warning(REF, "AlertsDisabled", "PrometheusRule CRD not installed")
    clock.advance(30)
    rec.warning(REF, "AlertsDisabled", "PrometheusRule CRD not installed")
    rec.normal(REF, "ThresholdCrossed", "80% of the monthly limit used")
    items = events(kube)
    assert len(items) == 2
    warning = next(e for e in items if e["reason"] == "AlertsDisabled")
    assert warning["count"] == 3
    assert warning["type"] == "Warning"
    assert warning["firstTimestamp"] == "2026-11-27T12:00:00Z"
    assert warning["lastTimestamp"] == "2026-11-27T12:01:00Z"
    assert warning["source"] == {"component": "infercost", "host": "replica-1"}
    assert warning["involvedObject"] == {
        "apiVersion": "finops.infercost.ai/v1alpha1",
        "kind": "TokenBudget",
        "name": "team-a",
        "namespace": "default",
        "uid": "uid-1",
    }
    writes = [r for r in kube.sim.requests() if r.resource == "events" and r.verb != "list"]
    assert [r.verb for r in writes] == ["create", "patch", "patch", "create"]


def test_similar_events_are_combined(kube: KubeEnv) -> None:
    rec = EventRecorder(kube.rest, clock=FakeClock(), similar_threshold=3)
    for i in range(8):
        rec.warning(REF, "ScrapeFailed", f"pod p{i} refused the connection")
    items = events(kube)
    combined = [e for e in items if e["message"].startswith(COMBINED_PREFIX)]
    assert len(items) == 4, "three distinct events, then one aggregate event"
    assert len(combined) == 1
    assert combined[0]["count"] == 5
    assert combined[0]["message"] == COMBINED_PREFIX + "pod p7 refused the connection"


def test_spam_filter_drops_bursts_and_refills(kube: KubeEnv) -> None:
    clock = FakeClock()
    rec = EventRecorder(kube.rest, clock=clock, spam_burst=5, spam_refill_seconds=300)
    results = [rec.event(REF, "Warning", "Flapping", f"state {i % 2}") for i in range(8)]
    assert results == [True] * 5 + [False] * 3
    clock.advance(300)
    assert rec.event(REF, "Warning", "Flapping", "state 0") is True


def test_expired_event_is_created_again(kube: KubeEnv) -> None:
    rec = EventRecorder(kube.rest, clock=FakeClock())
    rec.normal(REF, "Computed", "ok")
    (first,) = events(kube)
    kube.rest.delete(EVENTS, first["metadata"]["name"], "default")  # the event TTL passed
    rec.normal(REF, "Computed", "ok")
    (second,) = events(kube)
    assert second["count"] == 1 and second["metadata"]["name"] != first["metadata"]["name"]


def test_event_failures_never_raise(kube: KubeEnv) -> None:
    rec = EventRecorder(kube.rest, clock=FakeClock())
    kube.sim.faults.respond(verb="create", resource="events", code=500, count=1)
    assert rec.normal(REF, "Computed", "ok") is False
    with pytest.raises(ValueError, match="event type"):
        rec.event(REF, "Info", "X", "y")
    ref = ObjectRef.of({"metadata": {"name": "p", "namespace": "n", "uid": "u"}}, PODS)
    assert ref == ObjectRef("v1", "Pod", "p", "n", "u")


def test_object_store_round_trip_and_conflicts(kube: KubeEnv) -> None:
    store = ObjectStore(kube.rest, "infercost-system", {"app.kubernetes.io/part-of": "infercost"})
    created = store.put(
        "infercost-ledger-0",
        {"state": b"\x00\x01binary\xff", "meta.json": b'{"v": 1}'},
        resource_version=None,
        extra_labels={"infercost.ai/shard": "0"},
    )
    assert created.resource_version
    raw = kube.rest.get(*_cm("infercost-ledger-0"))
    assert raw["data"] == {"meta.json": '{"v": 1}'}
    assert "state" in raw["binaryData"]
    kube.rest.create(
        *_cm_create("unrelated", {"data": {"x": "y"}}),
    )
    listed = store.list()
    assert list(listed) == ["infercost-ledger-0"]
    assert listed["infercost-ledger-0"].entries == {
        "state": b"\x00\x01binary\xff",
        "meta.json": b'{"v": 1}',
    }
    assert listed["infercost-ledger-0"].labels["infercost.ai/shard"] == "0"

    updated = store.put(
        "infercost-ledger-0", {"state": b"v2"}, resource_version=created.resource_version
    )
    assert store.get("infercost-ledger-0").entries == {"state": b"v2"}, "replaced whole"
    # A second writer still holding the old resourceVersion must fail, not merge.
    with pytest.raises(ObjectConflictError, match="infercost-system/infercost-ledger-0"):
        store.put(
            "infercost-ledger-0", {"state": b"stale"}, resource_version=created.resource_version
        )
    with pytest.raises(ObjectConflictError):
        store.put("infercost-ledger-0", {"state": b"dup"}, resource_version=None)
    kube.sim.faults.conflict(resource="configmaps", name="infercost-ledger-0")
    with pytest.raises(ObjectConflictError):
        store.put("infercost-ledger-0", {"state": b"v3"}, resource_version=updated.resource_version)
    assert store.get("infercost-ledger-0").entries == {"state": b"v2"}
    store.delete("infercost-ledger-0")
    store.delete("infercost-ledger-0")
    assert store.get("infercost-ledger-0") is None


def test_object_store_refuses_objects_over_1mib(kube: KubeEnv) -> None:
    store = ObjectStore(kube.rest, "infercost-system", {"app": "infercost"})
    with pytest.raises(ObjectTooLargeError, match=r"infercost-system/big would be \d+ bytes"):
        store.put("big", {"state": b"x" * (1024 * 1024)}, resource_version=None)
    assert not [r for r in kube.sim.requests() if r.resource == "configmaps"]


def _cm(name: str):
    from infercost.kube.rest import CONFIGMAPS

    return CONFIGMAPS, name, "infercost-system"


def _cm_create(name: str, extra: dict):
    from infercost.kube.rest import CONFIGMAPS

    return CONFIGMAPS, {"metadata": {"name": name}, **extra}, "infercost-system"


def test_concurrent_repeats_make_one_event_and_lose_no_count(kube: KubeEnv) -> None:
    """Reconcile workers report the same condition at once: every report is counted, on one
    Event (no second Event from a race on the first, no increment lost between read and
    patch)."""
    rec = EventRecorder(kube.rest, clock=FakeClock(), spam_burst=1000)
    kube.sim.faults.latency_ms(10)  # every API call takes a while, as over a real network
    callers, repeats = 8, 5
    start = threading.Barrier(callers)
    results: list[bool] = []

    def report() -> None:
        start.wait()
        for _ in range(repeats):
            results.append(rec.warning(REF, "ScrapeFailed", "exporter on gpu-1 timed out"))

    threads = [threading.Thread(target=report) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    kube.sim.faults.clear()
    assert results == [True] * callers * repeats
    [event] = events(kube)
    assert event["count"] == callers * repeats
