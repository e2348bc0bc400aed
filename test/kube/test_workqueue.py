"""Work queue semantics (client-go's) and the default rate limiter's numbers, on a fake clock."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict

import pytest

from infercost.kube.clock import FakeClock
from infercost.kube.workqueue import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    WorkQueue,
    default_controller_rate_limiter,
)
from infercost.testing.kubefixtures import eventually


def make_queue() -> tuple[WorkQueue[str], FakeClock]:
    clock = FakeClock()
    return WorkQueue(default_controller_rate_limiter(clock), clock), clock


def test_add_deduplicates_waiting_keys() -> None:
    q, _ = make_queue()
    q.add("a")
    q.add("b")
    q.add("a")
    assert len(q) == 2
    assert q.get(timeout=0) == "a"
    assert q.get(timeout=0) == "b"
    assert q.get(timeout=0) is None


def test_key_added_while_processing_is_requeued_on_done_not_handed_out_twice() -> None:
    q, _ = make_queue()
    q.add("a")
    assert q.get(timeout=0) == "a"
    q.add("a")
    assert len(q) == 0, "a processing key must not be handed to a second worker"
    assert q.get(timeout=0) is None
    q.done("a")
    assert len(q) == 1
    assert q.get(timeout=0) == "a"
    q.done("a")
    assert len(q) == 0


def test_done_without_new_add_does_not_requeue() -> None:
    q, _ = make_queue()
    q.add("a")
    q.get(timeout=0)
    q.done("a")
    assert len(q) == 0 and q.processing() == frozenset()


def test_add_after_waits_for_the_clock() -> None:
    q, clock = make_queue()
    q.add_after("a", 5.0)
    assert len(q) == 0 and q.waiting() == 1
    assert q.get(timeout=0) is None
    clock.advance(4.999)
    assert q.get(timeout=0) is None
    clock.advance(0.001)
    assert q.get(timeout=0) == "a"


def test_add_after_earliest_ready_time_wins() -> None:
    q, clock = make_queue()
    q.add_after("a", 10.0)
    q.add_after("a", 3.0)
    q.add_after("a", 7.0)
    clock.advance(3.0)
    assert q.get(timeout=0) == "a"
    q.done("a")
    clock.advance(10.0)
    assert q.get(timeout=0) is None, "superseded ready times must not fire again"


def test_add_after_non_positive_delay_adds_now() -> None:
    q, _ = make_queue()
    q.add_after("a", 0)
    q.add_after("b", -1)
    assert len(q) == 2


def test_blocked_get_wakes_when_fake_clock_passes_delay() -> None:
    q, clock = make_queue()
    q.add_after("a", 30.0)
    got: list[str | None] = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    eventually(lambda: clock.waiters() == 1, what="get() to wait on the clock")
    assert not got
    clock.advance(30.0)
    t.join(5)
    assert got == ["a"]


def test_blocked_get_wakes_on_add_and_on_shutdown() -> None:
    q, _ = make_queue()
    got: list[str | None] = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    q.add("x")
    t.join(5)
    assert got == ["x"]
    t2 = threading.Thread(target=lambda: got.append(q.get()))
    t2.start()
    q.shutdown()
    t2.join(5)
    assert got == ["x", None]
    q.add("y")
    assert len(q) == 0, "adds after shutdown are dropped"


def test_get_timeout_uses_the_queue_clock() -> None:
    q, clock = make_queue()
    got: list[str | None] = ["sentinel"]

    def worker() -> None:
        got[0] = q.get(timeout=60.0)

    t = threading.Thread(target=worker)
    t.start()
    eventually(lambda: clock.waiters() == 1, what="get() to wait on the clock")
    clock.advance(60.0)
    t.join(5)
    assert got == [None]


def test_rate_limited_requeues_grow_and_forget_resets() -> None:
    q, clock = make_queue()
    for _ in range(5):
        before = q.waiting()
        q.add_rate_limited("a")
        assert q.waiting() == before + (1 if before == 0 else 0)
    assert q.num_requeues("a") == 5
    # The earliest pending ready time (the first, 5 ms) wins.
    clock.advance(0.005)
    assert q.get(timeout=0) == "a"
    q.done("a")
    q.forget("a")
    assert q.num_requeues("a") == 0
    q.add_rate_limited("a")
    clock.advance(0.004)
    assert q.get(timeout=0) is None
    clock.advance(0.001)
    assert q.get(timeout=0) == "a"


def test_item_exponential_numbers() -> None:
    rl = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    assert [rl.when("k") for _ in range(4)] == [0.005, 0.01, 0.02, 0.04]
    assert rl.num_requeues("k") == 4
    assert rl.when("other") == 0.005
    for _ in range(100):
        last = rl.when("k")
    assert last == 1000.0
    rl.forget("k")
    assert rl.when("k") == 0.005


def test_token_bucket_burst_then_qps() -> None:
    clock = FakeClock()
    rl = BucketRateLimiter(10.0, 100, clock)
    assert all(rl.when(i) == 0.0 for i in range(100))
    assert rl.when("x") == pytest.approx(0.1)
    assert rl.when("y") == pytest.approx(0.2)
    clock.advance(1.0)  # refills 10 tokens, 2 of which were already promised
    assert [rl.when(i) for i in range(8)] == [0.0] * 8
    assert rl.when("z") == pytest.approx(0.1)


def test_default_limiter_is_max_of_both() -> None:
    clock = FakeClock()
    rl = default_controller_rate_limiter(clock)
    assert isinstance(rl, MaxOfRateLimiter)
    # First failure: 5 ms from the per-item limiter, 0 from the (full) bucket.
    assert rl.when("a") == 0.005
    for i in range(99):
        rl.when(f"k{i}")
    # Bucket now empty: the 101st call waits 0.1 s although the item is new.
    assert rl.when("fresh") == pytest.approx(0.1)
    assert rl.num_requeues("a") == 1
    rl.forget("a")
    assert rl.num_requeues("a") == 0


def test_four_workers_never_process_a_key_concurrently_and_see_final_state() -> None:
    q: WorkQueue[str] = WorkQueue(clock=FakeClock())
    keys = [f"ns/obj-{i}" for i in range(8)]
    state: dict[str, int] = defaultdict(int)
    state_lock = threading.Lock()
    in_flight: set[str] = set()
    violations: list[str] = []
    last_seen: dict[str, int] = {}

    def worker() -> None:
        while (key := q.get()) is not None:
            try:
                with state_lock:
                    if key in in_flight:
                        violations.append(key)
                    in_flight.add(key)
                    seen = state[key]
                time.sleep(random.random() * 0.0005)
                with state_lock:
                    last_seen[key] = seen
                    in_flight.discard(key)
            finally:
                q.done(key)

    workers = [threading.Thread(target=worker) for _ in range(4)]
    for w in workers:
        w.start()
    rng = random.Random(7)
    for _ in range(3000):
        key = rng.choice(keys)
        with state_lock:
            state[key] += 1
        q.add(key)
    eventually(lambda: not len(q) and not q.processing(), timeout=60, what="the queue to drain")
    q.shutdown()
    for w in workers:
        w.join(5)
    assert not violations
    assert last_seen == dict(state), "the last reconcile of every key must see its final state"
