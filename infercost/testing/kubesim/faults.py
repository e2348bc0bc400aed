"""Fault injection and the request log, shared by the in-process API and ``/_kubesim/``.

Tests break the emulated API on purpose through :class:`Faults` (drop watches, expire
resourceVersions, answer the next N matching requests with 429/500/503, add latency, fail the
next write to an object with 409) and assert on what clients sent through :class:`RequestLog`.
Matching uses Kubernetes verb names and plural resource names (optionally ``plural.group``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from .status import ApiError, conflict

VERBS = frozenset(
    {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
)
WRITE_VERBS = frozenset({"create", "update", "patch", "delete"})
FAULT_CODES = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}


def resource_matches(pattern: str, plural: str, group: str, subresource: str | None) -> bool:
    """``pods`` matches pods and its subresources; ``pods/status`` only the subresource;
    ``costprofiles.finops.infercost.ai`` also pins the group; ``*`` matches everything."""
    if pattern == "*":
        return True
    base, _, sub = pattern.partition("/")
    if sub and sub != (subresource or ""):
        return False
    if base == plural:
        return True
    return bool(group) and base == f"{plural}.{group}"


@attrs.define
class _Respond:
    verb: str
    resource: str
    code: int
    remaining: int
    retry_after_seconds: int


@attrs.define
class _Conflict:
    resource: str
    name: str
    namespace: str | None


class Faults:
    def __init__(
        self,
        drop_watches: Callable[[bool], None],
        expire: Callable[[], None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._lock = threading.Lock()
        self.sleep = sleep
        """How injected latency is spent (a test may record it instead of waiting)."""
        self._drop_watches = drop_watches
        self._expire = expire
        self._responds: list[_Respond] = []
        self._conflicts: list[_Conflict] = []
        self._latency_seconds = 0.0

    # The test-facing API ------------------------------------------------------------------

    def drop_watches(self, abrupt: bool = False) -> None:
        """Close every open watch stream (cleanly, or by cutting the connection)."""
        self._drop_watches(abrupt)

    def expire_resource_versions(self) -> None:
        """Make every resourceVersion issued so far too old for watches and continue tokens."""
        self._expire()

    def respond(
        self,
        verb: str,
        resource: str,
        code: int,
        count: int = 1,
        retry_after_seconds: int = 1,
    ) -> None:
        """Answer the next ``count`` requests matching ``verb`` and ``resource`` with ``code``."""
        if verb != "*" and verb not in VERBS:
            raise ValueError(f"respond: unknown verb {verb!r}; expected one of {sorted(VERBS)}")
        if code not in FAULT_CODES:
            raise ValueError(f"respond: code must be one of {sorted(FAULT_CODES)}, got {code!r}")
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"respond: count must be a positive integer, got {count!r}")
        if not resource:
            raise ValueError("respond: resource must be a plural resource name such as 'pods'")
        with self._lock:
            self._responds.append(_Respond(verb, resource, code, count, retry_after_seconds))

    def latency_ms(self, ms: float) -> None:
        """Delay every API request by ``ms`` milliseconds (0 turns it off)."""
        if ms < 0:
            raise ValueError(f"latency_ms must not be negative, got {ms!r}")
        with self._lock:
            self._latency_seconds = ms / 1000.0

    def conflict(self, resource: str, name: str, namespace: str | None = None) -> None:
        """Fail the next write (update, patch, delete) to the named object with 409 Conflict."""
        if not resource or not name:
            raise ValueError("conflict: resource and name are required")
        with self._lock:
            self._conflicts.append(_Conflict(resource, name, namespace))

    def clear(self) -> None:
        with self._lock:
            self._responds.clear()
            self._conflicts.clear()
            self._latency_seconds = 0.0

    def apply_json(self, doc: Any) -> None:
        """One ``POST /_kubesim/faults`` document; raises ValueError naming what is wrong."""
        if not isinstance(doc, dict) or len(doc) != 1:
            raise ValueError(
                "expected an object with exactly one of dropWatches, expireResourceVersions, "
                "respond, latencyMs, conflict"
            )
        ((key, value),) = doc.items()
        if key == "dropWatches":
            if value is not True:
                raise ValueError("dropWatches must be true")
            self.drop_watches()
        elif key == "expireResourceVersions":
            if value is not True:
                raise ValueError("expireResourceVersions must be true")
            self.expire_resource_versions()
        elif key == "respond":
            if not isinstance(value, dict):
                raise ValueError("respond must be an object with verb, resource, code, count")
            unknown = set(value) - {"verb", "resource", "code", "count", "retryAfterSeconds"}
            if unknown:
                raise ValueError(f"respond: unknown field(s) {sorted(unknown)}")
            self.respond(
                verb=str(value.get("verb", "")),
                resource=str(value.get("resource", "")),
                code=value.get("code"),  # type: ignore[arg-type]
                count=value.get("count", 1),
                retry_after_seconds=int(value.get("retryAfterSeconds", 1)),
            )
        elif key == "latencyMs":
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"latencyMs must be a number, got {value!r}")
            self.latency_ms(value)
        elif key == "conflict":
            if not isinstance(value, dict) or not value.get("resource") or not value.get("name"):
                raise ValueError("conflict must be an object with resource and name")
            self.conflict(str(value["resource"]), str(value["name"]), value.get("namespace"))
        else:
            raise ValueError(f"unknown fault {key!r}")

    # Used by the request handler --------------------------------------------------------------

    def delay(self) -> None:
        seconds = self._latency_seconds
        if seconds > 0:
            self.sleep(seconds)

    def take_response(
        self, verb: str, plural: str, group: str, subresource: str | None
    ) -> ApiError | None:
        with self._lock:
            for rule in self._responds:
                if (rule.verb in ("*", verb)) and resource_matches(
                    rule.resource, plural, group, subresource
                ):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._responds.remove(rule)
                    return _fault_error(rule.code, rule.retry_after_seconds)
        return None

    def take_conflict(
        self, plural: str, group: str, namespace: str | None, name: str
    ) -> ApiError | None:
        with self._lock:
            for rule in self._conflicts:
                if rule.name != name or not resource_matches(rule.resource, plural, group, None):
                    continue
                if rule.namespace is not None and rule.namespace != (namespace or ""):
                    continue
                self._conflicts.remove(rule)
                return conflict(plural, group, name)
        return None


def _fault_error(code: int, retry_after_seconds: int) -> ApiError:
    if code == 429:
        return ApiError(
            429,
            "Too many requests, please try again later.",
            "TooManyRequests",
            {"retryAfterSeconds": retry_after_seconds},
            headers={"Retry-After": str(retry_after_seconds)},
        )
    if code == 503:
        return ApiError(
            503,
            "the server is currently unable to handle the request",
            "ServiceUnavailable",
            {"retryAfterSeconds": retry_after_seconds},
            headers={"Retry-After": str(retry_after_seconds)},
        )
    return ApiError(500, "Internal error occurred: injected fault", "InternalError", {})


@attrs.frozen
class RequestRecord:
    """One served API request."""

    verb: str
    method: str
    path: str
    query: str
    user_agent: str
    status: int
    body_size: int
    content_type: str
    resource: str
    namespace: str
    name: str
    subresource: str
    timestamp: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "verb": self.verb,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "userAgent": self.user_agent,
            "status": self.status,
            "bodySize": self.body_size,
            "contentType": self.content_type,
            "resource": self.resource,
            "namespace": self.namespace,
            "name": self.name,
            "subresource": self.subresource,
            "timestamp": self.timestamp,
        }


class RequestLog:
    def __init__(self, limit: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._limit = limit

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)
            if len(self._records) > self._limit:
                del self._records[: len(self._records) - self._limit]

    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
