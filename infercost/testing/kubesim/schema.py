"""Structural-schema admission for custom resources: pruning, defaulting, validation.

Follows kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/
(sections "Specifying a structural schema", "Field pruning", "Defaulting", "Validation") and
reproduces the apiserver's field-error wording (apimachinery ``field.Error`` rendering of the
kube-openapi validation results), so that the 422 a client sees here reads like a cluster's.
Pure functions over JSON values; nothing here knows about storage or HTTP.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
import ipaddress
import json
import math
import re
import uuid
from typing import Any

from .status import FieldError

# ObjectMeta fields the apiserver decodes; anything else under metadata is an unknown field.
OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)


def go_repr(value: Any) -> str:
    """A JSON value printed the way apimachinery prints a field error's bad value."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(k)}:{_go_inner(v)}" for k, v in value.items())
        return "map[string]interface {}{" + inner + "}"
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(_go_inner(v) for v in value) + "}"
    return str(value)


def _go_inner(value: Any) -> str:
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (
            ("int64(" + str(value) + ")")
            if isinstance(value, int)
            else ("float64(" + _go_float(value) + ")")
        )
    return go_repr(value)


def _go_float(value: float) -> str:
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exp = text.split("e")
        sign = "-" if exp.startswith("-") else "+"
        digits = exp.lstrip("+-").rjust(2, "0")
        return f"{mantissa}e{sign}{digits}"
    return text


def _limit(value: Any) -> str:
    if isinstance(value, float):
        return _go_float(value)
    return str(value)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# Pruning --------------------------------------------------------------------------------


def prune(obj: dict[str, Any], schema: dict[str, Any] | None) -> list[str]:
    """Drop fields the schema does not specify (in place); return their paths.

    ``apiVersion``, ``kind`` and ``metadata`` are always kept at the root; unknown metadata
    fields are dropped and reported too.
    """
    unknown: list[str] = []
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for key in list(meta):
            if key not in OBJECT_META_FIELDS:
                unknown.append(f"metadata.{key}")
                del meta[key]
    if schema is None:
        return unknown
    props = schema.get("properties") or {}
    for key in list(obj):
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if key in props:
            _prune_value(obj[key], props[key], key, unknown)
        elif not schema.get("x-kubernetes-preserve-unknown-fields"):
            unknown.append(key)
            del obj[key]
    return unknown


def _prune_value(value: Any, schema: dict[str, Any], path: str, unknown: list[str]) -> None:
    if isinstance(value, dict):
        if schema.get("x-kubernetes-embedded-resource"):
            keep = {"apiVersion", "kind", "metadata"}
        else:
            keep = set()
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        for key in list(value):
            child = _join(path, key)
            if props and key in props:
                _prune_value(value[key], props[key], child, unknown)
            elif isinstance(addl, dict):
                _prune_value(value[key], addl, f"{path}[{key}]", unknown)
            elif addl is True or preserve or key in keep:
                continue
            elif props is None and addl is None and schema.get("type") != "object":
                # No structural information (e.g. int-or-string): leave as is.
                continue
            else:
                unknown.append(child)
                del value[key]
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _prune_value(item, items, f"{path}[{i}]", unknown)


def prune_nulls(obj: Any, schema: dict[str, Any] | None) -> None:
    """Drop ``null`` values of fields that are neither ``nullable`` nor defaulted (in place).

    The apiserver does this while decoding, before defaulting and validation, so ``{"x": null}``
    for a plain ``type: number`` field means "unset", not a type error. Nulls inside lists are
    kept. Follows: https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#defaulting-and-nullable
    """
    if schema is None:
        return
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for key in list(obj):
            sub = props.get(key, addl if isinstance(addl, dict) else None)
            if not isinstance(sub, dict):
                continue
            if obj[key] is None and not sub.get("nullable") and "default" not in sub:
                del obj[key]
            else:
                prune_nulls(obj[key], sub)
    elif isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in obj:
                prune_nulls(item, items)


# Defaulting -----------------------------------------------------------------------------


def apply_defaults(obj: Any, schema: dict[str, Any] | None) -> None:
    """Set ``default`` values for absent fields (and for nulls in non-nullable fields)."""
    if schema is None:
        return
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if not isinstance(sub, dict):
                continue
            if "default" in sub and (
                key not in obj or (obj[key] is None and not sub.get("nullable"))
            ):
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                apply_defaults(obj[key], sub)
        addl = schema.get("additionalProperties")
        if isinstance(addl, dict):
            for key in list(obj):
                if key not in props:
                    apply_defaults(obj[key], addl)
    elif isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in obj:
                apply_defaults(item, items)


