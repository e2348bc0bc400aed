"""Scenarios: a GPU cluster under test, built one way for unit tests, e2e, the demo and benchmarks.

Three layers, each usable alone:

- **builders** — plain dicts as the API server takes them: :func:`gpu_node`,
  :func:`costprofile`, :func:`usagereport`, :func:`tokenbudget` (and, from
  :mod:`.simservers.objects`, the pods :func:`make_pod` and :func:`make_dcgm_exporter_pod`);
- :class:`Scenario` — creates those objects through a :class:`~infercost.kube.rest.RestClient`
  (the emulator, or any cluster), starts a simulated inference server or DCGM exporter on a
  loopback address for each pod that needs one, drives traffic on one clock, and keeps the
  ground truth: the tokens every pod served, per model;
- :class:`InProcessLeader` — the leader's sampler and CostProfile reconciler in this process on
  a :class:`~infercost.kube.clock.FakeClock`, stepped explicitly (one :meth:`~InProcessLeader.
  step` is one sample and a reconcile of every profile), with readers for what a user sees:
  status, conditions, Events, series.

Nothing here imports pytest, so the demo can use it from the wheel. When a scenario is told
which informer caches to wait for (:meth:`Scenario.wait_for_caches`), every write returns only
once those caches hold the result: tests never race their own setup.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from infercost.collect.scraping import Scraper
from infercost.controllers.costprofile import CostProfileReconciler
from infercost.controllers.operator import CUSTOM_RESOURCES
from infercost.controllers.sampling import Sampler, SamplerSettings
from infercost.kube.clock import FakeClock
from infercost.kube.events import EventRecorder, ObjectRef
from infercost.kube.health import HealthMetrics
from infercost.kube.informer import Informer, InformerFactory
from infercost.kube.rest import (
    EVENTS,
    NODES,
    PODS,
    ConflictError,
    NotFoundError,
    Resource,
    RestClient,
)
from infercost.kube.status import StatusWriter
from infercost.kube.transforms import GPU_REPLICAS_LABEL
from infercost.outputs.metrics import CostProfileCollector
from infercost.testing.kubesim import KubeSim
from infercost.testing.simservers.objects import make_dcgm_exporter_pod, make_node, make_pod
from infercost.testing.simservers.pages import GpuState
from infercost.testing.simservers.servers import SimDcgmExporter, SimInferenceServer

__all__ = [
    "COSTPROFILES",
    "NAMESPACES",
    "TOKENBUDGETS",
    "USAGEREPORTS",
    "InProcessLeader",
    "InferencePod",
    "Scenario",
    "ServerFactory",
    "costprofile",
    "gpu_node",
    "make_dcgm_exporter_pod",
    "make_pod",
    "tokenbudget",
    "usagereport",
    "wait_until",
]

COSTPROFILES = CUSTOM_RESOURCES["CostProfile"]
USAGEREPORTS = CUSTOM_RESOURCES["UsageReport"]
TOKENBUDGETS = CUSTOM_RESOURCES["TokenBudget"]
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", False)
_API_VERSION = f"{COSTPROFILES.group}/{COSTPROFILES.version}"


def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, what: str = "", interval: float = 0.02
) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); ``AssertionError``
    naming ``what`` after ``timeout`` real seconds. Only for effects of other threads."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


# -- builders ------------------------------------------------------------------------------------


def gpu_node(
    name: str,
    *,
    gpus: int | None = 8,
    labels: Mapping[str, str] | None = None,
    replicas: int | None = None,
    boot_id: str = "5b3c8f2e-0d6a-4e71-9a43-1f2e3d4c5b6a",
) -> dict[str, Any]:
    """A Node advertising ``gpus`` ``nvidia.com/gpu`` (``None``: no GPU resource); with
    ``replicas``, time-sliced: the ``nvidia.com/gpu.replicas`` label and ``gpus × replicas``
    schedulable GPUs, as NVIDIA's GPU feature discovery sets them."""
    all_labels = dict(labels or {})
    capacity = gpus
    if replicas is not None:
        all_labels[GPU_REPLICAS_LABEL] = str(replicas)
        capacity = None if gpus is None else gpus * replicas
    return make_node(name, gpus=capacity, labels=all_labels, boot_id=boot_id)


