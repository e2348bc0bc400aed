"""The informer's thread-safe object cache with secondary indexes.

Objects are stored under their ``namespace/name`` key (``name`` when cluster-scoped) exactly as
the informer's transform left them; readers must treat them as immutable (the compact forms
are frozen; raw CR dicts are replaced, never edited, by the informer). Index functions map an
object to zero or more index values; :meth:`Store.by_index` answers "all pods on node X" or "all
objects in namespace Y" without a scan.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from infercost.kube.transforms import object_labels, object_namespace

__all__ = [
    "NAMESPACE_INDEX",
    "NODE_INDEX",
    "IndexFunc",
    "Store",
    "index_by_label",
    "index_by_namespace",
    "index_pod_node",
]

IndexFunc = Callable[[Any], Iterable[str]]

NAMESPACE_INDEX = "namespace"
NODE_INDEX = "node"


def index_by_namespace(obj: Any) -> Iterable[str]:
    ns = object_namespace(obj)
    return (ns,) if ns else ()


def index_pod_node(obj: Any) -> Iterable[str]:
    """Pods by ``spec.nodeName`` (raw dict or :class:`~infercost.kube.transforms.PodInfo`)."""
    if isinstance(obj, Mapping):
        node = (obj.get("spec") or {}).get("nodeName") or ""
    else:
        node = getattr(obj, "node_name", "") or ""
    return (node,) if node else ()


def index_by_label(label: str) -> IndexFunc:
    """Objects by the value of one label (objects without it are not indexed)."""

    def index(obj: Any) -> Iterable[str]:
        value = object_labels(obj).get(label)
        return (value,) if value is not None else ()

    return index


class Store:
    """A dict of objects plus inverted indexes, guarded by one lock."""

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None) -> None:
        self._lock = threading.RLock()
        self._items: dict[str, Any] = {}
        self._indexers: dict[str, IndexFunc] = dict(indexers or {})
        self._indices: dict[str, dict[str, dict[str, None]]] = {name: {} for name in self._indexers}

    def add_indexers(self, indexers: Mapping[str, IndexFunc]) -> None:
        """Add indexes (existing objects are indexed at once); a name can be added only once."""
        with self._lock:
            for name, func in indexers.items():
                if name in self._indexers:
                    if self._indexers[name] is func:
                        continue
                    raise ValueError(f"index {name!r} already exists")
                self._indexers[name] = func
                self._indices[name] = {}
                for key, obj in self._items.items():
                    self._index_one(name, key, obj)

    def _index_one(self, name: str, key: str, obj: Any) -> None:
        index = self._indices[name]
        for value in self._indexers[name](obj):
            keys = index.get(value)
            if keys is None:
                index[value] = {key: None}
            else:
                keys[key] = None

    def _unindex(self, key: str, obj: Any) -> None:
        for name, func in self._indexers.items():
            index = self._indices[name]
            for value in func(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.pop(key, None)
                    if not keys:
                        del index[value]

    def put(self, key: str, obj: Any) -> Any | None:
        """Insert or replace; returns the previous object (or None)."""
        with self._lock:
            old = self._items.get(key)
            if old is not None:
                self._unindex(key, old)
            self._items[key] = obj
            for name in self._indexers:
                self._index_one(name, key, obj)
            return old

    def delete(self, key: str) -> Any | None:
        """Remove; returns the removed object (or None when absent)."""
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._unindex(key, old)
            return old

    def get(self, key: str) -> Any | None:
        with self._lock:
            return self._items.get(key)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def list_keys(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def objects(self) -> list[Any]:
        with self._lock:
            return list(self._items.values())

    def items(self) -> list[tuple[str, Any]]:
        with self._lock:
            return list(self._items.items())

    def by_index(self, index: str, value: str) -> list[Any]:
        with self._lock:
            if index not in self._indices:
                raise KeyError(f"no index named {index!r}")
            return [self._items[k] for k in sorted(self._indices[index].get(value, ()))]

    def index_keys(self, index: str, value: str) -> list[str]:
        with self._lock:
            if index not in self._indices:
                raise KeyError(f"no index named {index!r}")
            return sorted(self._indices[index].get(value, ()))

    def index_values(self, index: str) -> list[str]:
        with self._lock:
            if index not in self._indices:
                raise KeyError(f"no index named {index!r}")
            return sorted(self._indices[index])