# Validation -----------------------------------------------------------------------------


def validate(obj: dict[str, Any], schema: dict[str, Any] | None) -> list[FieldError]:
    """Validate a custom resource against its version's openAPIV3Schema."""
    errors: list[FieldError] = []
    if schema is None:
        return errors
    body = {k: v for k, v in obj.items() if k != "metadata"}
    root = dict(schema)
    props = dict(root.get("properties") or {})
    props.pop("metadata", None)
    root["properties"] = props
    _validate(body, root, "", errors)
    return errors


def _invalid(errors: list[FieldError], path: str, value: Any, detail: str) -> None:
    errors.append(
        FieldError(
            "FieldValueInvalid", path, f"Invalid value: {go_repr(value)}: {path} in body {detail}"
        )
    )


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h|d|w))+$")


def _format_ok(fmt: str, value: str) -> bool:
    try:
        if fmt == "date":
            dt.date.fromisoformat(value)
            return re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is not None
        if fmt in ("date-time", "datetime"):
            if not _DATE_TIME.match(value):
                return False
            dt.datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
            return True
        if fmt == "duration":
            return _DURATION.match(value) is not None
        if fmt == "uuid":
            uuid.UUID(value)
            return True
        if fmt == "ipv4":
            ipaddress.IPv4Address(value)
            return True
        if fmt == "ipv6":
            ipaddress.IPv6Address(value)
            return True
        if fmt == "cidr":
            ipaddress.ip_network(value, strict=False)
            return "/" in value
        if fmt == "byte":
            base64.b64decode(value, validate=True)
            return True
    except ValueError:
        return False
    return True


_INLINE_FLAGS = re.compile(r"\(\?([imsU]+)\)")


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re.Pattern[str] | None:
    """Compile a schema ``pattern`` (Go RE2 syntax) for Python; None when it cannot be.

    RE2 allows inline flag groups such as ``(?i)`` anywhere; Python only at the start, so they
    are moved there. ``\\z`` (end of text) becomes Python's ``\\Z``.
    """
    flags = "".join(sorted(set("".join(_INLINE_FLAGS.findall(pattern))) - {"U"}))
    text = _INLINE_FLAGS.sub("", pattern).replace("\\z", "\\Z")
    if flags:
        text = f"(?{flags}){text}"
    try:
        return re.compile(text)
    except re.error:
        return None


def _type_ok(expected: str, value: Any) -> bool:
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "object":
        return isinstance(value, dict)
    if expected == "array":
        return isinstance(value, list)
    return True


def _validate(value: Any, schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    if value is None:
        if schema.get("nullable"):
            return
        expected = schema.get("type")
        if expected:
            errors.append(
                FieldError(
                    "FieldValueTypeInvalid",
                    path,
                    f'Invalid value: "null": {path} in body must be of type {expected}: "null"',
                )
            )
        return
    expected = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))):
            actual = _type_name(value)
            errors.append(
                FieldError(
                    "FieldValueTypeInvalid",
                    path,
                    f'Invalid value: "{actual}": {path} in body must be of type integer,string: '
                    f'"{actual}"',
                )
            )
            return
    elif expected and not _type_ok(expected, value):
        actual = _type_name(value)
        errors.append(
            FieldError(
                "FieldValueTypeInvalid",
                path,
                f'Invalid value: "{actual}": {path} in body must be of type {expected}: "{actual}"',
            )
        )
        return

    enum = schema.get("enum")
    if enum is not None and value not in enum:
        supported = ", ".join(go_repr(e) for e in enum)
        errors.append(
            FieldError(
                "FieldValueNotSupported",
                path,
                f"Unsupported value: {go_repr(value)}: supported values: {supported}",
            )
        )

    if isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(value, schema, path, errors)
    elif isinstance(value, str):
        _validate_string(value, schema, path, errors)
    elif isinstance(value, list):
        _validate_array(value, schema, path, errors)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, errors)

    for sub in schema.get("allOf") or ():
        _validate(value, sub, path, errors)
    any_of = schema.get("anyOf")
    if any_of and not any(_passes(value, sub, path) for sub in any_of):
        _invalid(errors, path, value, "must validate at least one schema (anyOf)")
    one_of = schema.get("oneOf")
    if one_of and sum(1 for sub in one_of if _passes(value, sub, path)) != 1:
        _invalid(errors, path, value, "must validate one and only one schema (oneOf)")
    negated = schema.get("not")
    if isinstance(negated, dict) and _passes(value, negated, path):
        _invalid(errors, path, value, "shouldn't validate the schema (not)")


