"""apiserver ``Status`` errors.

Every failure the emulator reports travels as an :class:`ApiError` and is written as a
``kind: Status`` object with the code, reason and message wording of the real apiserver, so that
clients see the same typed exceptions (``NotFoundException``, ``ConflictException``, ...) they
would see against a cluster. Nothing here knows about HTTP or storage.
"""

from __future__ import annotations

import json
from typing import Any

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """A failed request, rendered as an apiserver Status object."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body

    def body(self) -> bytes:
        return json.dumps(self.status(), separators=(",", ":")).encode()


def qualified(plural: str, group: str) -> str:
    """``pods`` for the core group, ``costprofiles.finops.infercost.ai`` otherwise."""
    return f"{plural}.{group}" if group else plural


def _details(name: str, plural: str, group: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = plural
    return details


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        404,
        f'{qualified(plural, group)} "{name}" not found',
        "NotFound",
        _details(name, plural, group),
    )


def namespace_not_found(namespace: str) -> ApiError:
    return not_found("namespaces", "", namespace)


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        f'{qualified(plural, group)} "{name}" already exists',
        "AlreadyExists",
        _details(name, plural, group),
    )


def conflict(plural: str, group: str, name: str, why: str | None = None) -> ApiError:
    why = why or (
        "the object has been modified; please apply your changes to the latest version and "
        "try again"
    )
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": {why}',
        "Conflict",
        _details(name, plural, group),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "BadRequest")


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> ApiError:
    return ApiError(405, message, "MethodNotAllowed", {})


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        f"the body of the request was in an unknown format - accepted media types include: "
        f"application/json-patch+json, application/merge-patch+json, "
        f"application/apply-patch+yaml (got {content_type!r})",
        "UnsupportedMediaType",
    )


def expired(message: str) -> ApiError:
    return ApiError(410, message, "Expired")


class FieldError:
    """One entry of a 422's ``details.causes`` (apimachinery ``field.Error``)."""

    __slots__ = ("body", "field", "reason")

    def __init__(self, reason: str, field: str, body: str) -> None:
        self.reason = reason
        self.field = field
        self.body = body

    def __str__(self) -> str:
        return f"{self.field}: {self.body}" if self.field else self.body

    def cause(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.body, "field": self.field}


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    """The apiserver's 422: ``Kind.group "name" is invalid: <errors>``."""
    qualified_kind = f"{kind}.{group}" if group else kind
    if len(errors) == 1:
        text = str(errors[0])
    else:
        text = "[" + ", ".join(str(e) for e in errors) + "]"
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [e.cause() for e in errors]
    return ApiError(422, f'{qualified_kind} "{name}" is invalid: {text}', "Invalid", details)
