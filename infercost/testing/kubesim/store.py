"""The in-memory object store: one cluster-wide resourceVersion, history, watchers, uid index.

Every write goes through :meth:`Store.put` or :meth:`Store.remove` while the caller holds
``store.lock``; each assigns the next resourceVersion, appends an event to the bounded history
of the object's storage key and hands it to the watchers of that key, all under the same lock,
so watchers see events in resourceVersion order with no gaps. Stored objects are never mutated
after they are stored (writers build new dicts), which lets readers serialise them outside the
lock and lets the JSON encoding of each version be cached. Semantics of resourceVersions and
history follow kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol

ObjKey = tuple[str, str]  # (namespace, name)


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Stored:
    """One stored version of an object and its cached JSON encoding."""

    __slots__ = ("_raw", "obj")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self._raw: bytes | None = None

    def raw(self) -> bytes:
        raw = self._raw
        if raw is None:
            raw = self._raw = encode(self.obj)
        return raw

    @property
    def rv(self) -> int:
        return int(self.obj["metadata"]["resourceVersion"])

    @property
    def uid(self) -> str:
        return str(self.obj["metadata"].get("uid", ""))


class Event:
    """A change to one object; ``prev`` is the version before it (None for ADDED)."""

    __slots__ = ("key", "new", "prev", "rv", "type")

    def __init__(self, type: str, new: Stored, prev: Stored | None, rv: int, key: ObjKey) -> None:
        self.type = type
        self.new = new
        self.prev = prev
        self.rv = rv
        self.key = key


class TooOldError(Exception):
    """A resourceVersion older than the retained history."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class Watcher(Protocol):
    """What the store needs of an open watch (``watching.Watcher`` is the one there is)."""

    def offer(self, event: Event) -> None:
        """Take one event of the watched storage key; called under the store's lock."""
        ...

    def close(self, abrupt: bool = False) -> None:
        """End the stream: cleanly or by cutting the connection."""
        ...


def obj_key(obj: dict[str, Any]) -> ObjKey:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])


