"""Wiring of the accounting side of the operator: the ledger keeper, the price catalog watch
and the controllers that read the ledger (UsageReports, TokenBudgets), started and stopped as
one leader-only component.

The keeper subscribes to the sampler at build time, before the informers start, and books only
after its restore; the controllers are notified by the keeper after each booking, never by
the sampler directly (a report must not read a ledger that has not booked the sample yet).
"""

from __future__ import annotations

from typing import Any

import structlog

from infercost.collect.pricing import PRICING_CONFIGMAP
from infercost.controllers.ledger import LedgerKeeper, PricingWatch
from infercost.controllers.ledgerstore import LedgerStore
from infercost.controllers.tokenbudget import build_tokenbudget_controller
from infercost.controllers.usagereport import attribution_collector, build_usagereport_controller
from infercost.kube.controller import Controller
from infercost.kube.events import ObjectRef
from infercost.kube.informer import EventHandler
from infercost.kube.rest import CONFIGMAPS
from infercost.outputs.reportmetrics import LedgerHealthCollector

__all__ = ["LEDGER_SHARDS", "Accounting", "build_accounting"]

log = structlog.get_logger("infercost.controllers.accounting")

LEDGER_SHARDS = 16
"""Checkpoint shards (nodes are spread over them by name)."""


class Accounting:
    """The keeper and its controllers as one component."""

    def __init__(self, keeper: LedgerKeeper, controllers: list[Controller]) -> None:
        self.keeper = keeper
        self.controllers = controllers

    def start(self) -> None:
        self.keeper.start()
        for c in self.controllers:
            c.start()

    def stop(self) -> None:
        self.keeper.stop()
        for c in self.controllers:
            c.stop()

    def join(self, timeout: float | None = None) -> bool:
        done = self.keeper.join(timeout)
        for c in self.controllers:
            done = bool(c.join(timeout)) and done
        return done

    def alive(self) -> bool:
        return self.keeper.alive() and all(c.alive() for c in self.controllers)


def build_accounting(context: Any) -> Accounting:
    config = context.config
    sampler = context.sampler

    def rejected(message: str) -> None:
        ref = ObjectRef("v1", "ConfigMap", PRICING_CONFIGMAP, config.namespace)
        context.events.warning(ref, "InvalidPricing", message)

    pricing = PricingWatch(on_invalid=rejected)
    watch = context.informers.informer(
        CONFIGMAPS,
        namespace=config.namespace,
        field_selector=f"metadata.name={PRICING_CONFIGMAP}",
    )
    watch.add_handler(
        EventHandler(
            on_add=pricing.update,
            on_update=lambda _old, new: pricing.update(new),
            on_delete=lambda _old: pricing.update(None),
        )
    )
    keeper = LedgerKeeper(
        store=LedgerStore(context.rest, config.namespace, shards=LEDGER_SHARDS),
        clock=context.clock,
        is_leader=context.is_leader,
        pricing=pricing,
        shards=LEDGER_SHARDS,
    )
    sampler.add_listener(keeper.on_sample)
    context.add_shutdown_hook("ledger-checkpoint", keeper.checkpoint)
    context.register_collector(attribution_collector(keeper), leader_only=True)
    context.register_collector(
        LedgerHealthCollector(lambda: keeper.last_checkpoint), leader_only=True
    )
    reports = build_usagereport_controller(context, keeper, pricing)
    budgets = build_tokenbudget_controller(context, keeper)
    return Accounting(keeper, [reports, budgets])
