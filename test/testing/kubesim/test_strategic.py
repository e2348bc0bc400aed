"""Strategic merge patch as the apiserver applies it to built-in kinds.

Cases follow the strategic-merge-patch design document of sig-api-machinery and the patches
``kubectl apply`` sends (three-way patches with ``$setElementOrder`` and ``$retainKeys``).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infercost.testing.kubesim.strategic import (
    StrategicMergePatchError,
    patch_meta_for,
    strategic_merge_patch,
)


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "vllm-0", "namespace": "default", "labels": {"app": "vllm"}},
        "spec": spec,
    }


def deployment(**pod_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "infercost", "namespace": "infercost-system"},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "template": {"metadata": {"labels": {"app": "infercost"}}, "spec": pod_spec},
        },
    }


def smp(original: dict[str, Any], patch: dict[str, Any], group: str = "", kind: str = "Pod"):
    before = copy.deepcopy(original)
    result = strategic_merge_patch(original, patch, group=group, kind=kind)
    assert original == before, "the original must not be modified"
    return result


def test_containers_merge_by_name_and_keep_unpatched_fields() -> None:
    live = pod(
        containers=[
            {"name": "vllm", "image": "vllm:0.10", "args": ["--port", "8000"]},
            {"name": "proxy", "image": "envoy:1"},
        ]
    )
    result = smp(live, {"spec": {"containers": [{"name": "vllm", "image": "vllm:0.11"}]}})
    containers = result["spec"]["containers"]
    assert containers[0] == {"name": "vllm", "image": "vllm:0.11", "args": ["--port", "8000"]}
    assert containers[1] == {"name": "proxy", "image": "envoy:1"}


def test_new_list_element_without_element_order_goes_first() -> None:
    # apimachinery's mergeSortedSlice puts patch items the live list does not know before the
    # server-only ones; kubectl apply always sends $setElementOrder to pin the order.
    live = pod(containers=[{"name": "vllm", "image": "vllm"}])
    result = smp(live, {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}})
    assert [c["name"] for c in result["spec"]["containers"]] == ["sidecar", "vllm"]


def test_env_ports_and_volume_mounts_use_their_merge_keys() -> None:
    live = pod(
        containers=[
            {
                "name": "vllm",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 8000, "name": "http"}],
                "volumeMounts": [{"mountPath": "/models", "name": "models"}],
            }
        ]
    )
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "vllm",
                    "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                    "ports": [{"containerPort": 9400, "name": "metrics"}],
                    "volumeMounts": [{"mountPath": "/models", "readOnly": True}],
                }
            ]
        }
    }
    container = smp(live, patch)["spec"]["containers"][0]
    assert container["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "20"},
        {"name": "C", "value": "3"},
    ]
    assert [p["containerPort"] for p in container["ports"]] == [9400, 8000]
    assert container["volumeMounts"] == [
        {"mountPath": "/models", "name": "models", "readOnly": True}
    ]


def test_lists_without_a_strategy_are_replaced() -> None:
    live = pod(
        containers=[{"name": "vllm", "args": ["a", "b"]}],
        tolerations=[{"key": "gpu", "operator": "Exists"}],
    )
    patch = {
        "spec": {
            "containers": [{"name": "vllm", "args": ["c"]}],
            "tolerations": [{"key": "spot", "operator": "Exists"}],
        }
    }
    result = smp(live, patch)
    assert result["spec"]["containers"][0]["args"] == ["c"]
    assert result["spec"]["tolerations"] == [{"key": "spot", "operator": "Exists"}]


def test_null_deletes_a_field_and_unmatched_nulls_are_ignored() -> None:
    live = pod(nodeSelector={"gpu": "h100", "zone": "a"})
    result = smp(live, {"metadata": {"labels": None}, "spec": {"nodeSelector": {"zone": None},
                                                              "hostname": None}})  # fmt: skip
    assert "labels" not in result["metadata"]
    assert result["spec"]["nodeSelector"] == {"gpu": "h100"}
    assert "hostname" not in result["spec"]


def test_patch_delete_removes_a_list_element_by_merge_key() -> None:
    live = pod(containers=[{"name": "vllm"}, {"name": "proxy"}, {"name": "exporter"}])
    patch = {"spec": {"containers": [{"name": "proxy", "$patch": "delete"}]}}
    assert [c["name"] for c in smp(live, patch)["spec"]["containers"]] == ["vllm", "exporter"]


def test_patch_delete_element_without_merge_key_is_an_error() -> None:
    live = pod(containers=[{"name": "vllm"}])
    with pytest.raises(StrategicMergePatchError, match="merge key 'name'"):
        smp(live, {"spec": {"containers": [{"$patch": "delete", "image": "x"}]}})


def test_patch_replace_element_replaces_the_whole_list() -> None:
    live = pod(containers=[{"name": "vllm", "image": "a"}, {"name": "proxy"}])
    patch = {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "b"}]}}
    assert smp(live, patch)["spec"]["containers"] == [{"name": "only", "image": "b"}]


def test_patch_replace_on_a_map_replaces_it() -> None:
    live = pod(nodeSelector={"gpu": "h100", "zone": "a"})
    patch = {"spec": {"nodeSelector": {"$patch": "replace", "pool": "spot"}}}
    assert smp(live, patch)["spec"]["nodeSelector"] == {"pool": "spot"}


def test_patch_delete_on_a_map_empties_it() -> None:
    live = pod(containers=[{"name": "vllm", "resources": {"limits": {"cpu": "1"}}}])
    patch = {"spec": {"containers": [{"name": "vllm", "resources": {"$patch": "delete"}}]}}
    assert smp(live, patch)["spec"]["containers"][0]["resources"] == {}


def test_unknown_directive_is_rejected() -> None:
    with pytest.raises(StrategicMergePatchError, match="Unknown patch type"):
        smp(pod(), {"spec": {"nodeSelector": {"$patch": "explode"}}})


def test_set_element_order_orders_the_merged_list() -> None:
    live = pod(containers=[{"name": "a"}, {"name": "b"}, {"name": "c"}])
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}],
            "containers": [{"name": "a", "image": "new"}],
        }
    }
    result = smp(live, patch)["spec"]["containers"]
    assert [c["name"] for c in result] == ["c", "a", "b"]
    assert result[1]["image"] == "new"


def test_set_element_order_keeps_server_only_items_in_live_order() -> None:
    # "x" exists only on the server (added by someone else); kubectl does not know it.
    live = pod(containers=[{"name": "a"}, {"name": "x"}, {"name": "b"}])
    patch = {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}
    names = [c["name"] for c in smp(live, patch)["spec"]["containers"]]
    assert sorted(names) == ["a", "b", "x"]
    assert names.index("b") < names.index("a")


def test_patch_order_is_kept_for_new_elements_without_set_element_order() -> None:
    live = pod(containers=[{"name": "a"}, {"name": "b"}])
    patch = {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "c"}]}}
    assert [c["name"] for c in smp(live, patch)["spec"]["containers"]] == ["a", "c", "b"]
    patch = {"spec": {"containers": [{"name": "d"}, {"name": "c"}]}}
    assert [c["name"] for c in smp(live, patch)["spec"]["containers"]] == ["d", "c", "a", "b"]


def test_finalizers_merge_as_a_set_and_delete_from_primitive_list() -> None:
    live = pod()
    live["metadata"]["finalizers"] = ["a.example/x", "b.example/y"]
    result = smp(live, {"metadata": {"finalizers": ["c.example/z", "a.example/x"]}})
    assert sorted(result["metadata"]["finalizers"]) == ["a.example/x", "b.example/y", "c.example/z"]
    result = smp(live, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example/x"]}})
    assert result["metadata"]["finalizers"] == ["b.example/y"]


def test_owner_references_merge_by_uid() -> None:
    live = pod()
    live["metadata"]["ownerReferences"] = [{"uid": "1", "kind": "ReplicaSet", "name": "rs"}]
    patch = {"metadata": {"ownerReferences": [{"uid": "2", "kind": "TokenBudget", "name": "b"}]}}
    refs = smp(live, patch)["metadata"]["ownerReferences"]
    assert sorted(r["uid"] for r in refs) == ["1", "2"]


def test_retain_keys_clears_fields_not_listed() -> None:
    live = deployment(containers=[{"name": "op"}])
    patch = {
        "spec": {
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
        }
    }
    result = smp(live, patch, group="apps", kind="Deployment")
    assert result["spec"]["strategy"] == {"type": "Recreate"}
    assert result["spec"]["replicas"] == 1


def test_retain_keys_allows_unlisted_deletions() -> None:
    live = deployment()
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate",
                                   "rollingUpdate": None}}}  # fmt: skip
    result = smp(live, patch, group="apps", kind="Deployment")
    assert result["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_must_list_every_patched_key() -> None:
    live = deployment()
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}}
    with pytest.raises(StrategicMergePatchError, match="rollingUpdate"):
        smp(live, patch, group="apps", kind="Deployment")


def test_volumes_with_retain_keys_switch_volume_source() -> None:
    live = pod(volumes=[{"name": "models", "emptyDir": {}}, {"name": "cache", "emptyDir": {}}])
    patch = {
        "spec": {
            "volumes": [
                {
                    "name": "models",
                    "$retainKeys": ["name", "persistentVolumeClaim"],
                    "persistentVolumeClaim": {"claimName": "weights"},
                }
            ]
        }
    }
    volumes = smp(live, patch)["spec"]["volumes"]
    assert volumes[0] == {"name": "models", "persistentVolumeClaim": {"claimName": "weights"}}
    assert volumes[1] == {"name": "cache", "emptyDir": {}}


def test_deployment_pod_template_containers_merge() -> None:
    live = deployment(
        containers=[
            {"name": "operator", "image": "infercost:0.1", "env": [{"name": "A", "value": "1"}]}
        ]
    )
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "operator", "image": "infercost:0.2",
                         "env": [{"name": "B", "value": "2"}]}
                    ]
                }
            }
        }
    }  # fmt: skip
    result = smp(live, patch, group="apps", kind="Deployment")
    container = result["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "infercost:0.2"
    assert sorted(e["name"] for e in container["env"]) == ["A", "B"]


def test_service_ports_merge_by_port() -> None:
    live = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "metrics"},
        "spec": {"ports": [{"port": 8080, "name": "metrics", "targetPort": 8080}]},
    }
    patch = {"spec": {"ports": [{"port": 8080, "targetPort": "metrics"}, {"port": 8081}]}}
    ports = smp(live, patch, kind="Service")["spec"]["ports"]
    assert ports == [{"port": 8080, "name": "metrics", "targetPort": "metrics"}, {"port": 8081}]


def test_node_and_pod_status_conditions_merge_by_type() -> None:
    live = {
        "kind": "Node",
        "metadata": {"name": "gpu-1"},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "DiskPressure", "status": "False"},
            ]
        },
    }
    patch = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    conditions = smp(live, patch, kind="Node")["status"]["conditions"]
    assert conditions == [
        {"type": "Ready", "status": "False"},
        {"type": "DiskPressure", "status": "False"},
    ]


def test_config_map_data_merges_per_key() -> None:
    live = {"kind": "ConfigMap", "metadata": {"name": "pricing"}, "data": {"a": "1", "b": "2"}}
    result = smp(live, {"data": {"b": None, "c": "3"}}, kind="ConfigMap")
    assert result["data"] == {"a": "1", "c": "3"}


def test_unknown_kinds_behave_like_json_merge_patch_with_object_meta() -> None:
    live = {
        "kind": "Widget",
        "metadata": {"name": "w", "finalizers": ["a"]},
        "spec": {"items": [1, 2], "nested": {"x": 1, "y": 2}},
    }
    patch = {"metadata": {"finalizers": ["b"]}, "spec": {"items": [3], "nested": {"y": None}}}
    result = smp(live, patch, group="example.com", kind="Widget")
    assert result["spec"] == {"items": [3], "nested": {"x": 1}}
    assert sorted(result["metadata"]["finalizers"]) == ["a", "b"]


def test_new_fields_are_taken_from_the_patch_without_directives_or_nulls() -> None:
    live = pod()
    patch = {
        "spec": {
            "securityContext": {"runAsNonRoot": True, "fsGroup": None},
            "containers": [{"name": "vllm", "env": [{"name": "X", "value": "1"}]}],
        }
    }
    result = smp(live, patch)
    assert result["spec"]["securityContext"] == {"runAsNonRoot": True}
    assert result["spec"]["containers"] == [{"name": "vllm", "env": [{"name": "X", "value": "1"}]}]


def test_type_changes_replace_the_value() -> None:
    live = pod(nodeSelector={"a": "b"})
    assert smp(live, {"spec": {"nodeSelector": "oops"}})["spec"]["nodeSelector"] == "oops"


def test_patch_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(StrategicMergePatchError, match="JSON object"):
        strategic_merge_patch(pod(), [1, 2], group="", kind="Pod")  # type: ignore[arg-type]


def test_merged_list_of_objects_needs_the_merge_key() -> None:
    with pytest.raises(StrategicMergePatchError, match="merge key 'name'"):
        smp(pod(containers=[]), {"spec": {"containers": [{"image": "x"}]}})


def test_patch_meta_lookup() -> None:
    assert patch_meta_for("", "Pod").field("spec").field("containers").merge_key == "name"
    assert patch_meta_for("apps", "Deployment").field("spec").field("strategy").strategy == (
        "retainKeys"
    )
    assert patch_meta_for("example.com", "Widget").field("spec").fields == {}


def test_kubectl_style_three_way_patch_round_trip() -> None:
    """A patch in the shape kubectl apply sends after a container and an env var were removed
    from the manifest and an image changed."""
    live = deployment(
        containers=[
            {"name": "operator", "image": "infercost:0.1",
             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "debug", "image": "busybox"},
        ]
    )  # fmt: skip
    live["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"}},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "operator"}],
                    "containers": [
                        {
                            "$setElementOrder/env": [{"name": "A"}],
                            "name": "operator",
                            "image": "infercost:0.2",
                            "env": [{"$patch": "delete", "name": "B"}],
                        },
                        {"$patch": "delete", "name": "debug"},
                    ],
                }
            }
        },
    }
    result = smp(live, patch, group="apps", kind="Deployment")
    containers = result["spec"]["template"]["spec"]["containers"]
    assert containers == [
        {"name": "operator", "image": "infercost:0.2", "env": [{"name": "A", "value": "1"}]}
    ]
    assert result["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"
    ] == ("{...}")


# --- property: without merge metadata or directives, a strategic merge patch is RFC 7386 -------

_keys = st.sampled_from(["a", "b", "c", "spec", "data"])
_scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3)
# Lists hold no nulls: a list that is new to the object loses nulls inside its elements on a
# real server (typed decoding), which RFC 7386 does not do.
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(st.booleans() | st.integers(-5, 5), max_size=3)
        | st.dictionaries(_keys, inner, max_size=3)
    ),
    max_leaves=12,
)


def _rfc7386(target: Any, patch: Any) -> Any:
    """MergePatch(Target, Patch) exactly as written in RFC 7386 section 2."""
    if isinstance(patch, dict):
        result = dict(target) if isinstance(target, dict) else {}
        for name, value in patch.items():
            if value is None:
                result.pop(name, None)
            else:
                result[name] = _rfc7386(result.get(name), value)
        return result
    return patch


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    original=st.dictionaries(_keys, _json, max_size=4),
    patch=st.dictionaries(_keys, _json, max_size=4),
)
def test_unknown_kinds_patch_exactly_like_rfc_7386(original: dict, patch: dict) -> None:
    result = strategic_merge_patch(original, patch, group="example.com", kind="Widget")
    assert result == _rfc7386(original, patch)
