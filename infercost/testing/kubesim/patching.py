"""Patch types: one table from Content-Type to the function that applies it.

``PATCH_TYPES`` maps a patch media type to ``apply(current, body, resource) -> patched``;
the request handler looks the Content-Type up here and nowhere else, so a new patch type
plugs in as one entry (strategic merge patch for built-in kinds lives in :mod:`.strategic`).
Semantics follow RFC 7386 (JSON merge patch) and RFC 6902 (JSON patch), as the apiserver applies
them
(kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/).
Failures raise :class:`~.status.ApiError` with the apiserver's code.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from . import strategic
from .resources import ResourceDef
from .status import ApiError, bad_request

PatchFn = Callable[[dict[str, Any], bytes, ResourceDef], dict[str, Any]]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as exc:
        raise bad_request(f"error decoding patch: {exc}") from None


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch(target, patch); does not modify its arguments."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


def apply_merge_patch(
    current: dict[str, Any], body: bytes, resource: ResourceDef
) -> dict[str, Any]:
    patch = _decode(body)
    if not isinstance(patch, dict):
        raise bad_request(
            "json: cannot unmarshal " + _json_kind(patch) + " into Go value of type "
            "map[string]interface {}"
        )
    result = merge(current, patch)
    assert isinstance(result, dict)
    return result


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "null"


class JsonPatchError(Exception):
    pass


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _parse_pointer(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise JsonPatchError(f"path must be a string, got {path!r}")
    if path == "":
        return []
    if not path.startswith("/"):
        raise JsonPatchError(f'JSON pointer must start with "/": {path!r}')
    return [_unescape(t) for t in path[1:].split("/")]


def _index(container: list[Any], token: str, *, for_add: bool) -> int:
    if for_add and token == "-":
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise JsonPatchError(f"invalid array index {token!r}")
    idx = int(token)
    limit = len(container) if for_add else len(container) - 1
    if idx > limit:
        raise JsonPatchError(f"array index out of bounds: {idx}")
    return idx


def _parent(doc: Any, tokens: list[str], path: str) -> tuple[Any, str]:
    cur = doc
    for tok in tokens[:-1]:
        if isinstance(cur, dict):
            if tok not in cur:
                raise JsonPatchError(f"doc is missing path: {path!r}")
            cur = cur[tok]
        elif isinstance(cur, list):
            cur = cur[_index(cur, tok, for_add=False)]
        else:
            raise JsonPatchError(f"doc is missing path: {path!r}")
    return cur, tokens[-1]


def _get(doc: Any, path: str) -> Any:
    cur = doc
    for tok in _parse_pointer(path):
        if isinstance(cur, dict):
            if tok not in cur:
                raise JsonPatchError(f"doc is missing path: {path!r}")
            cur = cur[tok]
        elif isinstance(cur, list):
            cur = cur[_index(cur, tok, for_add=False)]
        else:
            raise JsonPatchError(f"doc is missing path: {path!r}")
    return cur


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _parse_pointer(path)
    if not tokens:
        return value
    parent, last = _parent(doc, tokens, path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_add=True), value)
    else:
        raise JsonPatchError(f"doc is missing path: {path!r}")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _parse_pointer(path)
    if not tokens:
        raise JsonPatchError("cannot remove the whole document")
    parent, last = _parent(doc, tokens, path)
    if isinstance(parent, dict):
        if last not in parent:
            raise JsonPatchError(f"unable to remove nonexistent key: {last}: missing value")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, for_add=False))
    raise JsonPatchError(f"doc is missing path: {path!r}")


def json_patch(doc: Any, ops: list[Any]) -> Any:
    """Apply RFC 6902 operations to a deep copy of ``doc``."""
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict):
            raise JsonPatchError(f"invalid operation {op!r}")
        kind = op.get("op")
        path = _pointer_arg(op, "path")
        if kind == "add":
            if "value" not in op:
                raise JsonPatchError("add operation does not apply: missing value")
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            if "value" not in op:
                raise JsonPatchError("replace operation does not apply: missing value")
            _get(doc, path)
            if _parse_pointer(path):
                doc, _ = _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            source = _pointer_arg(op, "from")
            value = _get(doc, source)
            doc, _ = _remove(doc, source)
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, _pointer_arg(op, "from"))))
        elif kind == "test":
            try:
                actual = _get(doc, path)
            except JsonPatchError:
                raise JsonPatchError(f"testing value {path} failed: test failed") from None
            if not _json_equal(actual, op.get("value")):
                raise JsonPatchError(f"testing value {path} failed: test failed")
        else:
            raise JsonPatchError(f"Unexpected kind: {kind}")
    return doc


def _pointer_arg(op: dict[str, Any], field: str) -> str:
    value = op.get(field)
    if not isinstance(value, str):
        raise JsonPatchError(f"{op.get('op')} operation does not apply: missing {field!r}")
    return value


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers compare by value, booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def apply_json_patch(current: dict[str, Any], body: bytes, resource: ResourceDef) -> dict[str, Any]:
    ops = _decode(body)
    if not isinstance(ops, list):
        raise bad_request(
            "json: cannot unmarshal " + _json_kind(ops) + " into Go value of type jsonpatch.Patch"
        )
    try:
        result = json_patch(current, ops)
    except JsonPatchError as exc:
        raise ApiError(422, str(exc), "Invalid") from None
    if not isinstance(result, dict):
        raise ApiError(422, "the patched document is not a JSON object", "Invalid")
    return result


def apply_strategic_merge_patch(
    current: dict[str, Any], body: bytes, resource: ResourceDef
) -> dict[str, Any]:
    """Strategic merge patch for built-in kinds; custom resources reject it like the apiserver."""
    if resource.is_crd_resource:
        raise ApiError(
            415,
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}",
            "UnsupportedMediaType",
        )
    patch = _decode(body)
    if not isinstance(patch, dict):
        raise bad_request(
            "json: cannot unmarshal " + _json_kind(patch) + " into Go value of type "
            "map[string]interface {}"
        )
    try:
        return strategic.strategic_merge_patch(
            current, patch, group=resource.group, kind=resource.kind
        )
    except strategic.StrategicMergePatchError as exc:
        raise ApiError(422, str(exc), "Invalid") from None


def reject_apply(current: dict[str, Any], body: bytes, resource: ResourceDef) -> dict[str, Any]:
    raise ApiError(
        415,
        "server-side apply (application/apply-patch+yaml) is not supported by this API server; "
        "use kubectl apply without --server-side, or a merge patch",
        "UnsupportedMediaType",
    )


PATCH_TYPES: dict[str, PatchFn] = {
    MERGE_PATCH: apply_merge_patch,
    JSON_PATCH: apply_json_patch,
    STRATEGIC_MERGE_PATCH: apply_strategic_merge_patch,
    APPLY_PATCH: reject_apply,
    APPLY_PATCH_CBOR: reject_apply,
}


def patch_function(content_type: str) -> PatchFn | None:
    media = content_type.split(";", 1)[0].strip().lower()
    return PATCH_TYPES.get(media)
