"""Informers against the emulator over real HTTP: sync, events, relists, bookmarks, faults."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from infercost.kube.cache import NODE_INDEX
from infercost.kube.controller import Controller
from infercost.kube.health import HealthMetrics
from infercost.kube.informer import Backoff, EventHandler, Informer, InformerFactory
from infercost.kube.rest import CONFIGMAPS, PODS, RestClient
from infercost.kube.transforms import PodInfo, transform_pod
from infercost.testing.kubefixtures import KubeEnv, eventually
from infercost.testing.kubesim import KubeSim

NS = "default"


def pod(name: str, node: str = "node-1", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "vllm/vllm-openai"}]},
    }


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any, Any]] = []
        self.lock = threading.Lock()

    def handler(self) -> EventHandler:
        return EventHandler(
            on_add=lambda o: self._add(("add", None, o)),
            on_update=lambda old, new: self._add(("update", old, new)),
            on_delete=lambda o: self._add(("delete", o, None)),
        )

    def _add(self, event: tuple[str, Any, Any]) -> None:
        with self.lock:
            self.events.append(event)

    def kinds(self, name: str) -> list[str]:
        with self.lock:
            return [k for k, old, new in self.events if (new or old).name == name]


def fast_informer(rest: RestClient, metrics: HealthMetrics | None = None, **kw: Any) -> Informer:
    return Informer(
        rest,
        PODS,
        transform=transform_pod,
        indexers={NODE_INDEX: lambda p: (p.node_name,) if p.node_name else ()},
        metrics=metrics,
        backoff=Backoff(initial=0.01, cap=0.1),
        **kw,
    )


def server_state(rest: RestClient, namespace: str = NS) -> dict[str, PodInfo]:
    """What the cache should hold: every pod on the server, in its cached form."""
    items = rest.list(PODS, namespace)["items"]
    return {f"{namespace}/{i['metadata']['name']}": transform_pod(i) for i in items}


def cache_state(inf: Informer) -> dict[str, PodInfo]:
    return dict(inf.store.items())


def restarts(metrics: HealthMetrics) -> float:
    value = metrics.registry.get_sample_value(
        "infercost_watch_restarts_total", {"resource": "pods"}
    )
    return value or 0.0


@pytest.fixture
def started(kube: KubeEnv):
    informers: list[Informer] = []

    def start(inf: Informer) -> Informer:
        informers.append(inf)
        inf.start()
        assert inf.wait_for_sync(10)
        return inf

    yield start
    for inf in informers:
        inf.stop()
    for inf in informers:
        inf.join(5)


def test_initial_sync_and_add_update_delete(kube: KubeEnv, started) -> None:
    kube.rest.create(PODS, pod("a", app="vllm"), NS)
    kube.rest.create(PODS, pod("b", node="node-2"), NS)
    rec = Recorder()
    inf = fast_informer(kube.rest)
    inf.add_handler(rec.handler())
    started(inf)
    assert inf.has_synced()
    assert sorted(inf.store.list_keys()) == ["default/a", "default/b"]
    assert isinstance(inf.store.get("default/a"), PodInfo)
    assert [p.name for p in inf.store.by_index(NODE_INDEX, "node-2")] == ["b"]
    assert rec.kinds("a") == ["add"]

    kube.rest.merge_patch(PODS, "a", {"metadata": {"labels": {"app": "sglang"}}}, NS)
    eventually(lambda: rec.kinds("a") == ["add", "update"], what="update event")
    _, old, new = rec.events[-1]
    assert old.labels["app"] == "vllm" and new.labels["app"] == "sglang"
    assert inf.store.get("default/a").labels["app"] == "sglang"

    kube.rest.delete(PODS, "b", NS)
    eventually(lambda: rec.kinds("b") == ["add", "delete"], what="delete event")
    assert "default/b" not in inf.store
    assert inf.store.by_index(NODE_INDEX, "node-2") == []


def test_a_change_of_only_what_the_cache_strips_is_no_update(kube: KubeEnv, started) -> None:
    """Handlers hear of changes to what the operator reads; an annotation it does not keep
    (or a new resourceVersion alone) wakes no controller."""
    kube.rest.create(PODS, pod("a", app="vllm"), NS)
    rec = Recorder()
    inf = started(fast_informer(kube.rest))
    inf.add_handler(rec.handler())
    stripped = {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}}
    kube.rest.merge_patch(PODS, "a", stripped, NS)
    kube.rest.merge_patch(PODS, "a", {"metadata": {"labels": {"app": "sglang"}}}, NS)
    # events arrive in order: once the label change is seen, the annotation change was too
    eventually(lambda: rec.kinds("a")[-1:] == ["update"], what="the label change")
    assert rec.kinds("a") == ["add", "update"]
    _, old, new = rec.events[-1]
    assert (old.labels["app"], new.labels["app"]) == ("vllm", "sglang")


def test_late_handler_gets_cached_objects_replayed(kube: KubeEnv, started) -> None:
    kube.rest.create(PODS, pod("a"), NS)
    inf = started(fast_informer(kube.rest))
    rec = Recorder()
    inf.add_handler(rec.handler())
    assert rec.kinds("a") == ["add"]


def test_relist_turns_vanished_objects_into_deletes(kube: KubeEnv, started) -> None:
    metrics = HealthMetrics(CollectorRegistry())
    for name in ("a", "b", "c"):
        kube.rest.create(PODS, pod(name), NS)
    rec = Recorder()
    inf = fast_informer(kube.rest, metrics)
    inf.add_handler(rec.handler())
    started(inf)
    # Every watch fails while two pods disappear and one appears; then history expires, so
    # the informer can only learn about it by listing again.
    kube.sim.faults.respond(verb="watch", resource="pods", code=500, count=10_000)
    kube.sim.faults.drop_watches()
    kube.rest.delete(PODS, "a", NS)
    kube.rest.delete(PODS, "b", NS)
    kube.rest.create(PODS, pod("d"), NS)
    kube.sim.faults.expire_resource_versions()
    kube.sim.faults.clear()
    eventually(lambda: cache_state(inf) == server_state(kube.rest), what="cache convergence")
    assert rec.kinds("a") == ["add", "delete"]
    assert rec.kinds("b") == ["add", "delete"]
    assert rec.kinds("c") == ["add"]
    assert rec.kinds("d") == ["add"]
    # How many watches failed before the history expired depends on scheduling; that the
    # informer had to list again does not: the deletes happened while no watch was open.
    assert restarts(metrics) >= 1
    lists = [r for r in kube.sim.requests() if r.verb == "list" and r.resource == "pods"]
    assert len(lists) >= 2, "a relist must have happened"


def test_bookmarks_advance_the_resource_version(kube: KubeEnv, started) -> None:
    inf = started(fast_informer(kube.rest))
    before = int(inf.resource_version)
    # Changes to another resource move the server's resourceVersion; only bookmarks (sent
    # every second by the emulator here) carry it to the pod watch.
    for i in range(3):
        kube.rest.create(CONFIGMAPS, {"metadata": {"name": f"cm-{i}"}, "data": {}}, NS)
    target = kube.sim.resource_version
    eventually(lambda: int(inf.resource_version) >= target, timeout=10, what="a bookmark")
    assert int(inf.resource_version) > before
    assert len(inf.store) == 0


def test_clean_watch_end_rewatches_from_last_rv_without_listing(kube: KubeEnv, started) -> None:
    metrics = HealthMetrics(CollectorRegistry())
    inf = started(fast_informer(kube.rest, metrics))
    kube.rest.create(PODS, pod("a"), NS)
    eventually(lambda: "default/a" in inf.store)
    kube.sim.faults.drop_watches()
    kube.rest.create(PODS, pod("b"), NS)
    eventually(lambda: "default/b" in inf.store, what="event after the dropped watch")
    inf.stop()
    inf.join(5)  # the request log records a watch when it ends
    lists = [r for r in kube.sim.requests() if r.verb == "list" and r.resource == "pods"]
    assert len(lists) == 1
    assert restarts(metrics) == 0, "a watch ended by the server is not a restart"
    watches = eventually(
        lambda: (
            [r for r in kube.sim.requests() if r.verb == "watch" and r.resource == "pods"][1:]
            and [r for r in kube.sim.requests() if r.verb == "watch" and r.resource == "pods"]
        )
    )
    assert "allowWatchBookmarks=true" in watches[-1].query
    assert "timeoutSeconds=" in watches[-1].query
    timeout = int(watches[-1].query.split("timeoutSeconds=")[1].split("&")[0])
    assert 300 <= timeout <= 600


def test_cut_connection_is_counted_and_recovered(kube: KubeEnv, started) -> None:
    metrics = HealthMetrics(CollectorRegistry())
    inf = started(fast_informer(kube.rest, metrics))
    kube.sim.faults.drop_watches(abrupt=True)
    kube.rest.create(PODS, pod("x"), NS)
    eventually(lambda: "default/x" in inf.store, what="recovery after a cut connection")


def test_410_storm_converges(kube: KubeEnv, started) -> None:
    """Round after round the informer falls behind and its resourceVersion expires."""
    metrics = HealthMetrics(CollectorRegistry())
    inf = started(fast_informer(kube.rest, metrics))
    for round_ in range(5):
        kube.sim.faults.respond(verb="watch", resource="pods", code=500, count=10_000)
        kube.sim.faults.drop_watches()
        kube.rest.create(PODS, pod(f"p{round_}"), NS)
        if round_ % 2:
            kube.rest.delete(PODS, f"p{round_ - 1}", NS)
        kube.sim.faults.expire_resource_versions()
        kube.sim.faults.clear()
    eventually(lambda: cache_state(inf) == server_state(kube.rest), what="convergence")
    # The informer may not have tried a single watch until the last round (a loaded machine):
    # at least that one met an expired resourceVersion and led to a relist.
    assert restarts(metrics) >= 1
    lists = [r for r in kube.sim.requests() if r.verb == "list" and r.resource == "pods"]
    assert len(lists) >= 2, "an expired resourceVersion must lead to a relist"


@pytest.mark.parametrize("code", [429, 500, 503])
def test_list_and_watch_error_bursts(kube: KubeEnv, started, code: int) -> None:
    metrics = HealthMetrics(CollectorRegistry())
    kube.rest.create(PODS, pod("a"), NS)
    kube.sim.faults.respond(verb="list", resource="pods", code=code, count=3)
    inf = started(fast_informer(kube.rest, metrics))
    assert "default/a" in inf.store
    assert restarts(metrics) == 3
    kube.sim.faults.respond(verb="watch", resource="pods", code=code, count=3)
    kube.sim.faults.drop_watches()
    kube.rest.create(PODS, pod("b"), NS)
    eventually(lambda: cache_state(inf) == server_state(kube.rest), what="convergence")
    assert restarts(metrics) >= 6


def test_slow_responses(kube: KubeEnv, started) -> None:
    kube.rest.create(PODS, pod("a"), NS)
    kube.sim.faults.latency_ms(200)
    inf = started(fast_informer(kube.rest))
    kube.rest.create(PODS, pod("b"), NS)
    eventually(lambda: cache_state(inf) == server_state(kube.rest), what="convergence")


def test_read_timeout_rewatches(kube: KubeEnv, started) -> None:
    """A silent connection (no events, no bookmarks within the read timeout) is abandoned."""
    metrics = HealthMetrics(CollectorRegistry())
    kube.sim.faults.latency_ms(0)
    inf = started(fast_informer(kube.rest, metrics, read_timeout=0.3))
    # The emulator sends bookmarks every second, so a 0.3 s read timeout fires between them.
    eventually(lambda: restarts(metrics) >= 1, what="a read-timeout restart")
    kube.rest.create(PODS, pod("late"), NS)
    eventually(lambda: "default/late" in inf.store)


def test_label_selector_limits_the_cache(kube: KubeEnv, started) -> None:
    kube.rest.create(PODS, pod("a", app="vllm"), NS)
    kube.rest.create(PODS, pod("b", app="other"), NS)
    inf = started(fast_informer(kube.rest, label_selector="app=vllm"))
    assert inf.store.list_keys() == ["default/a"]
    kube.rest.create(PODS, pod("c", app="vllm"), NS)
    eventually(lambda: "default/c" in inf.store)
    assert "default/b" not in inf.store


def test_factory_shares_one_informer_per_kind(kube: KubeEnv) -> None:
    factory = InformerFactory(kube.rest)
    assert factory.pods() is factory.pods()
    assert factory.nodes() is factory.nodes()
    assert factory.informer(PODS, label_selector="a=b") is not factory.pods()
    with pytest.raises(ValueError, match="another transform"):
        factory.informer(PODS, transform=lambda o: o)
    factory.start()
    try:
        eventually(factory.has_synced)
        assert factory.alive()
    finally:
        factory.stop()
        factory.join(5)


mutations = st.lists(
    st.tuples(
        st.sampled_from(["create", "update", "delete", "drop", "cut", "expire", "burst"]),
        st.integers(0, 5),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=mutations)
def test_cache_converges_and_every_change_reaches_a_reconcile(ops) -> None:
    # An emulator per example: stopping it ends every connection of the example, including
    # keep-alive ones whose client objects are garbage not yet collected.
    with KubeSim(bookmark_interval=1.0, namespaces=["prop"]) as sim:
        converges_with_every_change_reconciled(sim, ops)


def converges_with_every_change_reconciled(sim: KubeSim, ops) -> None:
    namespace = "prop"
    rest = RestClient(sim.api_client())
    inf = Informer(
        rest,
        PODS,
        namespace=namespace,
        transform=transform_pod,
        backoff=Backoff(initial=0.01, cap=0.05),
    )
    seen: dict[str, PodInfo | None] = {}
    seen_lock = threading.Lock()

    def reconcile(key: str) -> None:
        obj = inf.store.get(key)
        with seen_lock:
            seen[key] = obj

    ctl = Controller("prop", reconcile, primary=inf, workers=2)
    inf.start()
    ctl.start()
    try:
        assert inf.wait_for_sync(10)
        existing: set[str] = set()
        for op, i in ops:
            name = f"p{i}"
            if op == "create" and name not in existing:
                rest.create(
                    PODS,
                    {**pod(name), "metadata": {"name": name, "namespace": namespace}},
                    namespace,
                )
                existing.add(name)
            elif op == "update" and name in existing:
                rest.merge_patch(PODS, name, {"metadata": {"labels": {"v": str(i)}}}, namespace)
            elif op == "delete" and name in existing:
                rest.delete(PODS, name, namespace)
                existing.discard(name)
            elif op == "drop":
                sim.faults.drop_watches()
            elif op == "cut":
                sim.faults.drop_watches(abrupt=True)
            elif op == "expire":
                sim.faults.expire_resource_versions()
            elif op == "burst":
                sim.faults.respond(verb="watch", resource="pods", code=500, count=2)
        want = server_state(rest, namespace)
        eventually(lambda: cache_state(inf) == want, what="cache convergence")

        def reconciled() -> bool:
            with seen_lock:
                current = {k: v for k, v in seen.items() if v is not None}
                gone = [k for k, v in seen.items() if v is None]
            return current == want and all(k not in want for k in gone)

        eventually(reconciled, what="every final state reconciled")
    finally:
        sim.faults.clear()
        ctl.stop()
        inf.stop()
        ctl.join(5)
        inf.join(5)


def test_backoff_numbers() -> None:
    from infercost.kube.clock import FakeClock

    class NoJitter:
        def random(self) -> float:
            return 0.0

    clock = FakeClock()
    backoff = Backoff(clock=clock, rand=NoJitter())  # type: ignore[arg-type]
    delays = [backoff.step() for _ in range(8)]
    assert delays == [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]
    clock.advance(119)
    assert backoff.step() == 30.0, "less than 2 minutes since the last backoff: keep growing"
    clock.advance(120)
    assert backoff.step() == 0.8, "2 minutes without trouble: start over"

    class FullJitter:
        def random(self) -> float:
            return 1.0

    jittered = Backoff(clock=clock, rand=FullJitter())  # type: ignore[arg-type]
    assert jittered.step() == 1.6, "jitter 1.0 adds up to 100 % of the base"


def test_paginated_initial_list(kube: KubeEnv, started) -> None:
    for i in range(7):
        kube.rest.create(PODS, pod(f"p{i}"), NS)
    inf = started(fast_informer(kube.rest, page_size=3))
    assert len(inf.store) == 7
    lists = [r for r in kube.sim.requests() if r.verb == "list" and r.resource == "pods"]
    assert len(lists) == 3
    assert "continue=" in lists[1].query and "limit=3" in lists[1].query
