"""Compact cached forms of Pods and Nodes, and accessors that work on any cached object.

A real Pod is 10–20 KB of JSON and 30+ KB as Python dicts; an operator caching every pod of a
large cluster cannot afford that. The informer applies a transform before caching, and for
Pods and Nodes the transform keeps only what InferCost reads, in slotted frozen objects whose
repeated strings (namespaces, node names, label keys and values, phases) are interned so that
thousands of pods share one copy, and whose equal label sets, annotations, containers and owner
lists (the replicas of a workload) are one shared object (SPEC §9: ≤ 2 KB per cached pod,
measured in a test).

What is kept, and why:

- metadata: name, namespace, uid (a pod recreated under the same name is a new pod),
  creationTimestamp, deletionTimestamp, labels (all: DCGM exporter and
  nodeSelector matching use arbitrary keys), ownerReferences kind/name/controller (model name
  from the workload), and only the annotations under :data:`KEPT_ANNOTATION_PREFIXES` plus
  :data:`KEPT_ANNOTATIONS` (discovery and port/path/model hints, SPEC §3);
- spec: nodeName; per container its name, ``nvidia.com/gpu`` limit and its ports as (name,
  number) (a metrics-port annotation may name a port; DCGM exporters serve on the port named
  ``metrics``/``gpu-metrics``; the port tells which container serves the metrics);
- status: podIP, phase, startTime, Ready condition, per-container restartCount (a restart
  resets the server's counters);
- Node: name, uid, labels, ``nvidia.com/gpu`` capacity (``None`` when the
  node does not advertise the resource), ``nodeInfo.bootID`` (a changed boot ID means DCGM
  energy counters restarted), creationTimestamp.

Not kept: resourceVersion. Nothing reads it per object: the informer tells a changed object
by comparing the compact forms (an update that changes nothing the operator reads is no
update), and a cache's progress is the informer's last seen resourceVersion, as client-go's
``LastSyncResourceVersion``.

Times are kept as epoch seconds (float), not strings. :mod:`infercost.collect`'s discovery
reads :class:`PodInfo` as it is, through its ``PodFacts`` protocol. ``nvidia.com/gpu``
quantities are parsed here and only here (:func:`parse_quantity_int`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from infercost.api.sharing import SharingTable

__all__ = [
    "GPU_REPLICAS_LABEL",
    "GPU_RESOURCE",
    "KEPT_ANNOTATIONS",
    "KEPT_ANNOTATION_PREFIXES",
    "ContainerInfo",
    "FrozenMap",
    "NodeInfo",
    "OwnerRef",
    "PodInfo",
    "object_key",
    "object_labels",
    "object_name",
    "object_namespace",
    "parse_quantity_int",
    "parse_time",
    "transform_node",
    "transform_pod",
]

GPU_RESOURCE = "nvidia.com/gpu"
GPU_REPLICAS_LABEL = "nvidia.com/gpu.replicas"
"""Set by NVIDIA's GPU feature discovery on time-sliced nodes: ``nvidia.com/gpu`` capacity
counts each physical GPU this many times."""
KEPT_ANNOTATION_PREFIXES = (
    "infercost.ai/",
    "prometheus.io/",
    "prometheus.kserve.io/",
    "serving.kserve.io/",
    "inference.llmkube.dev/",
)
KEPT_ANNOTATIONS = frozenset({"app.kubernetes.io/name"})

_intern = sys.intern


class FrozenMap(dict[str, str]):
    """A dict that cannot change and so can be hashed: the label sets and annotations of the
    cached objects, shared between the objects that have equal ones (see ``_shared``)."""

    __slots__ = ()

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def _frozen(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a cached label set or annotation map cannot be changed")

    __setitem__ = __delitem__ = _frozen
    clear = pop = popitem = setdefault = update = __ior__ = _frozen


# the label sets, annotations, containers and owners of a workload's replicas are equal: the
# cached pods of a Deployment share one copy of each
_shared = SharingTable(8192)


def _s(value: Any) -> str:
    """Interned string of a short repeated value ("" for missing)."""
    if value is None:
        return ""
    return _intern(str(value))


def parse_time(value: Any) -> float | None:
    """RFC 3339 (``2026-11-27T08:00:00Z``, optional fraction) to epoch seconds."""
    if not value or not isinstance(value, str):
        return None
    text = value.replace("Z", "+00:00") if value.endswith("Z") else value
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _port_number(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 65535:
        return value
    return 0


def parse_quantity_int(value: Any) -> int:
    """An integer resource quantity (GPU counts are whole numbers: ``"1"``, ``2``, ``"4"``)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        try:
            return int(float(str(value)))
        except ValueError:
            return 0


@attrs.frozen(slots=True)
class OwnerRef:
    kind: str
    name: str
    controller: bool = False


@attrs.frozen(slots=True)
class ContainerInfo:
    name: str
    gpu_limit: int = 0
    # (port name or "", container port) of every declared port.
    ports: tuple[tuple[str, int], ...] = ()
    restart_count: int = 0


@attrs.frozen(slots=True)
class PodInfo:
    """What InferCost reads of a Pod."""

    name: str
    namespace: str
    uid: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    owner_references: tuple[OwnerRef, ...]
    creation_timestamp: float | None
    deletion_timestamp: float | None
    node_name: str
    containers: tuple[ContainerInfo, ...]
    pod_ip: str
    phase: str
    start_time: float | None
    ready: bool

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def gpu_limit(self) -> int:
        """Σ ``nvidia.com/gpu`` limits of the pod's containers."""
        return sum(c.gpu_limit for c in self.containers)

    @property
    def restart_count(self) -> int:
        return sum(c.restart_count for c in self.containers)


