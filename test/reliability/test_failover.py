"""Two replicas with leader election: the standby takes over from a leader that is killed or
frozen, totals stay exact, and two replicas never write at the same time.

Writers are told apart in the emulator's request log by their user agent, which carries each
replica's identity. Lease timings are shortened through :mod:`lease_launcher` (they are not
flags); everything else is ``infercost run`` as deployed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable

import pytest
from cluster_rig import (
    OPERATOR_NS,
    Cluster,
    LeaseTimings,
    OperatorProcess,
    expected_amortization_usd,
)
from test_restarts import assert_money, build, traffic

from infercost.kube.rest import LEASES
from infercost.testing.kubefixtures import eventually

LEASE = LeaseTimings(lease_duration=4.0, renew_deadline=3.0, retry_period=0.5)
WATTS = 300.0
# What only the leader writes: the ledger checkpoint, statuses, Events.
_WRITES = frozenset({"create", "update", "patch", "delete"})


def identity(op: OperatorProcess) -> str:
    def found() -> str | None:
        for event in op.log_events():
            if event.get("event") == "starting":
                return str(event["identity"])
        return None

    return str(eventually(found, timeout=60, what=f"{op.name} started"))


def leader(ops: Iterable[OperatorProcess]) -> OperatorProcess | None:
    for op in ops:
        if op.alive() and op.metric("infercost_leader") == 1:
            return op
    return None


def wait_leader(ops: list[OperatorProcess], timeout: float = 60.0) -> OperatorProcess:
    return eventually(lambda: leader(ops), timeout=timeout, interval=0.1, what="a leader")


def writers(cluster: Cluster, agents: dict[str, str]) -> list[tuple[str, str]]:
    """(replica, what) of every successful write of an operator replica, in the order
    served."""
    out = []
    for r in cluster.sim.requests():
        if r.verb not in _WRITES or r.resource.startswith("leases") or r.status >= 300:
            continue  # a refused write (409 on a stale resourceVersion) wrote nothing
        if "dryRun=" in r.query:
            continue  # the start-up check that the operator namespace exists writes nothing
        for name, ident in agents.items():
            if ident in r.user_agent:
                out.append((name, f"{r.verb} {r.resource}/{r.name} {r.subresource}".strip()))
    return out


def assert_one_writer_at_a_time(writes: list[tuple[str, str]], order: list[str]) -> None:
    """The writes form one run per replica, in ``order``: once a replica's successor has
    written, the replica never writes again."""
    runs: list[str] = []
    for name, _ in writes:
        if not runs or runs[-1] != name:
            runs.append(name)
    first = next((i for i, (name, _) in enumerate(writes) if name == order[-1]), len(writes))
    late = [f"{name}: {what}" for name, what in writes[first:] if name != order[-1]]
    assert runs == order, "writers interleave: " + " → ".join(runs) + "\n" + "\n".join(late)


def settle_and_check(cluster: Cluster) -> None:
    truth = cluster.truth()
    cluster.wait_tokens("daily")
    stopped = cluster.power(0.0)
    cluster.wait_booked(after=stopped)
    start = cluster.first_sample()
    end = cluster.retire_profile("pool-a")
    expected = expected_amortization_usd(2, start, end)
    status = cluster.wait_report(
        "daily",
        lambda s: s.get("amortizationCostUSD") == pytest.approx(expected, rel=1e-9),
        "the report's final figures",
    )
    assert (status["inputTokens"], status["outputTokens"]) == (truth["input"], truth["output"])
    assert status["cachedInputTokens"] == truth["cached"]
    assert_money(cluster, status, start, end, gpus=2)


@pytest.mark.slow
def test_standby_takes_over_when_the_leader_is_killed(cluster: Cluster) -> None:
    rng = random.Random(7)
    build(cluster)
    first = cluster.operator("replica-a", lease=LEASE)
    agents = {"replica-a": identity(first)}
    assert wait_leader([first]) is first
    second = cluster.operator("replica-b", lease=LEASE)
    agents["replica-b"] = identity(second)
    second.wait_ready()  # a standby is ready too
    assert second.metric("infercost_leader") == 0
    booked = cluster.wait_booked()
    cluster.power(WATTS)
    traffic(cluster, rng, 5)
    booked = cluster.wait_booked(after=booked)
    traffic(cluster, rng, 5)
    cluster.wait_booked(after=booked)
    time.sleep(rng.uniform(0.0, 0.5))
    first.kill()
    killed_at = time.monotonic()
    traffic(cluster, rng, 6)  # served while nobody leads
    assert wait_leader([second]) is second
    took = time.monotonic() - killed_at
    holder = cluster.rest.get(LEASES, "infercost-leader", OPERATOR_NS)["spec"]["holderIdentity"]
    assert holder == agents["replica-b"]
    traffic(cluster, rng, 4)
    settle_and_check(cluster)
    assert_one_writer_at_a_time(writers(cluster, agents), ["replica-a", "replica-b"])
    # the standby waited for the dead leader's Lease to expire, no longer
    assert took >= LEASE.lease_duration - 1.0
    assert second.alive()


@pytest.mark.slow
def test_a_frozen_leader_that_wakes_up_writes_nothing(cluster: Cluster) -> None:
    """SIGSTOP the leader (a long GC pause, a frozen VM): the standby takes the expired Lease.
    When the old leader wakes it must not write a checkpoint or a status, and it exits."""
    rng = random.Random(11)
    build(cluster)
    first = cluster.operator("replica-a", lease=LEASE)
    agents = {"replica-a": identity(first)}
    assert wait_leader([first]) is first
    second = cluster.operator("replica-b", lease=LEASE)
    agents["replica-b"] = identity(second)
    second.wait_ready()
    booked = cluster.wait_booked()
    cluster.power(WATTS)
    traffic(cluster, rng, 5)
    booked = cluster.wait_booked(after=booked)
    first.pause()
    traffic(cluster, rng, 5)
    assert wait_leader([second]) is second
    taken = cluster.wait_booked(after=booked)
    traffic(cluster, rng, 5)
    cluster.wait_booked(after=taken)
    first.resume()
    # the old leader notices that it lost the Lease and exits with status 1
    code = first.proc.wait(timeout=60)
    assert code == 1, first.logs()
    traffic(cluster, rng, 3)
    settle_and_check(cluster)
    assert_one_writer_at_a_time(writers(cluster, agents), ["replica-a", "replica-b"])
    assert second.alive()
