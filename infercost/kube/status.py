"""Status writes: only what changed, only when it matters, never blindly over someone else.

The decision "is this status change worth a write now?" is pure: :func:`classify_change` says
how much a change matters, driven by :class:`StatusRules`, and :func:`decide_write` adds time.
SPEC §2's cadence follows from the default rules, the same for every kind (each adds the
fields and list keys of its own status):

- a change of a condition (status, reason, message, observedGeneration), a string (``period``,
  ``state``, ``powerSource``), a bool, an integer (token counts, ``observedGeneration``,
  ``matchedGPUs``), a field appearing or disappearing, or the set of keys of a keyed list
  (``byModel`` by model and namespace, ``byNamespace`` by namespace, …) is **significant**:
  written at once;
- a change of a float (money, rates, ratios), compared after rounding to ``float_precision``
  (1e-6), is a **cadence** change: written at most once per status interval;
- ignored fields (``lastUpdated``, conditions' ``lastTransitionTime``) never cause a write,
  but are sent along when something else is written;
- when nothing else changed, the data time (``lastUpdated``: the time of the data, not of the
  write) is still **refreshed** once it is ``refresh_intervals`` (10) status intervals newer
  than the written one, so a reader can tell a fresh status from a frozen one.

:class:`StatusWriter` applies the decision: it sends a JSON merge patch to ``/status`` holding
only the fields that differ, with ``metadata.resourceVersion`` in the patch as a precondition,
so a write based on a stale cache fails with 409 instead of overwriting a newer object. A 409
is reported as :attr:`WriteOutcome.CONFLICT`; the controller then re-reads and recomputes on a
rate-limited retry. It never retries in a loop itself.

Every call sets ``infercost_object_last_updated_timestamp_seconds`` to the desired status's
data time, written or not: the time of the latest sample that confirmed the object's figures
(so a new leader exports it from its first sample, without a write).
:meth:`StatusWriter.forget` removes that series.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import structlog

from infercost.kube.clock import Clock, RealClock
from infercost.kube.health import HealthMetrics
from infercost.kube.rest import ConflictError, NotFoundError, Resource, RestClient
from infercost.kube.transforms import parse_time

__all__ = [
    "Change",
    "FieldClass",
    "StatusRules",
    "StatusWriter",
    "WriteDecision",
    "WriteOutcome",
    "WriteResult",
    "classify_change",
    "decide_write",
    "merge_patch_diff",
]

log = structlog.get_logger("infercost.kube.status")


class Change(enum.IntEnum):
    """How much a status change matters (ordered: the maximum over fields wins)."""

    NONE = 0
    REFRESH = 1
    """Only the data time moved, by at least ``refresh_intervals`` status intervals."""
    CADENCE = 2
    SIGNIFICANT = 3


class FieldClass(enum.Enum):
    """Explicit treatment of a field, overriding the type-based default."""

    IGNORE = "ignore"
    SIGNIFICANT = "significant"
    CADENCE = "cadence"  # any change, even beyond float rounding, waits for the interval
    MONEY = "money"  # floats compared rounded; a change waits for the interval


@attrs.frozen
class StatusRules:
    """Rules for :func:`classify_change` and :func:`decide_write`.

    Paths are dotted field names from the status root; list elements add ``[]``
    (``byModel[].estimatedCostUSD``). ``list_keys`` names the fields that identify the
    elements of a keyed list; the set of keys changing is significant. ``data_time_field`` is
    the RFC 3339 time of the data (ignored as a change, refreshed every ``refresh_intervals``
    status intervals; ``None`` never refreshes).
    """

    fields: Mapping[str, FieldClass] = attrs.field(factory=dict)
    list_keys: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    float_precision: float = 1e-6
    data_time_field: str | None = "lastUpdated"
    refresh_intervals: float | None = 10.0

    @classmethod
    def default(
        cls,
        fields: Mapping[str, FieldClass] | None = None,
        list_keys: Mapping[str, tuple[str, ...]] | None = None,
        *,
        data_time_field: str = "lastUpdated",
        refresh_intervals: float | None = 10.0,
    ) -> StatusRules:
        """Rules every InferCost status shares, extended by the caller's."""
        base_fields = {
            data_time_field: FieldClass.IGNORE,
            "conditions[].lastTransitionTime": FieldClass.IGNORE,
        }
        base_keys = {"conditions": ("type",)}
        return cls(
            {**base_fields, **(fields or {})},
            {**base_keys, **(list_keys or {})},
            data_time_field=data_time_field,
            refresh_intervals=refresh_intervals,
        )

    def data_time(self, status: Mapping[str, Any]) -> float | None:
        """The status's data time in epoch seconds (``None`` when absent or unreadable)."""
        if self.data_time_field is None:
            return None
        return parse_time(status.get(self.data_time_field))


CADENCE_SLACK_SECONDS = 0.001
"""A cadence write due in less than this is due now. Without it, an interval that ends a few
ulps from now (60 − 59.99999999999991) asks to be retried after a delay the clock cannot
represent: the work queue hands the key back at once and the controller spins until the clock
moves."""


