"""Fault injection (in-process and over HTTP) and the request log."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infercost.testing.kubesim import KubeSim

G, V = "example.kubesim.io", "v1"


def widget(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": 1},
    }


def no_retry_client(sim: KubeSim) -> client.ApiClient:
    cfg = sim.configuration()
    cfg.retries = 0  # urllib3 would otherwise honour Retry-After on 429/503 for GETs
    return client.ApiClient(cfg)


def test_respond_429_with_retry_after(sim: KubeSim) -> None:
    core = client.CoreV1Api(no_retry_client(sim))
    sim.faults.respond(verb="list", resource="pods", code=429, count=2)
    for _ in range(2):
        with pytest.raises(ApiException) as exc:
            core.list_namespaced_pod("default")
        assert exc.value.status == 429
        assert exc.value.headers["Retry-After"] == "1"
        status = json.loads(exc.value.body)
        assert status["reason"] == "TooManyRequests"
        assert status["details"]["retryAfterSeconds"] == 1
    assert core.list_namespaced_pod("default").items == []
    # Other verbs and resources are unaffected.
    sim.faults.respond(verb="list", resource="pods", code=429, count=1)
    assert core.list_namespaced_config_map("default").items == []
    core.read_namespace("default")


@pytest.mark.parametrize(("code", "reason"), [(500, "InternalError"), (503, "ServiceUnavailable")])
def test_respond_server_errors(sim: KubeSim, code: int, reason: str) -> None:
    co = client.CustomObjectsApi(no_retry_client(sim))
    sim.faults.respond(verb="create", resource=f"widgets.{G}", code=code, count=1)
    with pytest.raises(ApiException) as exc:
        co.create_namespaced_custom_object(G, V, "default", "widgets", widget("w"))
    assert exc.value.status == code
    assert json.loads(exc.value.body)["reason"] == reason
    co.create_namespaced_custom_object(G, V, "default", "widgets", widget("w"))


def test_respond_matches_subresources_by_name(sim: KubeSim, co: client.CustomObjectsApi) -> None:
    co.create_namespaced_custom_object(G, V, "default", "widgets", widget("w"))
    sim.faults.respond(verb="patch", resource="widgets/status", code=500)
    co.patch_namespaced_custom_object(
        G, V, "default", "widgets", "w", {"metadata": {"labels": {"a": "b"}}}
    )
    with pytest.raises(ApiException) as exc:
        co.patch_namespaced_custom_object_status(
            G, V, "default", "widgets", "w", {"status": {"phase": "x"}}
        )
    assert exc.value.status == 500


def test_conflict_fault_fails_next_write_once(sim: KubeSim, co: client.CustomObjectsApi) -> None:
    co.create_namespaced_custom_object(G, V, "default", "widgets", widget("x"))
    co.create_namespaced_custom_object(G, V, "default", "widgets", widget("y"))
    sim.faults.conflict(resource="widgets", name="x")
    co.patch_namespaced_custom_object(G, V, "default", "widgets", "y", {"spec": {"size": 2}})
    with pytest.raises(client.exceptions.ConflictException) as exc:
        co.patch_namespaced_custom_object(G, V, "default", "widgets", "x", {"spec": {"size": 2}})
    assert json.loads(exc.value.body)["message"].startswith(
        f'Operation cannot be fulfilled on widgets.{G} "x"'
    )
    co.patch_namespaced_custom_object(G, V, "default", "widgets", "x", {"spec": {"size": 2}})


def test_latency(sim: KubeSim, core: client.CoreV1Api) -> None:
    waits: list[float] = []
    sim.faults.sleep = waits.append  # record the injected latency instead of waiting it out
    core.list_namespace()
    assert waits == []
    sim.faults.latency_ms(1000)
    core.list_namespace()
    core.read_namespace("default")
    assert waits == [1.0, 1.0], "every request waits the latency before it is answered"
    sim.faults.clear()
    core.list_namespace()
    assert waits == [1.0, 1.0]


def test_clear_removes_pending_faults(sim: KubeSim, core: client.CoreV1Api) -> None:
    sim.faults.respond(verb="*", resource="*", code=503, count=5)
    sim.faults.conflict(resource="configmaps", name="a")
    sim.faults.clear()
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    core.patch_namespaced_config_map("a", "default", {"data": {"x": "y"}})


def test_fault_arguments_are_checked(sim: KubeSim) -> None:
    with pytest.raises(ValueError, match="unknown verb"):
        sim.faults.respond(verb="fetch", resource="pods", code=429)
    with pytest.raises(ValueError, match="code must be one of"):
        sim.faults.respond(verb="get", resource="pods", code=404)
    with pytest.raises(ValueError, match="count"):
        sim.faults.respond(verb="get", resource="pods", code=500, count=0)
    with pytest.raises(ValueError, match="negative"):
        sim.faults.latency_ms(-1)


def test_faults_over_http(sim: KubeSim, core: client.CoreV1Api) -> None:
    url = f"{sim.url}/_kubesim/faults"
    ok = requests.post(
        url,
        json={"respond": {"verb": "get", "resource": "namespaces", "code": 500, "count": 1}},
        timeout=5,
    )
    assert ok.status_code == 200
    assert requests.get(f"{sim.url}/api/v1/namespaces/default", timeout=5).status_code == 500
    assert requests.get(f"{sim.url}/api/v1/namespaces/default", timeout=5).status_code == 200
    assert requests.post(url, json={"latencyMs": 50}, timeout=5).status_code == 200
    assert requests.post(
        url, json={"conflict": {"resource": "configmaps", "name": "c"}}, timeout=5
    ).ok
    assert requests.delete(url, timeout=5).status_code == 200
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    core.patch_namespaced_config_map("c", "default", {"data": {"a": "b"}})
    rv = core.read_namespaced_config_map("c", "default").metadata.resource_version
    assert requests.post(url, json={"expireResourceVersions": True}, timeout=5).ok
    with requests.get(
        f"{sim.url}/api/v1/namespaces/default/configmaps",
        params={"watch": "true", "resourceVersion": rv},
        stream=True,
        timeout=5,
    ) as resp:
        line = next(resp.iter_lines())
    assert json.loads(line)["object"]["code"] == 410
    assert requests.post(url, json={"dropWatches": True}, timeout=5).ok
    for bad in (
        {},
        {"bogus": 1},
        {"respond": {"verb": "get", "resource": "pods", "code": 404}},
        {"latencyMs": "slow"},
        {"dropWatches": False},
        [1],
    ):
        resp = requests.post(url, json=bad, timeout=5)
        assert resp.status_code == 400, bad
        assert resp.json()["kind"] == "Status"
    assert requests.get(f"{sim.url}/_kubesim/nothing", timeout=5).status_code == 404


def test_request_log(sim: KubeSim, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {"k": "v"}})
    core.read_namespaced_config_map("a", "default")
    core.list_namespaced_config_map("default", label_selector="x=y")
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "w"}})
    core.replace_namespaced_config_map("a", "default", {"metadata": {"name": "a"}})
    core.delete_namespaced_config_map("a", "default")
    core.delete_collection_namespaced_config_map("default")
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("a", "default")
    records = [r for r in sim.requests() if r.resource == "configmaps"]
    assert [r.verb for r in records] == [
        "create",
        "get",
        "list",
        "patch",
        "update",
        "delete",
        "deletecollection",
        "get",
    ]
    assert [r.status for r in records] == [201, 200, 200, 200, 200, 200, 200, 404]
    create = records[0]
    assert create.path == "/api/v1/namespaces/default/configmaps"
    assert create.user_agent.startswith("OpenAPI-Generator/")
    assert create.body_size == len(json.dumps({"metadata": {"name": "a"}, "data": {"k": "v"}}))
    assert records[0].namespace == "default" and records[1].name == "a"
    assert records[2].query == "labelSelector=x%3Dy"
    assert records[3].content_type == "application/strategic-merge-patch+json"
    over_http = requests.get(f"{sim.url}/_kubesim/requests", timeout=5).json()
    assert over_http[-1]["verb"] == "get" and over_http[-1]["status"] == 404
    assert {"verb", "path", "userAgent", "status", "bodySize"} <= set(over_http[0])
    # The control endpoints themselves are not logged.
    assert not [r for r in sim.requests() if r.path.startswith("/_kubesim")]


def test_errors_are_status_objects_never_tracebacks(sim: KubeSim) -> None:
    checks = [
        ("GET", "/apis/example.kubesim.io/v1/namespaces/default/widgets/w/scale", 404),
        ("GET", "/api/v2/pods", 404),
        ("GET", "/api/v1/namespaces/default/pods?limit=abc", 400),
        ("GET", "/api/v1/namespaces/default/pods?watch=true&resourceVersion=xyz", 400),
        ("DELETE", "/api/v1/namespaces", 405),
        ("GET", "/nonsense", 404),
    ]
    for method, path, code in checks:
        resp = requests.request(method, sim.url + path, timeout=5)
        assert resp.status_code == code, (method, path)
        body = resp.json()
        assert body["kind"] == "Status" and body["code"] == code and body["status"] == "Failure"
