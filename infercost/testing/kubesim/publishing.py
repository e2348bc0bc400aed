"""The OpenAPI documents of the served resources, as documents for the HTTP front end.

Builds ``/openapi/v3`` (index), ``/openapi/v3/<api/v1|apis/<group>/<version>>`` and
``/openapi/v2`` with :mod:`.openapi` from the current registry and caches them until a CRD
changes. The emulator hands :meth:`Documents.routes` to the HTTP front end. kubectl uses them to
decide that field validation happens on the server (``--validate=strict``) and for
``kubectl explain``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from . import openapi
from .resources import Registry
from .status import ApiError

V3_PREFIX = "/openapi/v3"
V2_PATH = "/openapi/v2"


def openapi_resources(registry: Registry) -> list[openapi.OpenAPIResource]:
    return [openapi.resource_from_definition(r) for r in registry.all()]


class Documents:
    """The OpenAPI catalog of one registry, rebuilt when a CRD changes."""

    def __init__(self, registry: Registry, server_version: str) -> None:
        self.registry = registry
        self.server_version = server_version
        self._lock = threading.Lock()
        self._revision = -1
        self._catalog: openapi.OpenAPICatalog | None = None
        self._encoded: dict[str, bytes] = {}

    def _current(self) -> openapi.OpenAPICatalog:
        registry = self.registry
        if self._catalog is None or registry.revision != self._revision:
            self._catalog = openapi.OpenAPICatalog.build(
                openapi_resources(registry), server_version=self.server_version
            )
            self._encoded = {}
            self._revision = registry.revision
        return self._catalog

    def get(self, path: str) -> bytes:
        """The JSON document at ``path`` (raises a 404 ApiError for an unknown one)."""
        with self._lock:
            catalog = self._current()
            cached = self._encoded.get(path)
            if cached is not None:
                return cached
            doc: Mapping[str, Any] | None
            if path == V2_PATH:
                doc = catalog.v2
            elif path == V3_PREFIX:
                doc = catalog.index
            else:
                doc = catalog.v3(path)
                if doc is None:
                    raise ApiError(404, f"no OpenAPI document at {path}", "NotFound", {})
            body = json.dumps(doc, separators=(",", ":")).encode()
            self._encoded[path] = body
            return body

    def serve(self, path: str, query: dict[str, str], accept: str | None) -> tuple[str, bytes]:
        """(content type, body) of a GET under ``/openapi/``."""
        path = path.rstrip("/")
        if path == V2_PATH and not openapi.v2_acceptable(accept):
            # The apiserver labels its protobuf OpenAPI answer application/octet-stream.
            return "application/octet-stream", openapi.v2_protobuf_document(self.server_version)
        return "application/json", self.get(path)

    def routes(
        self,
    ) -> dict[str, Callable[[str, dict[str, str], str | None], tuple[str, bytes]]]:
        """The path prefixes this catalog answers, for the HTTP front end."""
        return {V3_PREFIX: self.serve, V2_PATH: self.serve}
