"""Decoding of Kubernetes protobuf request bodies for the few kinds kubectl sends that way.

``kubectl create namespace|configmap|secret|serviceaccount`` use client-go's typed clients,
which send ``application/vnd.kubernetes.protobuf`` bodies (the ``k8s\\x00`` envelope around a
``runtime.Unknown`` whose ``raw`` is the object's protobuf message). This module turns such a body
into the object's JSON form, for those kinds only, using the field numbers of
``k8s.io/api/core/v1/generated.proto`` and ``k8s.io/apimachinery/pkg/apis/meta/v1/
generated.proto``. Anything else raises :class:`ProtobufError` and the caller answers 415.
Responses are always JSON, which clients accept. Pure; no I/O.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from typing import Any

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"


class ProtobufError(ValueError):
    """A body that is not a decodable Kubernetes protobuf object of a supported kind."""


# A message spec maps field number -> (json name, kind, nested spec or None). Kinds: string,
# bytes (base64 in JSON), bool, int (varint), message, time, map_str, map_bytes, list_str,
# list_msg.
Spec = dict[int, tuple[str, str, Any]]

_TIME: Spec = {}
_OWNER_REFERENCE: Spec = {
    1: ("kind", "string", None),
    3: ("name", "string", None),
    4: ("uid", "string", None),
    5: ("apiVersion", "string", None),
    6: ("controller", "bool", None),
    7: ("blockOwnerDeletion", "bool", None),
}
_OBJECT_META: Spec = {
    1: ("name", "string", None),
    2: ("generateName", "string", None),
    3: ("namespace", "string", None),
    5: ("uid", "string", None),
    6: ("resourceVersion", "string", None),
    7: ("generation", "int", None),
    8: ("creationTimestamp", "time", None),
    9: ("deletionTimestamp", "time", None),
    10: ("deletionGracePeriodSeconds", "int", None),
    11: ("labels", "map_str", None),
    12: ("annotations", "map_str", None),
    13: ("ownerReferences", "list_msg", _OWNER_REFERENCE),
    14: ("finalizers", "list_str", None),
}
_OBJECT_REFERENCE: Spec = {
    1: ("kind", "string", None),
    2: ("namespace", "string", None),
    3: ("name", "string", None),
    4: ("uid", "string", None),
    5: ("apiVersion", "string", None),
    6: ("resourceVersion", "string", None),
    7: ("fieldPath", "string", None),
}
_LOCAL_OBJECT_REFERENCE: Spec = {1: ("name", "string", None)}

KINDS: dict[tuple[str, str], Spec] = {
    ("v1", "ConfigMap"): {
        1: ("metadata", "message", _OBJECT_META),
        2: ("data", "map_str", None),
        3: ("binaryData", "map_bytes", None),
        4: ("immutable", "bool", None),
    },
    ("v1", "Secret"): {
        1: ("metadata", "message", _OBJECT_META),
        2: ("data", "map_bytes", None),
        3: ("type", "string", None),
        4: ("stringData", "map_str", None),
        5: ("immutable", "bool", None),
    },
    ("v1", "Namespace"): {
        1: ("metadata", "message", _OBJECT_META),
        2: ("spec", "message", {1: ("finalizers", "list_str", None)}),
        3: ("status", "message", {1: ("phase", "string", None)}),
    },
    ("v1", "ServiceAccount"): {
        1: ("metadata", "message", _OBJECT_META),
        2: ("secrets", "list_msg", _OBJECT_REFERENCE),
        3: ("imagePullSecrets", "list_msg", _LOCAL_OBJECT_REFERENCE),
        4: ("automountServiceAccountToken", "bool", None),
    },
}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise ProtobufError("truncated length-delimited field")
            yield number, wire, buf[pos : pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")


def _text(raw: Any) -> str:
    if not isinstance(raw, bytes):
        raise ProtobufError("expected a length-delimited string")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ProtobufError("string field is not UTF-8") from None


def _time(raw: bytes) -> str:
    seconds = 0
    for number, _, value in _fields(raw):
        if number == 1:
            seconds = value
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _map_entry(raw: bytes) -> tuple[str, bytes]:
    key = ""
    value = b""
    for number, _, item in _fields(raw):
        if number == 1:
            key = _text(item)
        elif number == 2:
            value = item if isinstance(item, bytes) else b""
    return key, value


def decode_message(buf: bytes, spec: Spec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, _, value in _fields(buf):
        if number not in spec:
            continue
        name, kind, sub = spec[number]
        if kind == "string":
            out[name] = _text(value)
        elif kind == "bytes":
            out[name] = base64.b64encode(value).decode()
        elif kind == "bool":
            out[name] = bool(value)
        elif kind == "int":
            out[name] = value - (1 << 64) if value >= 1 << 63 else value
        elif kind == "message":
            out[name] = decode_message(value, sub)
        elif kind == "time":
            out[name] = _time(value)
        elif kind == "map_str":
            key, item = _map_entry(value)
            out.setdefault(name, {})[key] = _text(item)
        elif kind == "map_bytes":
            key, item = _map_entry(value)
            out.setdefault(name, {})[key] = base64.b64encode(item).decode()
        elif kind == "list_str":
            out.setdefault(name, []).append(_text(value))
        elif kind == "list_msg":
            out.setdefault(name, []).append(decode_message(value, sub))
    # Go's JSON encoding omits empty fields (omitempty); the wire format carries them.
    return {k: v for k, v in out.items() if v not in ("", {})}


def decode_object(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object of a supported kind."""
    if not body.startswith(MAGIC):
        raise ProtobufError("body does not start with the Kubernetes protobuf magic number")
    api_version = kind = ""
    raw = b""
    for number, _, value in _fields(body[len(MAGIC) :]):
        if number == 1:
            for sub_number, _, sub_value in _fields(value):
                if sub_number == 1:
                    api_version = _text(sub_value)
                elif sub_number == 2:
                    kind = _text(sub_value)
        elif number == 2:
            raw = value
    spec = KINDS.get((api_version, kind))
    if spec is None:
        supported = ", ".join(k for _, k in sorted(KINDS))
        raise ProtobufError(
            f"protobuf bodies are only understood for {supported}, not {api_version} {kind}; "
            "send application/json"
        )
    obj = decode_message(raw, spec)
    return {"apiVersion": api_version, "kind": kind, **obj}
