"""The OpenAPI documents of the served resources, wired into the HTTP server.

Builds ``/openapi/v3`` (index), ``/openapi/v3/<api/v1|apis/<group>/<version>>`` and
``/openapi/v2`` with :mod:`.openapi` from the current registry, caches them until a CRD
changes, and registers them in ``serving.DOCUMENTS``. kubectl uses them to decide that field
validation happens on the server (``--validate=strict``) and for ``kubectl explain``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import openapi
from .resources import Registry
from .serving import DOCUMENTS, SERVER_VERSION
from .status import ApiError

if TYPE_CHECKING:
    from .emulator import KubeSim

V3_PREFIX = "/openapi/v3"
V2_PATH = "/openapi/v2"


def openapi_resources(registry: Registry) -> list[openapi.OpenAPIResource]:
    return [openapi.resource_from_definition(r) for r in registry.all()]


class Documents:
    """The OpenAPI catalog of one registry revision (rebuilt when a CRD changes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revision = -1
        self._catalog: openapi.OpenAPICatalog | None = None
        self._encoded: dict[str, bytes] = {}

    def _current(self, registry: Registry) -> openapi.OpenAPICatalog:
        if self._catalog is None or registry.revision != self._revision:
            self._catalog = openapi.OpenAPICatalog.build(
                openapi_resources(registry), server_version=SERVER_VERSION["gitVersion"]
            )
            self._encoded = {}
            self._revision = registry.revision
        return self._catalog

    def get(self, registry: Registry, path: str, accept: str | None) -> bytes:
        with self._lock:
            catalog = self._current(registry)
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


def serve_openapi(
    sim: KubeSim, path: str, query: dict[str, str], accept: str | None
) -> tuple[str, bytes]:
    documents: Documents = sim.documents
    path = path.rstrip("/")
    if path == V2_PATH and not openapi.v2_acceptable(accept):
        # The apiserver labels its protobuf OpenAPI answer application/octet-stream.
        return "application/octet-stream", openapi.v2_protobuf_document(
            SERVER_VERSION["gitVersion"]
        )
    return "application/json", documents.get(sim.registry, path, accept)


def register() -> None:
    DOCUMENTS[V3_PREFIX] = serve_openapi
    DOCUMENTS[V2_PATH] = serve_openapi
