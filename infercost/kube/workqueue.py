"""A rate-limited, delaying work queue of keys with client-go's semantics.

Controllers queue *keys* (``namespace/name``), never objects, and read the latest object from
an informer cache when they process one. The queue guarantees what level-triggered reconcilers
rely on:

- a key waits in the queue at most once, however often it is added (``dirty`` set);
- a key handed to a worker (``processing`` set) is never handed to a second worker until the
  first calls :meth:`WorkQueue.done`; if it was added meanwhile it is queued again on ``done``,
  so the change is seen by a later reconcile, never lost and never processed concurrently;
- :meth:`WorkQueue.add_after` delays a key; a second delay for the same key keeps the earlier
  ready time;
- :meth:`WorkQueue.add_rate_limited` delays by the rate limiter's answer, which grows with the
  key's failures until :meth:`WorkQueue.forget`.

Delayed keys live in a heap that :meth:`WorkQueue.get` drains itself, so there is no timer
thread, and all waiting goes through the injected :class:`~infercost.kube.clock.Clock`: tests
advance a fake clock instead of sleeping.

The default rate limiter is client-go's controller default: the maximum of a per-key
exponential backoff (5 ms·2^failures, capped at 1000 s) and an overall token bucket (10 qps,
burst 100).
"""

from __future__ import annotations

import collections
import heapq
import itertools
import threading
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from infercost.kube.clock import Clock, RealClock

__all__ = [
    "BucketRateLimiter",
    "ItemExponentialFailureRateLimiter",
    "MaxOfRateLimiter",
    "RateLimiter",
    "TokenBucket",
    "WorkQueue",
    "default_controller_rate_limiter",
]

K = TypeVar("K", bound=Hashable)


class RateLimiter(Protocol):
    """How long to wait before retrying a key (client-go ``workqueue.TypedRateLimiter``)."""

    def when(self, item: Hashable) -> float:
        """Delay in seconds before ``item`` may be processed again; records a failure."""
        ...

    def forget(self, item: Hashable) -> None:
        """Clear the failure history of ``item`` (call after a success)."""
        ...

    def num_requeues(self, item: Hashable) -> int:
        """How many failures of ``item`` are on record."""
        ...


class ItemExponentialFailureRateLimiter:
    """``base · 2^failures`` per key, capped at ``max_delay`` seconds."""

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        if base_delay <= 0 or max_delay < base_delay:
            raise ValueError("need 0 < base_delay <= max_delay")
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def when(self, item: Hashable) -> float:
        with self._lock:
            exp = self._failures.get(item, 0)
            self._failures[item] = exp + 1
        # 2^exp overflows a float long after it passes any sane cap; stop computing early.
        if exp > 62:
            return self.max_delay
        return min(self.base_delay * (2**exp), self.max_delay)

    def forget(self, item: Hashable) -> None:
        with self._lock:
            self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        with self._lock:
            return self._failures.get(item, 0)


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; starts full. Times are
    monotonic seconds passed in by the caller. Not thread-safe: callers hold their own lock.

    Two ways to spend: :meth:`reserve` always takes a token, possibly one that only exists in
    the future, and says how long until it does (Go's ``rate.Limiter.Reserve``, for delaying
    work); :meth:`try_take` takes one only if it is there (client-go's ``TryAccept``, for
    dropping what exceeds the rate).
    """

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("need a rate > 0 and a burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._last)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._last = now

    def reserve(self, now: float) -> float:
        """Take a token; seconds until it exists (0 when one was saved up)."""
        self._refill(now)
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def try_take(self, now: float) -> bool:
        """Take a token if one is saved up."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class BucketRateLimiter:
    """An overall token bucket: ``qps`` tokens per second, at most ``burst`` saved up.

    Like Go's ``rate.Limiter.Reserve``, every call takes a token, possibly one that will only
    exist in the future; the answer is how long until it does. It keeps no per-key state.
    """

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Clock | None = None) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("need qps > 0 and burst >= 1")
        self.qps = qps
        self.burst = burst
        self._clock = clock or RealClock()
        self._bucket = TokenBucket(qps, burst, self._clock.monotonic())
        self._lock = threading.Lock()

    def when(self, item: Hashable) -> float:
        with self._lock:
            return self._bucket.reserve(self._clock.monotonic())

    def forget(self, item: Hashable) -> None:
        return None

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest delay any of the wrapped limiters asks for."""

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("MaxOfRateLimiter needs at least one limiter")
        self.limiters = limiters

    def when(self, item: Hashable) -> float:
        return max(limiter.when(item) for limiter in self.limiters)

    def forget(self, item: Hashable) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: Hashable) -> int:
        return max(limiter.num_requeues(item) for limiter in self.limiters)


def default_controller_rate_limiter(clock: Clock | None = None) -> RateLimiter:
    """client-go's ``DefaultTypedControllerRateLimiter``: max(5 ms·2^n ≤ 1000 s, 10 qps/100)."""
    return MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(0.005, 1000.0),
        BucketRateLimiter(10.0, 100, clock),
    )


