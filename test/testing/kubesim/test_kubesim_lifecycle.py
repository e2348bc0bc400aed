"""Object lifecycle: finalizers, deletionTimestamp, ownerReference garbage collection, CRDs."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infercost.testing.kubesim import KubeSim

G, V = "example.kubesim.io", "v1"


def owner_ref(obj: Any, block: bool = False) -> dict[str, Any]:
    meta = obj.metadata
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": meta.name,
        "uid": meta.uid,
        "blockOwnerDeletion": block,
    }


def cm(
    name: str, owners: list[dict[str, Any]] | None = None, finalizers: list[str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if owners:
        meta["ownerReferences"] = owners
    if finalizers:
        meta["finalizers"] = finalizers
    return {"metadata": meta}


def names(core: client.CoreV1Api, ns: str = "default") -> list[str]:
    return [c.metadata.name for c in core.list_namespaced_config_map(ns).items]


def test_finalizers_keep_object_until_cleared(sim: KubeSim, co: client.CustomObjectsApi) -> None:
    body = {
        "apiVersion": f"{G}/{V}",
        "kind": "Widget",
        "metadata": {"name": "w", "finalizers": ["finops.infercost.ai/cleanup"]},
        "spec": {"size": 1},
    }
    co.create_namespaced_custom_object(G, V, "default", "widgets", body)
    deleted = co.delete_namespaced_custom_object(G, V, "default", "widgets", "w")
    assert deleted["metadata"]["deletionTimestamp"].endswith("Z")
    assert deleted["metadata"]["deletionGracePeriodSeconds"] == 0
    assert deleted["metadata"]["generation"] == 2
    still = co.get_namespaced_custom_object(G, V, "default", "widgets", "w")
    assert still["metadata"]["finalizers"] == ["finops.infercost.ai/cleanup"]
    # Deleting again changes nothing.
    again = co.delete_namespaced_custom_object(G, V, "default", "widgets", "w")
    assert again["metadata"]["resourceVersion"] == still["metadata"]["resourceVersion"]
    # New finalizers cannot be added while deleting.
    with pytest.raises(ApiException) as exc:
        co.patch_namespaced_custom_object(
            G, V, "default", "widgets", "w", {"metadata": {"finalizers": ["a", "b"]}}
        )
    assert exc.value.status == 422
    # Removing the last finalizer deletes the object.
    co.patch_namespaced_custom_object(
        G, V, "default", "widgets", "w", {"metadata": {"finalizers": None}}
    )
    with pytest.raises(client.exceptions.NotFoundException):
        co.get_namespaced_custom_object(G, V, "default", "widgets", "w")


def test_delete_preconditions(core: client.CoreV1Api) -> None:
    made = core.create_namespaced_config_map("default", cm("a"))
    with pytest.raises(client.exceptions.ConflictException) as exc:
        core.delete_namespaced_config_map(
            "a",
            "default",
            body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="other")),
        )
    assert (
        "Precondition failed: UID in precondition: other" in json.loads(exc.value.body)["message"]
    )
    core.delete_namespaced_config_map(
        "a",
        "default",
        body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version=made.metadata.resource_version)
        ),
    )
    assert names(core) == []


def test_background_garbage_collection(core: client.CoreV1Api) -> None:
    owner = core.create_namespaced_config_map("default", cm("owner"))
    other = core.create_namespaced_config_map("default", cm("other-owner"))
    core.create_namespaced_config_map("default", cm("child", [owner_ref(owner)]))
    core.create_namespaced_config_map(
        "default",
        cm("grandchild", [owner_ref(core.read_namespaced_config_map("child", "default"))]),
    )
    core.create_namespaced_config_map("default", cm("shared", [owner_ref(owner), owner_ref(other)]))
    core.create_namespaced_config_map("default", cm("pinned", [owner_ref(owner)], ["keep"]))
    core.delete_namespaced_config_map("owner", "default")
    assert names(core) == ["other-owner", "pinned", "shared"]
    shared = core.read_namespaced_config_map("shared", "default")
    assert [r.name for r in shared.metadata.owner_references] == ["other-owner"]
    pinned = core.read_namespaced_config_map("pinned", "default")
    assert pinned.metadata.deletion_timestamp is not None


def test_cluster_scoped_owner_collects_namespaced_dependents(
    core: client.CoreV1Api, co: client.CustomObjectsApi
) -> None:
    gadget = co.create_cluster_custom_object(
        G, V, "gadgets", {"apiVersion": f"{G}/{V}", "kind": "Gadget", "metadata": {"name": "g"}}
    )
    ref = {
        "apiVersion": f"{G}/{V}",
        "kind": "Gadget",
        "name": "g",
        "uid": gadget["metadata"]["uid"],
    }
    core.create_namespaced_config_map("kube-system", cm("dep", [ref]))
    co.delete_cluster_custom_object(G, V, "gadgets", "g")
    assert names(core, "kube-system") == []


def test_foreground_deletion_waits_for_blocking_dependents(core: client.CoreV1Api) -> None:
    owner = core.create_namespaced_config_map("default", cm("owner"))
    core.create_namespaced_config_map(
        "default", cm("child", [owner_ref(owner, block=True)], ["hold"])
    )
    result = core.delete_namespaced_config_map("owner", "default", propagation_policy="Foreground")
    assert result is not None
    waiting = core.read_namespaced_config_map("owner", "default")
    assert waiting.metadata.finalizers == ["foregroundDeletion"]
    assert waiting.metadata.deletion_timestamp is not None
    child = core.read_namespaced_config_map("child", "default")
    assert child.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("child", "default", {"metadata": {"finalizers": None}})
    assert names(core) == []


def test_orphan_deletion_keeps_dependents(core: client.CoreV1Api) -> None:
    owner = core.create_namespaced_config_map("default", cm("owner"))
    core.create_namespaced_config_map("default", cm("child", [owner_ref(owner)]))
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Orphan")
    assert names(core) == ["child"]
    assert core.read_namespaced_config_map("child", "default").metadata.owner_references is None


def test_crd_lifecycle_starts_and_stops_serving(sim: KubeSim, api: Any) -> None:
    ext = client.ApiextensionsV1Api(api)
    co = client.CustomObjectsApi(api)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.demo.io"},
        "spec": {
            "group": "demo.io",
            "scope": "Namespaced",
            "names": {
                "plural": "things",
                "singular": "thing",
                "kind": "Thing",
                "shortNames": ["th"],
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    with pytest.raises(client.exceptions.NotFoundException):
        co.list_namespaced_custom_object("demo.io", "v1", "default", "things")
    created = ext.create_custom_resource_definition(crd)
    conditions = {c.type: c.status for c in created.status.conditions}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert created.status.accepted_names.kind == "Thing"
    co.create_namespaced_custom_object(
        "demo.io",
        "v1",
        "default",
        "things",
        {"apiVersion": "demo.io/v1", "kind": "Thing", "metadata": {"name": "t"}, "anything": 1},
    )
    groups = [g.name for g in client.ApisApi(api).get_api_versions().groups]
    assert "demo.io" in groups
    ext.delete_custom_resource_definition("things.demo.io")
    with pytest.raises(client.exceptions.NotFoundException):
        co.list_namespaced_custom_object("demo.io", "v1", "default", "things")
    assert "demo.io" not in [g.name for g in client.ApisApi(api).get_api_versions().groups]
    # Recreating the CRD does not resurrect the old objects.
    ext.create_custom_resource_definition(crd)
    assert co.list_namespaced_custom_object("demo.io", "v1", "default", "things")["items"] == []


def test_apply_crds_after_start(sim: KubeSim, tmp_path: Any) -> None:
    crd = tmp_path / "crd.yaml"
    crd.write_text(
        "apiVersion: apiextensions.k8s.io/v1\n"
        "kind: CustomResourceDefinition\n"
        "metadata: {name: late.demo.io}\n"
        "spec:\n"
        "  group: demo.io\n"
        "  scope: Cluster\n"
        "  names: {plural: late, kind: Late}\n"
        "  versions: [{name: v1, served: true, storage: true,"
        " schema: {openAPIV3Schema: {type: object}}}]\n"
    )
    assert sim.apply_crds(crd) == ["late.demo.io"]
    resp = requests.get(f"{sim.url}/apis/demo.io/v1/late", timeout=5)
    assert resp.status_code == 200 and resp.json()["kind"] == "LateList"
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: CustomResourceDefinition\nmetadata: {name: x}\nspec: {}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml"):
        sim.apply_crds(bad)


def test_namespace_deletion_does_not_cascade(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "team-a"}})
    core.create_namespaced_config_map("team-a", cm("x"))
    core.delete_namespace("team-a")
    with pytest.raises(client.exceptions.NotFoundException):
        core.create_namespaced_config_map("team-a", cm("y"))


def test_dependents_in_other_namespaces_are_not_collected(core: client.CoreV1Api) -> None:
    owner = core.create_namespaced_config_map("default", cm("owner"))
    core.create_namespaced_config_map("kube-system", cm("elsewhere", [owner_ref(owner)]))
    core.delete_namespaced_config_map("owner", "default")
    assert names(core, "kube-system") == ["elsewhere"]


def test_emptying_finalizers_of_deleting_object_emits_one_deleted_event(
    sim: KubeSim, core: client.CoreV1Api
) -> None:
    core.create_namespaced_config_map("default", cm("a", finalizers=["x"]))
    core.delete_namespaced_config_map("a", "default")
    start = str(sim.resource_version)
    core.patch_namespaced_config_map("a", "default", {"metadata": {"finalizers": None}})
    with requests.get(
        f"{sim.url}/api/v1/namespaces/default/configmaps",
        params={"watch": "true", "resourceVersion": start, "timeoutSeconds": "1"},
        stream=True,
        timeout=10,
    ) as resp:
        events = [json.loads(line) for line in resp.iter_lines() if line]
    assert [e["type"] for e in events] == ["DELETED"]
    assert events[0]["object"]["metadata"]["deletionTimestamp"]
