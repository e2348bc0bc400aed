"""The sampler loop: every ``--scrape-interval``, read every inference pod and DCGM exporter on
the nodes that CostProfiles own, and publish one immutable :class:`Sample`.

One cycle, on the leader only:

1. membership (:mod:`.membership`) from the cached CostProfiles and Nodes: which profile owns
   which node at this instant;
2. discovery (:mod:`infercost.collect.discovery`) on the cached pods of the owned nodes:
   inference targets, DCGM exporter pods, and — after the scrape — GPU holders;
3. one concurrent scrape of every target (inference pods, exporter pods, ``--dcgm-url``
   targets) through one :class:`~infercost.collect.scraping.Scraper`, bounded by
   ``--scrape-concurrency`` and ``--scrape-timeout``;
4. reading the pages: token readings per pod with their full series labels, power and energy
   per GPU deduplicated by UUID, exporter status per node; the scrape health series
   (``infercost_scrape_duration_seconds``, ``infercost_scrape_errors_total``) are recorded;
5. publishing: :meth:`Sampler.latest` returns the new sample and every listener
   (:meth:`Sampler.add_listener`) is called with it, on the sampler's thread.

The sample is the single per-interval record of what the cluster looked like: the CostProfile
controller derives status from it, and the ledger books deltas between consecutive samples
(token readings per pod UID and series, energy counters per GPU UUID, holders, node boot IDs,
the sample time). Nothing in a sample is mutated after it is published.

The sampler remembers, per pod UID, whether a scrape of the current container incarnation ever
succeeded: a refused connection before that means the server is still loading (``starting``),
not an error (SPEC §3.1). Refusals of starting pods are not counted as scrape errors.

It never writes to the API server. Besides the periodic tick, a change of a CostProfile's
selector, a new or deleted profile, or a change of node labels wakes it early (at most once
per second) so a new profile gets its figures quickly.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs
import structlog

from infercost.api import COSTPROFILE, ValidationError, parse_costprofile
from infercost.collect import DEFAULT_DCGM_NAMESPACES
from infercost.collect.dcgm import GpuReading
from infercost.collect.discovery import (
    ExporterTarget,
    LabelSelector,
    NodeHoldings,
    PodProblem,
    discover_exporters,
    discover_inference,
    node_holdings,
    parse_dcgm_selectors,
    parse_dcgm_url,
)
from infercost.collect.errors import ScrapeError
from infercost.collect.inference import PodScrape, read_pods
from infercost.collect.power import gather_dcgm
from infercost.collect.scraping import (
    FAILED,
    OK,
    ScrapeCancelledError,
    Scraper,
    ScrapeResult,
    ScrapeTarget,
)
from infercost.controllers.membership import (
    Membership,
    NodeFacts,
    ProfileClaim,
    ProfileMembership,
    namespace_allowed,
    resolve_membership,
)
from infercost.engine.costmodel import ExporterStatus, GpuPower
from infercost.kube.cache import NODE_INDEX
from infercost.kube.client import StartupError
from infercost.kube.clock import Clock, RealClock
from infercost.kube.health import HealthMetrics
from infercost.kube.informer import EventHandler, Informer
from infercost.kube.transforms import NodeInfo, PodInfo, parse_time, pod_object

__all__ = [
    "NodeSample",
    "ProfileSample",
    "Sample",
    "Sampler",
    "SamplerSettings",
    "shared_sampler",
]

log = structlog.get_logger("infercost.controllers.sampling")

MIN_WAKE_SPACING_SECONDS = 1.0
"""Early samples (triggered by profile or node changes) are at least this far apart."""


@attrs.frozen
class SamplerSettings:
    """What the sampler takes from the operator's configuration."""

    interval_seconds: float = 30.0
    timeout_seconds: float = 5.0
    concurrency: int = 32
    dcgm_selectors: tuple[LabelSelector, ...] = attrs.field(factory=parse_dcgm_selectors)
    dcgm_port: int = 9400
    dcgm_urls: tuple[ExporterTarget, ...] = ()
    dcgm_namespaces: tuple[str, ...] = DEFAULT_DCGM_NAMESPACES
    profile_namespaces: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Any) -> SamplerSettings:
        """From an :class:`~infercost.controllers.config.OperatorConfig`; raises ``ValueError``
        naming the flag for a selector or URL that cannot be used."""
        try:
            selectors = parse_dcgm_selectors(config.dcgm_selectors)
        except ValueError as exc:
            raise ValueError(f"--dcgm-selector: {exc}") from None
        urls = tuple(parse_dcgm_url(u) for u in config.dcgm_urls)
        return cls(
            interval_seconds=config.scrape_interval,
            timeout_seconds=config.scrape_timeout,
            concurrency=config.scrape_concurrency,
            dcgm_selectors=selectors,
            dcgm_port=config.dcgm_port,
            dcgm_urls=urls,
            dcgm_namespaces=tuple(config.dcgm_namespaces),
            profile_namespaces=tuple(config.profile_namespaces),
        )


