"""Which pods to scrape and who holds which GPU, from cached Kubernetes objects (SPEC §3).

Reads pods through :class:`PodFacts`, a narrow view the informer cache's compact pods
(:class:`infercost.kube.transforms.PodInfo`) satisfy as they are: no conversion back to API
dicts, and no dependency on the kubernetes client or the informer package. Every function is
pure: the same cache gives the same targets.

The host of every target is the pod's ``status.podIP``; annotations choose only the port and the
path, never the address.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Protocol

import attrs

from infercost.api.labelselector import LabelSelector
from infercost.collect import DEFAULT_DCGM_NAMESPACES, DEFAULT_DCGM_SELECTORS
from infercost.collect.backends import AUTO, BACKEND_NAMES, BACKENDS
from infercost.collect.dcgm import GpuReading
from infercost.collect.scraping import TARGET_DCGM, ScrapeTarget
from infercost.engine.catalog import OPEN_WEIGHT_FAMILY_ANNOTATION

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

DCGM_DEFAULT_PORT = 9400
DCGM_PORT_NAMES = ("metrics", "gpu-metrics")

# Kubernetes' rand.SafeEncodeString alphabet, used for pod-template-hash.
_HASH_SUFFIX = re.compile(r"-[bcdfghjklmnpqrstvwxz2456789]{5,10}$")
_PATH_OK = re.compile(r"^/[!-~]*$")  # printable ASCII without spaces
_MAX_PATH = 2048


class ContainerFacts(Protocol):
    """What discovery reads of a container."""

    @property
    def name(self) -> str: ...

    @property
    def gpu_limit(self) -> int:
        """Its ``nvidia.com/gpu`` limit (0 when none)."""
        ...

    @property
    def ports(self) -> Sequence[tuple[str, int]]:
        """(port name or ``""``, container port) of every declared port."""
        ...

    @property
    def restart_count(self) -> int: ...


class OwnerFacts(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def controller(self) -> bool: ...


class PodFacts(Protocol):
    """What discovery reads of a Pod; times are epoch seconds, missing strings are ``""``."""

    @property
    def name(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def uid(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def annotations(self) -> Mapping[str, str]: ...

    @property
    def owner_references(self) -> Sequence[OwnerFacts]: ...

    @property
    def creation_timestamp(self) -> float | None: ...

    @property
    def deletion_timestamp(self) -> float | None: ...

    @property
    def node_name(self) -> str: ...

    @property
    def containers(self) -> Sequence[ContainerFacts]: ...

    @property
    def pod_ip(self) -> str: ...

    @property
    def phase(self) -> str: ...

    @property
    def start_time(self) -> float | None: ...


class DiscoveryError(ValueError):
    """A pod asks to be scraped but its annotations cannot be used; the message names them."""


@attrs.frozen(order=True)
class PodRef:
    namespace: str
    name: str
    uid: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def pod_ref(pod: PodFacts) -> PodRef:
    return PodRef(pod.namespace, pod.name, pod.uid)


def _lookup(pod: PodFacts, key: str, *, annotation_first: bool = True) -> tuple[str, str] | None:
    """(where, value) of the first of annotation/label ``key`` present."""
    sources = ("annotation", "label") if annotation_first else ("label", "annotation")
    for where in sources:
        value = (pod.annotations if where == "annotation" else pod.labels).get(key)
        if value is not None:
            return where, value
    return None


def _utc(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _url_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def is_running_with_ip(pod: PodFacts) -> bool:
    return pod.phase == "Running" and bool(pod.pod_ip)


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
    restart_count: int | None
    """``restartCount`` of :attr:`container`; ``None`` when that container cannot be told (a
    restart of it resets the server's counters; a sidecar's restart does not)."""
    pod_restarts: int
    """Σ ``restartCount`` of all containers: what tells a new container run when
    :attr:`restart_count` is unknown (the "starting" memory of SPEC §3.1)."""
    start_time: datetime | None
    """``status.startTime`` (UTC)."""
    phase: str
    """``status.phase`` (``Running`` for a target; kept for the ledger's records)."""
    deleting: bool
    """The pod has a ``deletionTimestamp``: it is scraped until it is gone."""
    family: str | None = None
    """The ``infercost.ai/open-weight-family`` annotation (or label) when set: the open-weight
    family the cloud comparison uses for this pod's models (SPEC §6.2)."""

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}{self.path}"

    def scrape_target(self) -> ScrapeTarget:
        """Keyed by the pod UID (the ledger's watermark owner)."""
        return ScrapeTarget(self.pod.uid or str(self.pod), self.host, self.port, self.path)


