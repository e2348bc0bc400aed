"""Scale sanity: many objects, big lists, still answered correctly (timings belong in bench/)."""

from __future__ import annotations

import json

import pytest
import requests
from kubernetes import client

from infercost.testing.kubesim import KubeSim


def fill_pods(sim: KubeSim, count: int, namespace: str = "default") -> None:
    """Create pods in-process (the HTTP path is covered elsewhere; this keeps setup fast)."""
    pods = sim.resource("", "v1", "pods")
    for i in range(count):
        sim.api.install(
            pods,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"pod-{i:05d}",
                    "namespace": namespace,
                    "labels": {"i": str(i % 10)},
                },
                "spec": {
                    "nodeName": f"node-{i % 50}",
                    "containers": [{"name": "c", "image": "vllm"}],
                },
            },
        )


@pytest.mark.slow
def test_list_of_ten_thousand_pods() -> None:
    with KubeSim(watch_history=1024) as sim:
        fill_pods(sim, 10_000)
        fill_pods(sim, 10_000, namespace="kube-system")
        resp = requests.get(f"{sim.url}/api/v1/namespaces/default/pods", timeout=60)
        assert resp.status_code == 200
        items = resp.json()["items"]
        assert len(items) == 10_000
        assert items[0]["metadata"]["name"] == "pod-00000"
        api_client = sim.api_client()
        try:
            listed = client.CoreV1Api(api_client).list_namespaced_pod(
                "default", _preload_content=False
            )
            assert len(json.loads(listed.read())["items"]) == 10_000
        finally:
            api_client.close()
        selected = requests.get(
            f"{sim.url}/api/v1/pods",
            params={"labelSelector": "i=3", "fieldSelector": "spec.nodeName=node-3"},
            timeout=60,
        ).json()["items"]
        # i % 10 == 3 and i % 50 == 3 select i = 3, 53, 103, ...: 200 per namespace.
        assert len(selected) == 400
        assert {p["metadata"]["namespace"] for p in selected} == {"default", "kube-system"}
