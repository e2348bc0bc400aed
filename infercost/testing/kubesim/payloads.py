"""Validation of ConfigMap and Secret payloads, as the apiserver does it.

The operator keeps its ledger checkpoint in ConfigMaps, so the emulator must refuse what a
real cluster refuses: non-string values (a decoding error, 400), ``binaryData`` and Secret
``data`` that are not base64 (400), invalid or duplicated keys and payloads over 1 MiB (422).
Sources: kubernetes.io/docs/concepts/configuration/configmap/ ("The data stored in a ConfigMap
cannot exceed 1 MiB") and the core/v1 validation of ConfigMap and Secret keys.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from .status import FieldError, bad_request

__all__ = ["MAX_PAYLOAD_BYTES", "payload_errors"]

MAX_PAYLOAD_BYTES = 1024 * 1024
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)


def payload_errors(kind: str, obj: dict[str, Any]) -> list[FieldError]:
    """422 field errors of a ConfigMap's or Secret's payload; raises a 400 for values that
    would not even decode."""
    if kind == "ConfigMap":
        text = _mapping(kind, obj, "data", base64_values=False)
        binary = _mapping(kind, obj, "binaryData", base64_values=True)
    elif kind == "Secret":
        text = {}
        binary = _mapping(kind, obj, "data", base64_values=True)
        binary.update(_mapping(kind, obj, "stringData", base64_values=False))
    else:
        return []
    errors: list[FieldError] = []
    binary_field = "binaryData" if kind == "ConfigMap" else "data"
    for field, keys in (("data", text), (binary_field, binary)):
        for key in keys:
            if len(key) > 253 or not _CONFIG_KEY.match(key):
                errors.append(
                    FieldError(
                        "FieldValueInvalid",
                        f"{field}[{key}]",
                        f'Invalid value: "{key}": {_KEY_MSG}',
                    )
                )
    if kind == "ConfigMap":
        for key in sorted(set(text) & set(binary)):
            errors.append(
                FieldError(
                    "FieldValueInvalid",
                    f"data[{key}]",
                    f'Invalid value: "{key}": duplicate of key present in binaryData',
                )
            )
    size = sum(len(k) + v for k, v in text.items()) + sum(len(k) + v for k, v in binary.items())
    if size > MAX_PAYLOAD_BYTES:
        errors.append(
            FieldError(
                "FieldValueTooLong", "[]", f"Too long: must have at most {MAX_PAYLOAD_BYTES} bytes"
            )
        )
    return errors


def _mapping(kind: str, obj: dict[str, Any], field: str, *, base64_values: bool) -> dict[str, int]:
    """Key -> size in bytes of one payload map (decoded for base64 maps)."""
    raw = obj.get(field)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _decode_error(
            kind,
            f"cannot unmarshal {_json_type(raw)} into Go struct field {kind}.{field} of type "
            "map[string]",
        )
    sizes: dict[str, int] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            target = "[]uint8" if base64_values else "string"
            raise _decode_error(
                kind,
                f"cannot unmarshal {_json_type(value)} into Go struct field {kind}.{field} of "
                f"type {target}",
            )
        if base64_values:
            try:
                sizes[key] = len(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                raise _decode_error(kind, f"illegal base64 data in {field}[{key}]") from None
        else:
            sizes[key] = len(value.encode())
    return sizes


def _decode_error(kind: str, detail: str) -> Exception:
    return bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: json: {detail}')


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else "string"
