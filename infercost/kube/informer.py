"""Informers: a LIST+WATCH loop per resource keeping a local cache and telling handlers.

The loop follows client-go's reflector, ported to one thread per informer:

1. LIST (paginated; the first list with ``resourceVersion=0`` so the apiserver may serve it
   from its watch cache, later ones with ``resourceVersion=""``, a consistent read). The list
   replaces the cache: objects that vanished become deletes, changed ones updates, new ones
   adds. After the first complete list :meth:`Informer.has_synced` is true.
2. WATCH from the list's resourceVersion with ``allowWatchBookmarks=true`` and a server-side
   ``timeoutSeconds`` drawn at random from 5–10 minutes (so watches end on their own, spread
   out), plus a client read timeout, the longest silence tolerated between two events: a
   half-open TCP connection would otherwise hang the informer forever. BOOKMARK events only
   advance the resourceVersion. When the server ends the watch normally, the loop re-watches
   from the last resourceVersion without listing.
3. ``410 GoneError`` (the resourceVersion fell out of the server's history, as an HTTP status or an
   ERROR event) relists. Other failures (connection errors, 429, 5xx, read timeouts) re-watch
   from the last resourceVersion after a backoff of 800 ms doubling to 30 s with jitter, reset
   after 2 minutes without trouble (longer when a 429 says Retry-After, up to 30 s); 403/404
   and undecodable streams relist after the backoff.
   Every restart that is not a normal end of a watch counts in
   ``infercost_watch_restarts_total{resource}`` and is logged.

Objects pass through an optional transform before they are cached (see
:mod:`infercost.kube.transforms`); handlers receive the transformed objects. Handlers run on
the informer's thread and must be quick: controllers only enqueue keys there.

Objects are read and parsed as raw JSON through :class:`~infercost.kube.rest.RestClient`, for
core kinds and custom resources alike. :class:`InformerFactory` keeps one informer per
resource (and selector), shared by every controller.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import structlog

from infercost.kube.cache import (
    NAMESPACE_INDEX,
    NODE_INDEX,
    IndexFunc,
    Store,
    index_by_namespace,
    index_pod_node,
)
from infercost.kube.clock import Clock, RealClock
from infercost.kube.health import HealthMetrics
from infercost.kube.rest import (
    NODES,
    PODS,
    ApiError,
    ForbiddenError,
    GoneError,
    NotFoundError,
    Resource,
    RestClient,
    TransportError,
    WatchStream,
    error_for,
)
from infercost.kube.transforms import object_key, transform_node, transform_pod

__all__ = ["Backoff", "EventHandler", "Informer", "InformerFactory"]

Transform = Callable[[Mapping[str, Any]], Any]
log = structlog.get_logger("infercost.kube.informer")


@attrs.frozen
class EventHandler:
    """Callbacks for one consumer of an informer; any of them may be None."""

    on_add: Callable[[Any], None] | None = None
    on_update: Callable[[Any, Any], None] | None = None
    on_delete: Callable[[Any], None] | None = None


class Backoff:
    """Exponential backoff with jitter that resets after a healthy period (client-go's
    ``NewExponentialBackoffManager(800ms, 30s, 2m, 2.0, 1.0)``)."""

    def __init__(
        self,
        *,
        initial: float = 0.8,
        cap: float = 30.0,
        factor: float = 2.0,
        jitter: float = 1.0,
        reset_after: float = 120.0,
        clock: Clock | None = None,
        rand: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.reset_after = reset_after
        self._clock = clock or RealClock()
        self._rand = rand or random.Random()
        self._next = initial
        self._last: float | None = None

    def step(self) -> float:
        """The next delay in seconds: the base doubles up to ``cap``; jitter adds up to
        ``jitter`` × base on top. A step ``reset_after`` seconds after the previous one starts
        over from ``initial``."""
        now = self._clock.monotonic()
        if self._last is not None and now - self._last >= self.reset_after:
            self._next = self.initial
        base = self._next
        self._next = min(self.cap, self._next * self.factor)
        self._last = now
        return base + self._rand.random() * self.jitter * base


class _RestartError(Exception):
    """Internal: end the current watch; ``relist`` says whether to list again."""

    def __init__(self, reason: str, relist: bool, backoff: bool, error: Exception | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.relist = relist
        self.backoff = backoff
        self.error = error


class Informer:
    """A cache of one resource kept current by LIST+WATCH; see the module docstring."""

    def __init__(
        self,
        rest: RestClient,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        transform: Transform | None = None,
        indexers: Mapping[str, IndexFunc] | None = None,
        index_namespaces: bool = True,
        clock: Clock | None = None,
        metrics: HealthMetrics | None = None,
        page_size: int = 500,
        watch_timeout_range: tuple[int, int] = (300, 600),
        read_timeout: float = 90.0,
        connect_timeout: float = 10.0,
        backoff: Backoff | None = None,
        rand: random.Random | None = None,
    ) -> None:
        if namespace and not resource.namespaced:
            raise ValueError(f"{resource.display} is cluster-scoped; it cannot be namespaced")
        self.rest = rest
        self.resource = resource
        self.namespace = namespace or None
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.transform = transform
        defaults: dict[str, IndexFunc] = (
            {NAMESPACE_INDEX: index_by_namespace} if index_namespaces else {}
        )
        self.store = Store({**defaults, **(indexers or {})})
        self._clock = clock or RealClock()
        self._metrics = metrics
        self.page_size = page_size
        self.watch_timeout_range = watch_timeout_range
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self._rand = rand or random.Random()
        self._backoff = backoff or Backoff(clock=self._clock, rand=self._rand)
        self._handlers: list[EventHandler] = []
        self._dispatch_lock = threading.RLock()
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: WatchStream | None = None
        self._stream_lock = threading.Lock()
        self._resource_version = ""
        self._log = log.bind(resource=resource.display, namespace=self.namespace or "")

    # -- public ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.resource.display

    @property
    def resource_version(self) -> str:
        """The last resourceVersion seen (list, event or bookmark): client-go's
        ``LastSyncResourceVersion``. Cached objects keep none of their own; this tells how far
        the cache has caught up."""
        return self._resource_version

    def add_handler(self, handler: EventHandler) -> None:
        """Register ``handler``; objects already cached are replayed to it as adds."""
        with self._dispatch_lock:
            self._handlers.append(handler)
            if handler.on_add is not None:
                for obj in self.store.objects():
                    self._call(handler.on_add, obj)

    def add_indexers(self, indexers: Mapping[str, IndexFunc]) -> None:
        self.store.add_indexers(indexers)

    def has_synced(self) -> bool:
        """True once the first LIST has been applied to the cache."""
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"informer-{self.resource.display}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._stream_lock:
            if self._stream is not None:
                self._stream.close()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        relist = True
        list_rv = "0"
        while not self._stop.is_set():
            try:
                if relist:
                    self._list_and_replace(list_rv)
                    relist = False
                self._watch()
            except _RestartError as restart:
                if self._stop.is_set():
                    break
                self._count_restart()
                event = self._log.warning if restart.backoff else self._log.info
                event(
                    "watch restarted",
                    reason=restart.reason,
                    relist=restart.relist,
                    resource_version=self._resource_version,
                    error=str(restart.error) if restart.error else None,
                )
                if restart.relist:
                    relist = True
                    list_rv = ""
                if restart.backoff:
                    delay = self._backoff.step()
                    if isinstance(restart.error, ApiError) and restart.error.retry_after:
                        delay = max(delay, min(restart.error.retry_after, self._backoff.cap))
                    if self._clock.sleep(delay, self._stop):
                        break
            except Exception as exc:  # a bug must not kill the informer silently
                if self._stop.is_set():
                    break
                self._count_restart()
                self._log.exception("informer loop failed", error=str(exc))
                relist, list_rv = True, ""
                if self._clock.sleep(self._backoff.step(), self._stop):
                    break
        self._log.debug("informer stopped")

    def _count_restart(self) -> None:
        if self._metrics is not None:
            self._metrics.watch_restarts_total.labels(resource=self.resource.display).inc()

    def _classify(self, exc: ApiError, during: str) -> _RestartError:
        if isinstance(exc, GoneError):
            # A 410 right after a fresh list means the server keeps very little history; back
            # off then, so a 410 storm cannot turn into a relist storm.
            return _RestartError("expired", relist=True, backoff=during == "list", error=exc)
        if isinstance(exc, TransportError):
            if exc.reason == "ReadTimeoutError" and during == "watch":
                return _RestartError("read timeout", relist=False, backoff=False, error=exc)
            return _RestartError(
                "connection error", relist=during == "list", backoff=True, error=exc
            )
        if isinstance(exc, ForbiddenError | NotFoundError):
            return _RestartError(f"HTTP {exc.status}", relist=True, backoff=True, error=exc)
        return _RestartError(f"HTTP {exc.status}", relist=during == "list", backoff=True, error=exc)

    def _list_and_replace(self, resource_version: str) -> None:
        items: dict[str, Any] = {}
        continue_token = ""
        list_rv = ""
        rv = resource_version
        while True:
            try:
                page = self.rest.list(
                    self.resource,
                    self.namespace,
                    label_selector=self.label_selector,
                    field_selector=self.field_selector,
                    limit=self.page_size,
                    continue_token=continue_token,
                    resource_version=None if continue_token else rv,
                )
            except GoneError as exc:
                if continue_token:
                    # The continue token expired mid-list: start over with a consistent read.
                    items.clear()
                    continue_token, rv = "", ""
                    self._log.info("list continue token expired; listing again", error=str(exc))
                    continue
                raise self._classify(exc, "list") from exc
            except ApiError as exc:
                raise self._classify(exc, "list") from exc
            if self._stop.is_set():
                return
            for raw in page.get("items") or ():
                if not isinstance(raw, Mapping):
                    continue
                items[object_key(raw)] = self._transform(raw)
            meta = page.get("metadata") or {}
            list_rv = str(meta.get("resourceVersion") or list_rv)
            continue_token = str(meta.get("continue") or "")
            if not continue_token:
                break
        self._replace(items, list_rv)

    def _transform(self, raw: Mapping[str, Any]) -> Any:
        return self.transform(raw) if self.transform is not None else dict(raw)

    def _replace(self, items: dict[str, Any], list_rv: str) -> None:
        with self._dispatch_lock:
            for key in self.store.list_keys():
                if key not in items:
                    old = self.store.delete(key)
                    self._dispatch_delete(old)
            for key, obj in items.items():
                old = self.store.put(key, obj)
                if old is None:
                    self._dispatch_add(obj)
                elif _changed(old, obj):
                    self._dispatch_update(old, obj)
            self._resource_version = list_rv
            first = not self._synced.is_set()
            self._synced.set()
        if first:
            self._log.info("cache synced", objects=len(items), resource_version=list_rv)

    def _watch(self) -> None:
        low, high = self.watch_timeout_range
        query: dict[str, Any] = {
            "watch": True,
            "resourceVersion": self._resource_version,
            "allowWatchBookmarks": True,
            "timeoutSeconds": self._rand.randint(low, high),
            "labelSelector": self.label_selector,
            "fieldSelector": self.field_selector,
        }
        try:
            stream = self.rest.watch(
                self.resource.path(self.namespace),
                query=query,
                timeout=(self.connect_timeout, self.read_timeout),
            )
        except ApiError as exc:
            raise self._classify(exc, "watch") from exc
        with self._stream_lock:
            if self._stop.is_set():
                stream.close()
                return
            self._stream = stream
        try:
            for event in stream:
                if self._stop.is_set():
                    return
                self._handle_event(event)
        except ApiError as exc:
            raise self._classify(exc, "watch") from exc
        finally:
            with self._stream_lock:
                self._stream = None
            stream.close()

    def _handle_event(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object")
        if not isinstance(obj, Mapping):
            raise _RestartError("bad event", relist=True, backoff=True, error=None)
        if kind == "ERROR":
            code = int(obj.get("code") or 500)
            raise self._classify(
                error_for(code, obj, method="WATCH", path=self.resource.path(self.namespace)),
                "watch",
            )
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if kind == "BOOKMARK":
            if rv:
                self._resource_version = rv
            return
        key = object_key(obj)
        with self._dispatch_lock:
            if kind in ("ADDED", "MODIFIED"):
                new = self._transform(obj)
                old = self.store.put(key, new)
                if old is None:
                    self._dispatch_add(new)
                elif _changed(old, new):
                    self._dispatch_update(old, new)
            elif kind == "DELETED":
                old = self.store.delete(key)
                if old is not None:
                    self._dispatch_delete(self._transform(obj))
            else:
                raise _RestartError(
                    f"unknown event type {kind!r}", relist=True, backoff=True, error=None
                )
            if rv:
                self._resource_version = rv

    # -- dispatch ----------------------------------------------------------------------------

    def _call(self, func: Callable[..., None], *args: Any) -> None:
        try:
            func(*args)
        except Exception as exc:
            self._log.exception("event handler failed", error=str(exc))

    def _dispatch_add(self, obj: Any) -> None:
        for h in self._handlers:
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _dispatch_update(self, old: Any, new: Any) -> None:
        for h in self._handlers:
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _dispatch_delete(self, obj: Any) -> None:
        for h in self._handlers:
            if h.on_delete is not None:
                self._call(h.on_delete, obj)


def _changed(old: Any, new: Any) -> bool:
    """Whether an update is worth telling the handlers: a raw object changed when its
    resourceVersion did; a compact one (which keeps no resourceVersion) when anything it keeps
    did, so that a change of only what the transform strips is no update."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return _rv(old) != _rv(new)
    return bool(old != new)


