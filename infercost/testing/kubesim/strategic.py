"""Strategic merge patch (``application/strategic-merge-patch+json``) for built-in kinds.

``kubectl apply`` (client-side) computes a three-way strategic merge patch for built-in kinds
from the Go struct tags it was compiled with and sends it; the apiserver applies it to the live
object. This module is that server half: it applies a patch to a decoded object, using the
``patchStrategy``/``patchMergeKey`` metadata of the built-in types the emulator serves (lists of
containers merged by ``name``, ports by ``containerPort``, and so on) and the patch directives
``$patch`` (``replace``/``delete``/``merge``), ``$retainKeys``, ``$setElementOrder/<field>`` and
``$deleteFromPrimitiveList/<field>``. Fields without metadata behave like a JSON merge patch
(RFC 7386): objects merge, lists and scalars are replaced, ``null`` deletes.

Semantics follow apimachinery's ``strategicpatch`` package with the options the apiserver uses
(merge parallel lists, ignore unmatched nulls) and
https://github.com/kubernetes/community/blob/master/contributors/devel/sig-api-machinery/strategic-merge-patch.md.
Custom resources do not support strategic merge patch (the apiserver answers 415); that check
belongs to the caller. Pure: the inputs are never modified.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

__all__ = [
    "PatchMeta",
    "StrategicMergePatchError",
    "patch_meta_for",
    "strategic_merge_patch",
]

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


class StrategicMergePatchError(ValueError):
    """A patch that cannot be applied; the apiserver answers such patches with an error."""


@attrs.frozen
class PatchMeta:
    """Patch metadata of one field: its struct fields, its list items, its strategy.

    ``strategy`` holds the comma-separated Go ``patchStrategy`` tag (``merge``, ``replace``,
    ``retainKeys``); ``merge_key`` the ``patchMergeKey`` of a list of objects. ``fields`` maps
    the field names of a struct to their metadata; ``items`` describes list elements.
    """

    fields: Mapping[str, PatchMeta] = attrs.field(factory=dict)
    items: PatchMeta | None = None
    strategy: str = ""
    merge_key: str = ""

    @property
    def merges_list(self) -> bool:
        return "merge" in self.strategy.split(",")

    def field(self, name: str) -> PatchMeta:
        return self.fields.get(name, _UNKNOWN)


_UNKNOWN = PatchMeta()


def _struct(**fields: PatchMeta) -> PatchMeta:
    return PatchMeta(fields=fields)


def _merge_list(key: str = "", item: PatchMeta | None = None, *, retain: bool = False) -> PatchMeta:
    return PatchMeta(items=item, strategy="merge,retainKeys" if retain else "merge", merge_key=key)


_CONDITIONS = _merge_list("type")

_OBJECT_META = _struct(
    ownerReferences=_merge_list("uid"),
    finalizers=_merge_list(),
)

_CONTAINER = _struct(
    ports=_merge_list("containerPort"),
    env=_merge_list("name"),
    volumeMounts=_merge_list("mountPath"),
    volumeDevices=_merge_list("devicePath"),
)

_POD_SPEC = _struct(
    volumes=_merge_list("name", retain=True),
    initContainers=_merge_list("name", _CONTAINER),
    containers=_merge_list("name", _CONTAINER),
    ephemeralContainers=_merge_list("name", _CONTAINER),
    imagePullSecrets=_merge_list("name"),
    hostAliases=_merge_list("ip"),
    topologySpreadConstraints=_merge_list("topologyKey"),
    schedulingGates=_merge_list("name"),
    resourceClaims=_merge_list("name", retain=True),
)

_POD_STATUS = _struct(
    conditions=_CONDITIONS,
    podIPs=_merge_list("ip"),
    hostIPs=_merge_list("ip"),
    resourceClaimStatuses=_merge_list("name", retain=True),
)

_POD_TEMPLATE = _struct(metadata=_OBJECT_META, spec=_POD_SPEC)
_WORKLOAD_STATUS = _struct(conditions=_CONDITIONS)


def _root(
    spec: PatchMeta = _UNKNOWN, status: PatchMeta = _UNKNOWN, **extra: PatchMeta
) -> PatchMeta:
    return _struct(metadata=_OBJECT_META, spec=spec, status=status, **extra)


_BUILTIN: dict[tuple[str, str], PatchMeta] = {
    ("", "Pod"): _root(_POD_SPEC, _POD_STATUS),
    ("", "PodTemplate"): _root(template=_POD_TEMPLATE),
    ("", "ReplicationController"): _root(_struct(template=_POD_TEMPLATE), _WORKLOAD_STATUS),
    ("", "Node"): _root(
        _struct(podCIDRs=_merge_list()),
        _struct(conditions=_CONDITIONS, addresses=_merge_list("type")),
    ),
    ("", "Namespace"): _root(status=_struct(conditions=_CONDITIONS)),
    ("", "Service"): _root(_struct(ports=_merge_list("port"))),
    ("", "ServiceAccount"): _root(secrets=_merge_list("name")),
    ("apps", "Deployment"): _root(
        _struct(template=_POD_TEMPLATE, strategy=PatchMeta(strategy="retainKeys")),
        _WORKLOAD_STATUS,
    ),
    ("apps", "StatefulSet"): _root(_struct(template=_POD_TEMPLATE), _WORKLOAD_STATUS),
    ("apps", "DaemonSet"): _root(_struct(template=_POD_TEMPLATE), _WORKLOAD_STATUS),
    ("apps", "ReplicaSet"): _root(_struct(template=_POD_TEMPLATE), _WORKLOAD_STATUS),
    ("batch", "Job"): _root(_struct(template=_POD_TEMPLATE), _WORKLOAD_STATUS),
    ("batch", "CronJob"): _root(
        _struct(jobTemplate=_struct(metadata=_OBJECT_META, spec=_struct(template=_POD_TEMPLATE)))
    ),
}

_GENERIC_ROOT = _root()


def patch_meta_for(group: str, kind: str) -> PatchMeta:
    """Patch metadata of a built-in kind; other kinds get ObjectMeta's and merge-patch rules."""
    return _BUILTIN.get((group, kind), _GENERIC_ROOT)


