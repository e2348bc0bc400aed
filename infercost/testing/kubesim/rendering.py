"""Content negotiation for GET and list responses: one lookup from Accept header to renderer.

``RENDERERS`` is the single extension point: each entry says which media types it serves
(e.g. ``application/json;as=Table;g=meta.k8s.io;v=v1``, what kubectl asks for) and turns the
JSON object or list into the response document. Without a matching entry the plain JSON
representation is served when the client accepts it, as the apiserver does
(kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables); a client
that accepts nothing we can produce gets 406.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs

from .resources import ResourceDef
from .status import ApiError


@attrs.frozen
class MediaType:
    type: str  # e.g. "application/json"
    params: dict[str, str]

    def param(self, name: str) -> str | None:
        return self.params.get(name)


def parse_accept(header: str | None) -> list[MediaType]:
    if not header:
        return [MediaType("*/*", {})]
    out: list[MediaType] = []
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params: dict[str, str] = {}
        for piece in pieces[1:]:
            if "=" in piece:
                k, v = piece.split("=", 1)
                params[k.strip().lower()] = v.strip()
        out.append(MediaType(pieces[0].lower(), params))
    return out or [MediaType("*/*", {})]


@attrs.frozen
class Renderer:
    """Serves media types ``accepts`` matches; ``render(resource, document, is_list)``."""

    accepts: Callable[[MediaType], bool]
    render: Callable[[ResourceDef, dict[str, Any], bool], dict[str, Any]]
    content_type: str = "application/json"


RENDERERS: list[Renderer] = []


def _plain_json(media: MediaType) -> bool:
    if media.type not in ("application/json", "application/*", "*/*"):
        return False
    return "as" not in media.params


def negotiate(
    accept: str | None,
    resource: ResourceDef,
    json_body: Callable[[], bytes],
    is_list: bool,
) -> tuple[str, bytes]:
    """Pick the representation for a GET or list; returns (content type, body)."""
    for media in parse_accept(accept):
        for renderer in RENDERERS:
            if renderer.accepts(media):
                document = json.loads(json_body())
                rendered = renderer.render(resource, document, is_list)
                return renderer.content_type, json.dumps(rendered, separators=(",", ":")).encode()
        if _plain_json(media):
            return "application/json", json_body()
    raise ApiError(
        406,
        f"only the following media types are accepted: application/json (got {accept!r})",
        "NotAcceptable",
    )
