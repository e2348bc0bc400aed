"""The Pod/Node transforms keep what the operator reads, and a cached pod costs <= 2 KB."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import infercost
from infercost.collect.discovery import (
    discover_exporters,
    gpu_limit,
    inference_target,
    owner_name,
)
from infercost.kube.cache import (
    NAMESPACE_INDEX,
    NODE_INDEX,
    Store,
    index_by_label,
    index_by_namespace,
    index_pod_node,
)
from infercost.kube.transforms import (
    GPU_RESOURCE as GPU,
)
from infercost.kube.transforms import (
    ContainerInfo,
    OwnerRef,
    object_key,
    parse_time,
    transform_node,
    transform_pod,
)
from infercost.testing.simservers.objects import make_dcgm_exporter_pod, make_pod

DATA = Path(__file__).resolve().parents[1] / "data" / "kube"


def pod_json() -> dict[str, Any]:
    return json.loads((DATA / "pod-vllm.json").read_text())


def test_pod_transform_keeps_what_the_operator_reads() -> None:
    pod = transform_pod(pod_json())
    assert pod.key == "team-a/vllm-llama-3-70b-7d9f8c6b5-x2k9p"
    assert pod.uid == "6f1c2b7e-1d2a-4c1e-9a1b-3c4d5e6f7a8b"
    assert pod.node_name == "gpu-node-017"
    assert pod.pod_ip == "10.1.4.17" and pod.phase == "Running" and pod.ready
    assert pod.start_time == parse_time("2026-11-27T08:00:05Z")
    assert pod.creation_timestamp == parse_time("2026-11-27T08:00:00Z")
    assert pod.deletion_timestamp is None
    assert pod.labels["infercost.ai/backend"] == "vllm" and len(pod.labels) == 6
    assert pod.annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8000",
        "prometheus.io/path": "/metrics",
        "infercost.ai/model": "meta-llama/Llama-3.3-70B-Instruct",
    }
    assert pod.owner_references == (OwnerRef("ReplicaSet", "vllm-llama-3-70b-7d9f8c6b5", True),)
    assert pod.containers == (
        ContainerInfo("vllm", 2, (("http", 8000), ("metrics", 8000)), 2),
        ContainerInfo("log-shipper", 0, (), 0),
    )
    assert pod.gpu_limit == 2 and pod.restart_count == 2


def test_pod_transform_tolerates_sparse_pods() -> None:
    pod = transform_pod({"metadata": {"name": "p", "namespace": "n"}})
    assert pod.key == "n/p" and pod.node_name == "" and pod.containers == ()
    assert not pod.ready and pod.start_time is None and pod.phase == ""
    pending = pod_json()
    del pending["status"]["podIP"]
    pending["status"]["phase"] = "Pending"
    pending["status"]["conditions"][2]["status"] = "False"
    pending["metadata"]["deletionTimestamp"] = "2026-11-27T09:00:00.5Z"
    info = transform_pod(pending)
    assert info.pod_ip == "" and not info.ready and info.phase == "Pending"
    assert info.deletion_timestamp == parse_time("2026-11-27T09:00:00.5Z")


def test_node_transform() -> None:
    node = transform_node(json.loads((DATA / "node-gpu.json").read_text()))
    assert node.key == "gpu-node-017" and node.namespace == ""
    assert node.gpu_capacity == 8
    assert node.boot_id == "0f4e2d6c-8b1a-4c3e-9d7f-1a2b3c4d5e6f"
    assert node.labels["infercost.ai/pool"] == "h100"
    assert transform_node({"metadata": {"name": "cpu"}}).gpu_capacity is None
    zero = transform_node({"metadata": {"name": "z"}, "status": {"capacity": {GPU: "0"}}})
    assert zero.gpu_capacity == 0


def test_collect_reads_the_cached_form() -> None:
    """Discovery reads PodInfo as it is: targets, holders' limits, owners and exporters."""
    raw = pod_json()
    raw["metadata"]["annotations"]["infercost.ai/metrics-port"] = "metrics"
    cached = transform_pod(raw)
    target = inference_target(cached)
    assert target is not None and target.port == 8000 and target.container == "vllm"
    assert gpu_limit(cached) == 2
    assert owner_name(cached) == "vllm-llama-3-70b"
    exporter = make_dcgm_exporter_pod("gpu-node-017", "10.1.4.99", port_name="metrics", port=9500)
    [found] = discover_exporters([transform_pod(exporter)], namespaces=("gpu-operator",)).targets
    assert found.url == "http://10.1.4.99:9500/metrics" and found.node == "gpu-node-017"
    starting = make_pod("s", ip=None, phase="Pending", deleting=True)
    assert inference_target(transform_pod(starting)) is None


