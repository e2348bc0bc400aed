"""Pod and Node dicts as the API server returns them, pointing at simulated servers.

Tests and scenario builders use these to emulate inference pods (``status.podIP`` = the
loopback address of a simulated server), DCGM exporter pods and GPU nodes.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any


def make_pod(
    name: str,
    *,
    namespace: str = "default",
    ip: str | None = "127.0.0.2",
    node: str | None = "gpu-node-1",
    phase: str = "Running",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    gpus: int = 0,
    ports: list[tuple[str | None, int]] | None = None,
    containers: list[str] | None = None,
    restart_counts: dict[str, int] | None = None,
    owner: tuple[str, str] | None = None,
    template_hash: str | None = None,
    uid: str | None = None,
    start_time: str | None = "2026-11-27T08:00:00Z",
    creation_timestamp: str = "2026-11-27T07:59:50Z",
    deleting: bool = False,
) -> dict[str, Any]:
    """A Pod object. ``owner`` is (kind, name); ``gpus`` goes to the first container's limits."""
    names = containers or ["server"]
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid or str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"pod/{namespace}/{name}")),
        "labels": dict(labels or {}),
        "annotations": dict(annotations or {}),
        "creationTimestamp": creation_timestamp,
    }
    if template_hash:
        meta["labels"]["pod-template-hash"] = template_hash
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner[0],
                "name": owner[1],
                "uid": str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"{owner[0]}/{owner[1]}")),
                "controller": True,
            }
        ]
    if deleting:
        meta["deletionTimestamp"] = "2026-11-27T09:00:00Z"
    container_specs = []
    for i, cname in enumerate(names):
        spec: dict[str, Any] = {"name": cname}
        if i == 0:
            if ports:
                spec["ports"] = [
                    {"containerPort": number, **({"name": pname} if pname else {})}
                    for pname, number in ports
                ]
            if gpus:
                spec["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
        container_specs.append(spec)
    status: dict[str, Any] = {
        "phase": phase,
        "containerStatuses": [
            {"name": cname, "restartCount": (restart_counts or {}).get(cname, 0)} for cname in names
        ],
    }
    if ip:
        status["podIP"] = ip
    if start_time:
        status["startTime"] = start_time
    pod_spec: dict[str, Any] = {"containers": container_specs}
    if node:
        pod_spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec, "status": status}


def make_node(
    name: str,
    *,
    gpus: int | None = 8,
    labels: dict[str, str] | None = None,
    boot_id: str = "5b3c8f2e-0d6a-4e71-9a43-1f2e3d4c5b6a",
) -> dict[str, Any]:
    capacity = {"cpu": "96", "memory": "1056345676Ki"}
    if gpus is not None:
        capacity["nvidia.com/gpu"] = str(gpus)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "status": {"capacity": capacity, "nodeInfo": {"bootID": boot_id}},
    }


def make_dcgm_exporter_pod(
    node: str,
    ip: str,
    *,
    name: str | None = None,
    namespace: str = "gpu-operator",
    labels: dict[str, str] | None = None,
    port_name: str | None = "gpu-metrics",
    port: int = 9400,
    phase: str = "Running",
) -> dict[str, Any]:
    """A gpu-operator style exporter pod (label ``app=nvidia-dcgm-exporter``)."""
    return make_pod(
        name or f"nvidia-dcgm-exporter-{node}",
        namespace=namespace,
        ip=ip,
        node=node,
        phase=phase,
        labels=labels if labels is not None else {"app": "nvidia-dcgm-exporter"},
        ports=[(port_name, port)],
        containers=["nvidia-dcgm-exporter"],
        owner=("DaemonSet", "nvidia-dcgm-exporter"),
    )
