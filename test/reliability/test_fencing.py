"""The write fence behind the failover tests, on an injected clock: a leader whose last
renewal is older than the renew deadline stops acting as one at once (it may have been frozen
while a standby took the Lease), and the operator's writers then send nothing."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry

from infercost.kube.clock import FakeClock
from infercost.kube.health import HealthMetrics
from infercost.kube.leaderelection import LeaderElector
from infercost.kube.rest import CONFIGMAPS, LEASES, NotLeaderError
from infercost.testing.kubefixtures import KubeEnv, eventually

NS = "infercost-system"


def test_a_leader_past_its_renew_deadline_is_no_leader_from_that_instant(kube: KubeEnv) -> None:
    clock = FakeClock()
    started, stopped = threading.Event(), threading.Event()
    metrics = HealthMetrics(CollectorRegistry())
    elector = LeaderElector(
        kube.new_rest(),
        namespace=NS,
        name="infercost-leader",
        identity="frozen",
        lease_duration=15.0,
        renew_deadline=10.0,
        retry_period=2.0,
        clock=clock,
        metrics=metrics,
        on_started_leading=started.set,
        on_stopped_leading=stopped.set,
    )
    elector.start()
    try:
        assert started.wait(10)
        assert elector.is_leader()
        eventually(lambda: clock.waiters() > 0, what="the elector asleep between renewals")
        renewals = len([r for r in kube.sim.requests() if r.resource.startswith("leases")])
        # the process is frozen for 12 s: no renewal ran, the monotonic clock moved on
        clock.advance(12.0)
        assert not elector.is_leader(), "past the renew deadline the leader must stand down"
        assert stopped.wait(10), "and the election loop reports the lease lost"
        assert not elector.is_leader()
        assert metrics.registry.get_sample_value("infercost_leader") == 0
        later = [r for r in kube.sim.requests() if r.resource.startswith("leases")][renewals:]
        assert [r.verb for r in later if r.verb != "get"] == [], "no renewal after the lapse"
    finally:
        elector.stop()
        elector.join(10)


def test_a_fenced_client_sends_no_write(kube: KubeEnv) -> None:
    leading = [True]
    rest = kube.new_rest(user_agent="fenced")
    rest.may_write = lambda: leading[0]
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}
    rest.create(CONFIGMAPS, cm, NS)
    leading[0] = False
    with pytest.raises(NotLeaderError, match="does not hold the leader Lease"):
        rest.create(CONFIGMAPS, {**cm, "metadata": {"name": "b"}}, NS)
    with pytest.raises(NotLeaderError):
        rest.merge_patch(CONFIGMAPS, "a", {"data": {"k": "w"}}, NS)
    assert rest.get(CONFIGMAPS, "a", NS)["data"] == {"k": "v"}, "reads still work"
    sent = [(r.verb, r.name) for r in kube.sim.requests() if r.user_agent == "fenced"]
    assert sent == [("create", ""), ("get", "a")]
    assert not kube.rest.list(LEASES, NS)["items"]
