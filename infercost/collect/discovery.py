"""Which pods to scrape and who holds which GPU, from cached Kubernetes objects (SPEC §3).

Works on plain dicts as the API returns them (possibly stripped to the fields the operator
reads), so it needs neither the kubernetes client nor the informer package. Every function is
pure: the same cache gives the same targets.

The host of every target is the pod's ``status.podIP``; annotations choose only the port and the
path, never the address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import attrs

from infercost.api.names import is_label_key, is_label_value
from infercost.collect.backends import AUTO, BACKEND_NAMES, BACKENDS
from infercost.collect.dcgm import GpuReading
from infercost.collect.scraping import ScrapeTarget

Obj = Mapping[str, Any]

BACKEND_KEY = "infercost.ai/backend"
SCRAPE_KEY = "infercost.ai/scrape"
PORT_KEY = "infercost.ai/metrics-port"
PATH_KEY = "infercost.ai/metrics-path"
MODEL_KEY = "infercost.ai/model"
LLMKUBE_RUNTIME = "inference.llmkube.dev/runtime"
LLMKUBE_MODEL = "inference.llmkube.dev/model"
KSERVE_SERVICE = "serving.kserve.io/inferenceservice"
KSERVE_PORT = "prometheus.kserve.io/port"
KSERVE_PATH = "prometheus.kserve.io/path"
PROMETHEUS_PORT = "prometheus.io/port"
PROMETHEUS_PATH = "prometheus.io/path"
APP_NAME = "app.kubernetes.io/name"
POD_TEMPLATE_HASH = "pod-template-hash"
GPU_RESOURCE = "nvidia.com/gpu"

DCGM_DEFAULT_PORT = 9400
DCGM_PORT_NAMES = ("metrics", "gpu-metrics")
DEFAULT_DCGM_SELECTORS = ("app=nvidia-dcgm-exporter", "app.kubernetes.io/name=dcgm-exporter")

# Kubernetes' rand.SafeEncodeString alphabet, used for pod-template-hash.
_HASH_SUFFIX = re.compile(r"-[bcdfghjklmnpqrstvwxz2456789]{5,10}$")
_PATH_OK = re.compile(r"^/[!-~]*$")  # printable ASCII without spaces
_MAX_PATH = 2048


class DiscoveryError(ValueError):
    """A pod asks to be scraped but its annotations cannot be used; the message names them."""


@attrs.frozen(order=True)
class PodRef:
    namespace: str
    name: str
    uid: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def pod_ref(pod: Obj) -> PodRef:
    meta = pod.get("metadata") or {}
    return PodRef(meta.get("namespace") or "", meta.get("name") or "", meta.get("uid") or "")


def _meta(pod: Obj, field: str) -> Mapping[str, str]:
    return (pod.get("metadata") or {}).get(field) or {}


def _lookup(pod: Obj, key: str, *, annotation_first: bool = True) -> tuple[str, str] | None:
    """(where, value) of the first of annotation/label ``key`` present."""
    sources = ("annotation", "label") if annotation_first else ("label", "annotation")
    for where in sources:
        value = _meta(pod, "annotations" if where == "annotation" else "labels").get(key)
        if value is not None:
            return where, value
    return None


def _url_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def is_running_with_ip(pod: Obj) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and bool(status.get("podIP"))


# ---------------------------------------------------------------------------------------------
# inference pods


@attrs.frozen
class InferenceTarget:
    """An inference pod to scrape (SPEC §3.1)."""

    pod: PodRef
    node: str | None
    backend: str
    """A name of :data:`infercost.collect.backends.BACKEND_NAMES`; ``auto`` is detected later."""
    host: str
    port: int
    path: str
    model: str
    """The model name for series that carry none (the SPEC §3.1 fallback chain)."""
    container: str | None
    """The container that serves the metrics port, when it can be told."""
    restart_count: int
    """Restarts of :attr:`container` (of all containers when it cannot be told)."""
    start_time: str | None
    deleting: bool

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}{self.path}"

    def scrape_target(self) -> ScrapeTarget:
        """Keyed by the pod UID (the ledger's watermark owner)."""
        return ScrapeTarget(self.pod.uid or str(self.pod), self.host, self.port, self.path)


def inference_backend(pod: Obj) -> tuple[str, str] | None:
    """(backend, why) when the pod is an inference source by SPEC §3.1 rules 1–3, else None.

    Raises :class:`DiscoveryError` for an unknown ``infercost.ai/backend`` value.
    """
    found = _lookup(pod, BACKEND_KEY)
    if found is not None:
        where, raw = found
        value = raw.strip().lower()
        if value not in BACKEND_NAMES:
            raise DiscoveryError(
                f"{where} {BACKEND_KEY}: unknown backend {raw!r} "
                f"(expected one of {', '.join(BACKEND_NAMES)})"
            )
        return value, f"{where} {BACKEND_KEY}"
    labels = _meta(pod, "labels")
    for key in (LLMKUBE_RUNTIME, KSERVE_SERVICE):
        if key in labels:
            return AUTO, f"label {key}"
    scrape = _meta(pod, "annotations").get(SCRAPE_KEY)
    if scrape is not None and scrape.strip().lower() == "true":
        return AUTO, f"annotation {SCRAPE_KEY}"
    return None


def _container_ports(pod: Obj) -> list[tuple[str, str | None, int]]:
    out = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            number = port.get("containerPort")
            if isinstance(number, int):
                out.append((container.get("name") or "", port.get("name"), number))
    return out


def _parse_port(pod: Obj, key: str, raw: str) -> int:
    text = raw.strip()
    if text.isdigit():
        port = int(text)
        if not 1 <= port <= 65535:
            raise DiscoveryError(f"annotation {key}: port {raw!r} is out of range 1-65535")
        return port
    for _, name, number in _container_ports(pod):
        if name and name == text:
            return number
    raise DiscoveryError(
        f"annotation {key}: {raw!r} is neither a port number nor the name of a container port"
    )


def metrics_port(pod: Obj, backend: str) -> int:
    annotations = _meta(pod, "annotations")
    for key in (PORT_KEY, KSERVE_PORT, PROMETHEUS_PORT):
        if key in annotations:
            return _parse_port(pod, key, annotations[key])
    if backend != AUTO:
        return BACKENDS[backend].default_port
    hint = (_meta(pod, "labels").get(LLMKUBE_RUNTIME) or "").strip().lower()
    if hint in BACKENDS:
        return BACKENDS[hint].default_port
    raise DiscoveryError(
        f"backend auto needs a metrics port: set annotation {PORT_KEY} "
        f"(or {PROMETHEUS_PORT}, or {BACKEND_KEY} to a named backend)"
    )


def metrics_path(pod: Obj, backend: str) -> str:
    annotations = _meta(pod, "annotations")
    for key in (PATH_KEY, KSERVE_PATH, PROMETHEUS_PATH):
        if key in annotations:
            raw = annotations[key]
            path = raw.strip()
            if not _PATH_OK.match(path) or len(path) > _MAX_PATH or "#" in path:
                raise DiscoveryError(
                    f"annotation {key}: {raw!r} is not a URL path "
                    "(expected /path, printable characters, no spaces or fragments)"
                )
            return path
    if backend != AUTO:
        return BACKENDS[backend].default_path
    return "/metrics"


def strip_template_hash(name: str, template_hash: str | None = None) -> str:
    """A ReplicaSet's name without its pod-template-hash suffix (the Deployment's name)."""
    if template_hash and name.endswith("-" + template_hash):
        return name[: -len(template_hash) - 1]
    if template_hash is None:
        stripped = _HASH_SUFFIX.sub("", name)
        if stripped:
            return stripped
    return name


def owner_name(pod: Obj) -> str | None:
    """The name of the pod's owning workload (ReplicaSet → its Deployment's name)."""
    owners = (pod.get("metadata") or {}).get("ownerReferences") or []
    if not owners:
        return None
    owner = next((o for o in owners if o.get("controller")), owners[0])
    name = owner.get("name")
    if not name:
        return None
    if owner.get("kind") == "ReplicaSet":
        return strip_template_hash(name, _meta(pod, "labels").get(POD_TEMPLATE_HASH))
    return str(name)


def model_fallback(pod: Obj) -> str:
    """SPEC §3.1: the model of series that carry no model label."""
    for key, annotation_first in (
        (MODEL_KEY, True),
        (LLMKUBE_MODEL, False),
        (KSERVE_SERVICE, False),
        (APP_NAME, False),
    ):
        found = _lookup(pod, key, annotation_first=annotation_first)
        if found is not None and found[1].strip():
            return found[1].strip()
    return owner_name(pod) or pod_ref(pod).name


def _serving_container(pod: Obj, port: int) -> str | None:
    for container, _, number in _container_ports(pod):
        if number == port:
            return container
    containers = (pod.get("spec") or {}).get("containers") or []
    if len(containers) == 1:
        return containers[0].get("name")
    return None


def _restart_count(pod: Obj, container: str | None) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    counts = {s.get("name"): int(s.get("restartCount") or 0) for s in statuses}
    if container is not None and container in counts:
        return counts[container]
    return sum(counts.values())


def inference_target(pod: Obj) -> InferenceTarget | None:
    """The scrape target of an inference pod, or None when the pod is not one (yet).

    A pod is a target when it is Running with an IP and matches SPEC §3.1 rules 1–3. Raises
    :class:`DiscoveryError` when it asks to be scraped with annotations that cannot be used.
    """
    matched = inference_backend(pod)
    if matched is None or not is_running_with_ip(pod):
        return None
    backend = matched[0]
    status = pod.get("status") or {}
    host = str(status["podIP"])
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise DiscoveryError(f"status.podIP {host!r} is not an IP address") from None
    port = metrics_port(pod, backend)
    path = metrics_path(pod, backend)
    container = _serving_container(pod, port)
    return InferenceTarget(
        pod=pod_ref(pod),
        node=(pod.get("spec") or {}).get("nodeName"),
        backend=backend,
        host=host,
        port=port,
        path=path,
        model=model_fallback(pod),
        container=container,
        restart_count=_restart_count(pod, container),
        start_time=status.get("startTime"),
        deleting=bool((pod.get("metadata") or {}).get("deletionTimestamp")),
    )


@attrs.frozen
class PodProblem:
    pod: PodRef
    message: str

    def __str__(self) -> str:
        return f"pod {self.pod}: {self.message}"


@attrs.frozen
class InferenceDiscovery:
    targets: tuple[InferenceTarget, ...]
    problems: tuple[PodProblem, ...]


def _on_nodes(pod: Obj, nodes: Collection[str] | None) -> bool:
    return nodes is None or (pod.get("spec") or {}).get("nodeName") in nodes


def discover_inference(
    pods: Iterable[Obj], nodes: Collection[str] | None = None
) -> InferenceDiscovery:
    """Inference targets among ``pods`` on ``nodes`` (all nodes when None), sorted by pod."""
    targets, problems = [], []
    for pod in pods:
        if not _on_nodes(pod, nodes):
            continue
        try:
            target = inference_target(pod)
        except DiscoveryError as exc:
            problems.append(PodProblem(pod_ref(pod), str(exc)))
            continue
        if target is not None:
            targets.append(target)
    targets.sort(key=lambda t: t.pod)
    problems.sort(key=lambda p: p.pod)
    return InferenceDiscovery(tuple(targets), tuple(problems))


# ---------------------------------------------------------------------------------------------
# DCGM exporters


@attrs.frozen
class Requirement:
    key: str
    op: str  # "=", "!=", "exists", "!exists"
    value: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "=":
            return labels.get(self.key) == self.value
        if self.op == "!=":
            return labels.get(self.key) != self.value
        if self.op == "exists":
            return self.key in labels
        return self.key not in labels


@attrs.frozen
class LabelSelector:
    """An equality-based Kubernetes label selector (``a=b,c!=d,e,!f``); all must hold."""

    requirements: tuple[Requirement, ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        reqs = []
        for raw in text.split(","):
            term = raw.strip()
            if not term:
                raise ValueError(f"label selector {text!r}: empty term")
            if "!=" in term:
                key, value = (p.strip() for p in term.split("!=", 1))
                op = "!="
            elif "=" in term:
                key, value = (p.strip() for p in term.replace("==", "=", 1).split("=", 1))
                op = "="
            elif term.startswith("!"):
                key, value, op = term[1:].strip(), "", "!exists"
            else:
                key, value, op = term, "", "exists"
            if not is_label_key(key):
                raise ValueError(f"label selector {text!r}: {key!r} is not a label key")
            if not is_label_value(value):
                raise ValueError(f"label selector {text!r}: {value!r} is not a label value")
            reqs.append(Requirement(key, op, value))
        return cls(tuple(reqs), text)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def parse_dcgm_selectors(
    texts: Sequence[str] = DEFAULT_DCGM_SELECTORS,
) -> tuple[LabelSelector, ...]:
    """``--dcgm-selector`` values; a pod is an exporter when it matches any of them."""
    if not texts:
        raise ValueError("at least one DCGM exporter label selector is needed")
    return tuple(LabelSelector.parse(t) for t in texts)


@attrs.frozen
class ExporterTarget:
    """A DCGM exporter to scrape. ``node`` is the exporter pod's ``spec.nodeName``; ``None``
    for ``--dcgm-url`` targets, whose readings are placed by their Hostname/hostname label."""

    node: str | None
    pod: PodRef | None
    host: str
    port: int
    path: str = "/metrics"

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}{self.path}"

    def scrape_target(self) -> ScrapeTarget:
        """Keyed by the exporter pod (``namespace/name``), or by the URL for ``--dcgm-url``."""
        key = str(self.pod) if self.pod is not None else self.url
        return ScrapeTarget(key, self.host, self.port, self.path, kind="dcgm")


@attrs.frozen
class ExporterDiscovery:
    targets: tuple[ExporterTarget, ...]
    not_running: Mapping[str, tuple[PodRef, ...]]
    """Exporter pods found on a node that are not Running with an IP (node → pods)."""

    def nodes_with_exporters(self) -> set[str]:
        return {t.node for t in self.targets if t.node is not None}


def _exporter_port(pod: Obj, default: int) -> int:
    for _, name, number in _container_ports(pod):
        if name in DCGM_PORT_NAMES:
            return number
    return default


def discover_exporters(
    pods: Iterable[Obj],
    nodes: Collection[str] | None = None,
    selectors: Sequence[LabelSelector] | None = None,
    port: int | None = None,
    default_port: int = DCGM_DEFAULT_PORT,
) -> ExporterDiscovery:
    """DCGM exporter pods on ``nodes`` (SPEC §3.2): port ``port`` when given, else the
    container port named ``metrics``/``gpu-metrics``, else ``default_port`` (``--dcgm-port``,
    9400 by default)."""
    chosen = selectors if selectors is not None else parse_dcgm_selectors()
    targets: list[ExporterTarget] = []
    not_running: dict[str, list[PodRef]] = {}
    for pod in pods:
        labels = _meta(pod, "labels")
        if not any(s.matches(labels) for s in chosen):
            continue
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or (nodes is not None and node not in nodes):
            continue
        if not is_running_with_ip(pod):
            not_running.setdefault(node, []).append(pod_ref(pod))
            continue
        targets.append(
            ExporterTarget(
                node=node,
                pod=pod_ref(pod),
                host=str((pod.get("status") or {})["podIP"]),
                port=port if port is not None else _exporter_port(pod, default_port),
            )
        )
    targets.sort(key=lambda t: (t.node or "", t.pod or PodRef("", "")))
    return ExporterDiscovery(
        tuple(targets), {n: tuple(sorted(p)) for n, p in sorted(not_running.items())}
    )


def parse_dcgm_url(url: str) -> ExporterTarget:
    """A ``--dcgm-url`` value (``http://host:port/path``) as a target without a node."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    if parts.scheme != "http":
        raise ValueError(f"--dcgm-url {url!r}: only http:// URLs are supported")
    if not parts.hostname:
        raise ValueError(f"--dcgm-url {url!r}: no host")
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError(f"--dcgm-url {url!r}: invalid port") from None
    path = parts.path or "/metrics"
    if parts.query:
        path += "?" + parts.query
    return ExporterTarget(node=None, pod=None, host=parts.hostname, port=port, path=path)


# ---------------------------------------------------------------------------------------------
# GPU holders


def gpu_limit(pod: Obj) -> int:
    """Σ ``nvidia.com/gpu`` limits of the pod's containers (unparseable values count 0)."""
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        raw = ((container.get("resources") or {}).get("limits") or {}).get(GPU_RESOURCE)
        if raw is None:
            continue
        try:
            total += int(str(raw))
        except ValueError:
            continue
    return total


def node_gpu_capacity(node: Obj) -> int | None:
    """A Node's ``status.capacity['nvidia.com/gpu']``; None when absent or unparseable."""
    raw = ((node.get("status") or {}).get("capacity") or {}).get(GPU_RESOURCE)
    if raw is None:
        return None
    try:
        return int(str(raw))
    except ValueError:
        return None


def node_boot_id(node: Obj) -> str | None:
    return ((node.get("status") or {}).get("nodeInfo") or {}).get("bootID") or None


def _mig_fraction(profile: str | None) -> float | None:
    """Compute slices of a MIG profile (``3g.40gb`` → 3/7 of the GPU)."""
    if not profile:
        return None
    match = re.match(r"^(\d+)g\.", profile)
    return min(1.0, int(match.group(1)) / 7.0) if match else None


@attrs.frozen
class Holding:
    """A pod holding GPUs on a node.

    ``uuids`` names the GPUs when DCGM maps them (``source="dcgm"``); with ``source="limits"``
    the pod holds ``gpus`` of the node's GPUs without knowing which. ``inference`` tells whether
    the pod is one of the inference targets (else it books as ``(non-inference)``).
    """

    pod: PodRef
    node: str
    gpus: float
    uuids: tuple[str, ...]
    source: str
    inference: bool


@attrs.frozen
class NodeHoldings:
    node: str
    holdings: tuple[Holding, ...]
    unheld_uuids: tuple[str, ...]
    """GPUs DCGM reports with no holder (DCGM mapping only)."""


def _pods_on(pods: Iterable[Obj], node: str) -> list[Obj]:
    return [
        p
        for p in pods
        if (p.get("spec") or {}).get("nodeName") == node
        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]


def node_holdings(
    node: str,
    pods: Iterable[Obj],
    readings: Sequence[GpuReading] = (),
    inference_uids: Collection[str] = (),
) -> NodeHoldings:
    """Who holds the GPUs of ``node`` (SPEC §3.2): DCGM's pod labels when the exporter reports
    them, else the pods on the node by their ``nvidia.com/gpu`` limits. Pods holding GPUs are
    listed whether or not they serve inference."""
    on_node = _pods_on(pods, node)
    by_name = {(pod_ref(p).namespace, pod_ref(p).name): pod_ref(p) for p in on_node}
    if any(r.pod_mapping for r in readings):
        shares: dict[PodRef, dict[str, float]] = {}
        unheld = []
        for reading in readings:
            if not reading.holders:
                unheld.append(reading.uuid)
                continue
            whole = [h for h in reading.holders if h.mig_instance is None]
            for holder in reading.holders:
                ref = by_name.get((holder.namespace, holder.pod)) or PodRef(
                    holder.namespace, holder.pod
                )
                if whole:
                    share = 1.0 / len(whole) if holder.mig_instance is None else 0.0
                else:
                    share = _mig_fraction(holder.mig_profile) or 1.0 / len(reading.holders)
                if share:
                    per_pod = shares.setdefault(ref, {})
                    per_pod[reading.uuid] = per_pod.get(reading.uuid, 0.0) + share
        mapped = tuple(
            Holding(
                pod=ref,
                node=node,
                gpus=sum(per_gpu.values()),
                uuids=tuple(per_gpu),
                source="dcgm",
                inference=ref.uid in inference_uids,
            )
            for ref, per_gpu in sorted(shares.items())
        )
        return NodeHoldings(node, mapped, tuple(unheld))
    holdings: list[Holding] = []
    for pod in sorted(on_node, key=pod_ref):
        count = gpu_limit(pod)
        if count > 0:
            ref = pod_ref(pod)
            holdings.append(
                Holding(ref, node, float(count), (), "limits", ref.uid in inference_uids)
            )
    return NodeHoldings(node, tuple(holdings), ())