def strategic_merge_patch(
    original: Mapping[str, Any],
    patch: Mapping[str, Any],
    *,
    group: str,
    kind: str,
) -> dict[str, Any]:
    """Apply ``patch`` to ``original`` (an object of ``group``/``kind``) and return the result."""
    if not isinstance(patch, Mapping):
        raise StrategicMergePatchError(
            f"a strategic merge patch must be a JSON object, not {type(patch).__name__}"
        )
    if not isinstance(original, Mapping):
        raise StrategicMergePatchError("the object being patched must be a JSON object")
    return _merge_map(copy.deepcopy(dict(original)), patch, patch_meta_for(group, kind), "")


# ---------------------------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _merge_map(
    original: dict[str, Any], patch: Mapping[str, Any], meta: PatchMeta, path: str
) -> dict[str, Any]:
    """``mergeMap``: merge ``patch`` into ``original`` (which this function owns)."""
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "replace":
            return _strip(patch, meta, path)
        if directive == "delete":
            return {}
        if directive != "merge":
            raise StrategicMergePatchError(
                f"{path or 'patch'}: Unknown patch type: {directive!r} (expected replace,"
                " delete or merge)"
            )

    if _RETAIN_KEYS in patch:
        original = _apply_retain_keys(original, patch, path)

    # $setElementOrder orders a merged list relative to the live list as it was before.
    live_lists = {
        key[len(_SET_ORDER) :]: copy.deepcopy(original.get(key[len(_SET_ORDER) :]))
        for key in patch
        if key.startswith(_SET_ORDER)
    }

    for key, value in patch.items():
        if key.startswith(_DELETE_PRIMITIVE):
            field = key[len(_DELETE_PRIMITIVE) :]
            if not isinstance(value, list):
                raise StrategicMergePatchError(
                    f"{_join(path, key)}: must be a list of values to delete"
                )
            current = original.get(field)
            if isinstance(current, list):
                original[field] = [item for item in current if item not in value]

    for key, value in patch.items():
        if key.startswith("$"):
            continue
        field_meta = meta.field(key)
        field_path = _join(path, key)
        if value is None:
            original.pop(key, None)
            continue
        current = original.get(key)
        if isinstance(value, Mapping):
            if "replace" in field_meta.strategy.split(","):
                original[key] = _strip(value, field_meta, field_path)
                continue
            base = current if isinstance(current, dict) else {}
            original[key] = _merge_map(base, value, field_meta, field_path)
        elif isinstance(value, list):
            if current is None:
                # A new field: nulls and directives are dropped, as decoding into the typed
                # object does on a real server.
                original[key] = _merge_list_field([], value, field_meta, field_path, new=True)
            elif not isinstance(current, list):
                original[key] = copy.deepcopy(value)
            else:
                original[key] = _merge_list_field(current, value, field_meta, field_path)
        else:
            original[key] = copy.deepcopy(value)

    for key, order in patch.items():
        if not key.startswith(_SET_ORDER):
            continue
        field = key[len(_SET_ORDER) :]
        if not isinstance(order, list):
            raise StrategicMergePatchError(f"{_join(path, key)}: must be a list")
        merged = original.get(field)
        if isinstance(merged, list):
            live = live_lists.get(field)
            original[field] = _order(
                merged,
                order,
                server_order=live if isinstance(live, list) else [],
                merge_key=meta.field(field).merge_key,
            )
    return original


def _apply_retain_keys(
    original: dict[str, Any], patch: Mapping[str, Any], path: str
) -> dict[str, Any]:
    retain = patch[_RETAIN_KEYS]
    if retain is None:
        retain = []
    if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
        raise StrategicMergePatchError(f"{_join(path, _RETAIN_KEYS)}: must be a list of strings")
    for key, value in patch.items():
        # Deletions (null) and list directives need not be listed.
        if value is not None and not key.startswith("$") and key not in retain:
            raise StrategicMergePatchError(
                f"{path or 'patch'}: cannot find key {key!r} in $retainKeys {retain}"
            )
    return {key: value for key, value in original.items() if key in retain}


