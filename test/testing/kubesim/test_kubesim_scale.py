"""Scale sanity: many objects, big lists. Timings are printed; the benchmark issue measures."""

from __future__ import annotations

import time

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
def test_list_of_ten_thousand_pods(capsys: pytest.CaptureFixture[str]) -> None:
    with KubeSim(watch_history=1024) as sim:
        started = time.perf_counter()
        fill_pods(sim, 10_000)
        fill_pods(sim, 10_000, namespace="kube-system")
        fill_seconds = time.perf_counter() - started
        started = time.perf_counter()
        resp = requests.get(f"{sim.url}/api/v1/namespaces/default/pods", timeout=30)
        raw_seconds = time.perf_counter() - started
        assert resp.status_code == 200
        items = resp.json()["items"]
        assert len(items) == 10_000
        assert items[0]["metadata"]["name"] == "pod-00000"
        started = time.perf_counter()
        listed = client.CoreV1Api(sim.api_client()).list_namespaced_pod(
            "default", _preload_content=False
        )
        body = listed.read()
        client_seconds = time.perf_counter() - started
        started = time.perf_counter()
        selected = requests.get(
            f"{sim.url}/api/v1/pods",
            params={"labelSelector": "i=3", "fieldSelector": "spec.nodeName=node-3"},
            timeout=30,
        ).json()["items"]
        select_seconds = time.perf_counter() - started
        assert len(selected) == 400
    with capsys.disabled():
        print(
            f"\nkubesim: 20000 pods stored in {fill_seconds:.2f}s; list of 10000 pods "
            f"{raw_seconds:.3f}s raw, {client_seconds:.3f}s via client ({len(body)} bytes); "
            f"selector over 20000 {select_seconds:.3f}s"
        )
    # A generous sanity bound, not a benchmark.
    assert raw_seconds < 10
