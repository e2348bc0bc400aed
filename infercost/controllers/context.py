"""What a component of the operator gets to build itself (:class:`OperatorContext`), and what
a component is: the seam between the operator process and the controllers it runs.

It lives apart from :mod:`.operator` so that a controller can name its context without importing
the process that starts it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs
from prometheus_client import CollectorRegistry

from infercost.api import GROUP, RESOURCE_TYPES, VERSION
from infercost.controllers.config import OperatorConfig
from infercost.kube.clock import Clock
from infercost.kube.controller import Controller, Reconcile, UpdateFilter
from infercost.kube.events import EventRecorder, ObjectRef
from infercost.kube.health import HealthMetrics
from infercost.kube.informer import Informer, InformerFactory
from infercost.kube.rest import Resource, RestClient
from infercost.kube.status import StatusRules, StatusWriter

if TYPE_CHECKING:
    from infercost.controllers.sampling import Sampler

__all__ = ["CUSTOM_RESOURCES", "Component", "ComponentSpec", "OperatorContext"]

CUSTOM_RESOURCES: dict[str, Resource] = {
    rt.kind: Resource(GROUP, VERSION, rt.plural, rt.kind, True) for rt in RESOURCE_TYPES
}


class Component(Protocol):
    """Anything the operator starts and stops: controllers, the sampler loop, watchers."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the component's threads to end; whether they all have."""
        ...

    def alive(self) -> bool:
        """Healthy: no thread died while it was supposed to run (``/healthz``)."""
        ...


@attrs.frozen
class ComponentSpec:
    name: str
    build: Callable[[OperatorContext], Component]
    # Only the leader runs components that write to the cluster.
    leader_only: bool = True


class _LeaderGate:
    """Exposes a collector's series only while this replica leads (SPEC §6.1)."""

    def __init__(self, collector: Any, is_leader: Callable[[], bool]) -> None:
        self._collector = collector
        self._is_leader = is_leader

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterable[Any]:
        if self._is_leader():
            yield from self._collector.collect()


class OperatorContext:
    """What a component gets to build itself: shared clients, caches, clock and metrics."""

    def __init__(
        self,
        *,
        config: OperatorConfig,
        rest: RestClient,
        clock: Clock,
        metrics: HealthMetrics,
        informers: InformerFactory,
        events: EventRecorder,
        identity: str,
        is_leader: Callable[[], bool],
        add_shutdown_hook: Callable[[str, Callable[[], None]], None],
        sampler: Sampler,
    ) -> None:
        self.config = config
        self.sampler = sampler
        """The operator's one sampler: the ``sampler`` component, and what the CostProfile
        controller (and the ledger) subscribe to."""
        self.rest = rest
        self.clock = clock
        self.metrics = metrics
        self.registry: CollectorRegistry = metrics.registry
        self.informers = informers
        self.events = events
        self.identity = identity
        self.is_leader = is_leader
        self._add_hook = add_shutdown_hook

    def custom_informer(self, kind: str) -> Informer:
        """The shared informer of CostProfiles, UsageReports or TokenBudgets (by kind)."""
        return self.informers.informer(CUSTOM_RESOURCES[kind])

    def object_ref(self, kind: str, obj: Any) -> ObjectRef:
        """The Event reference of a cached CostProfile/UsageReport/TokenBudget."""
        return ObjectRef.of(obj, CUSTOM_RESOURCES[kind])

    def status_writer(self, kind: str, rules: StatusRules | None = None) -> StatusWriter:
        return StatusWriter(
            self.rest,
            CUSTOM_RESOURCES[kind],
            rules,
            interval_seconds=self.config.status_interval,
            clock=self.clock,
            metrics=self.metrics,
        )

    def controller(
        self,
        name: str,
        reconcile: Reconcile,
        *,
        primary: Informer | None = None,
        requires: Sequence[Informer] = (),
        workers: int = 1,
        resync_seconds: float | None = None,
        primary_updates: UpdateFilter | None = None,
    ) -> Controller:
        return Controller(
            name,
            reconcile,
            primary=primary,
            primary_updates=primary_updates,
            requires=requires,
            workers=workers,
            resync_seconds=resync_seconds,
            clock=self.clock,
            metrics=self.metrics,
        )

    def add_shutdown_hook(self, name: str, hook: Callable[[], None]) -> None:
        """Run ``hook`` on a clean shutdown, while the Lease is still held."""
        self._add_hook(name, hook)

    def register_collector(self, collector: Any, *, leader_only: bool = True) -> None:
        self.registry.register(_LeaderGate(collector, self.is_leader) if leader_only else collector)