class Store:
    def __init__(self, history: int = 4096) -> None:
        if history < 1:
            raise ValueError(f"watch history must be at least 1 event, got {history}")
        self.lock = threading.RLock()
        self.history_size = history
        self.rv = 0
        self._objects: dict[str, dict[ObjKey, Stored]] = {}
        self._history: dict[str, deque[Event]] = {}
        # Per storage key: the newest resourceVersion whose successors are not all retained.
        self._compacted: dict[str, int] = {}
        self._expired_before = 0
        self._watchers: dict[str, set[Watcher]] = {}
        self._by_uid: dict[str, tuple[str, ObjKey]] = {}
        self._dependents: dict[str, set[tuple[str, ObjKey]]] = {}

    # Reads (callers hold the lock when they need consistency across calls) -----------------

    def get(self, key: str, okey: ObjKey) -> Stored | None:
        return self._objects.get(key, {}).get(okey)

    def objects(self, key: str) -> dict[ObjKey, Stored]:
        return self._objects.get(key, {})

    def count(self) -> int:
        return sum(len(v) for v in self._objects.values())

    def by_uid(self, uid: str) -> tuple[str, ObjKey] | None:
        return self._by_uid.get(uid)

    def dependents(self, uid: str) -> list[tuple[str, ObjKey]]:
        return sorted(self._dependents.get(uid, ()))

    def oldest_available(self, key: str) -> int:
        """The smallest resourceVersion a watch or exact list of ``key`` may start from."""
        return max(self._compacted.get(key, 0), self._expired_before)

    # Writes (caller holds the lock) ---------------------------------------------------------

    def put(self, key: str, obj: dict[str, Any], event_type: str | None = None) -> Stored:
        """Store a new version of ``obj`` (a fresh dict) with the next resourceVersion."""
        self.rv += 1
        rv = self.rv
        meta = dict(obj["metadata"])
        meta["resourceVersion"] = str(rv)
        obj = dict(obj)
        obj["metadata"] = meta
        okey = obj_key(obj)
        bucket = self._objects.setdefault(key, {})
        prev = bucket.get(okey)
        stored = Stored(obj)
        bucket[okey] = stored
        if prev is not None:
            self._unindex(key, okey, prev)
        self._index(key, okey, stored)
        etype = event_type or ("MODIFIED" if prev is not None else "ADDED")
        self._record(key, Event(etype, stored, prev, rv, okey))
        return stored

    def remove(self, key: str, okey: ObjKey) -> Stored:
        bucket = self._objects.get(key, {})
        prev = bucket.pop(okey)
        self.rv += 1
        rv = self.rv
        obj = dict(prev.obj)
        obj["metadata"] = dict(obj["metadata"], resourceVersion=str(rv))
        final = Stored(obj)
        self._unindex(key, okey, prev)
        self._record(key, Event("DELETED", final, prev, rv, okey))
        return final

    def _index(self, key: str, okey: ObjKey, stored: Stored) -> None:
        meta = stored.obj["metadata"]
        uid = meta.get("uid")
        if uid:
            self._by_uid[uid] = (key, okey)
        for ref in meta.get("ownerReferences") or ():
            owner = ref.get("uid") if isinstance(ref, dict) else None
            if owner:
                self._dependents.setdefault(owner, set()).add((key, okey))

    def _unindex(self, key: str, okey: ObjKey, stored: Stored) -> None:
        meta = stored.obj["metadata"]
        uid = meta.get("uid")
        if uid and self._by_uid.get(uid) == (key, okey):
            del self._by_uid[uid]
        for ref in meta.get("ownerReferences") or ():
            owner = ref.get("uid") if isinstance(ref, dict) else None
            if owner and owner in self._dependents:
                self._dependents[owner].discard((key, okey))
                if not self._dependents[owner]:
                    del self._dependents[owner]

    def _record(self, key: str, event: Event) -> None:
        history = self._history.get(key)
        if history is None:
            history = self._history[key] = deque()
        history.append(event)
        if len(history) > self.history_size:
            dropped = history.popleft()
            self._compacted[key] = dropped.rv
        for watcher in tuple(self._watchers.get(key, ())):
            watcher.offer(event)

    # History, snapshots and watchers ----------------------------------------------------------

    def events_since(self, key: str, rv: int) -> list[Event]:
        oldest = self.oldest_available(key)
        if rv < oldest:
            raise TooOldError(rv, oldest)
        history = self._history.get(key, ())
        return [e for e in history if e.rv > rv]

    def snapshot(self, key: str, rv: int) -> dict[ObjKey, Stored]:
        """The objects of ``key`` as they were at resourceVersion ``rv`` (raises TooOldError)."""
        state = dict(self._objects.get(key, {}))
        for event in reversed(self.events_since(key, rv)):
            if event.prev is None:
                state.pop(event.key, None)
            else:
                state[event.key] = event.prev
        return state

    def expire_all(self) -> None:
        """Make every resourceVersion issued so far unavailable for watches and exact lists.

        The counter moves past them (like an etcd compaction followed by a write), so a fresh
        list returns a resourceVersion a watch can start from.
        """
        self.rv += 1
        self._expired_before = self.rv
        for history in self._history.values():
            history.clear()

    def add_watcher(self, key: str, watcher: Watcher) -> None:
        self._watchers.setdefault(key, set()).add(watcher)

    def remove_watcher(self, key: str, watcher: Watcher) -> None:
        watchers = self._watchers.get(key)
        if watchers is not None:
            watchers.discard(watcher)

    def all_watchers(self) -> Iterable[Watcher]:
        return [w for ws in self._watchers.values() for w in ws]

    def watchers_of(self, key: str) -> list[Watcher]:
        return list(self._watchers.get(key, ()))
