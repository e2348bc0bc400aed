from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from infercost.kube.clock import Clock, FakeClock, RealClock
from infercost.testing.kubefixtures import eventually


def test_real_clock_offset_shifts_wall_time_only() -> None:
    clock = RealClock(offset_seconds=3600)
    assert isinstance(clock, Clock)
    # Each reading is bracketed by system readings taken just before and just after it.
    before, shifted, after = time.time(), clock.time(), time.time()
    assert before + 3600 <= shifted <= after + 3600
    before_dt, shifted_dt, after_dt = datetime.now(UTC), clock.now(), datetime.now(UTC)
    assert before_dt + timedelta(hours=1) <= shifted_dt <= after_dt + timedelta(hours=1)
    assert shifted_dt.tzinfo is not None
    before, mono, after = time.monotonic(), clock.monotonic(), time.monotonic()
    assert before <= mono <= after, "elapsed time is not shifted"


def test_fake_clock_moves_only_when_told() -> None:
    start = datetime(2026, 11, 27, 23, 58, tzinfo=UTC)
    clock = FakeClock(start)
    assert clock.now() == start and clock.time() == start.timestamp()
    m = clock.monotonic()
    clock.advance(120)
    assert clock.now() == start + timedelta(minutes=2)
    assert clock.monotonic() == m + 120
    clock.set(start)
    assert clock.now() == start and clock.monotonic() == m + 120
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        FakeClock(datetime(2026, 1, 1))


class CountingEvent(threading.Event):
    """A stop event that counts how often a sleeper looks at it (once per check of its clock)."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0

    def is_set(self) -> bool:
        self.checks += 1
        return super().is_set()


def test_fake_clock_sleep_wakes_on_advance_and_on_stop() -> None:
    clock = FakeClock()
    stop = CountingEvent()
    results: list[bool] = []
    t = threading.Thread(target=lambda: results.append(clock.sleep(10, stop)))
    t.start()
    try:
        eventually(lambda: clock.waiters() == 1, what="the sleeper to register")
        clock.advance(9)
        # A sleeper checks its stop event and then the clock, and looks at the event once more
        # on its way out. Four more looks mean it has seen the advanced clock at least twice
        # and kept sleeping.
        seen = stop.checks
        eventually(lambda: stop.checks >= seen + 4, what="the sleeper to check the clock")
        assert results == [] and t.is_alive()
        clock.advance(1)
        t.join(10)
        assert results == [False]
    finally:
        stop.set()
        t.join(10)
    stop = CountingEvent()
    t = threading.Thread(target=lambda: results.append(clock.sleep(10, stop)))
    t.start()
    stop.set()
    t.join(10)
    assert results == [False, True]


def test_wait_until_past_deadline_returns_at_once() -> None:
    clock = FakeClock()
    cond = threading.Condition()
    with cond:
        clock.wait_until(cond, clock.monotonic())
    assert clock.waiters() == 0
