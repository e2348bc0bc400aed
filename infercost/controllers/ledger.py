"""The ledger keeper: books every sample into the ledger and checkpoints it (SPEC §4).

It is a sampler listener on the leader. Order of business:

1. on start (becoming leader), restore every shard from the checkpoint **before** booking: a
   sample that arrives earlier is not booked (the restored watermarks make the next booking
   cover the gap);
2. for each sample, in order (a sample not later than the last booked one books nothing):
   turn it into an :class:`~infercost.engine.ledger.Observation`, book it, write the shards it
   changed and the days it closed, then tell the subscribers (UsageReports, TokenBudgets);
3. on shutdown (a hook run while the Lease is still held) write whatever is not written yet.

One lock covers booking and every checkpoint write, so the shutdown checkpoint and a late
sample never interleave. On a 409 the keeper asks whether it still holds the Lease: if not it
stops booking for good (another replica owns the ledger now; state is never merged); if it
does, it re-reads the object's resourceVersion and writes its own state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import structlog

from infercost.api import CostProfileSpec
from infercost.collect.backends import Role
from infercost.collect.pricing import (
    PRICING_CONFIGMAP,
    PRICING_KEY,
    bundled_catalog,
    parse_pricing_configmap,
)
from infercost.controllers.ledgerstore import LedgerStore, retained_since
from infercost.controllers.sampling import Sample
from infercost.engine.catalog import Catalog, family_of
from infercost.engine.ledger import (
    ROLE_CACHED,
    ROLE_INPUT,
    ROLE_OUTPUT,
    BookingResult,
    Economics,
    GpuObservation,
    HoldObservation,
    Ledger,
    NodeObservation,
    Observation,
    PodObservation,
    ProfileObservation,
    SeriesReading,
)
from infercost.kube.clock import Clock
from infercost.kube.objectstore import ObjectConflictError, ObjectStoreError

__all__ = ["LedgerKeeper", "PricingWatch", "observation_from_sample"]

log = structlog.get_logger("infercost.controllers.ledger")

T = TypeVar("T")
_ROLES = {Role.INPUT: ROLE_INPUT, Role.CACHED: ROLE_CACHED, Role.OUTPUT: ROLE_OUTPUT}


def _series_key(series: str, labels: Iterable[tuple[str, str]]) -> str:
    return series + "{" + ",".join(f"{k}={v}" for k, v in sorted(labels)) + "}"


def economics_of(spec: CostProfileSpec) -> Economics:
    """The booking rates of a parsed CostProfile spec."""
    return Economics.of(spec.hardware, spec.electricity.rate_per_kwh, spec.electricity.pue_factor)


def observation_from_sample(sample: Sample, catalog: Catalog | None = None) -> Observation:
    """What the ledger needs from a sample, in plain values."""
    profiles = []
    for key, state in sorted(sample.profiles.items()):
        if state.spec is None:
            continue
        member = sample.membership.profile(key)
        profiles.append(
            ProfileObservation(
                key, economics_of(state.spec), overlap=bool(member and member.overlap)
            )
        )
    honoured = {p.key for p in profiles}
    nodes = []
    for name, ns in sorted(sample.nodes.items()):
        if ns.owner not in honoured:
            continue
        gpus = tuple(GpuObservation(r.uuid, r.energy_mj, r.power_watts) for r in ns.readings)
        holds = tuple(
            HoldObservation(gpu, h.pod.uid, h.pod.namespace, h.pod.name, share, h.inference)
            for h in ns.holdings.holdings
            for gpu, share in sorted(h.shares.items())
        )
        nodes.append(NodeObservation(name, ns.owner, ns.gpus or None, ns.boot_id, gpus, holds))
    pods = []
    for scrape in sample.pods:
        target = scrape.target
        series: list[SeriesReading] = []
        families: dict[str, str] = {}
        if scrape.page is not None and scrape.state == "ok":
            for r in scrape.page.readings:
                model = r.model or target.model
                roles = 0
                for role in r.roles:
                    roles |= _ROLES[role]
                series.append(
                    SeriesReading(_series_key(r.series, r.labels), model, roles, r.value, r.created)
                )
                if catalog is not None and model not in families:
                    family = family_of(model, target.family, catalog=catalog)
                    if family is not None:
                        families[model] = family
        pods.append(
            PodObservation(
                uid=target.pod.uid,
                namespace=target.pod.namespace,
                name=target.pod.name,
                node=target.node or "",
                inference=True,
                scraped=scrape.state == "ok",
                start_time=target.start_time,
                restart_count=target.restart_count,
                readings=tuple(series),
                families=families,
            )
        )
    return Observation(
        time=sample.time,
        profiles=tuple(profiles),
        nodes=tuple(nodes),
        pods=tuple(pods),
        present_pods=frozenset(sample.pod_uids),
    )


class PricingWatch:
    """The cloud price catalog in force: the ``infercost-pricing`` ConfigMap when it is valid,
    else the previous one (at start: the bundled catalog). Rejections are reported once per
    content through ``on_invalid``."""

    def __init__(self, on_invalid: Callable[[str], None] | None = None) -> None:
        self._bundled = bundled_catalog()
        self._catalog = self._bundled
        self._rejected: str | None = None
        self._on_invalid = on_invalid
        self._lock = threading.Lock()

    @property
    def catalog(self) -> Catalog:
        with self._lock:
            return self._catalog

    def update(self, configmap: Any | None) -> None:
        if configmap is None:
            with self._lock:
                self._catalog = self._bundled
            return
        data = dict(configmap.get("data") or {}) if isinstance(configmap, dict) else {}
        try:
            catalog = parse_pricing_configmap(data, name=PRICING_CONFIGMAP)
        except ValueError as exc:
            message = str(exc)
            with self._lock:
                fresh = message != self._rejected
                self._rejected = message
            if fresh:
                log.warning(
                    "pricing ConfigMap rejected; keeping the previous catalog", error=message
                )
                if self._on_invalid is not None:
                    self._on_invalid(message)
            return
        with self._lock:
            self._catalog = catalog
            self._rejected = None
        log.info("pricing ConfigMap loaded", key=PRICING_KEY, entries=len(catalog.entries))


class LedgerKeeper:
    """See the module docstring. Start it on the leader only."""

    def __init__(
        self,
        *,
        store: LedgerStore | None,
        clock: Clock,
        is_leader: Callable[[], bool],
        pricing: PricingWatch | None = None,
        shards: int = 16,
    ) -> None:
        self.store = store
        self.clock = clock
        self.is_leader = is_leader
        self.pricing = pricing
        self.ledger = Ledger(shards=shards)
        self._lock = threading.RLock()
        self._restored = threading.Event()
        self._stopped = threading.Event()
        self._fenced = False
        self._dirty: set[int] = set()
        self._subscribers: list[Callable[[BookingResult], None]] = []
        self._thread: threading.Thread | None = None
        self._failed = False
        self.last_booked_monotonic: float | None = None
        self.last_checkpoint: float | None = None
        """Wall time (unix seconds) of the last successful checkpoint write."""
        self.checkpoint_errors = 0

    # -- component ---------------------------------------------------------------------------

    def start(self) -> None:
        self._stopped.clear()
        self._thread = threading.Thread(target=self._restore, name="ledger-restore", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def alive(self) -> bool:
        return not self._failed

    def restored(self) -> bool:
        return self._restored.is_set()

    def wait_restored(self, timeout: float | None = None) -> bool:
        return self._restored.wait(timeout)

    def subscribe(self, callback: Callable[[BookingResult], None]) -> None:
        """Call ``callback(result)`` after every booking (on the sampler thread)."""
        self._subscribers.append(callback)

    def read(self, func: Callable[[Ledger], T]) -> T:
        """Run ``func`` on the ledger under its lock (reports and budgets read through this)."""
        with self._lock:
            return func(self.ledger)

    def _restore(self) -> None:
        backoff = 0.5
        while not self._stopped.is_set():
            try:
                with self._lock:
                    if self.store is not None:
                        self.ledger = self.store.load()
                log.info(
                    "ledger restored",
                    open_lines=len(self.ledger.lines),
                    closed_days=len(self.ledger.closed),
                )
                self._restored.set()
                return
            except (ObjectStoreError, ValueError) as exc:
                log.error("cannot restore the ledger; retrying", error=str(exc))
                if self.clock.sleep(backoff, self._stopped):
                    return
                backoff = min(backoff * 2, 30.0)

    # -- booking -----------------------------------------------------------------------------

    def on_sample(self, sample: Sample) -> None:
        """The sampler listener."""
        if not self._restored.is_set() or self._stopped.is_set() or self._fenced:
            return
        catalog = self.pricing.catalog if self.pricing is not None else None
        observation = observation_from_sample(sample, catalog)
        with self._lock:
            try:
                result = self.ledger.book(observation)
            except Exception as exc:
                # a booking is all or nothing: go back to the last checkpoint (written after
                # the previous booking), so the next sample books this interval whole
                log.exception("booking failed; restoring the last checkpoint", error=str(exc))
                self._rollback()
                return
            if not result.booked:
                return
            self.last_booked_monotonic = self.clock.monotonic()
            self._dirty |= result.changed_shards
            self._checkpoint(result.closed_days)
        for callback in list(self._subscribers):
            try:
                callback(result)
            except Exception as exc:
                log.exception("ledger subscriber failed", error=f"{type(exc).__name__}: {exc}")

    def _rollback(self) -> None:
        if self.store is None:
            return
        try:
            restored = self.store.load()
        except (ObjectStoreError, ValueError) as exc:
            self._failed = True
            log.error("cannot restore the ledger after a failed booking", error=str(exc))
            return
        # the per-process counters never go back
        restored.attributed = self.ledger.attributed
        restored.attributed_idle = self.ledger.attributed_idle
        self.ledger = restored
        self._dirty.clear()

    def checkpoint(self) -> None:
        """Write every shard not yet written (the shutdown hook)."""
        with self._lock:
            if self._restored.is_set():
                self._dirty |= set(range(self.ledger.shards))
                self._checkpoint(())

    def _checkpoint(self, closed_days: Iterable[str]) -> None:
        if self.store is None or self._fenced:
            self._dirty.clear()
            return
        try:
            closed = list(closed_days)
            for day in closed:
                self.store.write_closed(self.ledger, day)
            if closed:
                today = self.clock.now().date()
                self.store.prune(today)
                self.ledger.forget_closed_before(retained_since(today).isoformat())
            for shard in sorted(self._dirty):
                self._write_shard(shard)
                self._dirty.discard(shard)
            self.last_checkpoint = self.clock.time()
        except ObjectStoreError as exc:
            self.checkpoint_errors += 1
            log.error("ledger checkpoint failed; will retry with the next sample", error=str(exc))

    def _write_shard(self, shard: int) -> None:
        assert self.store is not None
        try:
            self.store.write_shard(self.ledger, shard)
        except ObjectConflictError as exc:
            if not self.is_leader():
                self._fenced = True
                log.error(
                    "ledger checkpoint conflict and the Lease is lost: stopping", error=str(exc)
                )
                raise
            # still the leader: someone wrote behind our back; our state is the truth
            log.warning("ledger shard changed behind our back; rewriting it", error=str(exc))
            self.store.refresh_version(shard)
            self.store.write_shard(self.ledger, shard)