@attrs.frozen
class NodeSample:
    """One owned node at the sample."""

    name: str
    uid: str
    boot_id: str
    """``status.nodeInfo.bootID``: when it changes, the node's DCGM energy counters restarted."""
    gpu_capacity: int | None
    """``nvidia.com/gpu`` capacity; ``None`` when the node does not advertise it."""
    exporter: ExporterStatus | None
    """What the node's DCGM exporters did; ``None`` when none was found."""
    gpus: tuple[GpuReading, ...]
    """The node's GPUs as DCGM reported them (power W, energy mJ, holders), one per UUID."""
    holdings: NodeHoldings
    """Who holds the node's GPUs (DCGM pod mapping, else ``nvidia.com/gpu`` limits)."""

    def power(self) -> tuple[GpuPower, ...]:
        """The GPUs with a usable power reading, for the power resolution."""
        return tuple(p for g in self.gpus if (p := g.power()) is not None)


@attrs.frozen
class ProfileSample:
    """The part of a sample that belongs to one CostProfile."""

    time: datetime
    monotonic: float
    membership: ProfileMembership
    nodes: tuple[NodeSample, ...]
    """The owned nodes, by name."""
    pods: tuple[PodScrape, ...]
    """Inference pods on the owned nodes, with their scrape outcome and token readings."""
    pod_problems: tuple[PodProblem, ...]
    """Pods on the owned nodes that ask to be scraped with unusable annotations."""

    def node_capacities(self) -> dict[str, int | None]:
        return {n.name: n.gpu_capacity for n in self.nodes}

    def exporter_statuses(self) -> dict[str, ExporterStatus]:
        return {n.name: n.exporter for n in self.nodes if n.exporter is not None}

    def power_readings(self) -> dict[str, tuple[GpuPower, ...]]:
        return {n.name: p for n in self.nodes if (p := n.power())}


@attrs.frozen
class Sample:
    """Everything one sampling cycle observed. Immutable once published."""

    sequence: int
    time: datetime
    """Wall time (UTC) when the cycle's scrapes started: the time of the data."""
    monotonic: float
    """The sampler clock's monotonic reading at :attr:`time` (for age checks)."""
    duration_seconds: float
    membership: Membership
    nodes: Mapping[str, NodeSample]
    """Every owned node by name."""
    pods: tuple[PodScrape, ...]
    """Every inference pod on an owned node, sorted by pod."""
    pod_problems: tuple[PodProblem, ...]
    dcgm_errors: tuple[tuple[str, ScrapeError], ...]
    """(exporter URL, error) of every exporter that failed."""
    unplaced_gpus: tuple[GpuReading, ...]
    """Readings of ``--dcgm-url`` pages without a Hostname/hostname label."""
    problem_nodes: Mapping[str, str]
    """pod ``namespace/name`` → node, for :attr:`pod_problems`."""

    def profile(self, key: str) -> ProfileSample | None:
        """The view of CostProfile ``namespace/name``; ``None`` when it was not honoured (or
        did not exist, or had an invalid spec) at the sample."""
        member = self.membership.profile(key)
        if member is None:
            return None
        owned = set(member.owned)
        return ProfileSample(
            time=self.time,
            monotonic=self.monotonic,
            membership=member,
            nodes=tuple(self.nodes[n] for n in member.owned if n in self.nodes),
            pods=tuple(p for p in self.pods if p.target.node in owned),
            pod_problems=tuple(
                p for p in self.pod_problems if self.problem_nodes.get(str(p.pod)) in owned
            ),
        )


Listener = Callable[[Sample], None]


