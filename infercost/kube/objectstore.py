"""An opaque object store over ConfigMaps, for state that must survive restarts.

The ledger checkpoints its shards here. The store knows nothing of what it stores: each object
is a set of named byte strings, written whole. Two rules keep it safe:

- a write names the resourceVersion it replaces (or creates a new object); if anyone else
  wrote since, the apiserver answers 409 and :class:`ObjectConflictError` is raised. The store
  never merges and never retries: the writer decides (the ledger re-checks that it still holds
  the Lease and otherwise stops);
- an object must stay under the ConfigMap limit of 1 MiB; a larger one is refused before
  sending, with the object and its size named.

UTF-8 text goes to ``data`` (readable with kubectl), anything else to ``binaryData``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import attrs

from infercost.kube.rest import CONFIGMAPS, ApiError, ConflictError, NotFoundError, RestClient

__all__ = [
    "MAX_OBJECT_BYTES",
    "ObjectConflictError",
    "ObjectStore",
    "ObjectStoreError",
    "ObjectTooLargeError",
    "StoredObject",
]

MAX_OBJECT_BYTES = 1024 * 1024


class ObjectStoreError(Exception):
    """A store operation failed; the message names the ConfigMap."""


class ObjectConflictError(ObjectStoreError):
    """Someone else wrote the object since it was read (or it already exists on create)."""


class ObjectTooLargeError(ObjectStoreError):
    pass


@attrs.frozen
class StoredObject:
    name: str
    resource_version: str
    entries: Mapping[str, bytes]
    labels: Mapping[str, str] = attrs.field(factory=dict)


class ObjectStore:
    """ConfigMaps in one namespace, all carrying ``labels`` (used to find them again)."""

    def __init__(self, rest: RestClient, namespace: str, labels: Mapping[str, str]) -> None:
        if not labels:
            raise ValueError("an object store needs labels to find its objects")
        self.rest = rest
        self.namespace = namespace
        self.labels = dict(labels)
        self.selector = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))

    def _where(self, name: str) -> str:
        return f"ConfigMap {self.namespace}/{name}"

    def list(self) -> dict[str, StoredObject]:
        """Every object of this store, by name."""
        found: dict[str, StoredObject] = {}
        continue_token = ""
        while True:
            try:
                page = self.rest.list(
                    CONFIGMAPS,
                    self.namespace,
                    label_selector=self.selector,
                    limit=100,
                    continue_token=continue_token,
                )
            except ApiError as exc:
                raise ObjectStoreError(
                    f"cannot list ConfigMaps {self.selector} in {self.namespace}: {exc}"
                ) from exc
            for item in page.get("items") or ():
                obj = self._decode(item)
                found[obj.name] = obj
            continue_token = str((page.get("metadata") or {}).get("continue") or "")
            if not continue_token:
                return found

    def get(self, name: str) -> StoredObject | None:
        try:
            return self._decode(self.rest.get(CONFIGMAPS, name, self.namespace))
        except NotFoundError:
            return None
        except ApiError as exc:
            raise ObjectStoreError(f"cannot read {self._where(name)}: {exc}") from exc

    def put(
        self,
        name: str,
        entries: Mapping[str, bytes],
        *,
        resource_version: str | None,
        extra_labels: Mapping[str, str] | None = None,
    ) -> StoredObject:
        """Create (``resource_version=None``) or replace the whole object.

        Raises :class:`ObjectConflictError` on 409, :class:`ObjectTooLargeError` when the
        encoded object would exceed 1 MiB."""
        data: dict[str, str] = {}
        binary: dict[str, str] = {}
        for key, value in entries.items():
            try:
                data[key] = value.decode("utf-8")
            except UnicodeDecodeError:
                binary[key] = base64.b64encode(value).decode("ascii")
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,
            "labels": {**self.labels, **(extra_labels or {})},
        }
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
        if data:
            body["data"] = data
        if binary:
            body["binaryData"] = binary
        size = len(json.dumps(body, separators=(",", ":")).encode("utf-8"))
        if size >= MAX_OBJECT_BYTES:
            raise ObjectTooLargeError(
                f"{self._where(name)} would be {size} bytes; ConfigMaps must stay under "
                f"{MAX_OBJECT_BYTES} bytes (1 MiB)"
            )
        try:
            if resource_version is None:
                result = self.rest.create(CONFIGMAPS, body, self.namespace)
            else:
                result = self.rest.replace(CONFIGMAPS, body, self.namespace)
        except ConflictError as exc:
            action = "create" if resource_version is None else "replace"
            raise ObjectConflictError(
                f"{self._where(name)} changed since it was read; refusing to {action} it "
                f"(resourceVersion {resource_version or 'none'}): {exc.message or exc.reason}"
            ) from exc
        except NotFoundError as exc:
            raise ObjectConflictError(f"{self._where(name)} was deleted since it was read") from exc
        except ApiError as exc:
            raise ObjectStoreError(f"cannot write {self._where(name)}: {exc}") from exc
        return self._decode(result)

    def delete(self, name: str) -> None:
        try:
            self.rest.delete(CONFIGMAPS, name, self.namespace)
        except NotFoundError:
            return
        except ApiError as exc:
            raise ObjectStoreError(f"cannot delete {self._where(name)}: {exc}") from exc

    def _decode(self, item: Mapping[str, Any]) -> StoredObject:
        meta = item.get("metadata") or {}
        name = str(meta.get("name") or "")
        entries: dict[str, bytes] = {}
        for key, value in (item.get("data") or {}).items():
            entries[key] = str(value).encode("utf-8")
        for key, value in (item.get("binaryData") or {}).items():
            try:
                entries[key] = base64.b64decode(str(value), validate=True)
            except ValueError as exc:
                raise ObjectStoreError(
                    f"{self._where(name)}: binaryData key {key!r} is not valid base64"
                ) from exc
        return StoredObject(
            name=name,
            resource_version=str(meta.get("resourceVersion") or ""),
            entries=entries,
            labels=dict(meta.get("labels") or {}),
        )
