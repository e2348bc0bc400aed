"""CRUD, discovery, list and watch basics through the real kubernetes client over HTTP."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from infercost.testing.kubesim import KubeSim

G, V = "example.kubesim.io", "v1"


def widget(name: str, **spec: object) -> dict[str, object]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": 1, **spec},
    }


def pod(name: str, labels: dict[str, str] | None = None, node: str = "") -> dict[str, object]:
    spec: dict[str, object] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def test_fixture_serves_defaults(kubesim: KubeSim) -> None:
    with KubeSim() as other:
        assert other.url.startswith("http://127.0.0.1:")
        assert other.url != kubesim.url
    names = [n.metadata.name for n in client.CoreV1Api(kubesim.api_client()).list_namespace().items]
    assert {"default", "kube-system", "infercost-system"} <= set(names)
    crds = client.ApiextensionsV1Api(kubesim.api_client()).list_custom_resource_definition()
    assert "prometheusrules.monitoring.coreos.com" in [c.metadata.name for c in crds.items]


def test_discovery_documents(api: object, sim: KubeSim) -> None:
    version = client.VersionApi(api).get_code()
    assert version.major == "1" and version.git_version.startswith("v1.")
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    assert {"apiextensions.k8s.io", "coordination.k8s.io", "events.k8s.io", G} <= set(groups)
    # Preferred version of a group is the GA one.
    assert groups[G].preferred_version.version == "v1"
    core = client.CoreV1Api(api).get_api_resources()
    by_name = {r.name: r for r in core.resources}
    assert by_name["pods"].namespaced and by_name["pods"].kind == "Pod"
    assert by_name["pods"].short_names == ["po"]
    assert "watch" in by_name["pods"].verbs
    assert by_name["pods/status"].verbs == ["get", "patch", "update"]
    assert not by_name["nodes"].namespaced
    resources = client.CustomObjectsApi(api).get_api_resources(G, V)
    wd = {r.name: r for r in resources.resources}
    assert wd["widgets"].short_names == ["wd"]
    assert wd["widgets"].categories == ["all"]
    assert "widgets/status" in wd
    assert "gadgets/status" not in wd


def test_core_crud_and_errors(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cm"}, "data": {"a": "1"}}
    )
    meta = created.metadata
    assert meta.uid and meta.resource_version and meta.creation_timestamp.tzinfo is not None
    assert meta.generation is None
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    assert exc.value.status == 409
    assert json.loads(exc.value.body)["reason"] == "AlreadyExists"
    assert json.loads(exc.value.body)["message"] == 'configmaps "cm" already exists'
    got = core.read_namespaced_config_map("cm", "default")
    assert got.data == {"a": "1"}
    got.data["b"] = "2"
    replaced = core.replace_namespaced_config_map("cm", "default", got)
    assert int(replaced.metadata.resource_version) > int(meta.resource_version)
    deleted = core.delete_namespaced_config_map("cm", "default")
    assert deleted is not None
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("cm", "default")
    assert exc.value.status == 404
    status = json.loads(exc.value.body)
    assert status["kind"] == "Status" and status["reason"] == "NotFound"
    assert status["message"] == 'configmaps "cm" not found'


def test_missing_namespace_is_not_found(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("nope", {"metadata": {"name": "cm"}})
    assert exc.value.status == 404
    assert json.loads(exc.value.body)["message"] == 'namespaces "nope" not found'


def test_custom_resource_crud(co: client.CustomObjectsApi) -> None:
    created = co.create_namespaced_custom_object(G, V, "default", "widgets", widget("w1"))
    assert created["metadata"]["generation"] == 1
    assert created["spec"]["replicas"] == 3  # defaulted
    got = co.get_namespaced_custom_object(G, V, "default", "widgets", "w1")
    assert got == created
    listed = co.list_namespaced_custom_object(G, V, "default", "widgets")
    assert listed["kind"] == "WidgetList" and listed["apiVersion"] == f"{G}/{V}"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["w1"]
    co.delete_namespaced_custom_object(G, V, "default", "widgets", "w1")
    assert co.list_cluster_custom_object(G, V, "widgets")["items"] == []


def test_watch_replays_from_resource_version(core: client.CoreV1Api) -> None:
    first = core.create_namespaced_pod("default", pod("a"))
    rv = first.metadata.resource_version
    core.create_namespaced_pod("default", pod("b"))
    core.delete_namespaced_pod("a", "default")
    events = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=1
        )
    ]
    assert events == [("ADDED", "b"), ("DELETED", "a")]


def test_injected_clock_sets_timestamps_and_table_ages() -> None:
    import datetime as dt

    import requests

    now = [dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.UTC)]
    with KubeSim(clock=lambda: now[0]) as sim:
        core = client.CoreV1Api(sim.api_client())
        made = core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
        assert made.metadata.creation_timestamp == now[0]
        now[0] += dt.timedelta(minutes=5)
        table = requests.get(
            f"{sim.url}/api/v1/namespaces/default/configmaps/cm",
            headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
            timeout=5,
        ).json()
        assert table["kind"] == "Table"
        assert table["rows"][0]["cells"][-1] == "5m"


def test_openapi_documents_follow_installed_crds(sim: KubeSim, tmp_path: object) -> None:
    import requests

    index = requests.get(f"{sim.url}/openapi/v3", timeout=5).json()["paths"]
    url = index[f"apis/{G}/{V}"]["serverRelativeURL"]
    doc = requests.get(f"{sim.url}{url}", timeout=5).json()
    assert doc["openapi"].startswith("3.")
    assert any(name.endswith(".Widget") for name in doc["components"]["schemas"])
    assert requests.get(f"{sim.url}/openapi/v3/apis/none.io/v1", timeout=5).status_code == 404
    assert requests.get(f"{sim.url}/openapi/v2", timeout=5).json()["swagger"] == "2.0"
    protobuf_only = {"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"}
    answer = requests.get(f"{sim.url}/openapi/v2", headers=protobuf_only, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/octet-stream"
    assert answer.content.startswith(b"\n\x032.0\x12")
    assert "apis/demo.io/v1" not in index
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.demo.io"},
        "spec": {
            "group": "demo.io",
            "scope": "Cluster",
            "names": {"plural": "things", "kind": "Thing"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }
    client.ApiextensionsV1Api(sim.api_client()).create_custom_resource_definition(crd)
    updated = requests.get(f"{sim.url}/openapi/v3", timeout=5).json()["paths"]
    assert "apis/demo.io/v1" in updated


def test_every_namespace_gets_a_default_service_account(sim: KubeSim) -> None:
    import urllib.request

    core = client.CoreV1Api(sim.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team-a")))
    names = {
        (sa.metadata.namespace, sa.metadata.name)
        for sa in core.list_service_account_for_all_namespaces().items
    }
    assert {("default", "default"), ("team-a", "default")} <= names
    verbose = urllib.request.urlopen(f"{sim.url}/readyz?verbose").read().decode()
    assert verbose.rstrip().endswith("readyz check passed")
