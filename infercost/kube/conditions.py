"""``metav1.Condition`` helpers on plain status dicts.

Conditions are a list keyed by ``type``. ``lastTransitionTime`` changes only when ``status``
flips, so ``kubectl describe`` and Argo CD show how long a state has held; a new reason or
message alone is not a transition. Reason and message are checked the way the apiserver's
schema for ``metav1.Condition`` would check them, so a programming error surfaces here, with the
offending value named, instead of as a 422 from the server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from infercost.api.names import CONDITION_REASON, CONDITION_TYPE

__all__ = [
    "CONDITION_STATUSES",
    "ConditionError",
    "find_condition",
    "format_time",
    "is_true",
    "remove_condition",
    "set_condition",
]

CONDITION_STATUSES = ("True", "False", "Unknown")
_REASON = re.compile(CONDITION_REASON)
_TYPE = re.compile(CONDITION_TYPE)
_MAX_REASON = 1024
_MAX_MESSAGE = 32768
_MAX_TYPE = 316


class ConditionError(ValueError):
    """A condition field the apiserver would reject."""


def format_time(when: datetime) -> str:
    """RFC 3339 UTC with second precision, as Kubernetes writes ``metav1.Time``."""
    if when.tzinfo is None:
        raise ValueError("condition times must be timezone-aware")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find_condition(
    conditions: Sequence[Mapping[str, Any]] | None, type_: str
) -> dict[str, Any] | None:
    for cond in conditions or ():
        if cond.get("type") == type_:
            return dict(cond)
    return None


def is_true(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> bool:
    cond = find_condition(conditions, type_)
    return cond is not None and cond.get("status") == "True"


def _validate(type_: str, status: str, reason: str, message: str, observed_generation: int) -> None:
    if not type_ or len(type_) > _MAX_TYPE or not _TYPE.match(type_):
        raise ConditionError(f"condition type {type_!r} is not a valid condition type")
    if status not in CONDITION_STATUSES:
        raise ConditionError(
            f"condition {type_}: status {status!r} must be one of {', '.join(CONDITION_STATUSES)}"
        )
    if not reason or len(reason) > _MAX_REASON or not _REASON.match(reason):
        raise ConditionError(
            f"condition {type_}: reason {reason!r} must be a CamelCase identifier "
            "(letters, digits, '_', ',', ':'; starting with a letter)"
        )
    if len(message) > _MAX_MESSAGE:
        raise ConditionError(f"condition {type_}: message longer than {_MAX_MESSAGE} characters")
    if observed_generation < 0:
        raise ConditionError(f"condition {type_}: observedGeneration must be >= 0")


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type_: str,
    *,
    status: str,
    reason: str,
    message: str,
    observed_generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Return a new condition list with ``type_`` set; the input is not modified.

    ``lastTransitionTime`` is ``now`` for a new condition or a status flip and is kept
    otherwise. Other conditions keep their order; a new one is appended.
    """
    _validate(type_, status, reason, message, observed_generation)
    result: list[dict[str, Any]] = []
    found = False
    for cond in conditions or ():
        if cond.get("type") != type_:
            result.append(dict(cond))
            continue
        found = True
        transition = cond.get("lastTransitionTime")
        if cond.get("status") != status or not transition:
            transition = format_time(now)
        result.append(
            {
                "type": type_,
                "status": status,
                "observedGeneration": observed_generation,
                "lastTransitionTime": transition,
                "reason": reason,
                "message": message,
            }
        )
    if not found:
        result.append(
            {
                "type": type_,
                "status": status,
                "observedGeneration": observed_generation,
                "lastTransitionTime": format_time(now),
                "reason": reason,
                "message": message,
            }
        )
    return result


def remove_condition(
    conditions: Sequence[Mapping[str, Any]] | None, type_: str
) -> list[dict[str, Any]]:
    return [dict(c) for c in conditions or () if c.get("type") != type_]