def inference_backend(pod: PodFacts) -> tuple[str, str] | None:
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
    for key in (LLMKUBE_RUNTIME, KSERVE_SERVICE):
        if key in pod.labels:
            return AUTO, f"label {key}"
    scrape = pod.annotations.get(SCRAPE_KEY)
    if scrape is not None and scrape.strip().lower() == "true":
        return AUTO, f"annotation {SCRAPE_KEY}"
    return None


def _container_ports(pod: PodFacts) -> list[tuple[str, str, int]]:
    """(container, port name or ``""``, number) of every declared port."""
    return [(c.name, name, number) for c in pod.containers for name, number in c.ports]


def _parse_port(pod: PodFacts, key: str, raw: str) -> int:
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


def metrics_port(pod: PodFacts, backend: str) -> int:
    annotations = pod.annotations
    for key in (PORT_KEY, KSERVE_PORT, PROMETHEUS_PORT):
        if key in annotations:
            return _parse_port(pod, key, annotations[key])
    if backend != AUTO:
        return BACKENDS[backend].default_port
    hint = (pod.labels.get(LLMKUBE_RUNTIME) or "").strip().lower()
    if hint in BACKENDS:
        return BACKENDS[hint].default_port
    raise DiscoveryError(
        f"backend auto needs a metrics port: set annotation {PORT_KEY} "
        f"(or {PROMETHEUS_PORT}, or {BACKEND_KEY} to a named backend)"
    )


def metrics_path(pod: PodFacts, backend: str) -> str:
    annotations = pod.annotations
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


def owner_name(pod: PodFacts) -> str | None:
    """The name of the pod's owning workload (ReplicaSet → its Deployment's name)."""
    owners = pod.owner_references
    if not owners:
        return None
    owner = next((o for o in owners if o.controller), owners[0])
    if not owner.name:
        return None
    if owner.kind == "ReplicaSet":
        return strip_template_hash(owner.name, pod.labels.get(POD_TEMPLATE_HASH))
    return owner.name


def model_fallback(pod: PodFacts) -> str:
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


def _serving_container(pod: PodFacts, port: int) -> str | None:
    for container, _, number in _container_ports(pod):
        if number == port:
            return container
    if len(pod.containers) == 1:
        return pod.containers[0].name
    return None


