"""One open watch: filters the store's events for its client and turns them into JSON lines.

The store calls :meth:`Watcher.offer` under its lock for every event of the watched storage
key; the watcher filters by namespace and selectors (an object that stops matching is sent as
DELETED, one that starts matching as ADDED, as the apiserver's watch cache does) and queues it.
The serving thread drains the queue with :meth:`Watcher.next_line`. Bookmarks and the
``timeoutSeconds`` deadline are produced here too. Protocol: kubernetes.io/docs/reference/
using-api/api-concepts/#efficient-detection-of-changes and #watch-bookmarks.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

from .store import Event, Stored, encode

Matcher = Callable[[dict[str, Any]], bool]

_CLOSE = object()
_ABORT = object()


class Watcher:
    def __init__(
        self,
        namespace: str | None,
        matches: Matcher,
        render: Callable[[Stored], bytes],
        kind: str,
        api_version: str,
    ) -> None:
        self.namespace = namespace
        self.matches = matches
        self.render = render
        self.kind = kind
        self.api_version = api_version
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def passes(self, stored: Stored | None) -> bool:
        if stored is None:
            return False
        obj = stored.obj
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.matches(obj)

    def translate(self, event: Event) -> tuple[str, Stored] | None:
        """The event this watcher's client sees, or None when filtered out."""
        if event.type == "ADDED":
            return ("ADDED", event.new) if self.passes(event.new) else None
        if event.type == "DELETED":
            return ("DELETED", event.new) if self.passes(event.prev) else None
        now = self.passes(event.new)
        before = self.passes(event.prev)
        if now and before:
            return ("MODIFIED", event.new)
        if now:
            return ("ADDED", event.new)
        if before:
            assert event.prev is not None
            obj = dict(event.prev.obj)
            obj["metadata"] = dict(obj["metadata"], resourceVersion=str(event.rv))
            return ("DELETED", Stored(obj))
        return None

    def offer(self, event: Event) -> None:
        item = self.translate(event)
        if item is not None:
            self._queue.put(item)

    def close(self, abrupt: bool = False) -> None:
        """End the stream: cleanly (final chunk) or by cutting the connection."""
        self._queue.put(_ABORT if abrupt else _CLOSE)

    def line(self, event_type: str, stored: Stored) -> bytes:
        return b'{"type":"' + event_type.encode() + b'","object":' + self.render(stored) + b"}\n"

    def bookmark(self, rv: int, initial_events_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_events_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": self.kind, "apiVersion": self.api_version, "metadata": meta}
        return encode({"type": "BOOKMARK", "object": obj}) + b"\n"

    def next_item(self, timeout: float) -> Any:
        """A queued (type, Stored), ``"close"``, ``"abort"``, or None after ``timeout`` s."""
        try:
            item = self._queue.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        if item is _CLOSE:
            return "close"
        if item is _ABORT:
            return "abort"
        return item

    def idle(self) -> bool:
        return self._queue.empty()


def error_line(status: dict[str, Any]) -> bytes:
    return encode({"type": "ERROR", "object": status}) + b"\n"