def _strip(value: Any, meta: PatchMeta, path: str) -> Any:
    """A patch value taken as-is: directives and nulls removed (``$patch: replace``)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key.startswith("$") or item is None:
                continue
            out[key] = _strip(item, meta.field(key), _join(path, key))
        return out
    if isinstance(value, list):
        item_meta = meta.items or _UNKNOWN
        return [
            _strip(item, item_meta, path)
            for item in value
            if not (isinstance(item, Mapping) and _DIRECTIVE in item)
        ]
    return copy.deepcopy(value)


def _merge_list_field(
    original: list[Any], patch: list[Any], meta: PatchMeta, path: str, *, new: bool = False
) -> list[Any]:
    if not meta.merges_list:
        # No merge strategy: the list is atomic and replaced by the patch's list.
        if new:
            return [_strip(item, meta.items or _UNKNOWN, path) for item in patch]
        return copy.deepcopy(patch)
    if meta.merge_key:
        return _merge_keyed_list(original, patch, meta, path)
    return _merge_primitive_list(original, patch, path)


def _merge_primitive_list(original: list[Any], patch: list[Any], path: str) -> list[Any]:
    for item in patch:
        if isinstance(item, dict | list):
            raise StrategicMergePatchError(
                f"{path}: a merged list of values cannot contain objects or lists"
            )
    merged: list[Any] = []
    for item in [*original, *patch]:
        if item not in merged:
            merged.append(item)
    return _order(merged, patch, server_order=original, merge_key="")


def _merge_keyed_list(
    original: list[Any], patch: list[Any], meta: PatchMeta, path: str
) -> list[Any]:
    key = meta.merge_key
    item_meta = meta.items or _UNKNOWN
    working = [copy.deepcopy(item) for item in original]
    server_order = [copy.deepcopy(item) for item in original]
    plain: list[Mapping[str, Any]] = []
    replace = False
    for item in patch:
        if not isinstance(item, Mapping):
            raise StrategicMergePatchError(
                f"{path}: elements must be objects merged by {key!r}, got {item!r}"
            )
        directive = item.get(_DIRECTIVE)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if key not in item:
                raise StrategicMergePatchError(
                    f"{path}: map {dict(item)} does not contain declared merge key {key!r}"
                )
            working = [
                entry
                for entry in working
                if not (isinstance(entry, Mapping) and entry.get(key) == item[key])
            ]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise StrategicMergePatchError(f"{path}: merging lists cannot yet be specified")
        else:
            raise StrategicMergePatchError(f"{path}: Unknown patch type: {directive!r}")
    if replace:
        return [_merge_map({}, item, item_meta, path) for item in plain]

    for item in plain:
        if key not in item:
            raise StrategicMergePatchError(
                f"{path}: map {dict(item)} does not contain declared merge key {key!r}"
            )
        for position, entry in enumerate(working):
            if isinstance(entry, dict) and entry.get(key) == item[key]:
                working[position] = _merge_map(entry, item, item_meta, path)
                break
        else:
            working.append(_merge_map({}, item, item_meta, path))
    return _order(working, plain, server_order=server_order, merge_key=key)


def _identity(item: Any, merge_key: str) -> Any:
    if merge_key:
        return item.get(merge_key) if isinstance(item, Mapping) else None
    return item


def _index_of(items: Sequence[Any], item: Any, merge_key: str) -> int:
    wanted = _identity(item, merge_key)
    for position, candidate in enumerate(items):
        if _identity(candidate, merge_key) == wanted:
            return position
    return -1


def _order(
    merged: list[Any], patch_order: Sequence[Any], *, server_order: Sequence[Any], merge_key: str
) -> list[Any]:
    """``normalizeElementOrder``: patch items in patch order, server-only items in live order,
    interleaved so that both relative orders are kept."""
    in_patch = [item for item in merged if _index_of(patch_order, item, merge_key) >= 0]
    server_only = [item for item in merged if _index_of(patch_order, item, merge_key) < 0]
    in_patch.sort(key=lambda item: _index_of(patch_order, item, merge_key))
    server_only.sort(key=lambda item: _index_of(server_order, item, merge_key))

    result: list[Any] = []
    left, right = 0, 0
    while left < len(server_only) or right < len(in_patch):
        if left >= len(server_only):
            result.append(in_patch[right])
            right += 1
        elif right >= len(in_patch):
            result.append(server_only[left])
            left += 1
        else:
            left_index = _index_of(server_order, server_only[left], merge_key)
            right_index = _index_of(server_order, in_patch[right], merge_key)
            if left_index >= 0 and right_index >= 0 and left_index < right_index:
                result.append(server_only[left])
                left += 1
            else:
                result.append(in_patch[right])
                right += 1
    return result
