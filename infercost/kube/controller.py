"""The controller loop: informer events → keys in a rate-limited queue → N workers → reconcile.

A reconcile function receives a key (``namespace/name``) and reads whatever it needs from
informer caches; it must be idempotent and must not care which event caused it. It returns:

- :data:`DONE` (or None): success; the key's failure history is forgotten;
- :class:`RequeueAfter`: success, look again after that many seconds (periodic work);
- :data:`RETRY`: not an error, but try again soon through the rate limiter (e.g. a 409 on a
  status write: the cache is behind; the limiter's growing delay keeps it from spinning);

or raises: the error is logged with the controller and key bound, counted as
``result="error"``, and the key is retried through the rate limiter.

Workers start only after every informer the controller depends on has synced, so a reconcile
never mistakes a cold cache for deleted objects. ``done`` is called in ``finally`` so a key is
never stuck in ``processing``. A periodic resync re-enqueues every key of the primary
informer's cache (no API call), which is how periodic status refreshes happen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
import structlog

from infercost.kube.clock import Clock, RealClock
from infercost.kube.health import HealthMetrics
from infercost.kube.informer import EventHandler, Informer
from infercost.kube.rest import ApiError
from infercost.kube.transforms import object_key
from infercost.kube.workqueue import RateLimiter, WorkQueue

__all__ = [
    "DONE",
    "RETRY",
    "Controller",
    "Done",
    "Reconcile",
    "RequeueAfter",
    "Result",
    "Retry",
    "UpdateFilter",
    "spec_or_metadata_changed",
]

log = structlog.get_logger("infercost.kube.controller")


@attrs.frozen
class Done:
    """Reconciled; nothing more to do until something changes."""


@attrs.frozen
class RequeueAfter:
    """Reconciled; reconcile this key again after ``seconds``."""

    seconds: float


@attrs.frozen
class Retry:
    """Reconcile again soon, through the rate limiter, without counting an error."""

    reason: str = ""


DONE = Done()
RETRY = Retry()
Result = Done | RequeueAfter | Retry
Reconcile = Callable[[str], Result | None]
# Maps an informer event's object to the keys to reconcile.
Mapper = Callable[[Any], Iterable[str]]


def _own_key(obj: Any) -> Iterable[str]:
    return (object_key(obj),)


# Decides whether an update of an object is worth a reconcile (old, new → bool).
UpdateFilter = Callable[[Any, Any], bool]


def _meta(obj: Any) -> Any:
    return obj.get("metadata") or {} if isinstance(obj, dict) else {}


def spec_or_metadata_changed(old: Any, new: Any) -> bool:
    """An update filter that lets through what the owner of a status must react to: a new
    ``metadata.generation`` (the spec changed), new labels or annotations, a deletion mark.
    It drops the echo of the controller's own status writes, which changes none of them.
    Objects without a generation always pass."""
    before, after = _meta(old), _meta(new)
    if before.get("generation") is None or after.get("generation") is None:
        return True
    return any(
        before.get(field) != after.get(field)
        for field in ("generation", "labels", "annotations", "deletionTimestamp")
    )


class Controller:
    """See the module docstring.

    ``primary`` is the informer of the objects this controller reconciles: its events enqueue
    the objects' own keys and the resync replays its cache. :meth:`watch` adds other sources
    with a mapping function (a CostProfile change enqueues the UsageReports that refer to it).
    """

    def __init__(
        self,
        name: str,
        reconcile: Reconcile,
        *,
        primary: Informer | None = None,
        requires: Sequence[Informer] = (),
        workers: int = 1,
        resync_seconds: float | None = None,
        clock: Clock | None = None,
        metrics: HealthMetrics | None = None,
        rate_limiter: RateLimiter | None = None,
        sync_poll_seconds: float = 0.05,
        primary_updates: UpdateFilter | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a controller needs at least one worker")
        if resync_seconds is not None and resync_seconds < 1.0:
            raise ValueError("resync period below 1 s (client-go's minimum)")
        self.name = name
        self._reconcile = reconcile
        self.clock = clock or RealClock()
        self.metrics = metrics or HealthMetrics()
        self.queue: WorkQueue[str] = WorkQueue(rate_limiter, self.clock, name=name)
        self.workers = workers
        self.resync_seconds = resync_seconds
        self.primary = primary
        self._informers: list[Informer] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sync_poll = sync_poll_seconds
        self._log = log.bind(controller=name)
        self._ready = threading.Event()
        self.metrics.workqueue_depth.labels(controller=name).set_function(self.queue.depth)
        for inf in requires:
            self._require(inf)
        if primary is not None:
            self.watch(primary, _own_key, primary_updates)

    def _require(self, informer: Informer) -> None:
        if informer not in self._informers:
            self._informers.append(informer)

    def watch(
        self,
        informer: Informer,
        mapper: Mapper | None = None,
        updates: UpdateFilter | None = None,
    ) -> None:
        """Enqueue ``mapper(obj)`` for every add, update (old and new) and delete of
        ``informer``; updates only when ``updates(old, new)`` is true, if given. The informer
        also becomes a dependency that must sync first."""
        self._require(informer)
        to_keys = mapper or _own_key

        def enqueue(obj: Any) -> None:
            for key in to_keys(obj):
                self.queue.add(key)

        def on_update(old: Any, new: Any) -> None:
            if updates is not None and not updates(old, new):
                return
            keys = set(to_keys(new))
            keys.update(to_keys(old))
            for key in keys:
                self.queue.add(key)

        informer.add_handler(EventHandler(on_add=enqueue, on_update=on_update, on_delete=enqueue))

    def enqueue(self, key: str) -> None:
        self.queue.add(key)

    def enqueue_all(self, *_: Any) -> None:
        """Enqueue every object in the primary informer's cache (arguments are ignored, so it
        can be any callback: a booking, another informer's event)."""
        if self.primary is not None:
            for key in self.primary.store.list_keys():
                self.queue.add(key)

    def enqueue_after(self, key: str, seconds: float) -> None:
        self.queue.add_after(key, seconds)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the resync and worker threads; workers wait for the informers to sync."""
        starter = threading.Thread(
            target=self._start_workers, name=f"{self.name}-start", daemon=True
        )
        starter.start()
        self._threads.append(starter)

    def _start_workers(self) -> None:
        while not all(inf.has_synced() for inf in self._informers):
            if self._stop.wait(self._sync_poll):
                return
        self._log.info("caches synced; starting workers", workers=self.workers)
        self._ready.set()
        for i in range(self.workers):
            t = threading.Thread(target=self._worker, name=f"{self.name}-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        if self.resync_seconds is not None and self.primary is not None:
            t = threading.Thread(target=self._resync_loop, name=f"{self.name}-resync", daemon=True)
            t.start()
            self._threads.append(t)

    def started(self) -> bool:
        """Workers are running (every dependency had synced)."""
        return self._ready.is_set()

    def stop(self) -> None:
        self._stop.set()
        self.queue.shutdown()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the workers to end; whether they all have."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in list(self._threads):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            t.join(remaining)
        return not any(t.is_alive() for t in self._threads)

    def alive(self) -> bool:
        """No thread of this controller died while it was supposed to run."""
        if self._stop.is_set():
            return True
        return all(t.is_alive() for t in self._threads if not t.name.endswith("-start"))

    # -- work --------------------------------------------------------------------------------

    def _resync_loop(self) -> None:
        assert self.resync_seconds is not None and self.primary is not None
        while not self.clock.sleep(self.resync_seconds, self._stop):
            self.enqueue_all()

    def _worker(self) -> None:
        while True:
            key = self.queue.get()
            if key is None:
                return
            try:
                self.process(key)
            finally:
                self.queue.done(key)

    def process(self, key: str) -> None:
        """Reconcile one key and requeue as the result says (workers call this)."""
        bound = self._log.bind(key=key)
        started = time.perf_counter()
        outcome = "success"
        try:
            result = self._reconcile(key)
        except Exception as exc:
            outcome = "error"
            self.queue.add_rate_limited(key)
            # An API error is the cluster's answer (unavailable, forbidden, conflict): its
            # message says everything and a stack trace every retry would bury it. Anything
            # else is a bug in the reconcile and keeps its traceback.
            bound.error(
                "reconcile failed",
                error=f"{type(exc).__name__}: {exc}",
                retries=self.queue.num_requeues(key),
                exc_info=not isinstance(exc, ApiError),
            )
        else:
            if result is None or isinstance(result, Done):
                self.queue.forget(key)
            elif isinstance(result, RequeueAfter):
                outcome = "requeue"
                self.queue.forget(key)
                self.queue.add_after(key, result.seconds)
            elif isinstance(result, Retry):
                outcome = "requeue"
                self.queue.add_rate_limited(key)
                bound.debug("reconcile retry", reason=result.reason)
            else:
                outcome = "error"
                bound.error("reconcile returned an unknown result", result=repr(result))
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.reconcile_duration_seconds.labels(controller=self.name).observe(elapsed)
            self.metrics.reconcile_total.labels(controller=self.name, result=outcome).inc()
