"""The ledger's checkpoint in ConfigMaps (SPEC §4), through the opaque object store.

Objects, all in the operator namespace and labelled ``infercost.ai/ledger=true``:

- ``infercost-ledger-<shard>``: the shard's hot state (watermarks, energy counters and
  deferrals, spec and rates in force, coverage, the open days' lines), key ``state``, replaced
  whole after every sample that changed it;
- ``infercost-ledger-<shard>-<yyyy-mm>``: the shard's closed days of that month, one key per day
  (``2026-11-27``), each written once when the day closes.

Values are zlib-compressed compact JSON (``binaryData``): a shard of 5,000 pods stays well under
the 1 MiB ConfigMap limit. Reading it back needs nothing but this module: ``infercost export``
uses :func:`load_ledger` too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import zlib
from collections.abc import Iterable
from typing import Any

from infercost.engine.ledger import Ledger
from infercost.kube.objectstore import ObjectStore, StoredObject
from infercost.kube.rest import RestClient

__all__ = [
    "CLOSED_MONTHS_KEPT",
    "LEDGER_LABELS",
    "LedgerStore",
    "decode",
    "encode",
    "load_ledger",
    "retained_since",
]

LEDGER_LABELS = {"app.kubernetes.io/managed-by": "infercost", "infercost.ai/ledger": "true"}
STATE_KEY = "state"
CLOSED_MONTHS_KEPT = 3
"""Monthly objects of closed days kept: the current month and the two before (≥ 59 days)."""

_HOT = re.compile(r"^infercost-ledger-(\d+)$")
_CLOSED = re.compile(r"^infercost-ledger-(\d+)-(\d{4}-\d{2})$")


def encode(value: Any) -> bytes:
    return zlib.compress(json.dumps(value, separators=(",", ":")).encode("utf-8"), 6)


def decode(raw: bytes, where: str) -> Any:
    try:
        return json.loads(zlib.decompress(raw).decode("utf-8"))
    except (zlib.error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{where}: not a ledger checkpoint ({exc})") from None


def retained_since(today: dt.date) -> dt.date:
    """The first day the checkpoint keeps: the first of the month
    :data:`CLOSED_MONTHS_KEPT` − 1 months before ``today``'s (at least 59 days back)."""
    oldest = today.replace(day=1)
    for _ in range(CLOSED_MONTHS_KEPT - 1):
        oldest = (oldest - dt.timedelta(days=1)).replace(day=1)
    return oldest


def hot_name(shard: int) -> str:
    return f"infercost-ledger-{shard}"


def closed_name(shard: int, month: str) -> str:
    return f"infercost-ledger-{shard}-{month}"


def load_ledger(objects: Iterable[StoredObject], *, shards: int) -> Ledger:
    """A ledger restored from the checkpoint objects (all of them, as listed)."""
    hot = []
    closed: dict[str, list[tuple[int, Any]]] = {}
    for obj in objects:
        where = f"ConfigMap {obj.name}"
        if match := _HOT.match(obj.name):
            raw = obj.entries.get(STATE_KEY)
            if raw is None:
                raise ValueError(f"{where}: key {STATE_KEY!r} is missing")
            hot.append(decode(raw, where))
        elif match := _CLOSED.match(obj.name):
            shard = int(match.group(1))
            for day, raw in obj.entries.items():
                closed.setdefault(day, []).append((shard, decode(raw, f"{where} key {day}")))
    ledger = Ledger(shards=shards)
    ledger.restore(hot, closed)
    return ledger


def _digest(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=16).digest()


class LedgerStore:
    """Writes the ledger's shards; remembers resourceVersions and a digest of what it last
    wrote (to skip unchanged shards without keeping their bytes: ~150 bytes a pod)."""

    def __init__(self, rest: RestClient, namespace: str, *, shards: int) -> None:
        self.store = ObjectStore(rest, namespace, LEDGER_LABELS)
        self.shards = shards
        self._versions: dict[str, str] = {}
        self._written: dict[str, bytes] = {}
        """Hot object name → digest of the state it holds."""

    def load(self) -> Ledger:
        objects = self.store.list()
        self._versions = {name: obj.resource_version for name, obj in objects.items()}
        for name, obj in objects.items():
            if _HOT.match(name) and STATE_KEY in obj.entries:
                self._written[name] = _digest(obj.entries[STATE_KEY])
        return load_ledger(objects.values(), shards=self.shards)

    def write_shard(self, ledger: Ledger, shard: int) -> bool:
        """Replace a shard's hot object when its content changed; whether it was written.
        Raises :class:`~infercost.kube.objectstore.ObjectConflictError` on 409."""
        name = hot_name(shard)
        raw = encode(ledger.dump_shard(shard))
        digest = _digest(raw)
        if self._written.get(name) == digest:
            return False
        obj = self.store.put(name, {STATE_KEY: raw}, resource_version=self._versions.get(name))
        self._versions[name] = obj.resource_version
        self._written[name] = digest
        return True

    def write_closed(self, ledger: Ledger, day: str) -> int:
        """Add a closed day to each shard's monthly object; the number of objects written."""
        month = day[:7]
        written = 0
        for shard in range(self.shards):
            lines = ledger.dump_closed(shard, day)
            if len(lines) == 1 and not lines[0][1]:
                continue  # nothing of that day in this shard
            name = closed_name(shard, month)
            current = self.store.get(name)
            entries = dict(current.entries) if current else {}
            entries[day] = encode(lines)
            obj = self.store.put(
                name, entries, resource_version=current.resource_version if current else None
            )
            self._versions[name] = obj.resource_version
            written += 1
        return written

    def prune(self, today: dt.date) -> None:
        """Delete monthly objects older than :data:`CLOSED_MONTHS_KEPT` months."""
        oldest = f"{retained_since(today):%Y-%m}"
        for name in list(self._versions):
            match = _CLOSED.match(name)
            if match and match.group(2) < oldest:
                self.store.delete(name)
                self._versions.pop(name, None)

    def refresh_version(self, shard: int) -> None:
        """Re-read a hot object's resourceVersion (after a 409 while still the leader)."""
        name = hot_name(shard)
        current = self.store.get(name)
        self._written.pop(name, None)
        if current is None:
            self._versions.pop(name, None)
        else:
            self._versions[name] = current.resource_version