class Sampler:
    """The sampler component; see the module docstring. Start it on the leader only."""

    def __init__(
        self,
        *,
        pods: Informer,
        nodes: Informer,
        profiles: Informer,
        settings: SamplerSettings,
        clock: Clock | None = None,
        metrics: HealthMetrics | None = None,
        scraper_factory: Callable[[], Scraper] | None = None,
    ) -> None:
        self.pods = pods
        self.nodes = nodes
        self.profiles = profiles
        self.settings = settings
        self.clock = clock or RealClock()
        self.metrics = metrics
        self._scraper_factory = scraper_factory or (
            lambda: Scraper(
                concurrency=settings.concurrency, timeout_seconds=settings.timeout_seconds
            )
        )
        self._scraper: Scraper | None = None
        self._listeners: list[Listener] = []
        self._latest: Sample | None = None
        self._sequence = 0
        self._lock = threading.Lock()
        self._cycle_lock = threading.Lock()
        # pod UID -> restart count of the serving container at its last successful scrape
        self._succeeded: dict[str, int] = {}
        # pod key -> (resourceVersion, dict form) of pods converted for discovery
        self._pod_dicts: dict[str, tuple[str, dict[str, Any]]] = {}
        # (key, uid, generation) -> claim or None (invalid spec)
        self._claims: dict[tuple[str, str, int], ProfileClaim | None] = {}
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._requested = False
        self._thread: threading.Thread | None = None
        self._failed = False
        profiles.add_handler(
            EventHandler(
                on_add=lambda _: self.request_sample(),
                on_update=self._on_profile_update,
                on_delete=lambda _: self.request_sample(),
            )
        )
        nodes.add_handler(
            EventHandler(
                on_add=lambda _: self.request_sample(),
                on_update=self._on_node_update,
                on_delete=lambda _: self.request_sample(),
            )
        )

    # -- consumers ---------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(sample)`` after every published sample (on the sampler thread;
        keep it quick). Exceptions are logged and do not stop the sampler."""
        with self._lock:
            self._listeners.append(listener)

    def latest(self) -> Sample | None:
        """The last published sample (``None`` before the first)."""
        with self._lock:
            return self._latest

    def request_sample(self) -> None:
        """Sample soon (at most :data:`MIN_WAKE_SPACING_SECONDS` after the previous one)."""
        self._requested = True
        self._wake.set()

    def _on_profile_update(self, old: Any, new: Any) -> None:
        if _generation(old) != _generation(new):
            self.request_sample()

    def _on_node_update(self, old: Any, new: Any) -> None:
        if getattr(old, "labels", None) != getattr(new, "labels", None):
            self.request_sample()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling now: scrapes in flight are abandoned and nothing more is published."""
        with self._lock:
            self._stopped.set()
            scraper = self._scraper
        self._wake.set()
        if scraper is not None:
            scraper.cancel()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the sampling thread to end (then release the scraper); whether it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self.close()
            return True
        return False

    def alive(self) -> bool:
        if self._stopped.is_set() or self._thread is None:
            return True
        return self._thread.is_alive()

    def close(self) -> None:
        """Release the scraper's connections and threads."""
        with self._cycle_lock:
            if self._scraper is not None:
                self._scraper.close()
                self._scraper = None

    def _synced(self) -> bool:
        return all(i.has_synced() for i in (self.pods, self.nodes, self.profiles))

    def _run(self) -> None:
        interval = self.settings.interval_seconds
        while not self._synced():
            if self.clock.sleep(0.05, self._stopped):
                return
        log.info("sampler started", interval_seconds=interval)
        next_due = self.clock.monotonic()
        last_start: float | None = None
        while not self._stopped.is_set():
            self._wake.clear()
            now = self.clock.monotonic()
            due = next_due
            if self._requested:
                early = now if last_start is None else last_start + MIN_WAKE_SPACING_SECONDS
                due = min(due, early)
            if now >= due:
                self._requested = False
                last_start = now
                try:
                    self.sample_once()
                except ScrapeCancelledError as exc:
                    log.info("sampling stopped; scrapes in flight abandoned", detail=str(exc))
                    break
                except Exception as exc:  # a bug must not end sampling for good
                    log.exception("sampling cycle failed", error=f"{type(exc).__name__}: {exc}")
                next_due = last_start + interval
                continue
            self.clock.sleep(due - now, self._wake)
        log.info("sampler stopped")

    # -- one cycle ---------------------------------------------------------------------------

    def sample_once(self) -> Sample:
        """Run one cycle now and publish its sample (also used by tests and ``demo``)."""
        with self._cycle_lock:
            sample = self._cycle()
        with self._lock:
            if self._stopped.is_set():
                return sample  # stop() was called: this sample is never published
            self._latest = sample
            listeners = list(self._listeners)
        for listener in listeners:
            if self._stopped.is_set():
                break
            try:
                listener(sample)
            except Exception as exc:
                log.exception("sample listener failed", error=f"{type(exc).__name__}: {exc}")
        return sample

    def _claim(self, obj: Any) -> ProfileClaim | None:
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        name = str(meta.get("name") or "")
        if not namespace_allowed(namespace, self.settings.profile_namespaces):
            return None
        ident = (f"{namespace}/{name}", str(meta.get("uid") or ""), _generation(obj))
        if ident in self._claims:
            return self._claims[ident]
        try:
            spec = parse_costprofile(obj, include_status=False).spec
        except ValidationError:
            claim = None
        else:
            claim = ProfileClaim(
                namespace=namespace,
                name=name,
                node_selector=dict(spec.node_selector),
                creation_timestamp=parse_time(meta.get("creationTimestamp")),
            )
        self._claims[ident] = claim
        return claim

    def membership(self) -> Membership:
        """Node ownership from the current caches."""
        claims = []
        seen = set()
        for obj in self.profiles.store.objects():
            claim = self._claim(obj)
            meta = obj.get("metadata") or {}
            seen.add(
                (
                    f"{meta.get('namespace') or ''}/{meta.get('name') or ''}",
                    str(meta.get("uid") or ""),
                    _generation(obj),
                )
            )
            if claim is not None:
                claims.append(claim)
        for ident in [i for i in self._claims if i not in seen]:
            del self._claims[ident]
        nodes = [NodeFacts(n.name, n.labels) for n in self.nodes.store.objects()]
        return resolve_membership(claims, nodes)

    def _pods_by_node(self, nodes: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """The cached pods of ``nodes`` in the dict shape discovery reads, per node.

        Conversions are reused while a pod's resourceVersion stays the same."""
        out: dict[str, list[dict[str, Any]]] = {}
        fresh: dict[str, tuple[str, dict[str, Any]]] = {}
        for node in nodes:
            on_node = out[node] = []
            for pod in self.pods.store.by_index(NODE_INDEX, node):
                if not isinstance(pod, PodInfo):
                    continue
                cached = self._pod_dicts.get(pod.key)
                if cached is None or cached[0] != pod.resource_version:
                    cached = (pod.resource_version, pod_object(pod))
                fresh[pod.key] = cached
                on_node.append(cached[1])
        self._pod_dicts = fresh
        return out

    def _scraper_instance(self) -> Scraper:
        with self._lock:
            if self._scraper is None:
                self._scraper = self._scraper_factory()
                if self._stopped.is_set():
                    self._scraper.cancel()
            return self._scraper

    def _cycle(self) -> Sample:
        at = self.clock.now()
        started = self.clock.monotonic()
        membership = self.membership()
        owned = membership.owned_nodes()
        owned_set = set(owned)
        pods_by_node = self._pods_by_node(owned)
        pods = [p for on_node in pods_by_node.values() for p in on_node]
        inference = discover_inference(pods, owned_set)
        exporters = discover_exporters(
            pods, owned_set, self.settings.dcgm_selectors, default_port=self.settings.dcgm_port
        )
        url_targets = self.settings.dcgm_urls
        targets: list[ScrapeTarget] = [t.scrape_target() for t in inference.targets]
        targets += [t.scrape_target() for t in exporters.targets]
        targets += [t.scrape_target() for t in url_targets]
        results = self._scraper_instance().scrape(targets) if targets else []
        n_inf, n_exp = len(inference.targets), len(exporters.targets)
        inf_results = results[:n_inf]
        exp_results = results[n_inf : n_inf + n_exp]
        url_results = results[n_inf + n_exp :]

        restarts = {t.pod.uid: t.restart_count for t in inference.targets}
        scrapes = read_pods(
            inference.targets,
            inf_results,
            lambda uid: uid in self._succeeded and self._succeeded[uid] == restarts.get(uid),
        )
        self._succeeded = {uid: count for uid, count in self._succeeded.items() if uid in restarts}
        for scrape in scrapes:
            if scrape.state == OK:
                self._succeeded[scrape.target.pod.uid] = scrape.target.restart_count
        dcgm = gather_dcgm(exporters, exp_results, url_targets, url_results)
        self._record_health(scrapes, inf_results, exp_results, url_results, dcgm.errors)

        inference_uids = {t.pod.uid for t in inference.targets}
        statuses = dcgm.statuses_for(owned)
        node_samples: dict[str, NodeSample] = {}
        for name in owned:
            info = self.nodes.store.get(name)
            if not isinstance(info, NodeInfo):
                continue
            gpus = dcgm.gpus.get(name, ())
            on_node = pods_by_node.get(name, [])
            node_samples[name] = NodeSample(
                name=name,
                uid=info.uid,
                boot_id=info.boot_id,
                gpu_capacity=info.gpu_capacity,
                exporter=statuses.get(name),
                gpus=gpus,
                holdings=node_holdings(name, on_node, gpus, inference_uids),
            )
        problem_pods = {str(p.pod) for p in inference.problems}
        problem_nodes = {}
        for p in pods:
            meta = p.get("metadata") or {}
            ref = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
            if ref in problem_pods:
                problem_nodes[ref] = str((p.get("spec") or {}).get("nodeName") or "")
        self._sequence += 1
        sample = Sample(
            sequence=self._sequence,
            time=at,
            monotonic=started,
            duration_seconds=self.clock.monotonic() - started,
            membership=membership,
            nodes=MappingProxyType(node_samples),
            pods=tuple(scrapes),
            pod_problems=inference.problems,
            dcgm_errors=dcgm.errors,
            unplaced_gpus=dcgm.unplaced,
            problem_nodes=MappingProxyType(problem_nodes),
        )
        log.debug(
            "sample taken",
            sequence=sample.sequence,
            nodes=len(node_samples),
            inference_pods=len(scrapes),
            exporters=n_exp + len(url_targets),
            duration_seconds=round(sample.duration_seconds, 3),
        )
        return sample

    def _record_health(
        self,
        scrapes: Sequence[PodScrape],
        inf_results: Sequence[ScrapeResult],
        exp_results: Sequence[ScrapeResult],
        url_results: Sequence[ScrapeResult],
        dcgm_errors: Iterable[tuple[str, ScrapeError]],
    ) -> None:
        if self.metrics is None:
            return
        duration = self.metrics.scrape_duration_seconds
        errors = self.metrics.scrape_errors_total
        for result in inf_results:
            duration.labels(target_kind="inference").observe(result.duration_seconds)
        for result in (*exp_results, *url_results):
            duration.labels(target_kind="dcgm").observe(result.duration_seconds)
        for scrape in scrapes:
            if scrape.state == FAILED and scrape.error is not None:
                errors.labels(target_kind="inference", reason=scrape.error.reason).inc()
        for _, error in dcgm_errors:
            errors.labels(target_kind="dcgm", reason=error.reason).inc()


def _generation(obj: Any) -> int:
    if not isinstance(obj, Mapping):
        return 0
    value = (obj.get("metadata") or {}).get("generation")
    return value if isinstance(value, int) else 0


# -- one sampler per operator ------------------------------------------------------------------

_SHARED: weakref.WeakKeyDictionary[Any, Sampler] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def shared_sampler(context: Any) -> Sampler:
    """The operator's one sampler, created on first use from an
    :class:`~infercost.controllers.operator.OperatorContext`.

    The CostProfile controller and the ledger both call this and subscribe with
    :meth:`Sampler.add_listener`; the ``sampler`` component starts it on the leader. A
    ``--dcgm-selector`` or ``--dcgm-url`` that cannot be used is a :class:`StartupError`.
    """
    with _SHARED_LOCK:
        sampler = _SHARED.get(context)
        if sampler is None:
            try:
                settings = SamplerSettings.from_config(context.config)
            except ValueError as exc:
                raise StartupError(str(exc)) from None
            sampler = Sampler(
                pods=context.informers.pods(),
                nodes=context.informers.nodes(),
                profiles=context.custom_informer(COSTPROFILE.kind),
                settings=settings,
                clock=context.clock,
                metrics=context.metrics,
            )
            _SHARED[context] = sampler
        return sampler
