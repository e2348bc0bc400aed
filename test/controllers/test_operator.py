"""The operator process wiring, in-process against the emulator."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

import attrs
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from infercost.controllers.config import OperatorConfig
from infercost.controllers.operator import ComponentSpec, Operator, OperatorContext
from infercost.kube.rest import LEASES
from infercost.testing.kubefixtures import KubeEnv, eventually


class FakeComponent:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log
        self.running = threading.Event()

    def start(self) -> None:
        self.log.append(f"start {self.name}")
        self.running.set()

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        self.running.clear()

    def join(self, timeout: float | None = None) -> bool:
        return not self.running.is_set()

    def alive(self) -> bool:
        return True


class CostSeries:
    def collect(self):
        g = GaugeMetricFamily("infercost_budget_limit_usd", "limit", labels=["budget"])
        g.add_metric(["team-a"], 100.0)
        yield g


def config(kube: KubeEnv, **kw) -> OperatorConfig:
    base = OperatorConfig(
        kubeconfig=kube.sim.kubeconfig,
        metrics_bind=("127.0.0.1", 0),
        health_bind=("127.0.0.1", 0),
        lease_duration=1.5,
        renew_deadline=1.0,
        retry_period=0.2,
    )
    return attrs.evolve(base, **kw)


def get(addr: tuple[str, int], path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{addr[0]}:{addr[1]}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def make(kube: KubeEnv, log: list[str], name: str, **kw) -> Operator:
    def writer(ctx: OperatorContext) -> FakeComponent:
        ctx.add_shutdown_hook("checkpoint", lambda: log.append(f"hook {name}"))
        ctx.register_collector(CostSeries(), leader_only=True)
        return FakeComponent(f"writer-{name}", log)

    specs = [
        ComponentSpec("writer", writer, leader_only=True),
        ComponentSpec("watcher", lambda ctx: FakeComponent(f"watcher-{name}", log), False),
    ]
    return Operator(
        config(kube, **kw), registry=CollectorRegistry(), components=specs, identity=name
    )


def lease(kube: KubeEnv) -> dict:
    return kube.rest.get(LEASES, "infercost-leader", "infercost-system")["spec"]


def test_leader_runs_writers_standby_is_ready_and_takes_over_on_release(kube: KubeEnv) -> None:
    log: list[str] = []
    a = make(kube, log, "a")
    a.start()
    eventually(a.is_leader, what="a leads")
    eventually(lambda: "start writer-a" in log, what="a starts its writers")
    b = make(kube, log, "b")
    b.start()
    try:
        addr_a, addr_b = a.addresses[0], b.addresses[0]
        eventually(lambda: get(addr_a, "/readyz")[0] == 200, what="a ready")
        eventually(lambda: get(addr_b, "/readyz")[0] == 200, what="standby ready too")
        assert get(addr_b, "/healthz")[0] == 200
        assert "start writer-a" in log and "start writer-b" not in log
        assert "start watcher-a" in log and "start watcher-b" in log
        status, metrics_a = get(addr_a, "/metrics")
        assert status == 200
        assert "infercost_leader 1.0" in metrics_a
        assert 'infercost_budget_limit_usd{budget="team-a"} 100.0' in metrics_a
        _, metrics_b = get(addr_b, "/metrics")
        assert "infercost_leader 0.0" in metrics_b
        assert "infercost_budget_limit_usd" not in metrics_b, "CR series only on the leader"
        assert (
            "infercost_watch_restarts_total" in metrics_b or "# HELP infercost_watch" in metrics_b
        )

        assert a.shutdown() == 0
        assert log.index("stop writer-a") < log.index("hook a"), "hooks run after the writers"
        eventually(b.is_leader, timeout=3, what="b takes over after the release")
        # Leader-only components start on the elector's callback, just after the flag flips.
        eventually(lambda: "start writer-b" in log, timeout=3, what="b starts its writers")
        assert lease(kube)["holderIdentity"] == "b"
    finally:
        b.request_stop()
        assert b.shutdown() == 0
    assert lease(kube)["holderIdentity"] == ""
    assert "hook b" in log


def test_losing_the_lease_exits_nonzero_without_hooks(kube: KubeEnv) -> None:
    log: list[str] = []
    op = make(kube, log, "a")
    op.start()
    eventually(op.is_leader)
    kube.sim.faults.respond(verb="get", resource="leases", code=503, count=100_000)
    assert op.wait(10), "losing the lease must stop the operator"
    kube.sim.faults.clear()
    assert op.shutdown() == 1
    assert "hook a" not in log


def test_without_leader_election_it_leads_at_once(kube: KubeEnv) -> None:
    log: list[str] = []
    op = make(kube, log, "solo", leader_elect=False)
    op.start()
    try:
        assert op.is_leader() and "start writer-solo" in log
        assert not [r for r in kube.sim.requests() if r.resource.startswith("leases")]
    finally:
        assert op.shutdown() == 0
    assert "hook solo" in log


def test_registering_after_start_is_refused(kube: KubeEnv) -> None:
    op = make(kube, [], "x", leader_elect=False)
    op.start()
    try:
        with pytest.raises(RuntimeError, match="before the operator starts"):
            op.register(ComponentSpec("late", lambda ctx: FakeComponent("late", [])))
    finally:
        op.shutdown()


def test_clock_offset_shifts_the_operators_now(kube: KubeEnv) -> None:
    import time as _time

    op = Operator(config(kube, clock_offset=-120.0), registry=CollectorRegistry(), components=[])
    before, shifted, after = _time.time(), op.clock.time(), _time.time()
    assert before - 120 <= shifted <= after - 120


def test_context_helpers(kube: KubeEnv) -> None:
    seen: dict = {}

    def build(ctx: OperatorContext) -> FakeComponent:
        seen["informer"] = ctx.custom_informer("CostProfile")
        seen["same"] = ctx.custom_informer("CostProfile") is seen["informer"]
        seen["writer"] = ctx.status_writer("UsageReport")
        seen["ref"] = ctx.object_ref("TokenBudget", {"metadata": {"name": "b", "namespace": "n"}})
        return FakeComponent("x", [])

    op = Operator(
        config(kube, leader_elect=False, status_interval=45.0),
        registry=CollectorRegistry(),
        components=[ComponentSpec("x", build)],
    )
    op.start()
    try:
        assert seen["same"] and seen["informer"].resource.plural == "costprofiles"
        assert seen["writer"].interval_seconds == 45.0
        assert seen["writer"].resource.kind == "UsageReport"
        assert seen["ref"].kind == "TokenBudget" and seen["ref"].api_version.startswith(
            "finops.infercost.ai/"
        )
    finally:
        op.shutdown()
