"""ConfigMap and Secret payloads are checked like the apiserver checks them (the operator's object
store writes ConfigMaps, so the emulator must refuse what a cluster refuses)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import requests

from infercost.testing.kubesim import KubeSim
from infercost.testing.kubesim.payloads import MAX_PAYLOAD_BYTES


@pytest.fixture
def url() -> Iterator[str]:
    with KubeSim() as sim:
        yield sim.url + "/api/v1/namespaces/default"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def post(url: str, kind: str, body: dict) -> requests.Response:
    plural = {"ConfigMap": "configmaps", "Secret": "secrets"}[kind]
    return requests.post(f"{url}/{plural}", json={"metadata": {"name": "x"}, **body}, timeout=10)


@pytest.mark.parametrize(
    ("kind", "body", "code", "message"),
    [
        (
            "ConfigMap",
            {"data": {"a": 1}},
            400,
            'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal '
            "number into Go struct field ConfigMap.data of type string",
        ),
        ("ConfigMap", {"data": ["a"]}, 400, "cannot unmarshal array"),
        ("ConfigMap", {"binaryData": {"a": "%%%"}}, 400, "illegal base64 data in binaryData[a]"),
        ("Secret", {"data": {"a": "not base64!"}}, 400, "illegal base64 data in data[a]"),
        (
            "ConfigMap",
            {"data": {"bad key": "v"}},
            422,
            'ConfigMap "x" is invalid: data[bad key]: Invalid value: "bad key": a valid config key',
        ),
        (
            "ConfigMap",
            {"data": {"k": "v"}, "binaryData": {"k": b64(b"z")}},
            422,
            'data[k]: Invalid value: "k": duplicate of key present in binaryData',
        ),
        (
            "ConfigMap",
            {"binaryData": {"k": b64(b"\0" * MAX_PAYLOAD_BYTES)}},
            422,
            'ConfigMap "x" is invalid: []: Too long: must have at most 1048576 bytes',
        ),
        (
            "Secret",
            {"stringData": {"k": "v" * MAX_PAYLOAD_BYTES}},
            422,
            "Too long: must have at most 1048576 bytes",
        ),
    ],
)
def test_bad_payloads_are_refused(url: str, kind: str, body: dict, code: int, message: str) -> None:
    resp = post(url, kind, body)
    assert resp.status_code == code
    status = resp.json()
    assert status["kind"] == "Status" and message in status["message"]


def test_payload_up_to_the_limit_is_stored_and_patches_are_checked_too(url: str) -> None:
    # 1 MiB counts keys plus decoded values.
    value = b"\1" * (MAX_PAYLOAD_BYTES - len("blob") - len("k") - 1)
    resp = post(url, "ConfigMap", {"data": {"k": "v"}, "binaryData": {"blob": b64(value)}})
    assert resp.status_code == 201, resp.text
    grown = requests.patch(
        f"{url}/configmaps/x",
        json={"data": {"k": "vv"}},
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=10,
    )
    assert grown.status_code == 422 and "Too long" in grown.json()["message"]
    typed = requests.patch(
        f"{url}/configmaps/x",
        json={"data": {"k": 5}},
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=10,
    )
    assert typed.status_code == 400
    kept = requests.get(f"{url}/configmaps/x", timeout=10).json()
    assert kept["data"] == {"k": "v"}
