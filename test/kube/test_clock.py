from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from infercost.kube.clock import Clock, FakeClock, RealClock


def test_real_clock_offset_shifts_wall_time_only() -> None:
    clock = RealClock(offset_seconds=3600)
    assert isinstance(clock, Clock)
    assert abs(clock.time() - (time.time() + 3600)) < 1
    assert abs((clock.now() - datetime.now(UTC)) - timedelta(hours=1)) < timedelta(seconds=1)
    assert clock.now().tzinfo is not None
    assert abs(clock.monotonic() - time.monotonic()) < 1


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


def test_fake_clock_sleep_wakes_on_advance_and_on_stop() -> None:
    clock = FakeClock()
    stop = threading.Event()
    results: list[bool] = []
    t = threading.Thread(target=lambda: results.append(clock.sleep(10, stop)))
    t.start()
    while clock.waiters() == 0:
        time.sleep(0.001)
    clock.advance(9)
    time.sleep(0.05)
    assert results == []
    clock.advance(1)
    t.join(5)
    assert results == [False]
    t = threading.Thread(target=lambda: results.append(clock.sleep(10, stop)))
    t.start()
    stop.set()
    t.join(5)
    assert results == [False, True]


def test_wait_until_past_deadline_returns_at_once() -> None:
    clock = FakeClock()
    cond = threading.Condition()
    with cond:
        clock.wait_until(cond, clock.monotonic())
    assert clock.waiters() == 0
