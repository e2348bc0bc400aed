"""A simulated GPU cluster described as data, for ``infercost demo`` (and anything else that
wants a lively cluster in one call).

A scenario (YAML, format in docs/demo.md; the default is the package file ``demo.yaml``) lists
GPU nodes, pods on them with their backend, GPUs, power draw and token rates, and the
CostProfiles, UsageReports and TokenBudgets to create. :class:`SimulatedCluster` builds it with
the scenario harness (:mod:`infercost.testing.scenario`) on a fresh Kubernetes API emulator with
InferCost's CRDs: one simulated DCGM exporter per node (trusted namespace ``gpu-operator``), one
simulated inference server per inference pod on its own loopback address, all served from one
event loop, and the Pod, Node and CR objects pointing at them. Traffic and energy advance with
the clock given (real time by default), so an operator scraping them sees numbers move.

Parsing checks everything before anything starts and raises :class:`ScenarioError` naming the
field (``pods[2].gpus: ...``). Nothing here starts the operator.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Self

import attrs
import yaml

from infercost.api import GROUP, KINDS, ValidationError, parse_resource
from infercost.controllers.operator import CUSTOM_RESOURCES
from infercost.testing.kubesim import KubeSim
from infercost.testing.kubesim.crdfiles import default_crd_dirs
from infercost.testing.scenario import Scenario, make_pod
from infercost.testing.simservers.farm import ServerFarm
from infercost.testing.simservers.pages import GpuState
from infercost.testing.simservers.servers import (
    DEFAULT_PORTS,
    LoopbackPool,
    SimDcgmExporter,
    SimInferenceServer,
    bind,
)

__all__ = [
    "DEFAULT_OBJECT_NAMESPACE",
    "DEFAULT_SCENARIO",
    "ModelTraffic",
    "NodeSpec",
    "PodSpec",
    "ScenarioError",
    "ScenarioSpec",
    "SimulatedCluster",
    "load_scenario",
    "parse_scenario",
]

DEFAULT_SCENARIO = "demo.yaml"
"""The package file (in ``infercost.testing``) holding the default scenario."""
DEFAULT_OBJECT_NAMESPACE = "infercost-system"
"""Namespace of a scenario's CRs that name none (the operator's, as in manifests/samples)."""
EXPORTER_NAMESPACE = "gpu-operator"
DEFAULT_GPU_MODEL = "NVIDIA H100 80GB HBM3"
SINGLE_MODEL_BACKENDS = ("llamacpp", "tgi")
"""Backends whose metrics carry no model label: the model is named by annotation."""
# Every GPU's draw wobbles a little around its nominal watts, so power figures look alive.
_WOBBLE = 0.03
_WOBBLE_PERIOD_SECONDS = 37.0


class ScenarioError(ValueError):
    """A scenario that cannot be built; the message names the file, field and expectation."""


@attrs.frozen
class ModelTraffic:
    """One served model and its steady token rates (tokens per second)."""

    name: str
    input_per_second: float
    output_per_second: float
    cached_input_per_second: float = 0.0


@attrs.frozen
class NodeSpec:
    name: str
    gpus: int
    gpu_model: str = DEFAULT_GPU_MODEL
    labels: Mapping[str, str] = attrs.field(factory=dict)
    gpu_watts: float = 60.0
    """Draw of each GPU that no pod holds through an ``nvidia.com/gpu`` limit: an idle GPU, or
    one shared by pods without limits."""
    dcgm: bool = True


@attrs.frozen
class PodSpec:
    name: str
    namespace: str
    node: str
    backend: str | None = None
    """``None``: a pod that holds GPUs but serves no inference (training, notebooks)."""
    gpus: int = 0
    watts: float = 300.0
    """Draw of each GPU this pod holds."""
    models: tuple[ModelTraffic, ...] = ()
    labels: Mapping[str, str] = attrs.field(factory=dict)
    annotations: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class ScenarioSpec:
    nodes: tuple[NodeSpec, ...]
    pods: tuple[PodSpec, ...]
    objects: tuple[Mapping[str, Any], ...] = ()
    namespaces: tuple[str, ...] = ()
    origin: str = "scenario"

    def all_namespaces(self) -> list[str]:
        found = {*self.namespaces, EXPORTER_NAMESPACE, DEFAULT_OBJECT_NAMESPACE}
        found.update(p.namespace for p in self.pods)
        found.update(str(o["metadata"]["namespace"]) for o in self.objects)
        return sorted(found)

    def describe(self) -> str:
        """One sentence: what is simulated."""
        gpus = sum(n.gpus for n in self.nodes)
        backends = sorted(
            {_BACKEND_NAMES.get(p.backend, p.backend) for p in self.pods if p.backend}
        )
        inference = sum(1 for p in self.pods if p.backend)
        other = sum(1 for p in self.pods if not p.backend)
        teams = sorted({p.namespace for p in self.pods})
        return (
            f"{len(self.nodes)} GPU nodes ({gpus} GPUs), {inference} inference pods "
            f"({', '.join(backends)}) and {other} other GPU pod{'s' if other != 1 else ''} "
            f"in {len(teams)} namespaces"
        )


_BACKEND_NAMES = {
    "vllm": "vLLM",
    "llamacpp": "llama.cpp",
    "sglang": "SGLang",
    "tgi": "TGI",
    "triton": "Triton",
    "lmdeploy": "LMDeploy",
    "nim": "NIM",
}


# -- parsing ----------------------------------------------------------------------------------


class _Fields:
    """Typed reads from one mapping of the document, with errors naming the field path."""

    def __init__(self, raw: Any, where: str, known: Sequence[str]) -> None:
        if not isinstance(raw, Mapping):
            raise ScenarioError(f"{where}: expected a mapping, got {_kind(raw)}")
        unknown = sorted(str(k) for k in raw if k not in known)
        if unknown:
            raise ScenarioError(
                f"{where}.{unknown[0]}: unknown field (expected one of {', '.join(known)})"
            )
        self.raw = raw
        self.where = where

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def text(self, key: str, default: str | None = None) -> str:
        value = self.raw.get(key, default)
        if value is None:
            raise ScenarioError(f"{self.path(key)}: required")
        if not isinstance(value, str) or not value.strip():
            raise ScenarioError(f"{self.path(key)}: expected a non-empty string, got {value!r}")
        return value

    def optional_text(self, key: str) -> str | None:
        return None if self.raw.get(key) is None else self.text(key)

    def integer(self, key: str, default: int | None = None, minimum: int = 0) -> int:
        value = self.raw.get(key, default)
        if value is None:
            raise ScenarioError(f"{self.path(key)}: required")
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ScenarioError(
                f"{self.path(key)}: expected an integer >= {minimum}, got {value!r}"
            )
        return value

    def number(self, key: str, default: float, minimum: float = 0.0) -> float:
        value = self.raw.get(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < minimum
        ):
            raise ScenarioError(
                f"{self.path(key)}: expected a number >= {minimum:g}, got {value!r}"
            )
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise ScenarioError(f"{self.path(key)}: expected true or false, got {value!r}")
        return value

    def string_map(self, key: str) -> dict[str, str]:
        value = self.raw.get(key) or {}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ScenarioError(
                f"{self.path(key)}: expected a mapping of strings to strings (quote numbers)"
            )
        return dict(value)

    def items(self, key: str) -> list[Any]:
        value = self.raw.get(key) or []
        if not isinstance(value, list):
            raise ScenarioError(f"{self.path(key)}: expected a list, got {_kind(value)}")
        return value


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _node(raw: Any, where: str) -> NodeSpec:
    f = _Fields(raw, where, ("name", "gpus", "gpuModel", "labels", "gpuWatts", "dcgm"))
    return NodeSpec(
        name=f.text("name"),
        gpus=f.integer("gpus", minimum=1),
        gpu_model=f.text("gpuModel", DEFAULT_GPU_MODEL),
        labels=f.string_map("labels"),
        gpu_watts=f.number("gpuWatts", 60.0),
        dcgm=f.boolean("dcgm", True),
    )


def _model(raw: Any, where: str) -> ModelTraffic:
    f = _Fields(raw, where, ("name", "input", "cachedInput", "output"))
    traffic = ModelTraffic(
        name=f.text("name"),
        input_per_second=f.number("input", 0.0),
        output_per_second=f.number("output", 0.0),
        cached_input_per_second=f.number("cachedInput", 0.0),
    )
    if traffic.cached_input_per_second > traffic.input_per_second:
        raise ScenarioError(
            f"{where}.cachedInput: {traffic.cached_input_per_second:g} tokens/s is more than "
            f"input ({traffic.input_per_second:g}); cached input is part of input"
        )
    return traffic


def _pod(raw: Any, where: str) -> PodSpec:
    known = (
        "name",
        "namespace",
        "node",
        "backend",
        "gpus",
        "watts",
        "models",
        "labels",
        "annotations",
    )
    f = _Fields(raw, where, known)
    backend = f.optional_text("backend")
    if backend is not None and backend not in DEFAULT_PORTS:
        raise ScenarioError(
            f"{where}.backend: {backend!r} is not a simulated backend "
            f"(expected one of {', '.join(sorted(DEFAULT_PORTS))})"
        )
    models = tuple(_model(m, f"{where}.models[{i}]") for i, m in enumerate(f.items("models")))
    if backend is None and models:
        raise ScenarioError(f"{where}.models: a pod without a backend serves no models")
    if backend is not None and not models:
        raise ScenarioError(f"{where}.models: an inference pod needs at least one model")
    if backend in SINGLE_MODEL_BACKENDS and len(models) != 1:
        raise ScenarioError(f"{where}.models: {backend} serves exactly one model")
    pod = PodSpec(
        name=f.text("name"),
        namespace=f.text("namespace"),
        node=f.text("node"),
        backend=backend,
        gpus=f.integer("gpus", 0),
        watts=f.number("watts", 300.0),
        models=models,
        labels=f.string_map("labels"),
        annotations=f.string_map("annotations"),
    )
    if backend is None and not pod.gpus:
        raise ScenarioError(f"{where}: a pod without a backend must hold GPUs (gpus >= 1)")
    return pod


def _object(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping) or raw.get("kind") not in KINDS:
        raise ScenarioError(
            f"{where}: expected a CostProfile, UsageReport or TokenBudget "
            f"(apiVersion {GROUP}/v1alpha1), got {_kind(raw)}"
        )
    obj = dict(raw)
    metadata = dict(obj.get("metadata") or {})
    metadata.setdefault("namespace", DEFAULT_OBJECT_NAMESPACE)
    obj["metadata"] = metadata
    try:
        parse_resource(obj)
    except ValidationError as exc:
        raise ScenarioError(f"{where} ({obj['kind']}): {'; '.join(map(str, exc.errors))}") from exc
    return obj


def parse_scenario(document: Any, *, origin: str = "scenario") -> ScenarioSpec:
    """Validate a parsed scenario document (errors are prefixed with ``origin``)."""
    try:
        f = _Fields(document, "", ("nodes", "pods", "objects", "namespaces"))
        nodes = tuple(_node(n, f"nodes[{i}]") for i, n in enumerate(f.items("nodes")))
        pods = tuple(_pod(p, f"pods[{i}]") for i, p in enumerate(f.items("pods")))
        objects = tuple(_object(o, f"objects[{i}]") for i, o in enumerate(f.items("objects")))
        namespaces = tuple(str(n) for n in f.items("namespaces"))
        if not nodes:
            raise ScenarioError("nodes: at least one GPU node is needed")
        _check_placement(nodes, pods)
        _check_unique("nodes", [n.name for n in nodes])
        _check_unique("pods", [f"{p.namespace}/{p.name}" for p in pods])
        _check_unique(
            "objects",
            [f"{o['kind']} {o['metadata']['namespace']}/{o['metadata']['name']}" for o in objects],
        )
    except ScenarioError as exc:
        raise ScenarioError(f"{origin}: {exc}") from None
    return ScenarioSpec(nodes, pods, objects, namespaces, origin)


def _check_unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ScenarioError(f"{what}[{i}]: {name} is listed twice")
        seen.add(name)


def _check_placement(nodes: Sequence[NodeSpec], pods: Sequence[PodSpec]) -> None:
    by_name = {n.name: n for n in nodes}
    held: dict[str, int] = {}
    for i, pod in enumerate(pods):
        node = by_name.get(pod.node)
        if node is None:
            raise ScenarioError(
                f"pods[{i}].node: no node {pod.node!r} (nodes: {', '.join(by_name)})"
            )
        held[node.name] = held.get(node.name, 0) + pod.gpus
        if held[node.name] > node.gpus:
            raise ScenarioError(
                f"pods[{i}].gpus: node {node.name} has {node.gpus} GPUs; its pods ask for "
                f"{held[node.name]}"
            )


def load_scenario(path: str | os.PathLike[str] | None = None) -> ScenarioSpec:
    """The scenario in ``path`` (YAML), or the default one shipped with InferCost."""
    if path is None:
        text = resources.files("infercost.testing").joinpath(DEFAULT_SCENARIO).read_text("utf-8")
        origin = f"infercost/testing/{DEFAULT_SCENARIO}"
    else:
        origin = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ScenarioError(f"{origin}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"{origin}: cannot read: {exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ScenarioError(f"{origin}: not valid YAML{where}: {problem}") from None
    return parse_scenario(document, origin=origin)


# -- running ----------------------------------------------------------------------------------


def _wobble(watts: float, phase: float) -> Callable[[float], float]:
    def curve(t: float) -> float:
        return watts * (1 + _WOBBLE * math.sin(2 * math.pi * t / _WOBBLE_PERIOD_SECONDS + phase))

    return curve


class _FarmServers:
    """The harness's :class:`~infercost.testing.scenario.ServerFactory` on one event loop
    (:class:`ServerFarm`), each server on its own loopback address."""

    def __init__(self, pool: LoopbackPool) -> None:
        self.pool = pool
        self.farm = ServerFarm()
        self.started: list[SimInferenceServer | SimDcgmExporter] = []

    def inference(self, backend: str, **options: Any) -> SimInferenceServer:
        holder: list[SimInferenceServer] = []

        def make(ip: str) -> Any:
            holder.append(SimInferenceServer(backend, ip, http_factory=self.farm.add, **options))
            return holder[-1].http

        bind(self.pool, make)
        self.started.append(holder[-1])
        return holder[-1]

    def dcgm(self, **options: Any) -> SimDcgmExporter:
        holder: list[SimDcgmExporter] = []

        def make(ip: str) -> Any:
            holder.append(SimDcgmExporter(ip, http_factory=self.farm.add, **options))
            return holder[-1].http

        bind(self.pool, make)
        self.started.append(holder[-1])
        return holder[-1]

    def close(self) -> None:
        self.farm.close()
        for server in self.started:
            self.pool.release(server.host)
        self.started.clear()


def _gpus(node: NodeSpec) -> list[GpuState]:
    """The node's GPUs as its exporter reports them (stable UUIDs, the scenario's model)."""
    return [
        GpuState(
            index=i,
            uuid=f"GPU-{uuid.uuid5(uuid.NAMESPACE_URL, f'infercost-demo/{node.name}/{i}')}",
            model_name=node.gpu_model,
            energy_mj=1_000_000_000 + i * 12_345_678,
        )
        for i in range(node.gpus)
    ]


class SimulatedCluster:
    """The running form of a :class:`ScenarioSpec`, built with the scenario harness
    (:class:`infercost.testing.scenario.Scenario`): emulator, simulated servers, objects.

    ``start()`` brings everything up (and stops what it started if a step fails); ``stop()``
    closes every listening socket. ``harness`` gives the ground truth (``harness.truth()``)
    and the pods' servers; ``addresses`` lists what listens while it runs.
    """

    def __init__(
        self,
        spec: ScenarioSpec,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        kubeconfig_path: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.time,
        pool: LoopbackPool | None = None,
    ) -> None:
        self.spec = spec
        self.clock = clock
        self.sim = KubeSim(
            crd_dirs=default_crd_dirs(),
            host=host,
            port=port,
            kubeconfig_path=kubeconfig_path,
            namespaces=spec.all_namespaces(),
        )
        self._pool = pool or LoopbackPool()
        self._servers: _FarmServers | None = None
        self.harness: Scenario | None = None
        self.exporters: dict[str, SimDcgmExporter] = {}  # node -> exporter

    @property
    def kubeconfig(self) -> str:
        return self.sim.kubeconfig

    @property
    def url(self) -> str:
        return self.sim.url

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Every ``(host, port)`` this cluster listens on."""
        found = [(self.sim.host, self.sim.port)]
        if self._servers is not None:
            found.extend((s.host, s.port) for s in self._servers.started)
        return found

    def start(self) -> Self:
        self.sim.start()
        try:
            self._servers = _FarmServers(self._pool)
            harness = Scenario.on_emulator(self.sim, self._servers, clock=self.clock)
            self.harness = harness
            stamp = dt.datetime.fromtimestamp(self.clock(), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            for node in self.spec.nodes:
                self._start_node(harness, node)
            for index, pod in enumerate(self.spec.pods):
                self._start_pod(harness, pod, index, stamp)
            for obj in self.spec.objects:
                harness.create(CUSTOM_RESOURCES[str(obj["kind"])], obj)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._servers is not None:
            self._servers.close()
            self._servers = None
        self.sim.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _start_node(self, harness: Scenario, node: NodeSpec) -> None:
        harness.node(node.name, gpus=node.gpus, labels=dict(node.labels))
        if not node.dcgm:
            return
        exporter = harness.exporter(node.name, gpus=_gpus(node), watts=None)
        for gpu in range(node.gpus):
            exporter.set_power(gpu, _wobble(node.gpu_watts, phase=gpu))
        self.exporters[node.name] = exporter

    def _start_pod(self, harness: Scenario, pod: PodSpec, index: int, stamp: str) -> None:
        labels = {"app.kubernetes.io/name": pod.name.rsplit("-", 1)[0], **pod.labels}
        if pod.backend is None:
            harness.pod(
                make_pod(
                    pod.name,
                    namespace=pod.namespace,
                    ip=None,
                    node=pod.node,
                    labels=labels,
                    annotations=dict(pod.annotations),
                    gpus=pod.gpus,
                    start_time=stamp,
                    creation_timestamp=stamp,
                )
            )
        else:
            annotations = dict(pod.annotations)
            if pod.backend in SINGLE_MODEL_BACKENDS:
                annotations.setdefault("infercost.ai/model", pod.models[0].name)
            served = harness.inference(
                pod.name,
                node=pod.node,
                namespace=pod.namespace,
                backend=pod.backend,
                models=[m.name for m in pod.models],
                gpus=pod.gpus,
                annotations=annotations,
                labels=labels,
                start_time=stamp,
                creation_timestamp=stamp,
            )
            for model in pod.models:
                served.server.set_rate(
                    model.input_per_second,
                    model.output_per_second,
                    cached_per_second=model.cached_input_per_second,
                    model=model.name,
                )
        exporter = self.exporters.get(pod.node)
        if exporter is not None and pod.gpus:
            free = [g.index for g in exporter.gpus if not g.pod]
            for gpu in free[: pod.gpus]:
                exporter.assign(gpu, pod.namespace, pod.name)
                exporter.set_power(gpu, _wobble(pod.watts, phase=index + gpu))