class WorkQueue(Generic[K]):
    """See the module docstring. Thread-safe; any number of producers and workers."""

    def __init__(
        self,
        rate_limiter: RateLimiter | None = None,
        clock: Clock | None = None,
        name: str = "",
    ) -> None:
        self.name = name
        self._clock: Clock = clock or RealClock()
        self._limiter = rate_limiter or default_controller_rate_limiter(self._clock)
        self._cond = threading.Condition()
        self._queue: collections.deque[K] = collections.deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        # Delayed keys: heap of (ready_at, seq, key); _waiting holds each key's current
        # (earliest) ready time so stale heap entries can be skipped.
        self._heap: list[tuple[float, int, K]] = []
        self._waiting: dict[K, float] = {}
        self._seq = itertools.count()
        self._shutting_down = False

    # -- adding -------------------------------------------------------------------------------

    def add(self, item: K) -> None:
        """Queue ``item`` now (no-op when it is already waiting to be processed)."""
        with self._cond:
            self._add_locked(item)

    def _add_locked(self, item: K) -> None:
        if self._shutting_down or item in self._dirty:
            return
        self._dirty.add(item)
        if item in self._processing:
            return  # re-queued by done()
        self._queue.append(item)
        self._cond.notify()

    def add_after(self, item: K, delay_seconds: float) -> None:
        """Queue ``item`` after ``delay_seconds``; the earliest pending ready time wins."""
        with self._cond:
            if self._shutting_down:
                return
            if delay_seconds <= 0:
                self._add_locked(item)
                return
            ready_at = self._clock.monotonic() + delay_seconds
            current = self._waiting.get(item)
            if current is not None and current <= ready_at:
                return
            self._waiting[item] = ready_at
            heapq.heappush(self._heap, (ready_at, next(self._seq), item))
            # A worker blocked in get() may need to wake earlier than it planned.
            self._cond.notify_all()

    def add_rate_limited(self, item: K) -> None:
        """Queue ``item`` after the rate limiter's delay (counts as one failure)."""
        self.add_after(item, self._limiter.when(item))

    def forget(self, item: K) -> None:
        """Clear the failure history of ``item``; call after it was processed successfully."""
        self._limiter.forget(item)

    def num_requeues(self, item: K) -> int:
        return self._limiter.num_requeues(item)

    # -- consuming ------------------------------------------------------------------------------

    def _promote_ready_locked(self) -> float | None:
        """Move due delayed keys into the queue; return the next pending ready time."""
        now = self._clock.monotonic()
        while self._heap:
            ready_at, _, item = self._heap[0]
            if self._waiting.get(item) != ready_at:
                heapq.heappop(self._heap)  # superseded by an earlier add_after
                continue
            if ready_at > now:
                return ready_at
            heapq.heappop(self._heap)
            del self._waiting[item]
            self._add_locked(item)
        return None

    def get(self, timeout: float | None = None) -> K | None:
        """The next key to process, blocking until one is ready.

        Returns None when the queue is shut down or ``timeout`` seconds (of the queue's clock)
        pass without a key. The caller must call :meth:`done` with the key afterwards.
        """
        with self._cond:
            give_up = None if timeout is None else self._clock.monotonic() + timeout
            while True:
                if self._shutting_down:
                    return None
                next_ready = self._promote_ready_locked()
                if self._queue:
                    item = self._queue.popleft()
                    self._processing.add(item)
                    self._dirty.discard(item)
                    return item
                if give_up is not None and self._clock.monotonic() >= give_up:
                    return None
                deadlines = [d for d in (next_ready, give_up) if d is not None]
                self._clock.wait_until(self._cond, min(deadlines) if deadlines else None)

    def done(self, item: K) -> None:
        """Mark ``item`` processed; if it was added while processing, queue it again."""
        with self._cond:
            self._processing.discard(item)
            if item in self._dirty and not self._shutting_down:
                self._queue.append(item)
                self._cond.notify()

    # -- lifecycle and introspection ----------------------------------------------------------

    def shutdown(self) -> None:
        """Stop handing out keys: blocked and future :meth:`get` calls return None."""
        with self._cond:
            self._shutting_down = True
            self._cond.notify_all()

    @property
    def shutting_down(self) -> bool:
        with self._cond:
            return self._shutting_down

    def __len__(self) -> int:
        """Keys ready to be handed out (client-go ``Len``; delayed keys are not counted)."""
        with self._cond:
            return len(self._queue)

    depth = __len__

    def waiting(self) -> int:
        """Keys delayed by add_after/add_rate_limited and not yet ready."""
        with self._cond:
            return len(self._waiting)

    def processing(self) -> frozenset[K]:
        with self._cond:
            return frozenset(self._processing)