@attrs.frozen
class WriteDecision:
    """What :func:`decide_write` concluded: how much changed, and when a cadence change may be
    written (``due_in`` seconds from now; ``None`` when it may be written at once)."""

    change: Change
    due_in: float | None = None

    @property
    def write_now(self) -> bool:
        return self.change is not Change.NONE and self.due_in is None


def decide_write(
    current: Mapping[str, Any],
    desired: Mapping[str, Any],
    rules: StatusRules,
    interval_seconds: float,
    since_last_write: float | None,
) -> WriteDecision:
    """Whether ``desired`` should replace ``current`` now (SPEC §2 write cadence).

    ``since_last_write``: seconds since this process last wrote the object (``None``: never).
    Significant changes and due refreshes are written at once; cadence changes once
    ``interval_seconds`` have passed since the last write.
    """
    change = classify_change(current, desired, rules)
    if change is Change.CADENCE:
        if since_last_write is not None:
            due_in = interval_seconds - since_last_write
            if due_in >= CADENCE_SLACK_SECONDS:
                return WriteDecision(change, due_in=due_in)
        return WriteDecision(change)
    if change is Change.NONE and rules.refresh_intervals is not None:
        new = rules.data_time(desired)
        old = rules.data_time(current)
        if new is not None and (
            old is None or new - old >= rules.refresh_intervals * interval_seconds
        ):
            return WriteDecision(Change.REFRESH)
    return WriteDecision(change)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _floats_differ(a: float, b: float, precision: float) -> bool:
    return round(a / precision) != round(b / precision)


def classify_change(old: Any, new: Any, rules: StatusRules, path: str = "") -> Change:
    """How significant the change from ``old`` to ``new`` status is (see module docstring)."""
    explicit = rules.fields.get(path) if path else None
    if explicit is FieldClass.IGNORE:
        return Change.NONE
    if explicit is FieldClass.SIGNIFICANT:
        return Change.SIGNIFICANT if _normalised(old) != _normalised(new) else Change.NONE
    if explicit is FieldClass.CADENCE:
        return Change.CADENCE if _normalised(old) != _normalised(new) else Change.NONE
    if explicit is FieldClass.MONEY:
        if _is_number(old) and _is_number(new):
            differ = _floats_differ(float(old), float(new), rules.float_precision)
            return Change.CADENCE if differ else Change.NONE
        return Change.SIGNIFICANT if old != new else Change.NONE

    if old is None or new is None:
        return Change.NONE if old is None and new is None else Change.SIGNIFICANT
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        worst = Change.NONE
        for key in set(old) | set(new):
            child = f"{path}.{key}" if path else str(key)
            if rules.fields.get(child) is FieldClass.IGNORE:
                continue
            if (key in old) != (key in new):
                if rules.fields.get(child) is FieldClass.CADENCE:
                    # appearing or disappearing waits too (a projection that comes and goes)
                    worst = max(worst, Change.CADENCE)
                    continue
                return Change.SIGNIFICANT
            worst = max(worst, classify_change(old[key], new[key], rules, child))
            if worst is Change.SIGNIFICANT:
                return worst
        return worst
    if isinstance(old, list) and isinstance(new, list):
        return _classify_list(old, new, rules, path)
    if _is_number(old) and _is_number(new):
        if isinstance(old, int) and isinstance(new, int):
            return Change.SIGNIFICANT if old != new else Change.NONE
        differ = _floats_differ(float(old), float(new), rules.float_precision)
        return Change.CADENCE if differ else Change.NONE
    if type(old) is not type(new):
        return Change.SIGNIFICANT
    return Change.SIGNIFICANT if old != new else Change.NONE


def _classify_list(old: list[Any], new: list[Any], rules: StatusRules, path: str) -> Change:
    element = f"{path}[]"
    key_fields = rules.list_keys.get(path)
    if key_fields:
        old_by = {_list_key(e, key_fields): e for e in old}
        new_by = {_list_key(e, key_fields): e for e in new}
        if set(old_by) != set(new_by) or len(old_by) != len(old) or len(new_by) != len(new):
            return Change.SIGNIFICANT
        worst = Change.NONE
        for key, old_e in old_by.items():
            worst = max(worst, classify_change(old_e, new_by[key], rules, element))
            if worst is Change.SIGNIFICANT:
                return worst
        if worst is Change.NONE and [_list_key(e, key_fields) for e in old] != [
            _list_key(e, key_fields) for e in new
        ]:
            return Change.CADENCE  # same elements, new order: cosmetic
        return worst
    if len(old) != len(new):
        return Change.SIGNIFICANT
    worst = Change.NONE
    for old_e, new_e in zip(old, new, strict=True):
        worst = max(worst, classify_change(old_e, new_e, rules, element))
        if worst is Change.SIGNIFICANT:
            return worst
    return worst


def _list_key(element: Any, fields: Sequence[str]) -> tuple[Any, ...]:
    if not isinstance(element, Mapping):
        return (element,)
    return tuple(element.get(f) for f in fields)


def _normalised(value: Any) -> Any:
    if _is_number(value):
        return float(value)
    return value


