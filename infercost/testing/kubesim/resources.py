"""What the emulator serves: resource definitions, built-in kinds and CRD-derived kinds.

A :class:`ResourceDef` describes one served group/version/resource: its kind, scope, verbs,
short names, whether it has a status subresource, its structural schema (custom resources only)
and the field selectors it supports. Several definitions can share one *storage key* (the same
objects served at several versions, or core and ``events.k8s.io`` Events). The :class:`Registry`
holds the current set and renders the discovery documents; it knows nothing about objects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import attrs

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
STATUS_VERBS = ("get", "patch", "update")

Converter = Callable[[dict[str, Any]], dict[str, Any]]


def _identity(obj: dict[str, Any]) -> dict[str, Any]:
    return obj


@attrs.frozen(eq=False)
class ResourceDef:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    status_subresource: bool = False
    # Generation policy: "none" (never set), "spec" (bumped when .spec changes),
    # "nonmeta" (custom resources: anything but metadata, and status when it is a subresource).
    generation: str = "none"
    # PUT without metadata.resourceVersion is allowed (true for most built-in strategies,
    # false for custom resources and CRDs).
    unconditional_update: bool = True
    schema: dict[str, Any] | None = None
    field_selectors: tuple[str, ...] = ()
    # Extra selectable fields of a CRD version (name -> dotted path without the leading dot).
    selectable_fields: tuple[str, ...] = ()
    storage_group: str = ""
    storage_plural: str = ""
    is_crd_resource: bool = False
    # Conversion between this version's shape and the stored shape.
    to_storage: Converter = _identity
    from_storage: Converter = _identity
    printer_columns: tuple[dict[str, Any], ...] = ()
    # The version custom resources are stored at (their apiVersion is rewritten on read).
    storage_version: str = ""
    # True when reads need ``from_storage`` (not just an apiVersion rewrite).
    converts: bool = False

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> str:
        group = self.storage_group if self.storage_plural else self.group
        plural = self.storage_plural or self.plural
        return f"{plural}.{group}" if group else plural

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def supported_field(self, field: str) -> bool:
        if field == "metadata.name":
            return True
        if field == "metadata.namespace":
            return self.namespaced or not self.is_crd_resource
        return field in self.field_selectors or field in self.selectable_fields


_POD_FIELDS = (
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
)
_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)
_EVENTS_V1_FIELDS = (
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reason",
    "reportingController",
    "type",
    *_EVENT_FIELDS,
)

# events.k8s.io/v1 field <-> core/v1 field (the apiserver stores one Event type).
_EVENT_RENAMES = (
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
)


def _events_v1_to_core(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    for new, old in _EVENT_RENAMES:
        if new in out:
            out[old] = out.pop(new)
    out["apiVersion"] = "v1"
    return out


def _core_to_events_v1(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    for new, old in _EVENT_RENAMES:
        if old in out:
            out[new] = out.pop(old)
    out["apiVersion"] = "events.k8s.io/v1"
    return out


def _builtin(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool,
    **kw: Any,
) -> ResourceDef:
    return ResourceDef(
        group=group,
        version=version,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        **kw,
    )


BUILTINS: tuple[ResourceDef, ...] = (
    _builtin(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        short_names=("ns",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
        status_subresource=True,
        field_selectors=("status.phase",),
    ),
    _builtin(
        "",
        "v1",
        "nodes",
        "Node",
        False,
        short_names=("no",),
        status_subresource=True,
        field_selectors=("spec.unschedulable",),
    ),
    _builtin(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        short_names=("po",),
        categories=("all",),
        status_subresource=True,
        generation="spec",
        field_selectors=_POD_FIELDS,
    ),
    _builtin(
        "",
        "v1",
        "services",
        "Service",
        True,
        short_names=("svc",),
        categories=("all",),
        status_subresource=True,
        verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
        field_selectors=("spec.clusterIP", "spec.type"),
    ),
    _builtin("", "v1", "endpoints", "Endpoints", True, short_names=("ep",)),
    _builtin("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",)),
    _builtin("", "v1", "secrets", "Secret", True, field_selectors=("type",)),
    _builtin("", "v1", "serviceaccounts", "ServiceAccount", True, short_names=("sa",)),
    _builtin("", "v1", "events", "Event", True, short_names=("ev",), field_selectors=_EVENT_FIELDS),
    _builtin(
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        True,
        short_names=("ev",),
        field_selectors=_EVENTS_V1_FIELDS,
        storage_group="",
        storage_plural="events",
        to_storage=_events_v1_to_core,
        from_storage=_core_to_events_v1,
        converts=True,
    ),
    _builtin("coordination.k8s.io", "v1", "leases", "Lease", True),
    _builtin(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        status_subresource=True,
        generation="spec",
        unconditional_update=False,
    ),
)


class CrdError(ValueError):
    """A CRD that cannot be served; carries field errors for the 422."""

    def __init__(self, errors: list[tuple[str, str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for _, f, m in errors))
        self.errors = errors


def crd_resources(crd: dict[str, Any]) -> list[ResourceDef]:
    """The ResourceDefs a CustomResourceDefinition serves (one per served version)."""
    problems: list[tuple[str, str, str]] = []
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        raise CrdError([("FieldValueRequired", "spec", "Required value")])
    group = spec.get("group")
    names: dict[str, Any] = spec["names"] if isinstance(spec.get("names"), dict) else {}
    plural = names.get("plural") if isinstance(names, dict) else None
    kind = names.get("kind") if isinstance(names, dict) else None
    scope = spec.get("scope")
    versions = spec.get("versions")
    if not isinstance(group, str) or not group:
        problems.append(("FieldValueRequired", "spec.group", "Required value"))
    if not isinstance(plural, str) or not plural:
        problems.append(("FieldValueRequired", "spec.names.plural", "Required value"))
    if not isinstance(kind, str) or not kind:
        problems.append(("FieldValueRequired", "spec.names.kind", "Required value"))
    if scope not in ("Namespaced", "Cluster"):
        problems.append(
            (
                "FieldValueNotSupported",
                "spec.scope",
                f'Unsupported value: {scope!r}: supported values: "Cluster", "Namespaced"',
            )
        )
    if not isinstance(versions, list) or not versions:
        problems.append(("FieldValueRequired", "spec.versions", "Required value"))
        versions = []
    name = (crd.get("metadata") or {}).get("name")
    if not problems and name != f"{plural}.{group}":
        problems.append(
            (
                "FieldValueInvalid",
                "metadata.name",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
    if versions and len(storage) != 1:
        problems.append(
            (
                "FieldValueInvalid",
                "spec.versions",
                "Invalid value: "
                + str(len(storage))
                + ": must have exactly one version marked as storage version",
            )
        )
    if problems:
        raise CrdError(problems)
    assert isinstance(group, str) and isinstance(plural, str) and isinstance(kind, str)
    storage_version = str(storage[0].get("name"))
    singular = names.get("singular") or kind.lower()
    short = tuple(names.get("shortNames") or ())
    categories = tuple(names.get("categories") or ())
    out: list[ResourceDef] = []
    for v in versions:
        if not isinstance(v, dict) or not v.get("served", False):
            continue
        subresources = v.get("subresources") or {}
        schema = ((v.get("schema") or {}).get("openAPIV3Schema")) or None
        selectable = tuple(
            str(s.get("jsonPath", "")).lstrip(".")
            for s in (v.get("selectableFields") or ())
            if isinstance(s, dict)
        )
        out.append(
            ResourceDef(
                group=group,
                version=str(v.get("name")),
                plural=plural,
                singular=singular,
                kind=kind,
                namespaced=scope == "Namespaced",
                short_names=short,
                categories=categories,
                status_subresource="status" in subresources,
                generation="nonmeta",
                unconditional_update=False,
                schema=schema,
                selectable_fields=selectable,
                is_crd_resource=True,
                printer_columns=tuple(v.get("additionalPrinterColumns") or ()),
                storage_version=storage_version,
            )
        )
    return out


class Registry:
    """The served resources, keyed by (group, version, plural); safe to read from any thread."""

    def __init__(self, builtins: tuple[ResourceDef, ...] = BUILTINS) -> None:
        self._lock = threading.Lock()
        self._builtin = {(r.group, r.version, r.plural): r for r in builtins}
        self._crd: dict[str, list[ResourceDef]] = {}
        self._index: dict[tuple[str, str, str], ResourceDef] = dict(self._builtin)
        # Bumped whenever the served set changes (documents derived from it are cached by it).
        self.revision = 0

    def lookup(self, group: str, version: str, plural: str) -> ResourceDef | None:
        return self._index.get((group, version, plural))

    def all(self) -> list[ResourceDef]:
        return list(self._index.values())

    def set_crd(self, crd_name: str, defs: list[ResourceDef]) -> None:
        with self._lock:
            self._crd[crd_name] = defs
            self._rebuild()

    def remove_crd(self, crd_name: str) -> list[ResourceDef]:
        with self._lock:
            removed = self._crd.pop(crd_name, [])
            self._rebuild()
            return removed

    def crd_defs(self, crd_name: str) -> list[ResourceDef]:
        return list(self._crd.get(crd_name, ()))

    def _rebuild(self) -> None:
        index = dict(self._builtin)
        for defs in self._crd.values():
            for r in defs:
                index[(r.group, r.version, r.plural)] = r
        self._index = index
        self.revision += 1

    # Discovery documents --------------------------------------------------------------

    def groups(self) -> dict[str, list[str]]:
        """group -> served versions, preferred (first) first, in a stable order."""
        out: dict[str, list[str]] = {}
        for r in self._index.values():
            if not r.group:
                continue
            versions = out.setdefault(r.group, [])
            if r.version not in versions:
                versions.append(r.version)
        for versions in out.values():
            versions.sort(key=_version_priority)
        return dict(sorted(out.items()))

    def api_group(self, group: str) -> dict[str, Any] | None:
        versions = self.groups().get(group)
        if not versions:
            return None
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}

    def api_group_list(self) -> dict[str, Any]:
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [self.api_group(g) for g in self.groups()],
        }

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        defs = sorted(
            (r for r in self._index.values() if r.group == group and r.version == version),
            key=lambda r: r.plural,
        )
        if not defs:
            return None
        resources: list[dict[str, Any]] = []
        for r in defs:
            entry: dict[str, Any] = {
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": list(r.verbs),
            }
            if r.short_names:
                entry["shortNames"] = list(r.short_names)
            if r.categories:
                entry["categories"] = list(r.categories)
            resources.append(entry)
            if r.status_subresource:
                resources.append(
                    {
                        "name": f"{r.plural}/status",
                        "singularName": "",
                        "namespaced": r.namespaced,
                        "kind": r.kind,
                        "verbs": list(STATUS_VERBS),
                    }
                )
        gv = f"{group}/{version}" if group else version
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }


def _version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version priority: GA > beta > alpha, higher numbers first, others last."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0, version)
    major = int(m.group(1))
    stage = {"": 0, "beta": 1, "alpha": 2}[m.group(2) or ""]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor, version)
