"""Protobuf request bodies (what kubectl's typed create commands send)."""

from __future__ import annotations

import base64

import pytest
import requests

from infercost.testing.kubesim import KubeSim
from infercost.testing.kubesim.protobuf import MAGIC, ProtobufError, decode_object


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, payload: bytes | str | int) -> bytes:
    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = field(1, api_version) + field(2, kind)
    return (
        MAGIC
        + field(1, type_meta)
        + field(2, raw)
        + field(4, "application/vnd.kubernetes.protobuf")
    )


def entry(key: str, value: bytes | str) -> bytes:
    return field(1, key) + field(2, value)


def test_decode_secret_with_metadata() -> None:
    meta = (
        field(1, "s")
        + field(3, "default")
        + field(11, entry("app", "x"))
        + field(11, entry("tier", "db"))
        + field(14, "a/b")
        + field(7, 3)
    )
    raw = field(1, meta) + field(2, entry("pw", b"\x00\xff")) + field(3, "Opaque") + field(5, 1)
    obj = decode_object(envelope("v1", "Secret", raw))
    assert obj == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "s",
            "namespace": "default",
            "labels": {"app": "x", "tier": "db"},
            "finalizers": ["a/b"],
            "generation": 3,
        },
        "data": {"pw": base64.b64encode(b"\x00\xff").decode()},
        "type": "Opaque",
        "immutable": True,
    }


def test_unsupported_kinds_and_garbage_are_refused() -> None:
    with pytest.raises(ProtobufError, match="not v1 Pod"):
        decode_object(envelope("v1", "Pod", b""))
    with pytest.raises(ProtobufError, match="magic"):
        decode_object(b"{}")
    with pytest.raises(ProtobufError, match="truncated"):
        decode_object(MAGIC + b"\x0a\x10ab")


def test_protobuf_create_over_http(sim: KubeSim) -> None:
    raw = field(1, field(1, "cm")) + field(2, entry("k", "v"))
    resp = requests.post(
        f"{sim.url}/api/v1/namespaces/default/configmaps",
        data=envelope("v1", "ConfigMap", raw),
        headers={
            "Content-Type": "application/vnd.kubernetes.protobuf",
            "Accept": "application/vnd.kubernetes.protobuf,application/json",
        },
        timeout=5,
    )
    assert resp.status_code == 201
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json()["data"] == {"k": "v"}
    pod = requests.post(
        f"{sim.url}/api/v1/namespaces/default/pods",
        data=envelope("v1", "Pod", b""),
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
        timeout=5,
    )
    assert pod.status_code == 415 and pod.json()["reason"] == "UnsupportedMediaType"
