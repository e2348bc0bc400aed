"""One copy of equal values that many objects keep: defined here and used by the pod cache
(label sets, annotations, containers, owners of a workload's replicas) and by the page readers
(GPU ids, token series label sets that every cycle's pages repeat).

A :class:`SharingTable` maps each value to itself, so it holds nothing but the shared values.
A table of our own rather than ``sys.intern``: the interpreter's table of interned strings never
shrinks, is shared with every identifier, and each time it doubles it allocates the whole of it
again. Bounded: past ``limit`` distinct values a table starts over (objects that already hold a
value keep it; a value nobody holds any more stays only until then). Callers never mutate what
they get. Pure: no imports from the rest of InferCost.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TypeVar, cast

__all__ = ["SharingTable"]

T = TypeVar("T", bound=Hashable)


class SharingTable:
    """See the module docstring."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a sharing table holds at least one value")
        self.limit = limit
        self._table: dict[Hashable, Hashable] = {}

    def one(self, value: T) -> T:
        """The shared value equal to ``value`` (``value`` itself the first time)."""
        shared = self._table.get(value)
        if shared is None:
            if len(self._table) >= self.limit:
                self._table.clear()
            shared = self._table[value] = value
        return cast(T, shared)

    def __len__(self) -> int:
        return len(self._table)