def merge_patch_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch turning ``old`` into ``new``: changed keys with their new
    value (nested maps recursively), removed keys as null. Lists are replaced whole."""
    old = old or {}
    patch: dict[str, Any] = {}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif isinstance(value, Mapping) and isinstance(old[key], Mapping):
            sub = merge_patch_diff(old[key], value)
            if sub:
                patch[key] = sub
        elif old[key] != value or type(old[key]) is not type(value):
            patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


class WriteOutcome(enum.Enum):
    WRITTEN = "written"
    UNCHANGED = "unchanged"  # nothing worth writing
    DEFERRED = "deferred"  # only cadence changes; the interval has not passed
    CONFLICT = "conflict"  # 409: the cached object is stale; re-read and recompute
    GONE = "gone"  # the object no longer exists


@attrs.frozen
class WriteResult:
    outcome: WriteOutcome
    change: Change
    # The object as returned by the apiserver after a write.
    object: Mapping[str, Any] | None = None
    # For DEFERRED: seconds until the cadence allows the write.
    due_in: float | None = None


@attrs.define
class _Written:
    at: float  # monotonic
    resource_version: str
    status: Mapping[str, Any]


class StatusWriter:
    """Writes one resource's statuses following :class:`StatusRules` and a status interval."""

    def __init__(
        self,
        rest: RestClient,
        resource: Resource,
        rules: StatusRules | None = None,
        *,
        interval_seconds: float = 60.0,
        clock: Clock | None = None,
        metrics: HealthMetrics | None = None,
    ) -> None:
        self.rest = rest
        self.metrics = metrics
        self.resource = resource
        self.rules = rules or StatusRules.default()
        self.interval_seconds = interval_seconds
        self.clock = clock or RealClock()
        self._written: dict[str, _Written] = {}
        self._lock = threading.Lock()
        self._log = log.bind(resource=resource.display)

    def forget(self, namespace: str, name: str) -> None:
        """Drop what is remembered about an object, and its last-updated series (call when
        it is deleted)."""
        with self._lock:
            self._written.pop(f"{namespace}/{name}", None)
        if self.metrics is not None:
            self.metrics.object_deleted(self.resource.kind, name, namespace)

    def _confirm(self, namespace: str, name: str, desired: Mapping[str, Any]) -> None:
        """``infercost_object_last_updated_timestamp_seconds`` := the desired data time."""
        data_time = self.rules.data_time(desired)
        if self.metrics is not None and data_time is not None:
            self.metrics.object_updated(self.resource.kind, name, namespace, data_time)

    def write(
        self, obj: Mapping[str, Any], desired: Mapping[str, Any], *, force: bool = False
    ) -> WriteResult:
        """Bring ``obj``'s status (the cached object) towards ``desired`` if it is worth it.

        ``force`` writes any difference at once (e.g. on shutdown)."""
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        namespace = str(meta.get("namespace") or "")
        rv = str(meta.get("resourceVersion") or "")
        if not name or not rv:
            raise ValueError("status write needs the cached object with name and resourceVersion")
        ident = f"{namespace}/{name}"
        current: Mapping[str, Any] = obj.get("status") or {}
        now = self.clock.monotonic()
        with self._lock:
            written = self._written.get(ident)
        # The cache may not have caught up with our own last write yet. Until it does (or for
        # one interval at most, in case someone else wrote since), compare with what we wrote
        # instead of re-sending it on a stale resourceVersion.
        if (
            written is not None
            and written.resource_version != rv
            and now - written.at < self.interval_seconds
            and classify_change(written.status, desired, self.rules) is Change.NONE
        ):
            self._confirm(namespace, name, desired)
            return WriteResult(WriteOutcome.UNCHANGED, Change.NONE)
        last = written.at if written is not None else None
        decision = decide_write(
            current,
            desired,
            self.rules,
            self.interval_seconds,
            None if last is None else now - last,
        )
        change = decision.change
        if not decision.write_now and not (force and merge_patch_diff(current, desired)):
            self._confirm(namespace, name, desired)
            if change is Change.CADENCE:
                return WriteResult(WriteOutcome.DEFERRED, change, due_in=decision.due_in)
            return WriteResult(WriteOutcome.UNCHANGED, change)
        patch = {
            "metadata": {"resourceVersion": rv},
            "status": merge_patch_diff(current, desired),
        }
        try:
            result = self.rest.merge_patch(
                self.resource, name, patch, namespace or None, subresource="status"
            )
        except ConflictError:
            self._log.info("status write conflict; will re-read", object=ident)
            return WriteResult(WriteOutcome.CONFLICT, change)
        except NotFoundError:
            self.forget(namespace, name)
            return WriteResult(WriteOutcome.GONE, change)
        new_rv = str((result.get("metadata") or {}).get("resourceVersion") or "")
        self._confirm(namespace, name, desired)
        with self._lock:
            self._written[ident] = _Written(now, new_rv, dict(desired))
        self._log.debug(
            "status written", object=ident, change=change.name, fields=sorted(patch["status"])
        )
        return WriteResult(WriteOutcome.WRITTEN, change, object=result)