@attrs.frozen(slots=True)
class NodeInfo:
    """What InferCost reads of a Node."""

    name: str
    uid: str
    labels: Mapping[str, str]
    gpu_capacity: int | None
    boot_id: str
    creation_timestamp: float | None

    @property
    def key(self) -> str:
        return self.name

    @property
    def namespace(self) -> str:
        return ""

    @property
    def gpu_replicas(self) -> int:
        """The :data:`GPU_REPLICAS_LABEL` value; 1 when absent or not a positive integer."""
        raw = self.labels.get(GPU_REPLICAS_LABEL, "")
        return int(raw) if raw.isascii() and raw.isdigit() and int(raw) > 0 else 1

    @property
    def gpus(self) -> float:
        """Physical GPUs (SPEC §5): ``nvidia.com/gpu`` capacity ÷ :attr:`gpu_replicas`; 0 when
        the node advertises none."""
        return (self.gpu_capacity or 0) / self.gpu_replicas


_EMPTY: Mapping[str, str] = FrozenMap()


def _labels(raw: Any) -> Mapping[str, str]:
    if not isinstance(raw, Mapping) or not raw:
        return _EMPTY
    return _shared.one(FrozenMap((_s(k), _s(v)) for k, v in raw.items()))


def _annotations(raw: Any) -> Mapping[str, str]:
    if not isinstance(raw, Mapping):
        return _EMPTY
    kept: list[tuple[str, str]] = []
    for k, v in raw.items():
        if k in KEPT_ANNOTATIONS or k.startswith(KEPT_ANNOTATION_PREFIXES):
            # Values are short hints (ports, paths, model names); long ones are not ours.
            kept.append((_s(k), _s(v) if len(str(v)) <= 253 else str(v)))
    if not kept:
        return _EMPTY
    return _shared.one(FrozenMap(kept))


def transform_pod(obj: Mapping[str, Any]) -> PodInfo:
    """Strip a raw Pod (API JSON) down to :class:`PodInfo`."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    restarts = {
        cs.get("name"): int(cs.get("restartCount") or 0)
        for cs in status.get("containerStatuses") or ()
        if isinstance(cs, Mapping)
    }
    containers = []
    for c in spec.get("containers") or ():
        if not isinstance(c, Mapping):
            continue
        limits = (c.get("resources") or {}).get("limits") or {}
        ports = tuple(
            (_s(p.get("name")), port)
            for p in c.get("ports") or ()
            if isinstance(p, Mapping) and (port := _port_number(p.get("containerPort")))
        )
        name = c.get("name") or ""
        containers.append(
            ContainerInfo(
                name=_s(name),
                gpu_limit=parse_quantity_int(limits.get(GPU_RESOURCE)),
                ports=ports,
                restart_count=restarts.get(name, 0),
            )
        )
    ready = any(
        cond.get("type") == "Ready" and cond.get("status") == "True"
        for cond in status.get("conditions") or ()
        if isinstance(cond, Mapping)
    )
    owners = tuple(
        OwnerRef(_s(o.get("kind")), str(o.get("name") or ""), o.get("controller") is True)
        for o in meta.get("ownerReferences") or ()
        if isinstance(o, Mapping)
    )
    owners = _shared.one(owners)
    return PodInfo(
        name=str(meta.get("name") or ""),
        namespace=_s(meta.get("namespace")),
        uid=str(meta.get("uid") or ""),
        labels=_labels(meta.get("labels")),
        annotations=_annotations(meta.get("annotations")),
        owner_references=owners,
        creation_timestamp=parse_time(meta.get("creationTimestamp")),
        deletion_timestamp=parse_time(meta.get("deletionTimestamp")),
        node_name=_s(spec.get("nodeName")),
        containers=_shared.one(tuple(containers)),
        pod_ip=str(status.get("podIP") or ""),
        phase=_s(status.get("phase")),
        start_time=parse_time(status.get("startTime")),
        ready=ready,
    )


def transform_node(obj: Mapping[str, Any]) -> NodeInfo:
    """Strip a raw Node down to :class:`NodeInfo`."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    capacity = status.get("capacity") or {}
    node_info = status.get("nodeInfo") or {}
    return NodeInfo(
        name=_s(meta.get("name")),
        uid=str(meta.get("uid") or ""),
        labels=_labels(meta.get("labels")),
        gpu_capacity=(
            parse_quantity_int(capacity[GPU_RESOURCE]) if GPU_RESOURCE in capacity else None
        ),
        boot_id=str(node_info.get("bootID") or ""),
        creation_timestamp=parse_time(meta.get("creationTimestamp")),
    )


# -- accessors that work on raw dicts and on the compact forms ---------------------------------


def object_namespace(obj: Any) -> str:
    if isinstance(obj, Mapping):
        return str((obj.get("metadata") or {}).get("namespace") or "")
    return str(getattr(obj, "namespace", "") or "")


def object_name(obj: Any) -> str:
    if isinstance(obj, Mapping):
        return str((obj.get("metadata") or {}).get("name") or "")
    return str(getattr(obj, "name", "") or "")


def object_labels(obj: Any) -> Mapping[str, str]:
    if isinstance(obj, Mapping):
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return labels if isinstance(labels, Mapping) else {}
    return getattr(obj, "labels", None) or {}


def object_key(obj: Any) -> str:
    """``namespace/name``, or ``name`` for cluster-scoped objects (client-go's key func)."""
    ns = object_namespace(obj)
    name = object_name(obj)
    return f"{ns}/{name}" if ns else name