def _passes(value: Any, schema: dict[str, Any], path: str) -> bool:
    trial: list[FieldError] = []
    _validate(value, schema, path, trial)
    return not trial


def _validate_number(
    value: float, schema: dict[str, Any], path: str, errors: list[FieldError]
) -> None:
    minimum = schema.get("minimum")
    if minimum is not None:
        if schema.get("exclusiveMinimum"):
            if not value > minimum:
                _invalid(errors, path, value, f"should be greater than {_limit(minimum)}")
        elif not value >= minimum:
            _invalid(errors, path, value, f"should be greater than or equal to {_limit(minimum)}")
    maximum = schema.get("maximum")
    if maximum is not None:
        if schema.get("exclusiveMaximum"):
            if not value < maximum:
                _invalid(errors, path, value, f"should be less than {_limit(maximum)}")
        elif not value <= maximum:
            _invalid(errors, path, value, f"should be less than or equal to {_limit(maximum)}")
    multiple = schema.get("multipleOf")
    if multiple:
        ratio = value / multiple
        if not math.isclose(ratio, round(ratio), rel_tol=0, abs_tol=1e-9):
            _invalid(errors, path, value, f"should be a multiple of {_limit(multiple)}")


def _validate_string(
    value: str, schema: dict[str, Any], path: str, errors: list[FieldError]
) -> None:
    max_len = schema.get("maxLength")
    if max_len is not None and len(value) > max_len:
        unit = "byte" if max_len == 1 else "bytes"
        errors.append(
            FieldError(
                "FieldValueTooLong", path, f"Too long: may not be more than {max_len} {unit}"
            )
        )
    min_len = schema.get("minLength")
    if min_len is not None and len(value) < min_len:
        _invalid(errors, path, value, f"should be at least {min_len} chars long")
    pattern = schema.get("pattern")
    if pattern is not None:
        compiled = compile_pattern(pattern)
        if compiled is not None and compiled.search(value) is None:
            _invalid(errors, path, value, f"should match '{pattern}'")
    fmt = schema.get("format")
    if fmt and not _format_ok(fmt, value):
        errors.append(
            FieldError(
                "FieldValueInvalid",
                path,
                f"Invalid value: {go_repr(value)}: {path} in body must be of type {fmt}: "
                f"{go_repr(value)}",
            )
        )


def _validate_array(
    value: list[Any], schema: dict[str, Any], path: str, errors: list[FieldError]
) -> None:
    max_items = schema.get("maxItems")
    if max_items is not None and len(value) > max_items:
        errors.append(
            FieldError(
                "FieldValueTooMany",
                path,
                f"Too many: {len(value)}: must have at most {max_items} items",
            )
        )
    min_items = schema.get("minItems")
    if min_items is not None and len(value) < min_items:
        _invalid(errors, path, value, f"should have at least {min_items} items")
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate(item, items, f"{path}[{i}]", errors)
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen: set[str] = set()
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            key_value = {k: item.get(k) for k in keys if k in item}
            marker = json.dumps(key_value, sort_keys=True)
            if marker in seen:
                errors.append(
                    FieldError(
                        "FieldValueDuplicate",
                        f"{path}[{i}]",
                        f"Duplicate value: {go_repr(key_value)}",
                    )
                )
            seen.add(marker)
    elif list_type == "set":
        seen_items: set[str] = set()
        for i, item in enumerate(value):
            marker = json.dumps(item, sort_keys=True)
            if marker in seen_items:
                errors.append(
                    FieldError(
                        "FieldValueDuplicate", f"{path}[{i}]", f"Duplicate value: {go_repr(item)}"
                    )
                )
            seen_items.add(marker)


def _validate_object(
    value: dict[str, Any], schema: dict[str, Any], path: str, errors: list[FieldError]
) -> None:
    for name in schema.get("required") or ():
        if name not in value:
            errors.append(FieldError("FieldValueRequired", _join(path, name), "Required value"))
    props = schema.get("properties") or {}
    addl = schema.get("additionalProperties")
    for key, item in value.items():
        sub = props.get(key)
        if isinstance(sub, dict):
            _validate(item, sub, _join(path, key), errors)
        elif isinstance(addl, dict):
            _validate(item, addl, f"{path}[{key}]" if path else key, errors)
    max_props = schema.get("maxProperties")
    if max_props is not None and len(value) > max_props:
        errors.append(
            FieldError(
                "FieldValueTooMany",
                path,
                f"Too many: {len(value)}: must have at most {max_props} items",
            )
        )
    min_props = schema.get("minProperties")
    if min_props is not None and len(value) < min_props:
        _invalid(errors, path, value, f"should have at least {min_props} properties")


