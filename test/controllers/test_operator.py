"""The operator process wiring, in-process against the emulator."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

import attrs
import pytest
import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from infercost.controllers.config import OperatorConfig
from infercost.controllers.operator import ComponentSpec, Operator, OperatorContext
from infercost.kube.client import StartupError, StartupRetry
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


class NoForcedExit(Operator):
    """An operator whose shutdown watchdog records instead of ending the test process."""

    forced = False

    def _force_exit(self) -> None:
        self.forced = True


def make(kube: KubeEnv, log: list[str], name: str, **kw) -> Operator:
    def writer(ctx: OperatorContext) -> FakeComponent:
        ctx.add_shutdown_hook("checkpoint", lambda: log.append(f"hook {name}"))
        ctx.register_collector(CostSeries(), leader_only=True)
        return FakeComponent(f"writer-{name}", log)

    specs = [
        ComponentSpec("writer", writer, leader_only=True),
        ComponentSpec("watcher", lambda ctx: FakeComponent(f"watcher-{name}", log), False),
    ]
    return NoForcedExit(
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
    assert abs(op.clock.time() - (_time.time() - 120)) < 1


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


def test_a_slow_lease_release_may_use_the_rest_of_the_budget(kube: KubeEnv) -> None:
    """The release is not cut short by a fixed cap: with the API answering slowly it still
    completes inside the 10 s budget, and a standby need not wait for the lease to expire."""
    log: list[str] = []
    op = make(kube, log, "a", lease_duration=15.0, renew_deadline=10.0, retry_period=2.0)
    op.start()
    eventually(op.is_leader, what="a leads")
    kube.sim.faults.latency_ms(2000)  # the release's GET and PUT take 4 s together
    with structlog.testing.capture_logs() as logs:
        assert op.shutdown() == 0
    kube.sim.faults.clear()
    assert lease(kube)["holderIdentity"] == "", "released before shutdown() returned"
    events = [e["event"] for e in logs]
    assert "leader lease released" in events
    assert not [e for e in events if "abandoned" in e]
    assert not op.forced


def test_an_abandoned_lease_release_is_logged(kube: KubeEnv) -> None:
    log: list[str] = []
    op = make(
        kube,
        log,
        "a",
        lease_duration=15.0,
        renew_deadline=10.0,
        retry_period=2.0,
        shutdown_timeout=2.0,
    )
    op.start()
    eventually(op.is_leader, what="a leads")
    kube.sim.faults.latency_ms(3000)  # longer than the whole 2 s budget
    try:
        with structlog.testing.capture_logs() as logs:
            assert op.shutdown() == 0
    finally:
        kube.sim.faults.clear()
        assert op.elector is not None
        op.elector.join(30)  # the release in flight ends; no thread outlives the test
    abandoned = [e for e in logs if e["event"].startswith("leader lease release abandoned")]
    assert len(abandoned) == 1 and abandoned[0]["log_level"] == "error"
    assert abandoned[0]["lease"] == "infercost-system/infercost-leader"
    assert "hook a" in log, "the checkpoint ran before the release was attempted"


def test_a_transient_api_error_during_the_start_up_checks_is_retried(kube: KubeEnv) -> None:
    delays: list[float] = []
    op = NoForcedExit(
        config(kube, leader_elect=False),
        registry=CollectorRegistry(),
        components=[],
        startup_retry=StartupRetry(sleep=delays.append),
    )
    kube.sim.faults.respond(verb="list", resource="nodes", code=503, count=1)
    kube.sim.faults.respond(verb="list", resource="pods", code=429, count=1)
    op.start()
    try:
        eventually(lambda: op.ready()[0], what="caches synced")
    finally:
        op.shutdown()
    assert len(delays) == 2, "each transient error cost one backoff, not the start"


def test_a_missing_operator_namespace_stops_the_start(kube: KubeEnv) -> None:
    op = NoForcedExit(
        config(kube, namespace="infercost"), registry=CollectorRegistry(), components=[]
    )
    with pytest.raises(StartupError, match="the operator namespace infercost does not exist"):
        op.start()
    assert op.informers is None, "nothing was started"


def test_a_standby_that_cannot_read_the_lease_is_not_ready(kube: KubeEnv) -> None:
    kube.rest.create(
        LEASES,
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "infercost-leader", "namespace": "infercost-system"},
            "spec": {"holderIdentity": "elsewhere", "leaseDurationSeconds": 3600},
        },
        "infercost-system",
    )
    op = make(kube, [], "standby")
    op.start()
    try:
        eventually(lambda: op.ready()[0], what="a standby that reads the Lease is ready")
        assert not op.is_leader()
        kube.sim.faults.respond(verb="get", resource="leases", code=503, count=1_000_000)
        ready = eventually(
            lambda: (r := op.ready()) and not r[0] and r, what="not ready without the Lease"
        )
        assert ready[1] == "cannot read the leader Lease infercost-system/infercost-leader"
        kube.sim.faults.clear()
        eventually(lambda: op.ready()[0], what="ready again once the Lease reads")
    finally:
        kube.sim.faults.clear()
        op.shutdown()
