"""The OpenAPI documents of the served resources, wired into the HTTP server.

Builds ``/openapi/v3`` (index), ``/openapi/v3/<api/v1|apis/<group>/<version>>`` and
``/openapi/v2`` with :mod:`.openapi` from the current registry, caches them until a CRD
changes, and registers them in ``serving.DOCUMENTS``. kubectl uses them to decide that field
validation happens on the server (``--validate=strict``) and for ``kubectl explain``.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from . import openapi
from .resources import Registry
from .serving import DOCUMENTS
from .status import ApiError

if TYPE_CHECKING:
    from .emulator import KubeSim

V3_PREFIX = "/openapi/v3"
V2_PATH = "/openapi/v2"


def openapi_resources(registry: Registry) -> list[openapi.OpenAPIResource]:
    out = []
    for r in registry.all():
        schema: dict[str, Any] | None = None
        if r.is_crd_resource:
            schema = r.schema or {"type": "object"}
        out.append(
            openapi.OpenAPIResource(
                group=r.group,
                version=r.version,
                kind=r.kind,
                plural=r.plural,
                namespaced=r.namespaced,
                schema=schema,
                status_subresource=r.status_subresource,
                verbs=r.verbs,
            )
        )
    return out


class Documents:
    """The OpenAPI documents for one registry revision, built on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revision = -1
        self._v3: dict[str, dict[str, Any]] = {}
        self._encoded: dict[str, bytes] = {}

    def _refresh(self, registry: Registry) -> None:
        if registry.revision != self._revision:
            self._v3 = openapi.v3_documents(openapi_resources(registry))
            self._encoded = {}
            self._revision = registry.revision

    def get(self, registry: Registry, path: str, accept: str | None) -> bytes:
        with self._lock:
            self._refresh(registry)
            cached = self._encoded.get(path)
            if cached is not None and path != V2_PATH:
                return cached
            if path == V2_PATH:
                if not openapi.v2_acceptable(accept):
                    raise ApiError(
                        406,
                        "only application/json is served for /openapi/v2",
                        "NotAcceptable",
                    )
                if cached is not None:
                    return cached
                doc: dict[str, Any] = openapi.build_v2(
                    openapi_resources(registry), server_version="v1.34.0-kubesim"
                )
            elif path == V3_PREFIX:
                doc = openapi.build_v3_index(self._v3, prefix=V3_PREFIX)
            else:
                key = path[len(V3_PREFIX) + 1 :].strip("/")
                found = self._v3.get(key)
                if found is None:
                    raise ApiError(404, f"no OpenAPI document at {path}", "NotFound", {})
                doc = found
            body = json.dumps(doc, separators=(",", ":")).encode()
            self._encoded[path] = body
            return body


def serve_openapi(
    sim: KubeSim, path: str, query: dict[str, str], accept: str | None
) -> tuple[str, bytes]:
    documents: Documents = sim.documents
    return "application/json", documents.get(sim.registry, path.rstrip("/"), accept)


def register() -> None:
    DOCUMENTS[V3_PREFIX] = serve_openapi
    DOCUMENTS[V2_PATH] = serve_openapi
