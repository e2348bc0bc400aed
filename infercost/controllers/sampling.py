"""The sampler loop: every ``--scrape-interval``, read every inference pod and DCGM exporter on
the nodes that CostProfiles own, and publish one immutable :class:`Sample`.

One cycle, on the leader only, in three steps:

1. discover, from the caches: the honoured CostProfiles with their last valid spec, membership
   (:mod:`.membership`: which profile owns which node at this instant), and on the cached pods
   of the owned nodes the inference targets and DCGM exporter pods
   (:mod:`infercost.collect.discovery`);
2. scrape every target once (inference pods, exporter pods, ``--dcgm-url`` targets),
   concurrently through one :class:`~infercost.collect.scraping.Scraper`, bounded by
   ``--scrape-concurrency`` and ``--scrape-timeout``; each page is read by the worker that
   fetched it (token readings, GPU readings) and dropped, so the results, keyed by target,
   hold readings and never a cycle's worth of pages;
3. assemble: token readings per pod with their full series labels, power and energy per GPU
   deduplicated by UUID, exporter status and GPU holders per node; the scrape health series
   (``infercost_scrape_duration_seconds``, ``infercost_scrape_errors_total``) are recorded.

Then it publishes: every listener (:meth:`Sampler.add_listener`) is called with the new sample,
on the sampler's thread, and :meth:`Sampler.latest` returns it without what only the ledger
reads (:meth:`Sample.kept`): a sample is kept until the next one, and its token readings
would be most of what the operator keeps per inference pod.

The sample is the single per-interval record of what the cluster looked like: the CostProfile
controller derives status from it, and the ledger (SPEC §4) books the interval between two
consecutive samples from it alone — per profile its last valid spec, uid and creation time;
per owned node its uid, boot ID, GPUs and owner; per GPU holder its share of each GPU; per
inference pod its identity, start time, serving container's restart count, model fallback and
token readings per raw series; the UIDs and names of every pod and node in the caches (so a
pod that is gone can be told from one that was not scraped); the sample's start and completion
times. Nothing in a sample is mutated after it is published.

The sampler remembers, per pod UID, whether a scrape of the current container incarnation ever
succeeded: a refused connection before that means the server is still loading (``starting``),
not an error (SPEC §3.1). Refusals of starting pods are not counted as scrape errors.

It never writes to the API server. Besides the periodic tick, a change of a CostProfile's
selector, a new or deleted profile, or a change of node labels wakes it early (at most once
per second) so a new profile gets its figures quickly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import attrs
import structlog

from infercost.api import CostProfileSpec, ValidationError, parse_costprofile
from infercost.collect import DEFAULT_DCGM_NAMESPACES
from infercost.collect.dcgm import GpuReading
from infercost.collect.discovery import (
    ExporterDiscovery,
    ExporterTarget,
    Holding,
    InferenceDiscovery,
    InferenceTarget,
    LabelSelector,
    NodeHoldings,
    PodProblem,
    UntrustedExporter,
    discover_exporters,
    discover_inference,
    node_gpu_ids,
    node_holdings,
    parse_dcgm_selectors,
    parse_dcgm_url,
)
from infercost.collect.errors import UNTRUSTED_NAMESPACE, ScrapeError
from infercost.collect.inference import PodScrape, read_pods, token_reader
from infercost.collect.power import dcgm_reader, gather_dcgm
from infercost.collect.scraping import (
    FAILED,
    OK,
    STARTING,
    TARGET_DCGM,
    TARGET_INFERENCE,
    Reader,
    ScrapeCancelledError,
    Scraper,
    ScrapeResult,
    ScrapeTarget,
)
from infercost.controllers.config import OperatorConfig
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
from infercost.kube.informer import EventHandler, Informer, InformerFactory
from infercost.kube.transforms import NodeInfo, PodInfo, parse_time

__all__ = [
    "NodeSample",
    "PodCounts",
    "ProfileSample",
    "ProfileState",
    "Sample",
    "Sampler",
    "SamplerSettings",
    "build_sampler",
    "spec_problems",
]

log = structlog.get_logger("infercost.controllers.sampling")

MIN_WAKE_SPACING_SECONDS = 1.0
"""Early samples (triggered by profile or node changes) are at least this far apart."""
_STOP_POLL_SECONDS = 0.1
"""Real seconds between checks for :meth:`Sampler.stop` while waiting for the caches."""


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
    """Namespaces where DCGM exporter pods are trusted (``--dcgm-namespaces``)."""
    profile_namespaces: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: OperatorConfig) -> SamplerSettings:
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
class ProfileState:
    """One honoured CostProfile as the sampler saw it (SPEC §4: an interval is booked with the
    last valid spec in force at its start)."""

    namespace: str
    name: str
    uid: str
    """``metadata.uid``: a profile re-created under the same name has a new one (its lines
    continue all the same: the ledger keys profiles by namespace/name)."""
    creation_timestamp: datetime | None
    """``metadata.creationTimestamp``; the older profile owns a node two profiles match."""
    generation: int
    """``metadata.generation`` of the cached object at the sample."""
    spec: CostProfileSpec | None
    """The last valid spec seen under this namespace/name: the current one when
    :attr:`invalid` is ``None``, else the one before the invalid edit; ``None`` when no valid
    generation has been seen since the operator started (the ledger's checkpoint may have one).
    """
    spec_generation: int | None
    """The generation :attr:`spec` came from."""
    invalid: str | None
    """Why the current generation is invalid (names the field); ``None`` when it is valid."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@attrs.frozen
class NodeSample:
    """One owned node at the sample."""

    name: str
    uid: str
    """``metadata.uid``: a node re-created under the same name is a new node."""
    boot_id: str
    """``status.nodeInfo.bootID``: when it changes, the node's DCGM energy counters restarted."""
    owner: str
    """The CostProfile (``namespace/name``) that owns the node at the sample."""
    gpu_capacity: int | None
    """``nvidia.com/gpu`` capacity; ``None`` when the node does not advertise it."""
    gpu_replicas: int
    """The ``nvidia.com/gpu.replicas`` label (time-slicing), 1 when absent."""
    gpus: float
    """The node's GPUs (SPEC §5): capacity ÷ replicas; 0 when absent or 0 (the node has none)."""
    gpu_ids: tuple[str, ...]
    """Every GPU of the node: DCGM UUIDs, then ``<node>/gpu<i>`` for each index below
    :attr:`gpus` that no DCGM reading covers (GPUs known only by index keep stable ids)."""
    exporter: ExporterStatus | None
    """What the node's DCGM exporters did; ``None`` when none was found."""
    readings: tuple[GpuReading, ...]
    """The node's GPUs as DCGM reported them (power W, energy mJ, holders), one per UUID."""
    holdings: NodeHoldings
    """Who holds which share of each GPU of the node (DCGM pod mapping, else ``nvidia.com/gpu``
    limits): pod namespace/name/uid, GPU id → fraction, and whether the pod is an inference
    target. Pending pods bound to the node hold GPUs; they are never inference targets."""
    kept_power: tuple[GpuPower, ...] | None = None
    """:meth:`power` of the sample as :meth:`Sample.kept` keeps it, which keeps no
    :attr:`readings`; ``None`` in a published sample."""

    def power(self) -> tuple[GpuPower, ...]:
        """The GPUs with a usable power reading, for the power resolution."""
        if self.kept_power is not None:
            return self.kept_power
        return tuple(p for g in self.readings if (p := g.power()) is not None)


@attrs.frozen
class PodCounts:
    """How many inference pods a profile's owned nodes run, and how many of them are still
    loading their model (a refused connection before any successful scrape)."""

    pods: int = 0
    starting: int = 0


@attrs.frozen
class ProfileSample:
    """The part of a sample that belongs to one CostProfile."""

    time: datetime
    monotonic: float
    completed_monotonic: float
    """When the sample was complete (monotonic): the age of the figures counts from here."""
    state: ProfileState
    membership: ProfileMembership
    nodes: tuple[NodeSample, ...]
    """The owned nodes, by name."""
    pods: tuple[PodScrape, ...]
    """Inference pods on the owned nodes, with their scrape outcome and token readings; of a
    kept sample (:meth:`Sample.kept`) only the pods whose scrape failed."""
    counts: PodCounts
    """Every inference pod on the owned nodes, and those starting, counted."""
    pod_problems: tuple[PodProblem, ...]
    """Pods on the owned nodes that ask to be scraped with unusable annotations."""
    untrusted_exporters: tuple[UntrustedExporter, ...] = ()
    """Pods on the owned nodes labelled like DCGM exporters outside ``--dcgm-namespaces``."""

    def node_gpus(self) -> dict[str, float | None]:
        """Owned node → its GPUs (capacity ÷ replicas), ``None`` when it reports none."""
        return {n.name: (n.gpus or None) for n in self.nodes}

    def exporter_statuses(self) -> dict[str, ExporterStatus]:
        return {n.name: n.exporter for n in self.nodes if n.exporter is not None}

    def power_readings(self) -> dict[str, tuple[GpuPower, ...]]:
        return {n.name: p for n in self.nodes if (p := n.power())}


@attrs.frozen
class Sample:
    """Everything one sampling cycle observed. Immutable once published.

    The ledger books the interval between two consecutive samples from what they carry: the
    profiles with their last valid spec, the owned nodes with their GPUs and holders, the
    inference pods with their token readings, and which pods and nodes still exist.
    """

    sequence: int
    time: datetime
    """Wall time (UTC) when the cycle's scrapes started: the time of the data."""
    monotonic: float
    """The sampler clock's monotonic reading at :attr:`time`."""
    completed: datetime
    """Wall time (UTC) when the sample was complete (every scrape answered or timed out)."""
    completed_monotonic: float
    """The monotonic reading at :attr:`completed`: ages (``Ready``'s three intervals) count
    from here, so a slow cycle does not make its data look older than it is."""
    membership: Membership
    profiles: Mapping[str, ProfileState]
    """Every honoured CostProfile in the cache by ``namespace/name``, valid or not."""
    nodes: Mapping[str, NodeSample]
    """Every owned node by name."""
    pods: tuple[PodScrape, ...]
    """Every inference pod on an owned node, sorted by pod: its target (uid, namespace, name,
    node, ``status.startTime``, phase, restartCount of the serving container, model fallback
    name), scrape state and token readings per raw series."""
    pod_problems: tuple[PodProblem, ...]
    problem_nodes: Mapping[str, str]
    """pod ``namespace/name`` → node, for :attr:`pod_problems`."""
    dcgm_errors: tuple[tuple[str, ScrapeError], ...]
    """(exporter URL, error) of every exporter that failed."""
    unplaced_gpus: tuple[GpuReading, ...]
    """Readings of ``--dcgm-url`` pages without a Hostname/hostname label."""
    untrusted_exporters: tuple[UntrustedExporter, ...]
    """Pods labelled like DCGM exporters on owned nodes outside ``--dcgm-namespaces``: neither
    their power nor their GPU holders were read."""
    pod_uids: frozenset[str]
    """UIDs of every pod in the cache at the sample (on any node): a pod absent here is gone,
    not merely unscraped."""
    node_names: frozenset[str]
    """Names of every node in the cache at the sample."""
    kept_counts: Mapping[str, PodCounts] | None = None
    """Per CostProfile ``namespace/name``, its :class:`PodCounts`, as :meth:`kept` keeps them
    (it keeps only the failed pods of :attr:`pods`); ``None`` in a published sample."""

    @property
    def duration_seconds(self) -> float:
        return self.completed_monotonic - self.monotonic

    def profile(self, key: str) -> ProfileSample | None:
        """The view of CostProfile ``namespace/name``; ``None`` when it claimed no nodes at the
        sample (not honoured, absent, or no valid spec seen yet)."""
        member = self.membership.profile(key)
        state = self.profiles.get(key)
        if member is None or state is None:
            return None
        owned = set(member.owned)
        pods = tuple(p for p in self.pods if p.target.node in owned)
        if self.kept_counts is not None:
            counts = self.kept_counts.get(key, PodCounts())
        else:
            counts = _count(pods)
        return ProfileSample(
            time=self.time,
            monotonic=self.monotonic,
            completed_monotonic=self.completed_monotonic,
            state=state,
            membership=member,
            nodes=tuple(self.nodes[n] for n in member.owned if n in self.nodes),
            pods=pods,
            counts=counts,
            pod_problems=tuple(
                p for p in self.pod_problems if self.problem_nodes.get(str(p.pod)) in owned
            ),
            untrusted_exporters=tuple(u for u in self.untrusted_exporters if u.node in owned),
        )

    def holdings(self) -> tuple[Holding, ...]:
        """Every GPU holder on the owned nodes."""
        return tuple(h for n in self.nodes.values() for h in n.holdings.holdings)

    def kept(self) -> Sample:
        """This sample as :meth:`Sampler.latest` keeps it until the next one: what status and
        figures are computed from (profiles, membership, per node its GPUs, exporter status
        and GPU power, per profile its :class:`PodCounts`, the pods whose scrape failed with
        their error, the problems), without what only the ledger reads, which it took when
        the sample was published: the pods that were scraped or are starting (their token
        readings, targets and start times), the GPU holders (:meth:`holdings` is empty), the
        GPU readings but for their power (:meth:`NodeSample.power`), the nodes' GPU ids, and
        the UIDs and names of everything in the caches. Per inference pod that is most of a
        sample."""
        by_node: dict[str | None, list[PodScrape]] = {}
        for pod in self.pods:
            by_node.setdefault(pod.target.node, []).append(pod)
        counts = {
            key: _count(p for node in member.owned for p in by_node.get(node, ()))
            for key, member in self.membership.profiles.items()
        }
        return attrs.evolve(
            self,
            nodes=MappingProxyType(
                {
                    name: attrs.evolve(
                        node,
                        gpu_ids=(),
                        holdings=NodeHoldings(node.holdings.node, (), ()),
                        readings=(),
                        kept_power=node.power(),
                    )
                    for name, node in self.nodes.items()
                }
            ),
            pods=tuple(p for p in self.pods if p.state == FAILED),
            pod_uids=frozenset(),
            node_names=frozenset(),
            kept_counts=MappingProxyType(counts),
        )


def _count(pods: Iterable[PodScrape]) -> PodCounts:
    total = starting = 0
    for pod in pods:
        total += 1
        starting += pod.state == STARTING
    return PodCounts(total, starting)


@attrs.frozen
class _Discovered:
    """What a cycle found in the caches before scraping."""

    membership: Membership
    profiles: Mapping[str, ProfileState]
    pods_by_node: Mapping[str, Sequence[PodInfo]]
    inference: InferenceDiscovery
    exporters: ExporterDiscovery
    url_targets: tuple[ExporterTarget, ...]

    def scrape_targets(self) -> list[ScrapeTarget]:
        targets = [t.scrape_target() for t in self.inference.targets]
        targets += [t.scrape_target() for t in self.exporters.targets]
        targets += [t.scrape_target() for t in self.url_targets]
        return targets


def spec_problems(exc: ValidationError) -> str:
    """One line naming every invalid field of a spec."""
    return "; ".join(str(e) for e in exc.errors) or str(exc)


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
        # pod UID -> container run (restart count) at its last successful scrape
        self._succeeded: dict[str, int] = {}
        # (key, uid, generation) -> parsed spec, or why it is invalid
        self._parsed: dict[tuple[str, str, int], CostProfileSpec | str] = {}
        # key -> (generation, spec) of the last valid spec seen
        self._last_valid: dict[str, tuple[int, CostProfileSpec]] = {}
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
        """The last published sample in the form the sampler keeps it (:meth:`Sample.kept`:
        no token readings; the listeners got it whole); ``None`` before the first."""
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

    def _wait_for_caches(self) -> bool:
        """Block until every cache has synced (true) or :meth:`stop` was called (false).

        Waits on the informers' own synced signal and on the real clock: the injected clock
        is for the sampling schedule, and a fake one that nobody moves must not hold the first
        sample back once the caches are there."""
        for informer in (self.pods, self.nodes, self.profiles):
            while not informer.wait_for_sync(_STOP_POLL_SECONDS):
                if self._stopped.is_set():
                    return False
        return not self._stopped.is_set()

    def _run(self) -> None:
        interval = self.settings.interval_seconds
        if not self._wait_for_caches():
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
            self._latest = sample.kept()
            listeners = list(self._listeners)
        for listener in listeners:
            if self._stopped.is_set():
                break
            try:
                listener(sample)
            except Exception as exc:
                log.exception("sample listener failed", error=f"{type(exc).__name__}: {exc}")
        return sample

    def profile_states(self) -> dict[str, ProfileState]:
        """Every honoured CostProfile in the cache, with its last valid spec.

        Specs are parsed once per (key, uid, generation); the last valid one is remembered per
        namespace/name until the profile leaves the cache."""
        states: dict[str, ProfileState] = {}
        seen: set[tuple[str, str, int]] = set()
        for obj in self.profiles.store.objects():
            meta = obj.get("metadata") or {}
            namespace = str(meta.get("namespace") or "")
            name = str(meta.get("name") or "")
            if not namespace_allowed(namespace, self.settings.profile_namespaces):
                continue
            key = f"{namespace}/{name}"
            uid = str(meta.get("uid") or "")
            generation = _generation(obj)
            ident = (key, uid, generation)
            seen.add(ident)
            parsed = self._parsed.get(ident)
            if parsed is None:
                try:
                    parsed = parse_costprofile(obj, include_status=False).spec
                except ValidationError as exc:
                    parsed = spec_problems(exc)
                self._parsed[ident] = parsed
            invalid = None
            if isinstance(parsed, CostProfileSpec):
                self._last_valid[key] = (generation, parsed)
            else:
                invalid = parsed
            last = self._last_valid.get(key)
            created = parse_time(meta.get("creationTimestamp"))
            states[key] = ProfileState(
                namespace=namespace,
                name=name,
                uid=uid,
                creation_timestamp=None
                if created is None
                else datetime.fromtimestamp(created, UTC),
                generation=generation,
                spec=last[1] if last else None,
                spec_generation=last[0] if last else None,
                invalid=invalid,
            )
        self._parsed = {i: p for i, p in self._parsed.items() if i in seen}
        self._last_valid = {k: v for k, v in self._last_valid.items() if k in states}
        return states

    def membership(self, states: Mapping[str, ProfileState] | None = None) -> Membership:
        """Node ownership from the current caches: profiles claim nodes with their last valid
        spec (an invalid edit keeps the nodes; a profile never valid claims none)."""
        if states is None:
            states = self.profile_states()
        claims = [
            ProfileClaim(
                namespace=st.namespace,
                name=st.name,
                node_selector=dict(st.spec.node_selector),
                creation_timestamp=(
                    None if st.creation_timestamp is None else st.creation_timestamp.timestamp()
                ),
            )
            for st in states.values()
            if st.spec is not None
        ]
        nodes = [NodeFacts(n.name, n.labels) for n in self.nodes.store.objects()]
        return resolve_membership(claims, nodes)

    def _pods_by_node(self, nodes: Sequence[str]) -> dict[str, list[PodInfo]]:
        """The cached pods of ``nodes``, per node, in the compact form discovery reads."""
        return {
            node: [p for p in self.pods.store.by_index(NODE_INDEX, node) if isinstance(p, PodInfo)]
            for node in nodes
        }

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
        found = self._discover()
        readers: dict[str, Reader] = {
            TARGET_INFERENCE: token_reader(found.inference.targets),
            TARGET_DCGM: dcgm_reader,
        }
        results = self._scrape(found.scrape_targets(), readers)
        sample = self._assemble(found, results, at, started)
        log.debug(
            "sample taken",
            sequence=sample.sequence,
            nodes=len(sample.nodes),
            inference_pods=len(sample.pods),
            exporters=len(found.exporters.targets) + len(found.url_targets),
            duration_seconds=round(sample.duration_seconds, 3),
        )
        return sample

    def _discover(self) -> _Discovered:
        """Membership, then the targets on the owned nodes, from the caches."""
        states = self.profile_states()
        membership = self.membership(states)
        owned = membership.owned_nodes()
        owned_set = set(owned)
        pods_by_node = self._pods_by_node(owned)
        pods = [p for on_node in pods_by_node.values() for p in on_node]
        return _Discovered(
            membership=membership,
            profiles=MappingProxyType(states),
            pods_by_node=pods_by_node,
            inference=discover_inference(pods, owned_set),
            exporters=discover_exporters(
                pods,
                owned_set,
                self.settings.dcgm_selectors,
                default_port=self.settings.dcgm_port,
                namespaces=self.settings.dcgm_namespaces,
            ),
            url_targets=self.settings.dcgm_urls,
        )

    def _scrape(
        self, targets: Sequence[ScrapeTarget], readers: Mapping[str, Reader]
    ) -> dict[ScrapeTarget, ScrapeResult]:
        """Every target once, concurrently, each page read as it arrives; results by target."""
        if not targets:
            return {}
        return {r.target: r for r in self._scraper_instance().scrape(targets, readers)}

    def _assemble(
        self,
        found: _Discovered,
        results: Mapping[ScrapeTarget, ScrapeResult],
        at: datetime,
        started: float,
    ) -> Sample:
        """Put the sample together from the pages' readings."""
        targets = found.inference.targets
        inf_results = [results[t.scrape_target()] for t in targets]
        exp_results = [results[t.scrape_target()] for t in found.exporters.targets]
        url_results = [results[t.scrape_target()] for t in found.url_targets]

        runs = {t.pod.uid: _container_run(t) for t in targets}
        scrapes = read_pods(
            targets,
            inf_results,
            lambda uid: uid in self._succeeded and self._succeeded[uid] == runs.get(uid),
        )
        self._succeeded = {uid: run for uid, run in self._succeeded.items() if uid in runs}
        for scrape in scrapes:
            if scrape.state == OK:
                self._succeeded[scrape.target.pod.uid] = runs[scrape.target.pod.uid]
        dcgm = gather_dcgm(found.exporters, exp_results, found.url_targets, url_results)
        self._record_health(
            scrapes,
            inf_results,
            [*exp_results, *url_results],
            dcgm.errors,
            len(found.exporters.untrusted),
        )

        membership = found.membership
        inference_uids = {t.pod.uid for t in targets}
        statuses = dcgm.statuses_for(membership.owned_nodes())
        node_samples: dict[str, NodeSample] = {}
        for name in membership.owned_nodes():
            info = self.nodes.store.get(name)
            if not isinstance(info, NodeInfo):
                continue
            readings = dcgm.gpus.get(name, ())
            gpus = info.gpus
            node_samples[name] = NodeSample(
                name=name,
                uid=info.uid,
                boot_id=info.boot_id,
                owner=membership.owners[name],
                gpu_capacity=info.gpu_capacity,
                gpu_replicas=info.gpu_replicas,
                gpus=gpus,
                gpu_ids=node_gpu_ids(name, gpus, readings),
                exporter=statuses.get(name),
                readings=readings,
                holdings=node_holdings(
                    name, found.pods_by_node.get(name, ()), readings, inference_uids, gpus
                ),
            )
        problem_pods = {str(p.pod) for p in found.inference.problems}
        problem_nodes = {}
        for node, on_node in found.pods_by_node.items():
            for p in on_node:
                if p.key in problem_pods:
                    problem_nodes[p.key] = node
        pod_uids = frozenset(p.uid for p in self.pods.store.objects() if isinstance(p, PodInfo))
        node_names = frozenset(
            n.name for n in self.nodes.store.objects() if isinstance(n, NodeInfo)
        )
        self._sequence += 1
        return Sample(
            sequence=self._sequence,
            time=at,
            monotonic=started,
            completed=self.clock.now(),
            completed_monotonic=self.clock.monotonic(),
            membership=membership,
            profiles=found.profiles,
            nodes=MappingProxyType(node_samples),
            pods=tuple(scrapes),
            pod_problems=found.inference.problems,
            problem_nodes=MappingProxyType(problem_nodes),
            dcgm_errors=dcgm.errors,
            unplaced_gpus=dcgm.unplaced,
            untrusted_exporters=found.exporters.untrusted,
            pod_uids=pod_uids,
            node_names=node_names,
        )

    def _record_health(
        self,
        scrapes: Sequence[PodScrape],
        inf_results: Sequence[ScrapeResult],
        dcgm_results: Sequence[ScrapeResult],
        dcgm_errors: Iterable[tuple[str, ScrapeError]],
        untrusted: int,
    ) -> None:
        if self.metrics is None:
            return
        duration = self.metrics.scrape_duration_seconds
        errors = self.metrics.scrape_errors_total
        for result in inf_results:
            duration.labels(target_kind=TARGET_INFERENCE).observe(result.duration_seconds)
        for result in dcgm_results:
            duration.labels(target_kind=TARGET_DCGM).observe(result.duration_seconds)
        for scrape in scrapes:
            if scrape.state == FAILED and scrape.error is not None:
                errors.labels(target_kind=TARGET_INFERENCE, reason=scrape.error.reason).inc()
        for _, error in dcgm_errors:
            errors.labels(target_kind=TARGET_DCGM, reason=error.reason).inc()
        if untrusted:
            errors.labels(target_kind=TARGET_DCGM, reason=UNTRUSTED_NAMESPACE).inc(untrusted)


def _container_run(target: InferenceTarget) -> int:
    """What changes when the serving container restarts (all restarts when it is unknown)."""
    return target.restart_count if target.restart_count is not None else target.pod_restarts


def _utc(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _generation(obj: Any) -> int:
    if not isinstance(obj, Mapping):
        return 0
    value = (obj.get("metadata") or {}).get("generation")
    return value if isinstance(value, int) else 0


# -- wiring ------------------------------------------------------------------------------------


def build_sampler(
    config: OperatorConfig,
    *,
    informers: InformerFactory,
    profiles: Informer,
    clock: Clock,
    metrics: HealthMetrics,
) -> Sampler:
    """The operator's one sampler, on its shared informers (``profiles``: the CostProfile
    informer). The operator creates it once and hands it to the controllers that subscribe to
    it. A ``--dcgm-selector`` or ``--dcgm-url`` that cannot be used is a
    :class:`StartupError` naming the flag."""
    try:
        settings = SamplerSettings.from_config(config)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    return Sampler(
        pods=informers.pods(),
        nodes=informers.nodes(),
        profiles=profiles,
        settings=settings,
        clock=clock,
        metrics=metrics,
    )
