"""Kubernetes Events for state changes worth a human's attention, without flooding etcd.

Like client-go's ``EventCorrelator``, repeats are folded:

- the same involved object, type, reason and message within the cache's lifetime becomes one
  Event whose ``count`` grows and whose ``lastTimestamp`` moves (a merge patch, not a new
  object);
- once more than ``similar_threshold`` distinct messages share an object, type and reason
  within ``similar_window_seconds``, further ones go to one aggregate Event (count grows,
  message is the latest, prefixed ``(combined from similar events):``), like client-go's
  ``EventAggregator``;
- a per-object token bucket (25 events, one more every 5 minutes) drops the rest, logged.

Writing an Event never fails the caller: API errors are logged and swallowed, because an Event
is a notification, not state. Callers on several threads may report the same Event at once:
the read of its count, the patch and the cache update happen under one lock per Event (striped,
so the number of locks stays fixed), so no increment is lost and a first report is never
created twice.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
import cachetools
import structlog

from infercost.kube.clock import Clock, RealClock
from infercost.kube.conditions import format_time
from infercost.kube.rest import EVENTS, ApiError, NotFoundError, Resource, RestClient
from infercost.kube.workqueue import TokenBucket

__all__ = ["NORMAL", "WARNING", "EventRecorder", "ObjectRef"]

NORMAL = "Normal"
WARNING = "Warning"
COMBINED_PREFIX = "(combined from similar events): "
_MAX_MESSAGE = 1024
_EVENT_LOCK_STRIPES = 64

log = structlog.get_logger("infercost.kube.events")


@attrs.frozen
class ObjectRef:
    """The ``involvedObject`` of an Event."""

    api_version: str
    kind: str
    name: str
    namespace: str = ""
    uid: str = ""

    @classmethod
    def of(cls, obj: Any, resource: Resource) -> ObjectRef:
        """Reference a cached object (raw dict or compact form) of ``resource``."""
        if isinstance(obj, Mapping):
            meta = obj.get("metadata") or {}
            return cls(
                resource.api_version,
                resource.kind,
                str(meta.get("name") or ""),
                str(meta.get("namespace") or ""),
                str(meta.get("uid") or ""),
            )
        return cls(
            resource.api_version,
            resource.kind,
            str(getattr(obj, "name", "")),
            str(getattr(obj, "namespace", "")),
            str(getattr(obj, "uid", "")),
        )

    def as_dict(self) -> dict[str, str]:
        ref = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}
        if self.namespace:
            ref["namespace"] = self.namespace
        if self.uid:
            ref["uid"] = self.uid
        return ref


@attrs.define
class _Recorded:
    name: str
    namespace: str
    count: int


class EventRecorder:
    """Records core/v1 Events with ``source.component`` = ``component``."""

    def __init__(
        self,
        rest: RestClient,
        *,
        component: str = "infercost",
        host: str = "",
        clock: Clock | None = None,
        cache_size: int = 4096,
        cache_ttl_seconds: float = 3600.0,
        spam_burst: int = 25,
        spam_refill_seconds: float = 300.0,
        similar_threshold: int = 10,
        similar_window_seconds: float = 600.0,
        default_namespace: str = "default",
    ) -> None:
        self.rest = rest
        self.component = component
        self.host = host
        self.clock = clock or RealClock()
        self.spam_burst = spam_burst
        self.spam_refill_seconds = spam_refill_seconds
        self.similar_threshold = similar_threshold
        self.similar_window_seconds = similar_window_seconds
        self.default_namespace = default_namespace
        self._lock = threading.Lock()
        mono = self.clock.monotonic
        self._recorded: cachetools.TTLCache[tuple[Any, ...], _Recorded] = cachetools.TTLCache(
            cache_size, cache_ttl_seconds, timer=mono
        )
        self._similar: cachetools.TTLCache[tuple[Any, ...], dict[str, float]] = cachetools.TTLCache(
            cache_size, similar_window_seconds, timer=mono
        )
        self._buckets: cachetools.LRUCache[tuple[Any, ...], TokenBucket] = cachetools.LRUCache(
            cache_size
        )
        self._event_locks = tuple(threading.Lock() for _ in range(_EVENT_LOCK_STRIPES))

    def normal(self, ref: ObjectRef, reason: str, message: str) -> bool:
        return self.event(ref, NORMAL, reason, message)

    def warning(self, ref: ObjectRef, reason: str, message: str) -> bool:
        return self.event(ref, WARNING, reason, message)

    def event(self, ref: ObjectRef, type_: str, reason: str, message: str) -> bool:
        """Record an event; returns False when it was dropped by the spam filter or the API
        refused it (logged either way)."""
        if type_ not in (NORMAL, WARNING):
            raise ValueError(f"event type must be {NORMAL} or {WARNING}, not {type_!r}")
        if not reason:
            raise ValueError("an event needs a reason")
        message = message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."
        now_mono = self.clock.monotonic()
        obj_key = (ref.api_version, ref.kind, ref.namespace, ref.name, ref.uid)
        with self._lock:
            bucket = self._buckets.get(obj_key)
            if bucket is None:
                bucket = self._buckets[obj_key] = TokenBucket(
                    1.0 / self.spam_refill_seconds, self.spam_burst, now_mono
                )
            if not bucket.try_take(now_mono):
                log.info("event dropped by the spam filter", object=ref.name, reason=reason)
                return False
            similar_key = (*obj_key, type_, reason)
            seen = self._similar.get(similar_key)
            if seen is None:
                seen = self._similar[similar_key] = {}
            seen[message] = now_mono
            combined = len(seen) > self.similar_threshold
            if combined:
                # One aggregate Event per object/type/reason, its message the latest one.
                message = (COMBINED_PREFIX + message)[:_MAX_MESSAGE]
                key: tuple[Any, ...] = (*obj_key, type_, reason, COMBINED_PREFIX)
            else:
                key = (*obj_key, type_, reason, message)
        with self._event_locks[hash(key) % _EVENT_LOCK_STRIPES]:
            return self._write(ref, key, type_, reason, message, combined=combined)

    def _write(
        self,
        ref: ObjectRef,
        key: tuple[Any, ...],
        type_: str,
        reason: str,
        message: str,
        *,
        combined: bool,
    ) -> bool:
        """Patch the Event of ``key`` or create it; the caller holds the Event's lock."""
        with self._lock:
            recorded = self._recorded.get(key)
        now = self.clock.now()
        if recorded is not None:
            try:
                self.rest.merge_patch(
                    EVENTS,
                    recorded.name,
                    {
                        "count": recorded.count + 1,
                        "lastTimestamp": format_time(now),
                        **({"message": message} if combined else {}),
                    },
                    recorded.namespace,
                )
            except NotFoundError:
                recorded = None  # expired on the server (event TTL): start a new one
            except ApiError as exc:
                log.warning("event update failed", object=ref.name, reason=reason, error=str(exc))
                return False
            else:
                with self._lock:
                    recorded.count += 1
                    self._recorded[key] = recorded
                return True
        namespace = ref.namespace or self.default_namespace
        name = f"{ref.name}.{uuid.uuid4().hex[:16]}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": ref.as_dict(),
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": format_time(now),
            "lastTimestamp": format_time(now),
            "eventTime": None,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "reportingComponent": self.component,
            "reportingInstance": self.host or self.component,
        }
        try:
            self.rest.create(EVENTS, body, namespace)
        except ApiError as exc:
            log.warning("event creation failed", object=ref.name, reason=reason, error=str(exc))
            return False
        with self._lock:
            self._recorded[key] = _Recorded(name, namespace, 1)
        return True