def _rv(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class InformerFactory:
    """One informer per (resource, namespace, selectors), shared by every controller."""

    def __init__(
        self,
        rest: RestClient,
        *,
        clock: Clock | None = None,
        metrics: HealthMetrics | None = None,
        **informer_options: Any,
    ) -> None:
        self.rest = rest
        self.clock = clock or RealClock()
        self.metrics = metrics
        self._options = informer_options
        self._informers: dict[tuple[Resource, str, str, str], Informer] = {}
        self._lock = threading.Lock()
        self._started = False

    def informer(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        transform: Transform | None = None,
        indexers: Mapping[str, IndexFunc] | None = None,
        index_namespaces: bool = True,
    ) -> Informer:
        """The shared informer for these parameters, created on first use (and started at once
        when the factory is already running). Indexers are merged; asking for a different
        transform of the same informer is an error. ``index_namespaces`` (the default index
        by namespace) counts only where the informer is created."""
        key = (resource, namespace or "", label_selector, field_selector)
        with self._lock:
            inf = self._informers.get(key)
            if inf is None:
                inf = Informer(
                    self.rest,
                    resource,
                    namespace=namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    transform=transform,
                    indexers=indexers,
                    index_namespaces=index_namespaces,
                    clock=self.clock,
                    metrics=self.metrics,
                    **self._options,
                )
                self._informers[key] = inf
                if self._started:
                    inf.start()
                return inf
        if transform is not None and inf.transform is not transform:
            raise ValueError(f"informer for {resource.display} already uses another transform")
        if indexers:
            inf.add_indexers(indexers)
        return inf

    def pods(self) -> Informer:
        """Pods, stripped to :class:`~infercost.kube.transforms.PodInfo`, indexed by node (not
        by namespace: pods are the objects counted in thousands, and no one looks them up by
        namespace)."""
        return self.informer(
            PODS,
            transform=transform_pod,
            indexers={NODE_INDEX: index_pod_node},
            index_namespaces=False,
        )

    def nodes(self) -> Informer:
        """Nodes, stripped to :class:`~infercost.kube.transforms.NodeInfo`."""
        return self.informer(NODES, transform=transform_node)

    def informers(self) -> list[Informer]:
        with self._lock:
            return list(self._informers.values())

    def start(self) -> None:
        with self._lock:
            self._started = True
            pending = list(self._informers.values())
        for inf in pending:
            inf.start()

    def stop(self) -> None:
        for inf in self.informers():
            inf.stop()

    def join(self, timeout: float | None = None) -> None:
        for inf in self.informers():
            inf.join(timeout)

    def has_synced(self) -> bool:
        return all(inf.has_synced() for inf in self.informers())

    def alive(self) -> bool:
        """Every started informer's thread is running (for /healthz)."""
        return all(inf.is_alive() for inf in self.informers()) if self._started else True
