"""List semantics: ordering, resourceVersion/resourceVersionMatch, pagination, selectors."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infercost.testing.kubesim import KubeSim


def pod(name: str, labels: dict[str, str] | None = None, node: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def names(items: list[Any]) -> list[str]:
    return [i.metadata.name for i in items]


def test_list_is_sorted_with_kind_and_current_resource_version(
    sim: KubeSim, core: client.CoreV1Api
) -> None:
    for name in ("c", "a", "b"):
        core.create_namespaced_pod("default", pod(name))
    core.create_namespaced_pod("kube-system", pod("a"))
    listed = core.list_namespaced_pod("default")
    assert names(listed.items) == ["a", "b", "c"]
    assert listed.metadata.resource_version == str(sim.resource_version)
    everywhere = core.list_pod_for_all_namespaces()
    assert [(p.metadata.namespace, p.metadata.name) for p in everywhere.items] == [
        ("default", "a"),
        ("default", "b"),
        ("default", "c"),
        ("kube-system", "a"),
    ]
    raw = requests.get(f"{sim.url}/api/v1/pods", timeout=5).json()
    assert raw["kind"] == "PodList" and raw["apiVersion"] == "v1"


def test_pagination_is_a_consistent_snapshot(core: client.CoreV1Api) -> None:
    for i in range(7):
        core.create_namespaced_pod("default", pod(f"p{i}"))
    page = core.list_namespaced_pod("default", limit=3)
    assert names(page.items) == ["p0", "p1", "p2"]
    assert page.metadata.remaining_item_count == 4
    token = page.metadata._continue
    # Changes after the first page do not show up in later pages.
    core.delete_namespaced_pod("p4", "default")
    core.create_namespaced_pod("default", pod("p9"))
    seen = names(page.items)
    while token:
        page = core.list_namespaced_pod("default", limit=3, _continue=token)
        seen += names(page.items)
        token = page.metadata._continue
    assert seen == [f"p{i}" for i in range(7)]
    assert names(core.list_namespaced_pod("default").items) == [
        "p0",
        "p1",
        "p2",
        "p3",
        "p5",
        "p6",
        "p9",
    ]


def test_expired_continue_token_is_410(sim: KubeSim, core: client.CoreV1Api) -> None:
    for i in range(4):
        core.create_namespaced_pod("default", pod(f"p{i}"))
    token = core.list_namespaced_pod("default", limit=2).metadata._continue
    sim.faults.expire_resource_versions()
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod("default", limit=2, _continue=token)
    assert exc.value.status == 410
    assert json.loads(exc.value.body)["reason"] == "Expired"
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod("default", _continue="garbage")
    assert exc.value.status == 400


def test_resource_version_match_exact_and_not_older_than(
    sim: KubeSim, core: client.CoreV1Api
) -> None:
    core.create_namespaced_pod("default", pod("a"))
    rv = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", pod("b"))
    exact = core.list_namespaced_pod("default", resource_version=rv, resource_version_match="Exact")
    assert names(exact.items) == ["a"] and exact.metadata.resource_version == rv
    newer = core.list_namespaced_pod(
        "default", resource_version=rv, resource_version_match="NotOlderThan"
    )
    assert names(newer.items) == ["a", "b"]
    assert names(core.list_namespaced_pod("default", resource_version="0").items) == ["a", "b"]
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod("default", resource_version=str(sim.resource_version + 100))
    assert exc.value.status == 504
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod("default", resource_version_match="Exact")
    assert exc.value.status == 400
    sim.faults.expire_resource_versions()
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod("default", resource_version=rv, resource_version_match="Exact")
    assert exc.value.status == 410
    assert json.loads(exc.value.body)["message"] == (
        "The resourceVersion for the provided list is too old."
    )


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app==web", ["a", "b"]),
        ("app!=web", ["c", "d"]),
        ("app in (web,db)", ["a", "b", "c"]),
        ("app notin (web)", ["c", "d"]),
        ("tier", ["a", "c"]),
        ("!tier", ["b", "d"]),
        ("app=web,tier=front", ["a"]),
        ("app in (web, db),!tier", ["b"]),
        ("", ["a", "b", "c", "d"]),
    ],
)
def test_label_selectors(core: client.CoreV1Api, selector: str, expected: list[str]) -> None:
    core.create_namespaced_pod("default", pod("a", {"app": "web", "tier": "front"}))
    core.create_namespaced_pod("default", pod("b", {"app": "web"}))
    core.create_namespaced_pod("default", pod("c", {"app": "db", "tier": "back"}))
    core.create_namespaced_pod("default", pod("d"))
    assert names(core.list_namespaced_pod("default", label_selector=selector).items) == expected


def test_bad_label_selector_is_400(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod("default", label_selector="app in (web")
    assert exc.value.status == 400
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod("default", label_selector="a=b c")
    assert exc.value.status == 400


def test_pod_field_selectors(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod("a", node="n1"))
    core.create_namespaced_pod("default", pod("b", node="n2"))
    core.create_namespaced_pod("kube-system", pod("c", node="n1"))
    core.patch_namespaced_pod_status("b", "default", {"status": {"phase": "Running"}})
    by_node = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1")
    assert names(by_node.items) == ["a", "c"]
    running = core.list_pod_for_all_namespaces(field_selector="status.phase=Running")
    assert names(running.items) == ["b"]
    both = core.list_pod_for_all_namespaces(
        field_selector="metadata.namespace=default,status.phase!=Running"
    )
    assert names(both.items) == ["a"]
    assert names(core.list_namespaced_pod("default", field_selector="metadata.name=b").items) == [
        "b"
    ]
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod("default", field_selector="spec.foo=x")
    assert exc.value.status == 400
    assert json.loads(exc.value.body)["message"] == "field label not supported: spec.foo"


def test_event_field_selectors_and_events_v1(api: Any, core: client.CoreV1Api) -> None:
    events = client.EventsV1Api(api)
    events.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "e1"},
            "eventTime": "2026-11-27T08:00:00.000000Z",
            "reason": "Reconciled",
            "type": "Normal",
            "note": "cost computed",
            "action": "Reconcile",
            "reportingController": "infercost.ai/controller",
            "reportingInstance": "infercost-0",
            "regarding": {
                "kind": "CostProfile",
                "name": "gpu",
                "namespace": "default",
                "uid": "u1",
            },
        },
    )
    core.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "e2"},
            "eventTime": "2026-11-27T08:01:00.000000Z",
            "reportingComponent": "infercost.ai/controller",
            "reportingInstance": "infercost-0",
            "action": "Scrape",
            "reason": "Failed",
            "type": "Warning",
            "message": "no power data",
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        },
    )
    core_view = core.list_namespaced_event(
        "default", field_selector="involvedObject.kind=CostProfile,involvedObject.name=gpu"
    )
    assert names(core_view.items) == ["e1"]
    assert core_view.items[0].message == "cost computed"
    assert core_view.items[0].involved_object.uid == "u1"
    assert names(core.list_namespaced_event("default", field_selector="type=Warning").items) == [
        "e2"
    ]
    assert names(core.list_namespaced_event("default", field_selector="reason=Failed").items) == [
        "e2"
    ]
    v1_view = events.list_namespaced_event("default", field_selector="regarding.name=p")
    assert names(v1_view.items) == ["e2"]
    assert v1_view.items[0].note == "no power data"
    assert v1_view.items[0].regarding.kind == "Pod"


def test_custom_resource_field_selectors(co: client.CustomObjectsApi) -> None:
    for name in ("a", "b"):
        co.create_namespaced_custom_object(
            "example.kubesim.io",
            "v1",
            "default",
            "widgets",
            {
                "apiVersion": "example.kubesim.io/v1",
                "kind": "Widget",
                "metadata": {"name": name},
                "spec": {"size": 1},
            },
        )
    got = co.list_namespaced_custom_object(
        "example.kubesim.io", "v1", "default", "widgets", field_selector="metadata.name=b"
    )
    assert [i["metadata"]["name"] for i in got["items"]] == ["b"]
    with pytest.raises(ApiException) as exc:
        co.list_namespaced_custom_object(
            "example.kubesim.io", "v1", "default", "widgets", field_selector="spec.size=1"
        )
    assert exc.value.status == 400
    assert json.loads(exc.value.body)["message"] == (
        '"spec.size" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )


def test_delete_collection_with_selector(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "a", "labels": {"x": "1"}}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "b", "labels": {"x": "2"}}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "c", "labels": {"x": "1"}}})
    deleted = core.delete_collection_namespaced_config_map("default", label_selector="x=1")
    assert deleted.status == "Success" or deleted is not None
    assert names(core.list_namespaced_config_map("default").items) == ["b"]
