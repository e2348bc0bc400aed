"""A hand-driven accounting rig for tests: the real sampler, ledger keeper and UsageReport
reconciler on one emulator, with a :class:`~infercost.kube.clock.FakeClock`.

Nothing runs by itself: :meth:`LedgerRig.sample` advances the clocks and takes one sample
(which the keeper books), :meth:`LedgerRig.report` reconciles one UsageReport and returns the
status the API server holds. Deterministic: no loop, no timer.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from infercost.controllers.ledger import LedgerKeeper, PricingWatch
from infercost.controllers.ledgerstore import LedgerStore
from infercost.controllers.operator import CUSTOM_RESOURCES
from infercost.controllers.sampling import Sampler, SamplerSettings
from infercost.controllers.usagereport import REPORT_RULES, UsageReportReconciler
from infercost.kube.clock import FakeClock
from infercost.kube.events import EventRecorder, ObjectRef
from infercost.kube.health import HealthMetrics
from infercost.kube.informer import InformerFactory
from infercost.kube.rest import RestClient
from infercost.kube.status import StatusWriter
from infercost.outputs.reportmetrics import UsageReportCollector
from infercost.testing.kubefixtures import eventually

__all__ = ["COSTPROFILES", "USAGEREPORTS", "LedgerRig"]

COSTPROFILES = CUSTOM_RESOURCES["CostProfile"]
USAGEREPORTS = CUSTOM_RESOURCES["UsageReport"]


class LedgerRig:
    def __init__(
        self,
        rest: RestClient,
        clock: FakeClock,
        *,
        operator_namespace: str = "infercost-system",
        shards: int = 4,
        scrape_interval: float = 30.0,
        scrape_timeout: float = 2.0,
    ) -> None:
        self.rest = rest
        self.clock = clock
        self.informers = InformerFactory(rest)
        self.metrics = HealthMetrics(CollectorRegistry())
        self.profiles = self.informers.informer(COSTPROFILES)
        self.reports = self.informers.informer(USAGEREPORTS)
        self.sampler = Sampler(
            pods=self.informers.pods(),
            nodes=self.informers.nodes(),
            profiles=self.profiles,
            settings=SamplerSettings(
                interval_seconds=scrape_interval, timeout_seconds=scrape_timeout
            ),
            clock=clock,
        )
        self.keeper = LedgerKeeper(
            store=LedgerStore(rest, operator_namespace, shards=shards),
            clock=clock,
            is_leader=lambda: True,
            pricing=PricingWatch(),
            shards=shards,
        )
        self.sampler.add_listener(self.keeper.on_sample)
        self.collector = UsageReportCollector()
        self.reconciler = UsageReportReconciler(
            reports=self.reports,
            profiles=self.profiles,
            keeper=self.keeper,
            writer=StatusWriter(
                rest, USAGEREPORTS, REPORT_RULES, interval_seconds=0.0, clock=clock
            ),
            events=EventRecorder(rest, host="test", clock=clock),
            collector=self.collector,
            clock=clock,
            scrape_interval=scrape_interval,
            pricing=self.keeper.pricing,
            object_ref=lambda obj: ObjectRef.of(obj, USAGEREPORTS),
        )
        self.informers.start()
        eventually(self.informers.has_synced, what="caches synced")
        self.keeper.start()
        if not self.keeper.wait_restored(30):
            raise RuntimeError("the ledger was not restored within 30 s")

    def close(self) -> None:
        self.keeper.stop()
        self.keeper.join(5)
        self.sampler.close()
        self.informers.stop()
        self.informers.join(5)

    def __enter__(self) -> LedgerRig:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def wait_cached(self, pods: int, profiles: int = 1) -> None:
        """Wait until the caches hold ``pods`` pods and ``profiles`` CostProfiles."""
        eventually(
            lambda: (
                len(self.informers.pods().store.list_keys()) == pods
                and len(self.profiles.store.list_keys()) == profiles
            ),
            what=f"{pods} pods and {profiles} profiles cached",
        )

    def sample(self, advance: float = 0.0, *others: Any) -> None:
        """Advance the fake clock (and any simulator clocks in ``others``), take one sample."""
        if advance:
            self.clock.advance(advance)
            for other in others:
                other.advance(advance)
        self.sampler.sample_once()

    def report(self, namespace: str, name: str) -> dict[str, Any]:
        """Reconcile one UsageReport now; its status as the API server holds it."""
        key = f"{namespace}/{name}"

        def cached() -> bool:
            live = self.rest.get(USAGEREPORTS, name, namespace)
            obj = self.reports.store.get(key)
            return (
                obj is not None
                and obj["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
            )

        eventually(cached, what=f"report {key} cached")
        self.reconciler.reconcile(key)
        eventually(cached, what=f"report {key} status cached")
        status: dict[str, Any] = self.rest.get(USAGEREPORTS, name, namespace).get("status") or {}
        return status