# Runs in a Python process of its own: tracemalloc counts every thread's allocations, and in a
# test process the threads of other tests (servers, informers winding down) allocate too.
MEASURE_CACHED_POD = """
import copy, gc, json, sys, tracemalloc

from infercost.kube.cache import (
    NAMESPACE_INDEX, NODE_INDEX, Store, index_by_namespace, index_pod_node,
)
from infercost.kube.transforms import transform_pod

base = json.loads(open(sys.argv[1]).read())
raws = []
for i in range(1000):
    raw = copy.deepcopy(base)
    raw["metadata"]["name"] = f"vllm-llama-3-70b-7d9f8c6b5-{i:05d}"
    raw["metadata"]["uid"] = f"6f1c2b7e-1d2a-4c1e-9a1b-{i:012d}"
    raw["metadata"]["resourceVersion"] = str(1834921 + i)
    raw["metadata"]["labels"]["app.kubernetes.io/instance"] = f"llama-{i % 40}"
    raw["spec"]["nodeName"] = f"gpu-node-{i % 200:03d}"
    raw["status"]["podIP"] = f"10.1.{i // 250}.{i % 250}"
    raws.append(json.dumps(raw))
parsed = [json.loads(r) for r in raws]
store = Store({NODE_INDEX: index_pod_node, NAMESPACE_INDEX: index_by_namespace})
gc.collect()
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
for raw in parsed:
    info = transform_pod(raw)
    store.put(info.key, info)
del info
gc.collect()
grown = tracemalloc.get_traced_memory()[0] - before
tracemalloc.stop()
print(json.dumps({"pods": len(store), "bytes": grown}))
"""


def test_cached_pod_costs_at_most_2kb() -> None:
    """tracemalloc over 1000 distinct realistic pods (names, uids, IPs, RVs differ). SPEC §9
    allows 2 KB; the replicas of a workload share their label sets, annotations, containers
    and owners, which keeps a pod of a 25-replica workload under 512 bytes (it was 1.4 KB when
    each pod had its own copies, 544 bytes with its resourceVersion and the indexes in sets;
    389 now)."""
    # The child imports the same infercost as this process.
    source = str(Path(infercost.__file__).resolve().parents[1])
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))
    )
    result = subprocess.run(
        [sys.executable, "-c", MEASURE_CACHED_POD, str(DATA / "pod-vllm.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert measured["pods"] == 1000
    per_pod = measured["bytes"] / 1000
    assert per_pod <= 512, f"a cached pod costs {per_pod:.0f} bytes (with the cache's indexes)"


def test_store_indexes_follow_updates_and_deletes() -> None:
    store = Store({NODE_INDEX: index_pod_node, "app": index_by_label("app")})
    a = transform_pod(
        {
            "metadata": {"name": "a", "namespace": "x", "labels": {"app": "vllm"}},
            "spec": {"nodeName": "n1"},
        }
    )
    b = transform_pod({"metadata": {"name": "b", "namespace": "y"}, "spec": {"nodeName": "n1"}})
    store.put(a.key, a)
    store.put(b.key, b)
    assert [p.name for p in store.by_index(NODE_INDEX, "n1")] == ["a", "b"]
    assert [p.name for p in store.by_index("app", "vllm")] == ["a"]
    moved = transform_pod({"metadata": {"name": "a", "namespace": "x"}, "spec": {"nodeName": "n2"}})
    store.put(moved.key, moved)
    assert store.index_keys(NODE_INDEX, "n1") == ["y/b"]
    assert store.index_keys(NODE_INDEX, "n2") == ["x/a"]
    assert store.by_index("app", "vllm") == []
    store.delete("y/b")
    assert store.index_values(NODE_INDEX) == ["n2"]
    store.add_indexers({NAMESPACE_INDEX: index_by_namespace})
    assert store.index_keys(NAMESPACE_INDEX, "x") == ["x/a"]
    assert object_key({"metadata": {"name": "cluster-scoped"}}) == "cluster-scoped"


def test_replicas_share_one_label_set_that_no_reader_can_change() -> None:
    """Equal label sets are one object; changing it through one pod would change every
    replica, so it refuses (and stays usable as a plain mapping)."""
    first, second = pod_json(), pod_json()
    second["metadata"]["name"] = "vllm-llama-3-70b-7d9f8c6b5-zz9q1"
    a, b = transform_pod(first), transform_pod(second)
    assert a.labels is b.labels and a.annotations is b.annotations
    with pytest.raises(TypeError, match="cannot be changed"):
        a.labels["app"] = "other"  # type: ignore[index]
    with pytest.raises(TypeError):
        a.labels.update({"app": "other"})  # type: ignore[attr-defined]
    assert dict(b.labels) == first["metadata"]["labels"]
    assert copy.deepcopy(a.labels) == a.labels
