"""Two electors on one Lease in the emulator: one leads, handover on release and on silence.

The electors run on a :class:`FakeClock` without jitter, and the tests step it one retry period
at a time: each step waits until every campaigning elector has read the Lease again (its request
is in the emulator's log) and gone back to sleep on the clock, so "b is still a standby" is a
fact about b's attempts, not about how long the test slept.
"""

from __future__ import annotations

import random
import threading

import pytest
from prometheus_client import CollectorRegistry

from infercost.kube.clock import FakeClock
from infercost.kube.health import HealthMetrics
from infercost.kube.leaderelection import LeaderElector, default_identity
from infercost.kube.rest import LEASES
from infercost.testing.kubefixtures import KubeEnv, eventually

NS = "infercost-system"
RETRY_SECONDS = 0.25  # exact in binary, so n steps add up to exactly n × 0.25 s
LEASE_SECONDS = 1.5  # written to the Lease rounded up: leaseDurationSeconds 2


class NoJitter(random.Random):
    def random(self) -> float:
        return 0.0


class Candidate:
    def __init__(self, kube: KubeEnv, name: str, clock: FakeClock, **kw) -> None:
        self.name = name
        self.metrics = HealthMetrics(CollectorRegistry())
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.elector = LeaderElector(
            kube.new_rest(user_agent=name),
            namespace=NS,
            name="infercost-leader",
            identity=name,
            lease_duration=LEASE_SECONDS,
            renew_deadline=1.0,
            retry_period=RETRY_SECONDS,
            clock=clock,
            rand=NoJitter(),
            metrics=self.metrics,
            on_started_leading=self.started.set,
            on_stopped_leading=self.stopped.set,
            **kw,
        )

    def gauge(self) -> float:
        return self.metrics.registry.get_sample_value("infercost_leader")


def lease(kube: KubeEnv) -> dict:
    return kube.rest.get(LEASES, "infercost-leader", NS)["spec"]


def lease_reads(kube: KubeEnv, who: str) -> int:
    """How many times ``who`` has read the Lease (every attempt starts with a read)."""
    return sum(
        1
        for r in kube.sim.requests()
        if r.user_agent == who and r.resource.startswith("leases") and r.verb == "get"
    )


def settled(kube: KubeEnv, clock: FakeClock, reads: dict[str, int]) -> None:
    """Wait until each elector has made ``reads[who]`` attempts and all are asleep again.

    An elector unregisters from the clock when it wakes, before it reads the Lease, so once the
    reads are logged a full count of waiters means every one of them is back in a new sleep.
    """
    eventually(
        lambda: (
            all(lease_reads(kube, who) >= n for who, n in reads.items())
            and clock.waiters() == len(reads)
        ),
        what=f"electors {sorted(reads)} to make their attempts {reads} and sleep again",
    )


def step(kube: KubeEnv, clock: FakeClock, *campaigning: Candidate) -> None:
    """One retry period: every campaigning elector makes exactly one more attempt."""
    reads = {c.name: lease_reads(kube, c.name) + 1 for c in campaigning}
    clock.advance(RETRY_SECONDS)
    settled(kube, clock, reads)


def test_validation_mirrors_client_go() -> None:
    with pytest.raises(ValueError, match="lease duration"):
        LeaderElector(None, namespace=NS, name="l", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match=r"1\.2"):
        LeaderElector(None, namespace=NS, name="l", renew_deadline=2.0, retry_period=2.0)
    host, _, uid = default_identity().rpartition("_")
    assert host and len(uid) == 36


def test_one_leader_then_clean_release_hands_over_at_once(kube: KubeEnv) -> None:
    clock = FakeClock()
    a = Candidate(kube, "a", clock)
    a.elector.start()
    assert a.started.wait(10)
    settled(kube, clock, {"a": 1})
    b = Candidate(kube, "b", clock)
    b.elector.start()
    try:
        settled(kube, clock, {"a": 1, "b": 1})
        assert a.elector.is_leader() and a.gauge() == 1
        spec = lease(kube)
        assert spec["holderIdentity"] == "a" and spec["leaseDurationSeconds"] == 2
        renewed_at = spec["renewTime"]
        # Three lease durations of retries: a renews every time, so b stays a standby.
        for _ in range(24):
            step(kube, clock, a, b)
        assert not b.started.is_set() and b.gauge() == 0
        assert b.elector.leader == "a"
        assert lease(kube)["renewTime"] > renewed_at, "a renewed the Lease"

        a.elector.stop()
        a.elector.join(10)
        assert a.stopped.is_set() and a.gauge() == 0 and not a.elector.is_leader()
        assert lease(kube)["holderIdentity"] == ""
        # The release lets b in at its very next retry, not a lease duration later.
        clock.advance(RETRY_SECONDS)
        assert b.started.wait(10)
        spec = lease(kube)
        assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    finally:
        a.elector.stop()
        b.elector.stop()
        a.elector.join(10)
        b.elector.join(10)
    assert lease(kube)["holderIdentity"] == "", "clean stop releases the Lease"


def test_vanished_holder_is_replaced_after_the_lease_expires(kube: KubeEnv) -> None:
    clock = FakeClock()
    a = Candidate(kube, "a", clock, release_on_stop=False)
    a.elector.start()
    assert a.started.wait(10)
    b = Candidate(kube, "b", clock)
    b.elector.start()
    try:
        settled(kube, clock, {"a": 1, "b": 1})
        # a "crashes": it stops renewing and does not release.
        a.elector.stop()
        a.elector.join(10)
        spec = lease(kube)
        assert spec["holderIdentity"] == "a" and spec["leaseDurationSeconds"] == 2
        # b first saw this record at its first attempt; it may take the Lease once 2 s of its
        # own clock have passed without the record changing: after 8 retries of 0.25 s.
        for _ in range(7):
            step(kube, clock, b)
        assert not b.started.is_set() and lease(kube)["holderIdentity"] == "a"
        clock.advance(RETRY_SECONDS)
        assert b.started.wait(10)
        assert lease(kube)["holderIdentity"] == "b"
    finally:
        a.elector.stop()
        b.elector.stop()
        a.elector.join(10)
        b.elector.join(10)


def test_leader_that_cannot_renew_steps_down(kube: KubeEnv) -> None:
    clock = FakeClock()
    a = Candidate(kube, "a", clock)
    a.elector.start()
    assert a.started.wait(10)
    settled(kube, clock, {"a": 1})
    # Every lease read fails from now on; once the 1 s renew deadline has passed without a
    # successful renewal, a must give up.
    kube.sim.faults.respond(verb="get", resource="leases", code=503, count=10_000)
    try:
        for _ in range(3):  # attempts at 0.25, 0.5 and 0.75 s: still inside the deadline
            step(kube, clock, a)
        assert a.elector.is_leader() and not a.stopped.is_set()
        # 1.0 s: the renew deadline since the last successful renewal (at 0 s) has passed; a
        # leader steps down then, so it never writes on a Lease it may no longer hold
        clock.advance(RETRY_SECONDS)
        assert a.stopped.wait(10)
        assert not a.elector.is_leader() and a.gauge() == 0
    finally:
        kube.sim.faults.clear()
        a.elector.stop()
        a.elector.join(10)


def test_conflicting_write_loses_the_race(kube: KubeEnv) -> None:
    a = Candidate(kube, "a", FakeClock())
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
