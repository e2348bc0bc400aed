"""Every notion of time the operator has, behind one injectable object.

Work queues, backoff, leader election, status cadence and the ledger all ask a :class:`Clock`
instead of calling :mod:`time` directly. In production that is :class:`RealClock` (optionally
shifted by ``--clock-offset`` so a demo can start just before midnight UTC); in tests it is
:class:`FakeClock`, which only moves when the test says so and wakes every waiter whose
deadline has passed, so no test needs to sleep.

Wall time (``now()``/``time()``) and elapsed time (``monotonic()``) are separate: intervals and
deadlines always use the monotonic reading, so a wall-clock step (NTP, offset) never makes a
queue fire early or a lease look expired.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "RealClock"]


@runtime_checkable
class Clock(Protocol):
    """The time source injected everywhere."""

    def now(self) -> datetime:
        """Wall time as an aware UTC datetime."""
        ...

    def time(self) -> float:
        """Wall time in epoch seconds."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; only differences are meaningful."""
        ...

    def wait_until(self, condition: threading.Condition, deadline: float | None) -> None:
        """Wait on ``condition`` (whose lock the caller holds) until notified or until
        ``monotonic()`` reaches ``deadline`` (None: no deadline). Callers re-check their
        predicate afterwards. An absolute deadline avoids losing time between reading the
        clock and starting to wait."""
        ...

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        """Sleep ``seconds`` of this clock's time unless ``stop`` is set first.

        Returns True when ``stop`` is set (the caller should wind down)."""
        ...


class RealClock:
    """The system clock, with wall time shifted by a fixed offset (``--clock-offset``)."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self.offset_seconds = float(offset_seconds)
        self._offset = timedelta(seconds=self.offset_seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def time(self) -> float:
        return time.time() + self.offset_seconds

    def monotonic(self) -> float:
        return time.monotonic()

    def wait_until(self, condition: threading.Condition, deadline: float | None) -> None:
        condition.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(0.0, seconds))


class FakeClock:
    """A clock for tests: time stands still until :meth:`advance` or :meth:`set`.

    Waiters registered through :meth:`wait_until` or :meth:`sleep` are woken as soon as the fake
    time passes their deadline, from the thread that advances the clock.
    """

    # Real seconds a sleeper waits between checks of its stop event. Only bounds how late a
    # stop is noticed; the fake deadline itself is signalled by advance().
    _STOP_POLL_SECONDS = 0.02

    def __init__(self, start: datetime | None = None, monotonic_start: float = 1000.0) -> None:
        start = start or datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FakeClock start must be timezone-aware")
        self._wall = start.astimezone(UTC).timestamp()
        self._mono = float(monotonic_start)
        self._lock = threading.Lock()
        self._waiters: dict[int, tuple[float, threading.Condition]] = {}
        self._next_id = 0

    def now(self) -> datetime:
        with self._lock:
            return datetime.fromtimestamp(self._wall, UTC)

    def time(self) -> float:
        with self._lock:
            return self._wall

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        """Move both wall and monotonic time forward and wake waiters that became due."""
        if seconds < 0:
            raise ValueError("FakeClock cannot go backwards; use set() for wall-time steps")
        with self._lock:
            self._wall += seconds
            self._mono += seconds
            due = [cond for deadline, cond in self._waiters.values() if deadline <= self._mono]
        for cond in due:
            with cond:
                cond.notify_all()

    def set(self, when: datetime) -> None:
        """Step wall time (monotonic time is unaffected, as with a real NTP step)."""
        if when.tzinfo is None:
            raise ValueError("FakeClock.set needs a timezone-aware datetime")
        with self._lock:
            self._wall = when.astimezone(UTC).timestamp()

    def waiters(self) -> int:
        """Number of threads currently waiting on this clock (for tests to synchronise on)."""
        with self._lock:
            return len(self._waiters)

    def wait_until(self, condition: threading.Condition, deadline: float | None) -> None:
        with self._lock:
            if deadline is not None and deadline <= self._mono:
                return
            ident = self._next_id
            self._next_id += 1
            self._waiters[ident] = (float("inf") if deadline is None else deadline, condition)
        try:
            condition.wait()
        finally:
            with self._lock:
                self._waiters.pop(ident, None)

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        cond = threading.Condition()
        with self._lock:
            deadline = self._mono + max(0.0, seconds)
            ident = self._next_id
            self._next_id += 1
            self._waiters[ident] = (deadline, cond)
        try:
            with cond:
                while not stop.is_set() and self.monotonic() < deadline:
                    cond.wait(self._STOP_POLL_SECONDS)
        finally:
            with self._lock:
                self._waiters.pop(ident, None)
        return stop.is_set()