def costprofile(
    name: str,
    *,
    namespace: str = "default",
    selector: Mapping[str, str] | None = None,
    gpu_model: str = "NVIDIA H100 80GB HBM3",
    gpu_count: int = 8,
    purchase_price_usd: float = 240_000.0,
    amortization_years: float = 3.0,
    maintenance_percent_per_year: float = 0.0,
    tdp_watts: float | None = None,
    purchase_date: str | None = None,
    rate_per_kwh: float = 0.10,
    pue_factor: float = 1.0,
) -> dict[str, Any]:
    """A CostProfile; ``selector`` is its ``nodeSelector`` (omitted when ``None``)."""
    hardware: dict[str, Any] = {
        "gpuModel": gpu_model,
        "gpuCount": gpu_count,
        "purchasePriceUSD": purchase_price_usd,
        "amortizationYears": amortization_years,
        "maintenancePercentPerYear": maintenance_percent_per_year,
    }
    if tdp_watts is not None:
        hardware["tdpWatts"] = tdp_watts
    if purchase_date is not None:
        hardware["purchaseDate"] = purchase_date
    spec: dict[str, Any] = {
        "hardware": hardware,
        "electricity": {"ratePerKWh": rate_per_kwh, "pueFactor": pue_factor},
    }
    if selector is not None:
        spec["nodeSelector"] = dict(selector)
    return _custom("CostProfile", name, namespace, spec)


def usagereport(
    name: str,
    *,
    namespace: str = "default",
    profile: str,
    schedule: str = "daily",
    namespaces: Sequence[str] = (),
    history_limit: int | None = None,
) -> dict[str, Any]:
    """A UsageReport of CostProfile ``profile`` (in the report's namespace)."""
    spec: dict[str, Any] = {"costProfileRef": profile, "schedule": schedule}
    if namespaces:
        spec["namespaces"] = list(namespaces)
    if history_limit is not None:
        spec["historyLimit"] = history_limit
    return _custom("UsageReport", name, namespace, spec)


def tokenbudget(
    name: str,
    *,
    namespace: str = "default",
    scope: str,
    monthly_limit_usd: float,
    thresholds: Iterable[tuple[int, str]] = (),
    forecast_alert: bool = True,
) -> dict[str, Any]:
    """A TokenBudget on namespace ``scope``; ``thresholds`` are (percent, severity)."""
    spec: dict[str, Any] = {
        "scope": {"namespace": scope},
        "monthlyLimitUSD": monthly_limit_usd,
        "forecastAlert": forecast_alert,
    }
    alert = [{"percent": p, "severity": s} for p, s in thresholds]
    if alert:
        spec["alertThresholds"] = alert
    return _custom("TokenBudget", name, namespace, spec)


