"""Two electors on one Lease in the emulator: one leads, handover on release and on silence."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from infercost.kube.health import HealthMetrics
from infercost.kube.leaderelection import LeaderElector, default_identity
from infercost.kube.rest import LEASES, RestClient
from infercost.testing.kubefixtures import KubeEnv, eventually

NS = "infercost-system"


class Candidate:
    def __init__(self, rest: RestClient, name: str, **kw) -> None:
        self.metrics = HealthMetrics(CollectorRegistry())
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.elector = LeaderElector(
            rest,
            namespace=NS,
            name="infercost-leader",
            identity=name,
            lease_duration=1.5,
            renew_deadline=1.0,
            retry_period=0.2,
            metrics=self.metrics,
            on_started_leading=self.started.set,
            on_stopped_leading=self.stopped.set,
            **kw,
        )

    def gauge(self) -> float:
        return self.metrics.registry.get_sample_value("infercost_leader")


def lease(kube: KubeEnv) -> dict:
    return kube.rest.get(LEASES, "infercost-leader", NS)["spec"]


def test_validation_mirrors_client_go() -> None:
    with pytest.raises(ValueError, match="lease duration"):
        LeaderElector(None, namespace=NS, name="l", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match=r"1\.2"):
        LeaderElector(None, namespace=NS, name="l", renew_deadline=2.0, retry_period=2.0)
    host, _, uid = default_identity().rpartition("_")
    assert host and len(uid) == 36


def test_one_leader_then_clean_release_hands_over_at_once(kube: KubeEnv) -> None:
    a = Candidate(kube.new_rest(), "a")
    a.elector.start()
    assert a.started.wait(5)
    b = Candidate(kube.new_rest(), "b")
    b.elector.start()
    try:
        assert a.elector.is_leader() and a.gauge() == 1
        spec = lease(kube)
        assert spec["holderIdentity"] == "a" and spec["leaseDurationSeconds"] == 2
        time.sleep(0.6)  # several retry periods: b must stay a standby while a renews
        assert not b.started.is_set() and b.gauge() == 0
        assert b.elector.leader == "a"
        renew_before = lease(kube)["renewTime"]
        eventually(lambda: lease(kube)["renewTime"] != renew_before, what="a renewal")

        released_at = time.monotonic()
        a.elector.stop()
        a.elector.join(5)
        assert a.stopped.is_set() and a.gauge() == 0 and not a.elector.is_leader()
        assert b.started.wait(5)
        # Well under the 1.5 s lease: the release let b in at its next retry.
        assert time.monotonic() - released_at < 1.2
        spec = lease(kube)
        assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    finally:
        b.elector.stop()
        b.elector.join(5)
    assert lease(kube)["holderIdentity"] == "", "clean stop releases the Lease"


def test_vanished_holder_is_replaced_after_the_lease_expires(kube: KubeEnv) -> None:
    a = Candidate(kube.new_rest(), "a", release_on_stop=False)
    a.elector.start()
    assert a.started.wait(5)
    b = Candidate(kube.new_rest(), "b")
    b.elector.start()
    try:
        time.sleep(0.3)
        # a "crashes": it stops renewing and does not release.
        a.elector.stop()
        a.elector.join(5)
        assert lease(kube)["holderIdentity"] == "a"
        vanished_at = time.monotonic()
        assert b.started.wait(5)
        waited = time.monotonic() - vanished_at
        assert waited >= 1.0, "b must wait for the lease to expire on its own clock"
        assert lease(kube)["holderIdentity"] == "b"
    finally:
        b.elector.stop()
        b.elector.join(5)


def test_leader_that_cannot_renew_steps_down(kube: KubeEnv) -> None:
    a = Candidate(kube.new_rest(), "a")
    a.elector.start()
    assert a.started.wait(5)
    # Every lease read fails from now on; past the renew deadline a must give up.
    kube.sim.faults.respond(verb="get", resource="leases", code=503, count=10_000)
    try:
        assert a.stopped.wait(5)
        assert not a.elector.is_leader() and a.gauge() == 0
    finally:
        kube.sim.faults.clear()
        a.elector.stop()
        a.elector.join(5)


def test_conflicting_write_loses_the_race(kube: KubeEnv) -> None:
    a = Candidate(kube.new_rest(), "a")
    assert a.elector._try_acquire_or_renew() is True  # creates the Lease
    kube.sim.faults.conflict(resource="leases", name="infercost-leader")
    assert a.elector._try_acquire_or_renew() is False, "a 409 on the guarded PUT is a lost race"
    assert a.elector._try_acquire_or_renew() is True
    puts = [
        r for r in kube.sim.requests() if r.resource.startswith("leases") and r.verb == "update"
    ]
    assert [r.status for r in puts] == [409, 200]


def test_stopped_leading_runs_after_started_leading_returned_and_join_waits_for_both(
    kube: KubeEnv,
) -> None:
    """The operator starts its writers in on_started_leading; on_stopped_leading (and a
    caller joining the elector) must not overtake it, or writers could start after shutdown."""
    entered, finish = threading.Event(), threading.Event()
    order: list[str] = []
    callback_threads: list[threading.Thread] = []

    def started() -> None:
        callback_threads.append(threading.current_thread())
        entered.set()
        finish.wait(30)
        order.append("started returned")

    elector = LeaderElector(
        kube.new_rest(),
        namespace=NS,
        name="infercost-leader",
        identity="a",
        lease_duration=1.5,
        renew_deadline=1.0,
        retry_period=0.2,
        on_started_leading=started,
        on_stopped_leading=lambda: order.append("stopped"),
    )
    elector.start()
    try:
        assert entered.wait(10)
        elector.stop()
        eventually(lambda: lease(kube)["holderIdentity"] == "", what="the Lease released")
        assert order == [], "on_stopped_leading waits for on_started_leading"
        assert elector.is_alive(), "the elector still waits for its callback"
    finally:
        finish.set()
        elector.join(30)
    assert order == ["started returned", "stopped"]
    assert not elector.is_alive() and not callback_threads[0].is_alive()
