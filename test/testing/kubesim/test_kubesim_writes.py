"""Updates and patches: optimistic concurrency, status split, generation, patch types."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infercost.testing.kubesim import KubeSim

G, V = "example.kubesim.io", "v1"
CONFLICT = (
    'Operation cannot be fulfilled on widgets.example.kubesim.io "w": the object has been '
    "modified; please apply your changes to the latest version and try again"
)


def widget(name: str = "w", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": 1, **spec},
    }


def make(co: client.CustomObjectsApi, **spec: Any) -> dict[str, Any]:
    return co.create_namespaced_custom_object(G, V, "default", "widgets", widget(**spec))


def status_of(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    return json.loads(exc.value.body)


def test_put_with_stale_resource_version_conflicts(co: client.CustomObjectsApi) -> None:
    first = make(co)
    fresh = dict(first, spec={"size": 2})
    co.replace_namespaced_custom_object(G, V, "default", "widgets", "w", fresh)
    stale = dict(first, spec={"size": 3})
    with pytest.raises(client.exceptions.ConflictException) as exc:
        co.replace_namespaced_custom_object(G, V, "default", "widgets", "w", stale)
    status = status_of(exc)
    assert status["reason"] == "Conflict" and status["code"] == 409
    assert status["message"] == CONFLICT
    assert status["details"] == {"name": "w", "group": G, "kind": "widgets"}


def test_put_of_custom_resource_requires_resource_version(co: client.CustomObjectsApi) -> None:
    first = make(co)
    del first["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as exc:
        co.replace_namespaced_custom_object(G, V, "default", "widgets", "w", first)
    assert exc.value.status == 422
    assert status_of(exc)["details"]["causes"][0]["field"] == "metadata.resourceVersion"


def test_put_without_resource_version_is_unconditional_for_built_ins(
    core: client.CoreV1Api,
) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    replaced = core.replace_namespaced_config_map(
        "cm", "default", {"metadata": {"name": "cm"}, "data": {"a": "2"}}
    )
    assert replaced.data == {"a": "2"}


def test_put_name_mismatch_and_missing_object(co: client.CustomObjectsApi) -> None:
    first = make(co)
    with pytest.raises(ApiException) as exc:
        co.replace_namespaced_custom_object(G, V, "default", "widgets", "other", first)
    assert exc.value.status == 400
    assert "does not match the name on the URL" in status_of(exc)["message"]
    with pytest.raises(client.exceptions.NotFoundException):
        co.patch_namespaced_custom_object(G, V, "default", "widgets", "missing", {"spec": {}})


def test_merge_patch_resource_version_is_a_precondition(co: client.CustomObjectsApi) -> None:
    first = make(co)
    rv = first["metadata"]["resourceVersion"]
    patched = co.patch_namespaced_custom_object(
        G, V, "default", "widgets", "w", {"metadata": {"resourceVersion": rv}, "spec": {"size": 4}}
    )
    assert patched["spec"]["size"] == 4
    with pytest.raises(client.exceptions.ConflictException) as exc:
        co.patch_namespaced_custom_object(
            G,
            V,
            "default",
            "widgets",
            "w",
            {"metadata": {"resourceVersion": rv}, "spec": {"size": 5}},
        )
    assert status_of(exc)["message"] == CONFLICT
    # Without a resourceVersion the patch is unconditional; null deletes a key.
    patched = co.patch_namespaced_custom_object(
        G, V, "default", "widgets", "w", {"spec": {"color": "red"}}
    )
    patched = co.patch_namespaced_custom_object(
        G, V, "default", "widgets", "w", {"spec": {"color": None}}
    )
    assert "color" not in patched["spec"]


def test_json_patch_with_failing_test_op_is_422(co: client.CustomObjectsApi) -> None:
    first = make(co)
    rv = first["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "replace", "path": "/spec/size", "value": 7},
        {"op": "add", "path": "/spec/tags", "value": ["a"]},
    ]
    patched = co.patch_namespaced_custom_object(
        G, V, "default", "widgets", "w", ops, _content_type="application/json-patch+json"
    )
    assert patched["spec"]["size"] == 7 and patched["spec"]["tags"] == ["a"]
    with pytest.raises(client.exceptions.UnprocessableEntityException) as exc:
        co.patch_namespaced_custom_object(
            G, V, "default", "widgets", "w", ops, _content_type="application/json-patch+json"
        )
    assert status_of(exc)["reason"] == "Invalid"
    assert "test failed" in status_of(exc)["message"]
    with pytest.raises(client.exceptions.UnprocessableEntityException):
        co.patch_namespaced_custom_object(
            G,
            V,
            "default",
            "widgets",
            "w",
            [{"op": "replace", "path": "/status/phase", "value": "x"}],
            _content_type="application/json-patch+json",
        )


def test_patched_object_is_validated(co: client.CustomObjectsApi) -> None:
    make(co)
    with pytest.raises(client.exceptions.UnprocessableEntityException) as exc:
        co.patch_namespaced_custom_object(G, V, "default", "widgets", "w", {"spec": {"size": 0}})
    assert status_of(exc)["details"]["causes"][0]["field"] == "spec.size"


def test_patch_content_types(sim: KubeSim, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    url = f"{sim.url}/api/v1/namespaces/default/configmaps/cm"
    smp = requests.patch(
        url,
        data=json.dumps({"data": {"b": "2"}}),
        headers={"Content-Type": "application/strategic-merge-patch+json"},
        timeout=5,
    )
    assert smp.status_code == 200 and smp.json()["data"] == {"a": "1", "b": "2"}
    apply = requests.patch(
        url + "?fieldManager=x",
        data=json.dumps({"data": {"c": "3"}}),
        headers={"Content-Type": "application/apply-patch+yaml"},
        timeout=5,
    )
    assert apply.status_code == 415 and apply.json()["reason"] == "UnsupportedMediaType"
    other = requests.patch(url, data=b"{}", headers={"Content-Type": "text/plain"}, timeout=5)
    assert other.status_code == 415 and other.json()["kind"] == "Status"
    cr_url = f"{sim.url}/apis/{G}/{V}/namespaces/default/widgets/w"
    requests.post(cr_url.rsplit("/", 1)[0], json=widget(), timeout=5)
    smp_cr = requests.patch(
        cr_url,
        data=b"{}",
        headers={"Content-Type": "application/strategic-merge-patch+json"},
        timeout=5,
    )
    assert smp_cr.status_code == 415


def test_generation_bumps_only_on_spec_changes(co: client.CustomObjectsApi) -> None:
    first = make(co)
    assert first["metadata"]["generation"] == 1
    labelled = co.patch_namespaced_custom_object(
        G, V, "default", "widgets", "w", {"metadata": {"labels": {"a": "b"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    with_status = co.patch_namespaced_custom_object_status(
        G, V, "default", "widgets", "w", {"status": {"phase": "Ready", "observedGeneration": 1}}
    )
    assert with_status["metadata"]["generation"] == 1
    changed = co.patch_namespaced_custom_object(
        G, V, "default", "widgets", "w", {"spec": {"size": 2}}
    )
    assert changed["metadata"]["generation"] == 2
    same = co.patch_namespaced_custom_object(G, V, "default", "widgets", "w", {"spec": {"size": 2}})
    assert same["metadata"]["generation"] == 2
    # A no-op write does not even bump the resourceVersion.
    assert same["metadata"]["resourceVersion"] == changed["metadata"]["resourceVersion"]


def test_status_subresource_split_for_custom_resources(co: client.CustomObjectsApi) -> None:
    body = widget()
    body["status"] = {"phase": "Ignored"}
    created = co.create_namespaced_custom_object(G, V, "default", "widgets", body)
    assert "status" not in created
    with_status = co.patch_namespaced_custom_object_status(
        G, V, "default", "widgets", "w", {"status": {"phase": "Ready"}, "spec": {"size": 9}}
    )
    assert with_status["status"] == {"phase": "Ready"}
    assert with_status["spec"]["size"] == 1
    main = co.patch_namespaced_custom_object(
        G, V, "default", "widgets", "w", {"status": {"phase": "Hacked"}, "spec": {"size": 3}}
    )
    assert main["status"] == {"phase": "Ready"} and main["spec"]["size"] == 3
    # PUT to /status with the object read back.
    main["status"] = {"phase": "Done", "observedGeneration": 2}
    main["spec"]["size"] = 8
    replaced = co.replace_namespaced_custom_object_status(G, V, "default", "widgets", "w", main)
    assert replaced["status"]["phase"] == "Done" and replaced["spec"]["size"] == 3
    # Status writes are validated against the schema too.
    with pytest.raises(client.exceptions.UnprocessableEntityException):
        co.patch_namespaced_custom_object_status(
            G, V, "default", "widgets", "w", {"status": {"observedGeneration": "x"}}
        )


def test_custom_resource_without_status_subresource_keeps_status(
    co: client.CustomObjectsApi,
) -> None:
    body = {
        "apiVersion": f"{G}/v1",
        "kind": "Gadget",
        "metadata": {"name": "g"},
        "spec": {"a": 1},
        "status": {"ok": True},
    }
    created = co.create_cluster_custom_object(G, "v1", "gadgets", body)
    assert created["status"] == {"ok": True}
    changed = co.patch_cluster_custom_object(G, "v1", "gadgets", "g", {"status": {"ok": False}})
    # Without a status subresource everything but metadata counts for generation.
    assert changed["metadata"]["generation"] == 2
    with pytest.raises(client.exceptions.NotFoundException):
        co.get_cluster_custom_object_status(G, "v1", "gadgets", "g")


def test_custom_resource_served_at_every_version(co: client.CustomObjectsApi) -> None:
    body = {"apiVersion": f"{G}/v1beta1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {}}
    created = co.create_cluster_custom_object(G, "v1beta1", "gadgets", body)
    assert created["apiVersion"] == f"{G}/v1beta1"
    assert co.get_cluster_custom_object(G, "v1", "gadgets", "g")["apiVersion"] == f"{G}/v1"
    items = co.list_cluster_custom_object(G, "v1beta1", "gadgets")["items"]
    assert items[0]["apiVersion"] == f"{G}/v1beta1"


def test_pod_status_split(core: client.CoreV1Api) -> None:
    pod = core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "podIP": "127.0.0.5"},
        },
    )
    assert pod.status.phase == "Pending" and pod.status.pod_ip is None
    assert pod.metadata.generation == 1
    patched = core.patch_namespaced_pod_status(
        "p", "default", {"status": {"phase": "Running", "podIP": "127.0.0.5"}}
    )
    assert patched.status.phase == "Running" and patched.status.pod_ip == "127.0.0.5"
    relabelled = core.patch_namespaced_pod(
        "p", "default", {"metadata": {"labels": {"x": "y"}}, "status": {"phase": "Failed"}}
    )
    assert relabelled.status.phase == "Running"
    assert relabelled.metadata.generation == 1
    node = client.V1Node(metadata=client.V1ObjectMeta(name="n1"), status={"capacity": {"cpu": "4"}})
    created = core.create_node(node)
    assert created.status.capacity == {"cpu": "4"}
    updated = core.patch_node_status("n1", {"status": {"capacity": {"cpu": "8"}}})
    assert updated.status.capacity == {"cpu": "8"}


def test_lease_update_conflicts(api: Any) -> None:
    coord = client.CoordinationV1Api(api)
    lease = coord.create_namespaced_lease(
        "default",
        {
            "metadata": {"name": "leader"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
        },
    )
    lease.spec.holder_identity = "b"
    renewed = coord.replace_namespaced_lease("leader", "default", lease)
    assert renewed.spec.holder_identity == "b"
    lease.spec.holder_identity = "c"
    with pytest.raises(client.exceptions.ConflictException):
        coord.replace_namespaced_lease("leader", "default", lease)


def test_dry_run_does_not_store(co: client.CustomObjectsApi) -> None:
    created = co.create_namespaced_custom_object(
        G, V, "default", "widgets", widget(), dry_run="All"
    )
    assert created["spec"]["replicas"] == 3
    assert co.list_namespaced_custom_object(G, V, "default", "widgets")["items"] == []


def test_method_not_allowed(sim: KubeSim) -> None:
    resp = requests.post(f"{sim.url}/api/v1/namespaces/default/configmaps/x", json={}, timeout=5)
    assert resp.status_code == 405 and resp.json()["reason"] == "MethodNotAllowed"
    resp = requests.put(f"{sim.url}/api/v1/namespaces/default/configmaps", json={}, timeout=5)
    assert resp.status_code == 405
    resp = requests.get(f"{sim.url}/apis/nothing.io/v1/things", timeout=5)
    assert resp.status_code == 404 and resp.json()["kind"] == "Status"


def test_strategic_merge_patch_merges_containers_by_name(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "p"},
            "spec": {
                "containers": [
                    {"name": "server", "image": "vllm:1"},
                    {"name": "sidecar", "image": "envoy:1"},
                ]
            },
        },
    )
    patched = core.patch_namespaced_pod(
        "p", "default", {"spec": {"containers": [{"name": "server", "image": "vllm:2"}]}}
    )
    images = {c.name: c.image for c in patched.spec.containers}
    assert images == {"server": "vllm:2", "sidecar": "envoy:1"}


def test_invalid_status_on_create_is_dropped_not_validated(co: client.CustomObjectsApi) -> None:
    body = widget()
    body["status"] = {"observedGeneration": "not a number"}
    created = co.create_namespaced_custom_object(G, V, "default", "widgets", body)
    assert "status" not in created


def test_writes_to_cluster_wide_collection_of_namespaced_resource(sim: KubeSim) -> None:
    resp = requests.post(f"{sim.url}/apis/{G}/{V}/widgets", json=widget(), timeout=5)
    assert resp.status_code == 405
    resp = requests.delete(f"{sim.url}/api/v1/configmaps", timeout=5)
    assert resp.status_code == 405