def inference_target(pod: PodFacts) -> InferenceTarget | None:
    """The scrape target of an inference pod, or None when the pod is not one (yet).

    A pod is a target when it is Running with an IP and matches SPEC §3.1 rules 1–3. Raises
    :class:`DiscoveryError` when it asks to be scraped with annotations that cannot be used.
    """
    matched = inference_backend(pod)
    if matched is None or not is_running_with_ip(pod):
        return None
    backend = matched[0]
    host = pod.pod_ip
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise DiscoveryError(f"status.podIP {host!r} is not an IP address") from None
    port = metrics_port(pod, backend)
    path = metrics_path(pod, backend)
    container = _serving_container(pod, port)
    restarts = {c.name: c.restart_count for c in pod.containers}
    return InferenceTarget(
        pod=pod_ref(pod),
        node=pod.node_name or None,
        backend=backend,
        host=host,
        port=port,
        path=path,
        model=model_fallback(pod),
        container=container,
        restart_count=restarts.get(container) if container is not None else None,
        pod_restarts=sum(restarts.values()),
        start_time=_utc(pod.start_time),
        phase=pod.phase,
        deleting=pod.deletion_timestamp is not None,
        family=(found[1].strip() or None)
        if (found := _lookup(pod, OPEN_WEIGHT_FAMILY_ANNOTATION)) is not None
        else None,
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


def _on_nodes(pod: PodFacts, nodes: Collection[str] | None) -> bool:
    return nodes is None or pod.node_name in nodes


def discover_inference(
    pods: Iterable[PodFacts], nodes: Collection[str] | None = None
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
    created: datetime | None = None
    """The exporter pod's creationTimestamp: of two exporters reporting one GPU UUID, the
    oldest wins (SPEC §4)."""

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}{self.path}"

    def scrape_target(self) -> ScrapeTarget:
        """Keyed by the exporter pod (``namespace/name``), or by the URL for ``--dcgm-url``."""
        key = str(self.pod) if self.pod is not None else self.url
        return ScrapeTarget(key, self.host, self.port, self.path, kind=TARGET_DCGM)


@attrs.frozen
class UntrustedExporter:
    """A pod labelled like a DCGM exporter outside the trusted namespaces: ignored."""

    pod: PodRef
    node: str


@attrs.frozen
class ExporterDiscovery:
    targets: tuple[ExporterTarget, ...]
    not_running: Mapping[str, tuple[PodRef, ...]]
    """Exporter pods found on a node that are not Running with an IP (node → pods)."""
    untrusted: tuple[UntrustedExporter, ...] = ()
    """Look-alikes outside the trusted namespaces, sorted by node and pod."""

    def nodes_with_exporters(self) -> set[str]:
        return {t.node for t in self.targets if t.node is not None}


def _exporter_port(pod: PodFacts, default: int) -> int:
    for _, name, number in _container_ports(pod):
        if name in DCGM_PORT_NAMES:
            return number
    return default


def discover_exporters(
    pods: Iterable[PodFacts],
    nodes: Collection[str] | None = None,
    selectors: Sequence[LabelSelector] | None = None,
    *,
    port: int | None = None,
    default_port: int = DCGM_DEFAULT_PORT,
    namespaces: Collection[str] = DEFAULT_DCGM_NAMESPACES,
) -> ExporterDiscovery:
    """DCGM exporter pods on ``nodes`` (SPEC §3.2): port ``port`` when given, else the
    container port named ``metrics``/``gpu-metrics``, else ``default_port`` (``--dcgm-port``,
    9400 by default). Only pods in ``namespaces`` (``--dcgm-namespaces``) are exporters; a
    look-alike elsewhere is listed in :attr:`ExporterDiscovery.untrusted` and never scraped."""
    chosen = selectors if selectors is not None else parse_dcgm_selectors()
    targets: list[ExporterTarget] = []
    not_running: dict[str, list[PodRef]] = {}
    untrusted: list[UntrustedExporter] = []
    for pod in pods:
        if not any(s.matches(pod.labels) for s in chosen):
            continue
        node = pod.node_name
        if not node or (nodes is not None and node not in nodes):
            continue
        ref = pod_ref(pod)
        if ref.namespace not in namespaces:
            untrusted.append(UntrustedExporter(ref, node))
            continue
        if not is_running_with_ip(pod):
            not_running.setdefault(node, []).append(ref)
            continue
        targets.append(
            ExporterTarget(
                node=node,
                pod=ref,
                host=pod.pod_ip,
                port=port if port is not None else _exporter_port(pod, default_port),
                created=_utc(pod.creation_timestamp),
            )
        )
    targets.sort(key=lambda t: (t.node or "", t.pod or PodRef("", "")))
    untrusted.sort(key=lambda u: (u.node, u.pod))
    return ExporterDiscovery(
        tuple(targets),
        {n: tuple(sorted(p)) for n, p in sorted(not_running.items())},
        tuple(untrusted),
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


def gpu_limit(pod: PodFacts) -> int:
    """Σ ``nvidia.com/gpu`` limits of the pod's containers."""
    return sum(c.gpu_limit for c in pod.containers)


def _mig_fraction(profile: str | None) -> float | None:
    """Compute slices of a MIG profile (``3g.40gb`` → 3/7 of the GPU)."""
    if not profile:
        return None
    match = re.match(r"^(\d+)g\.", profile)
    return min(1.0, int(match.group(1)) / 7.0) if match else None


def gpu_id(node: str, index: int | str) -> str:
    """The id of a GPU known only by its index on a node (no DCGM UUID): ``<node>/gpu<i>``.

    Stable across samples, so the ledger can keep per-GPU state for it as for a UUID."""
    return f"{node}/gpu{index}"


def node_gpu_ids(node: str, gpus: float, readings: Sequence[GpuReading] = ()) -> tuple[str, ...]:
    """Every GPU of ``node``: the UUIDs DCGM reports, then :func:`gpu_id` for each index
    below the node's GPU count (``nvidia.com/gpu`` capacity ÷ replicas) that no reading covers.
    """
    ids = [r.uuid for r in readings]
    covered = {r.gpu for r in readings}
    ids += [gpu_id(node, i) for i in range(math.ceil(gpus)) if str(i) not in covered]
    return tuple(ids)


@attrs.frozen
class Holding:
    """A pod holding GPUs on a node (SPEC §3.2, §5 "Holders by limits").

    ``shares`` maps each GPU the pod holds (a DCGM UUID, or :func:`gpu_id` when the GPU is
    known only by index) to the fraction of it the pod holds: ``1/k`` of a GPU DCGM assigns to
    ``k`` pods, a MIG instance's slices of 7 (``source="dcgm"``); with ``source="limits"`` the
    pod's ``nvidia.com/gpu`` limit ÷ max(node GPUs, Σ limits on the node) of every GPU of the
    node. ``inference`` tells whether the pod is one of the inference targets (else its GPUs
    book as ``(non-inference)``); a Pending pod bound to the node holds its GPUs too.
    """

    pod: PodRef
    node: str
    shares: Mapping[str, float]
    source: str
    inference: bool

    @property
    def gpus(self) -> float:
        """GPUs held, in whole-GPU units."""
        return sum(self.shares.values())

    @property
    def uuids(self) -> tuple[str, ...]:
        """The ids of the GPUs held (in part or whole)."""
        return tuple(self.shares)


@attrs.frozen
class NodeHoldings:
    node: str
    holdings: tuple[Holding, ...]
    unheld_uuids: tuple[str, ...]
    """GPUs DCGM reports with no holder (DCGM mapping only)."""


def _pods_on(pods: Iterable[PodFacts], node: str) -> list[PodFacts]:
    return [p for p in pods if p.node_name == node and p.phase not in ("Succeeded", "Failed")]


def node_holdings(
    node: str,
    pods: Iterable[PodFacts],
    readings: Sequence[GpuReading] = (),
    inference_uids: Collection[str] = (),
    node_gpus: float = 0.0,
) -> NodeHoldings:
    """Who holds the GPUs of ``node`` (SPEC §3.2): DCGM's pod labels when the exporter reports
    them for any GPU of the node, else the pods bound to the node (not Succeeded or Failed) by
    their ``nvidia.com/gpu`` limits. Pods holding GPUs are listed whether or not they serve
    inference.

    ``node_gpus`` is the node's GPU count (``nvidia.com/gpu`` capacity ÷ replicas, 0 when it
    reports none); holders by limits hold a share of each of :func:`node_gpu_ids`.
    """
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
                shares=MappingProxyType(per_gpu),
                source="dcgm",
                inference=ref.uid in inference_uids,
            )
            for ref, per_gpu in sorted(shares.items())
        )
        return NodeHoldings(node, mapped, tuple(unheld))
    ids = node_gpu_ids(node, node_gpus, readings)
    limits = [(pod_ref(p), gpu_limit(p)) for p in sorted(on_node, key=pod_ref)]
    limits = [(ref, n) for ref, n in limits if n > 0]
    denominator = max(float(node_gpus), float(sum(n for _, n in limits)))
    holdings = tuple(
        Holding(
            pod=ref,
            node=node,
            shares=MappingProxyType(dict.fromkeys(ids, n / denominator)),
            source="limits",
            inference=ref.uid in inference_uids,
        )
        for ref, n in limits
    )
    return NodeHoldings(node, holdings, ())