# Structural schema checks (CRD admission) ------------------------------------------------


def structural_errors(root: Any, path: str) -> list[FieldError]:
    """Why a CRD version's openAPIV3Schema is not structural (empty when it is).

    The apiserver refuses non-structural schemas for apiextensions.k8s.io/v1 CRDs; the main
    rules are checked here: a type everywhere a node has content, ``items`` for arrays,
    ``properties`` and ``additionalProperties`` not together, list-map keys present, and only
    ``name``/``generateName`` restrictions under the root ``metadata``.
    """
    errors: list[FieldError] = []
    if not isinstance(root, dict) or not root:
        errors.append(
            FieldError("FieldValueRequired", path, "Required value: a schema is required")
        )
        return errors
    if not root.get("type"):
        errors.append(
            FieldError(
                "FieldValueRequired",
                f"{path}.type",
                "Required value: must not be empty at the root",
            )
        )
    elif root["type"] != "object":
        errors.append(
            FieldError(
                "FieldValueInvalid",
                f"{path}.type",
                f"Invalid value: {go_repr(root['type'])}: must be object at the root",
            )
        )
    meta = (root.get("properties") or {}).get("metadata")
    if isinstance(meta, dict):
        extra = set(meta.get("properties") or {}) - {"name", "generateName"}
        if extra or set(meta) - {"type", "properties", "description"}:
            errors.append(
                FieldError(
                    "FieldValueForbidden",
                    f"{path}.properties[metadata]",
                    "Forbidden: must not specify anything other than name and generateName, "
                    "but metadata is implicitly specified",
                )
            )
    _structural(root, path, errors, at_root=True)
    return errors


def _structural(node: Any, path: str, errors: list[FieldError], *, at_root: bool = False) -> None:
    if not isinstance(node, dict):
        return
    props = node.get("properties")
    addl = node.get("additionalProperties")
    untyped_ok = node.get("x-kubernetes-int-or-string") or node.get(
        "x-kubernetes-preserve-unknown-fields"
    )
    if not at_root and not node.get("type") and not untyped_ok:
        errors.append(
            FieldError(
                "FieldValueRequired",
                f"{path}.type",
                "Required value: must not be empty for specified object fields",
            )
        )
    if props and isinstance(addl, dict | bool) and addl is not False:
        errors.append(
            FieldError(
                "FieldValueForbidden",
                f"{path}.additionalProperties",
                "Forbidden: additionalProperties and properties are mutual exclusive",
            )
        )
    if node.get("type") == "array" and not isinstance(node.get("items"), dict):
        errors.append(
            FieldError(
                "FieldValueRequired",
                f"{path}.items",
                "Required value: must be specified",
            )
        )
    if node.get("x-kubernetes-list-type") == "map":
        keys = node.get("x-kubernetes-list-map-keys") or []
        raw_items = node.get("items")
        items: dict[str, Any] = raw_items if isinstance(raw_items, dict) else {}
        if not keys:
            errors.append(
                FieldError(
                    "FieldValueRequired",
                    f"{path}.x-kubernetes-list-map-keys",
                    "Required value: must not be empty if x-kubernetes-list-type is map",
                )
            )
        item_props = items.get("properties") or {}
        for key in keys:
            sub = item_props.get(key)
            if not isinstance(sub, dict):
                errors.append(
                    FieldError(
                        "FieldValueRequired",
                        f"{path}.items.properties[{key}]",
                        "Required value: entries mentioned in x-kubernetes-list-map-keys must "
                        "be specified in items",
                    )
                )
            elif key not in (items.get("required") or ()) and "default" not in sub:
                errors.append(
                    FieldError(
                        "FieldValueRequired",
                        f"{path}.items.properties[{key}]",
                        "Required value: all map keys must be required or have a default value",
                    )
                )
    for name, sub in (props or {}).items():
        _structural(sub, f"{path}.properties[{name}]", errors)
    if isinstance(addl, dict):
        _structural(addl, f"{path}.additionalProperties", errors)
    if isinstance(node.get("items"), dict):
        _structural(node["items"], f"{path}.items", errors)