def _custom(kind: str, name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": _API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


# -- the scenario --------------------------------------------------------------------------------


class ServerFactory(Protocol):
    """Starts simulated servers on loopback addresses
    (:class:`~infercost.testing.simservers.fixtures.SimServers`)."""

    def inference(self, backend: str, **options: Any) -> SimInferenceServer: ...

    def dcgm(self, **options: Any) -> SimDcgmExporter: ...


@attrs.frozen
class InferencePod:
    """An inference pod of the scenario and the simulated server its IP points at."""

    namespace: str
    name: str
    uid: str
    node: str
    server: SimInferenceServer

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def serve(
        self, input_tokens: int, output_tokens: int, *, cached: int = 0, model: str | None = None
    ) -> None:
        """One request on the pod's server (counters and ground truth move together)."""
        self.server.serve(input_tokens, output_tokens, cached_tokens=cached, model=model)


Truth = dict[tuple[str, str, str], dict[str, int]]
"""(namespace, pod name, model) → role (``input``, ``cached``, ``output``) → tokens served."""


class Scenario:
    """The objects of one scenario in an API server, their simulated servers and ground truth.

    ``clock`` is what the simulated servers read (epoch seconds) to integrate rates and
    power: a :class:`FakeClock` (its ``time``), a :class:`~.simservers.servers.SimClock`, or
    ``time.time`` for a demo in real time. :meth:`advance` moves it when it can be moved.
    """

    def __init__(
        self,
        rest: RestClient,
        servers: ServerFactory,
        *,
        clock: Any = None,
        sim: KubeSim | None = None,
    ) -> None:
        self.rest = rest
        self.servers = servers
        self.clock = clock
        self.sim = sim
        """The emulator, when the scenario runs on one (fault injection, request log)."""
        self._now: Callable[[], float] | None = None
        if clock is not None:
            self._now = clock.time if isinstance(clock, FakeClock) else clock
        self.pods: dict[str, InferencePod] = {}
        self._retired: list[InferencePod] = []
        self._caches: list[Informer] = []
        self._namespaces: set[str] = set()

    @classmethod
    def on_emulator(cls, sim: KubeSim, servers: ServerFactory, *, clock: Any = None) -> Scenario:
        """A scenario on a running :class:`KubeSim`."""
        return cls(RestClient(sim.api_client()), servers, clock=clock, sim=sim)

    def requests(self) -> list[Any]:
        """The emulator's request log (verb, path, status) of everything sent so far."""
        if self.sim is None:
            raise TypeError("the request log needs a scenario on the emulator")
        return list(self.sim.requests())

    # -- waiting for caches ----------------------------------------------------------------

    def wait_for_caches(self, informers: InformerFactory) -> None:
        """From now on, each write returns once these informers' caches reflect it."""
        self._caches = informers.informers()

    def _settle(self, resource: Resource, obj: Mapping[str, Any] | None, key: str) -> None:
        """Wait until the caches of ``resource`` reflect a write: the object is gone (``obj``
        None), or it is cached and the informer has seen the write's resourceVersion (cached
        pods keep none of their own). Resource versions are compared as numbers, as the
        emulator and etcd make them."""
        caches = [i for i in self._caches if i.resource == resource]
        if not caches:
            return
        rv = "" if obj is None else str((obj.get("metadata") or {}).get("resourceVersion") or "")
        written = int(rv) if rv.isdigit() else None

        def current() -> bool:
            for inf in caches:
                cached = inf.store.get(key)
                if obj is None:
                    if cached is not None:
                        return False
                    continue
                seen = inf.resource_version
                if cached is None or (
                    written is not None and not (seen.isdigit() and int(seen) >= written)
                ):
                    return False
            return True

        wait_until(current, what=f"{resource.kind} {key} in the cache")

    # -- objects -----------------------------------------------------------------------------

    def namespace(self, name: str) -> None:
        """Make sure namespace ``name`` exists."""
        if name in self._namespaces:
            return
        with contextlib.suppress(ConflictError):  # it exists already
            self.rest.create(
                NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            )
        self._namespaces.add(name)

    def create(self, resource: Resource, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create ``obj`` (its namespace first, when namespaced)."""
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "") if resource.namespaced else ""
        if namespace:
            self.namespace(namespace)
        created = self.rest.create(resource, dict(obj), namespace or None)
        self._settle(resource, created, _key(namespace, str(meta["name"])))
        return created

    def patch(
        self, resource: Resource, name: str, patch: Mapping[str, Any], namespace: str = ""
    ) -> dict[str, Any]:
        """A JSON merge patch of ``name``."""
        result = self.rest.merge_patch(resource, name, dict(patch), namespace or None)
        self._settle(resource, result, _key(namespace, name))
        return result

    def delete(self, resource: Resource, name: str, namespace: str = "") -> None:
        self.rest.delete(resource, name, namespace or None)
        self._settle(resource, None, _key(namespace, name))

    def node(
        self,
        name: str,
        *,
        gpus: int | None = 8,
        labels: Mapping[str, str] | None = None,
        replicas: int | None = None,
        boot_id: str = "5b3c8f2e-0d6a-4e71-9a43-1f2e3d4c5b6a",
    ) -> dict[str, Any]:
        """A GPU node (see :func:`gpu_node`)."""
        return self.create(
            NODES, gpu_node(name, gpus=gpus, labels=labels, replicas=replicas, boot_id=boot_id)
        )

    def pod(self, pod: Mapping[str, Any]) -> dict[str, Any]:
        """Create a pod and set its status (phase, IP, restarts) as the kubelet would."""
        meta = pod["metadata"]
        namespace, name = str(meta["namespace"]), str(meta["name"])
        self.namespace(namespace)
        self.rest.create(PODS, dict(pod), namespace)
        result = self.rest.merge_patch(PODS, name, {"status": pod["status"]}, namespace, "status")
        self._settle(PODS, result, _key(namespace, name))
        return result

    def pod_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch a pod's status (phase, restart counts, IP)."""
        result = self.rest.merge_patch(PODS, name, {"status": dict(status)}, namespace, "status")
        self._settle(PODS, result, _key(namespace, name))
        return result

    def exporter(
        self,
        node: str,
        *,
        gpus: int | Sequence[GpuState] = 2,
        watts: float | None = 300.0,
        pod_mapping: bool = True,
        port: int = 9400,
        **pod_options: Any,
    ) -> SimDcgmExporter:
        """A simulated dcgm-exporter for ``node`` and its pod (``gpu-operator`` namespace by
        default; ``pod_options`` go to :func:`make_dcgm_exporter_pod`). ``watts`` sets every
        GPU's power (``None`` keeps what ``gpus`` says)."""
        exporter = self.servers.dcgm(
            **self._clock_option(), gpus=gpus, node=node, pod_mapping=pod_mapping, port=port
        )
        if watts is not None:
            for gpu in exporter.gpus:
                exporter.set_power(gpu.index, watts)
        pod_options.setdefault("port", port)
        self.pod(make_dcgm_exporter_pod(node, exporter.host, **pod_options))
        return exporter

    def inference(
        self,
        name: str,
        *,
        node: str,
        namespace: str = "default",
        backend: str = "vllm",
        models: Sequence[str] | None = None,
        engines: int = 1,
        gpus: int = 1,
        annotations: Mapping[str, str] | None = None,
        **pod_options: Any,
    ) -> InferencePod:
        """An inference pod on ``node`` (``infercost.ai/backend: <backend>``) and the simulated
        server at its IP; ``pod_options`` go to :func:`make_pod`."""
        options: dict[str, Any] = {**self._clock_option(), "engines": engines}
        if models is not None:
            options["models"] = list(models)
        server = self.servers.inference(backend, **options)
        created = self.pod(
            make_pod(
                name,
                namespace=namespace,
                ip=server.host,
                node=node,
                annotations={"infercost.ai/backend": backend, **(annotations or {})},
                gpus=gpus,
                **pod_options,
            )
        )
        pod = InferencePod(namespace, name, str(created["metadata"]["uid"]), node, server)
        if pod.key in self.pods:
            self._retired.append(self.pods[pod.key])
        self.pods[pod.key] = pod
        return pod

    def restart(self, pod: InferencePod, container: str = "server") -> None:
        """The serving container restarts: its counters start over, ``restartCount`` grows."""
        current = self.rest.get(PODS, pod.name, pod.namespace)
        statuses = (current.get("status") or {}).get("containerStatuses") or []
        bumped = [
            {**s, "restartCount": int(s.get("restartCount") or 0) + (s.get("name") == container)}
            for s in statuses
        ]
        pod.server.reset()
        self.pod_status(pod.namespace, pod.name, {"containerStatuses": bumped})

    def costprofile(self, name: str, **spec: Any) -> dict[str, Any]:
        """A CostProfile (see :func:`costprofile` for the fields)."""
        return self.create(COSTPROFILES, costprofile(name, **spec))

    def usagereport(self, name: str, **spec: Any) -> dict[str, Any]:
        return self.create(USAGEREPORTS, usagereport(name, **spec))

    def tokenbudget(self, name: str, **spec: Any) -> dict[str, Any]:
        return self.create(TOKENBUDGETS, tokenbudget(name, **spec))

    def edit_costprofile(
        self, name: str, spec: Mapping[str, Any], namespace: str = "default"
    ) -> dict[str, Any]:
        """Merge ``spec`` into a CostProfile's spec (``None`` values remove fields)."""
        return self.patch(COSTPROFILES, name, {"spec": dict(spec)}, namespace)

    # -- traffic and ground truth --------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the scenario's clock (rates and power curves integrate over it)."""
        if self.clock is None or not hasattr(self.clock, "advance"):
            raise TypeError("this scenario's clock cannot be advanced")
        self.clock.advance(seconds)

    def truth(self) -> Truth:
        """Tokens every inference pod of the scenario served, per model, summed over pods
        re-created under the same name and across counter resets."""
        out: Truth = {}
        for pod in [*self._retired, *self.pods.values()]:
            for (model, role), value in pod.server.truth().items():
                roles = out.setdefault((pod.namespace, pod.name, model), {})
                roles[role] = roles.get(role, 0) + value
        return out

    def _clock_option(self) -> dict[str, Any]:
        return {} if self._now is None else {"clock": self._now}


def _key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


# -- the leader's components in process ------------------------------------------------------


class InProcessLeader:
    """Informers, the sampler and the CostProfile reconciler of a leader, on one FakeClock.

    Nothing runs by itself: :meth:`step` takes a sample and reconciles every CostProfile, so
    tests move time with the clock and never wait for an interval. :meth:`close` stops the
    informers and releases the scraper.
    """

    def __init__(
        self,
        scenario: Scenario,
        clock: FakeClock,
        *,
        interval_seconds: float = 30.0,
        status_interval_seconds: float = 60.0,
        scraper_factory: Callable[[], Scraper] | None = None,
        **settings: Any,
    ) -> None:
        self.scenario = scenario
        self.clock = clock
        self.rest = scenario.rest
        self.interval_seconds = interval_seconds
        self.informers = InformerFactory(self.rest)
        self.pods = self.informers.pods()
        self.nodes = self.informers.nodes()
        self.profiles = self.informers.informer(COSTPROFILES)
        self.metrics = HealthMetrics(CollectorRegistry())
        self.settings = SamplerSettings(
            interval_seconds=interval_seconds,
            **{"timeout_seconds": 2.0, "concurrency": 8, **settings},
        )
        self.sampler = Sampler(
            pods=self.pods,
            nodes=self.nodes,
            profiles=self.profiles,
            settings=self.settings,
            clock=clock,
            metrics=self.metrics,
            scraper_factory=scraper_factory,
        )
        self.collector = CostProfileCollector()
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)
        self.writer = StatusWriter(
            self.rest,
            COSTPROFILES,
            interval_seconds=status_interval_seconds,
            clock=clock,
            metrics=self.metrics,
        )
        self.events = EventRecorder(self.rest, clock=clock)
        self.reconciler = CostProfileReconciler(
            profiles=self.profiles,
            sampler=self.sampler,
            writer=self.writer,
            events=self.events,
            collector=self.collector,
            clock=clock,
            scrape_interval=interval_seconds,
            profile_namespaces=self.settings.profile_namespaces,
            object_ref=lambda obj: ObjectRef.of(obj, COSTPROFILES),
        )
        self.informers.start()
        wait_until(self.informers.has_synced, what="caches synced")
        scenario.wait_for_caches(self.informers)

    def close(self) -> None:
        self.informers.stop()
        self.informers.join(5)
        self.sampler.close()

    # -- driving -----------------------------------------------------------------------------

    def settle(self, key: str) -> None:
        """Wait until the CostProfile cache holds the server's current version of ``key``."""
        namespace, _, name = key.partition("/")

        def current() -> bool:
            try:
                server_rv = self.rest.get(COSTPROFILES, name, namespace)["metadata"][
                    "resourceVersion"
                ]
            except NotFoundError:
                return self.profiles.store.get(key) is None
            cached = self.profiles.store.get(key)
            return cached is not None and cached["metadata"]["resourceVersion"] == server_rv

        wait_until(current, what=f"{key} cached")

    def reconcile(self, key: str) -> Any:
        """One reconcile of CostProfile ``key`` on an up-to-date cache; its result."""
        self.settle(key)
        result = self.reconciler.reconcile(key)
        self.settle(key)
        return result

    def step(self, *, sample: bool = True) -> dict[str, Any]:
        """A sample (unless ``sample=False``), then a reconcile of every CostProfile."""
        if sample:
            self.sampler.sample_once()
        return {key: self.reconcile(key) for key in sorted(self.profiles.store.list_keys())}

    # -- what a user sees ----------------------------------------------------------------------

    def status(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return self.rest.get(COSTPROFILES, name, namespace).get("status") or {}

    def condition(self, name: str, type_: str, namespace: str = "default") -> dict[str, Any]:
        for cond in self.status(name, namespace).get("conditions") or ():
            if cond["type"] == type_:
                return dict(cond)
        raise AssertionError(f"{namespace}/{name} has no {type_} condition")

    def status_patches(self, name: str | None = None) -> int:
        """Status writes of CostProfiles (of ``name``) the API server received."""
        return sum(
            1
            for r in self.scenario.requests()
            if r.method == "PATCH"
            and "/costprofiles/" in r.path
            and r.path.endswith("/status")
            and (name is None or r.path.endswith(f"/{name}/status"))
        )

    def events_of(self, name: str, namespace: str = "default") -> list[tuple[str, str, str]]:
        """(type, reason, message) of the Events on object ``name``."""
        items = self.rest.list(EVENTS, namespace)["items"]
        return [
            (e["type"], e["reason"], e["message"])
            for e in items
            if e["involvedObject"]["name"] == name
        ]

    def event_count(self, name: str, reason: str, namespace: str = "default") -> int:
        """How many times an Event of ``reason`` was recorded on ``name`` (repeats counted)."""
        return sum(
            int(e.get("count") or 1)
            for e in self.rest.list(EVENTS, namespace)["items"]
            if e["involvedObject"]["name"] == name and e["reason"] == reason
        )

    def series(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The CostProfile series as a scrape renders them: (name, sorted labels) → value."""
        text = generate_latest(self.registry).decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def health(self, name: str, labels: Mapping[str, str]) -> float | None:
        """A health series' value (``None`` when absent)."""
        return self.metrics.registry.get_sample_value(name, dict(labels))

    def last_updated_series(self, name: str, namespace: str = "default") -> float | None:
        return self.health(
            "infercost_object_last_updated_timestamp_seconds",
            {"kind": "CostProfile", "object": name, "object_namespace": namespace},
        )
