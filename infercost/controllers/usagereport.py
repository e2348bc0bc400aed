"""The UsageReport controller: every figure of SPEC §2.2 as a sum of ledger lines.

``read cache → compute the desired status (pure, from the ledger under its lock) → write only
the diff``. Reports are reconciled after every booking (the ledger keeper notifies), when they
change, and when a CostProfile appears or goes.

- The period is the one that contains the time of the data (the ledger's last booking), so a
  report never shows a period the ledger has not started yet.
- ``Ready``: True/``ReportComputed``; False/``CostProfileNotFound`` while the CostProfile does
  not exist (the figures the ledger keeps for that name stay); False/``Stale`` when the ledger
  has booked nothing for three scrape intervals; False/``InvalidSpec`` for a spec the schema
  let through but the parser rejects.
- ``history``: on creation and on a spec change rebuilt from the closed periods the ledger
  keeps; afterwards closed periods are added as they close and older entries are carried from
  the status; at most ``historyLimit`` entries, newest first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import structlog

from infercost.api import COSTPROFILE, USAGEREPORT, ValidationError
from infercost.api.resources import parse_usagereport
from infercost.controllers.ledger import LedgerKeeper, PricingWatch
from infercost.engine.comparison import ModelUsage, compare_with_cloud
from infercost.engine.ledger import Ledger
from infercost.engine.periods import Period, day_start, period_of
from infercost.engine.report import Figures, GroupFigures, report_figures
from infercost.kube.clock import Clock
from infercost.kube.conditions import find_condition, format_time, set_condition
from infercost.kube.controller import (
    DONE,
    RETRY,
    Controller,
    RequeueAfter,
    Result,
    spec_or_metadata_changed,
)
from infercost.kube.events import EventRecorder, ObjectRef
from infercost.kube.informer import EventHandler
from infercost.kube.status import FieldClass, StatusRules, StatusWriter, WriteOutcome
from infercost.outputs.reportmetrics import (
    AttributionCollector,
    CloudSeries,
    ReportSeries,
    UsageReportCollector,
)

__all__ = ["REPORT_RULES", "UsageReportReconciler", "build_usagereport_controller", "report_status"]

log = structlog.get_logger("infercost.controllers.usagereport")

READY = "Ready"
STALE_INTERVALS = 3

REPORT_RULES = StatusRules.default(
    fields={"history": FieldClass.SIGNIFICANT},
    list_keys={
        "byModel": ("model", "namespace"),
        "byNamespace": ("namespace",),
        "cloudComparison": ("provider", "model"),
    },
)


@attrs.frozen
class LedgerView:
    """What one reconcile reads from the ledger, under its lock."""

    period: Period
    figures: Figures
    covered_seconds: float
    history: tuple[dict[str, Any], ...]
    historical_periods: frozenset[str]
    """Closed periods the ledger still holds in full (the others come from the status)."""
    last_time: dt.datetime | None


def _figures_entry(label: str, figures: Figures) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "period": label,
        "estimatedCostUSD": figures.cost_usd,
        "inputTokens": figures.input_tokens,
        "outputTokens": figures.output_tokens,
    }
    if figures.cost_per_million_tokens is not None:
        entry["costPerMillionTokens"] = figures.cost_per_million_tokens
    return entry


def read_ledger(
    ledger: Ledger,
    *,
    profile: str,
    schedule: str,
    namespaces: Sequence[str],
    history_limit: int,
    now: dt.datetime,
) -> LedgerView:
    last = (
        dt.datetime.fromtimestamp(ledger.last_time, dt.UTC)
        if ledger.last_time is not None
        else None
    )
    period = period_of(last or now, schedule)
    days = list(period.days())
    figures = report_figures(ledger.lines_of(days), profile, namespaces)
    covered = ledger.covered_seconds(days, profile)
    history: list[dict[str, Any]] = []
    held: set[str] = set()
    closed_days = sorted(ledger.closed)
    if closed_days and history_limit > 0:
        earliest = closed_days[0]
        first = (
            dt.datetime.fromtimestamp(ledger.first_sample, dt.UTC)
            if ledger.first_sample is not None
            else None
        )
        p = period.previous()
        while len(history) < history_limit and p.end > day_start(earliest):
            # a period the ledger holds in full: it began after the ledger's first sample,
            # or none of its days has been forgotten
            if p.start >= day_start(earliest) or (first is not None and p.start <= first):
                pdays = list(p.days())
                history.append(
                    _figures_entry(
                        p.label, report_figures(ledger.lines_of(pdays), profile, namespaces)
                    )
                )
                held.add(p.label)
            p = p.previous()
    return LedgerView(period, figures, covered, tuple(history), frozenset(held), last)


def report_status(
    *,
    current: Mapping[str, Any],
    generation: int,
    view: LedgerView,
    profile_exists: bool,
    profile_name: str,
    stale: bool,
    history_limit: int,
    catalog: Any,
    now: dt.datetime,
) -> dict[str, Any]:
    """The desired status of one report (pure)."""
    f = view.figures
    p = view.period
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "period": p.label,
        "periodStart": format_time(p.start),
        "periodEnd": format_time(p.end),
        "lastUpdated": format_time(view.last_time or now),
        "inputTokens": f.input_tokens,
        "outputTokens": f.output_tokens,
        "cachedInputTokens": f.cached_input_tokens,
        "estimatedCostUSD": f.cost_usd,
        "amortizationCostUSD": f.amortization_usd,
        "electricityCostUSD": f.electricity_usd,
        "energyKWh": f.energy_kwh,
        "idleCostUSD": f.idle_cost_usd,
    }
    if f.cost_per_million_tokens is not None:
        status["costPerMillionTokens"] = f.cost_per_million_tokens
    if f.marginal_cost_per_million_tokens is not None:
        status["marginalCostPerMillionTokens"] = f.marginal_cost_per_million_tokens
    if f.gpu_efficiency_ratio is not None:
        status["gpuEfficiencyRatio"] = f.gpu_efficiency_ratio
    by_model = [{"model": g.model, **_group_entry(g)} for g in f.by_model]
    by_ns = []
    for g in f.by_namespace:
        entry = _group_entry(g)
        share = f.share_percent(g.cost_usd)
        if share is not None:
            entry["sharePercent"] = share
        by_ns.append(entry)
    status["byModel"] = by_model
    status["byNamespace"] = by_ns
    comparison = cloud_comparison(f, view.covered_seconds, catalog, now)
    status["cloudComparison"] = comparison
    status["history"] = _history(current, generation, view, history_limit)
    if not profile_exists:
        cond = (
            "False",
            "CostProfileNotFound",
            f"CostProfile {profile_name} does not exist in "
            "this namespace; the figures booked under that name are kept",
        )
    elif stale:
        cond = (
            "False",
            "Stale",
            "the ledger has booked no sample for "
            f"{STALE_INTERVALS} scrape intervals; figures are as of lastUpdated",
        )
    else:
        cond = ("True", "ReportComputed", f"figures of {p.label} from the ledger")
    status["conditions"] = set_condition(
        current.get("conditions"),
        READY,
        status=cond[0],
        reason=cond[1],
        message=cond[2],
        observed_generation=generation,
        now=now,
    )
    return status


def _group_entry(g: GroupFigures) -> dict[str, Any]:
    """The fields byModel and byNamespace entries share."""
    entry: dict[str, Any] = {
        "namespace": g.namespace,
        "inputTokens": g.input_tokens,
        "outputTokens": g.output_tokens,
        "estimatedCostUSD": g.cost_usd,
    }
    if g.cost_per_million_tokens is not None:
        entry["costPerMillionTokens"] = g.cost_per_million_tokens
    return entry


def cloud_comparison(
    f: Figures, covered_seconds: float, catalog: Any, now: dt.datetime
) -> list[dict[str, Any]]:
    if catalog is None:
        return []
    usage = [
        ModelUsage(
            model=g.model,
            namespace=g.namespace,
            uncached_input_tokens=g.uncached_input_tokens,
            cached_input_tokens=g.cached_input_tokens,
            output_tokens=g.output_tokens,
            cost_usd=g.cost_usd,
            non_idle_electricity_usd=g.non_idle_electricity_usd,
            family=g.family,
        )
        for g in f.by_model
    ]
    out = []
    for e in compare_with_cloud(
        usage,
        catalog,
        amortization_cost_usd=f.amortization_usd,
        covered_seconds=covered_seconds,
        at=now,
    ):
        entry: dict[str, Any] = {
            "provider": e.provider,
            "model": e.model,
            "estimatedCloudCostUSD": e.estimated_cloud_cost_usd,
            "savingsUSD": e.savings_usd,
        }
        if e.savings_percent is not None:
            entry["savingsPercent"] = e.savings_percent
        if e.equivalent_to:
            entry["equivalentTo"] = list(e.equivalent_to)
        if e.break_even_tokens_per_day is not None:
            entry["breakEvenTokensPerDay"] = e.break_even_tokens_per_day
        out.append(entry)
    return out


def _history(
    current: Mapping[str, Any], generation: int, view: LedgerView, limit: int
) -> list[dict[str, Any]]:
    rebuild = current.get("observedGeneration") != generation
    entries = {e["period"]: dict(e) for e in view.history}
    if not rebuild:
        for old in current.get("history") or ():
            label = old.get("period")
            if label and label not in view.historical_periods and label < view.period.label:
                entries.setdefault(label, dict(old))
    return [entries[k] for k in sorted(entries, reverse=True)][:limit]


class UsageReportReconciler:
    def __init__(
        self,
        *,
        reports: Any,
        profiles: Any,
        keeper: LedgerKeeper,
        writer: StatusWriter,
        events: EventRecorder,
        collector: UsageReportCollector,
        clock: Clock,
        scrape_interval: float,
        pricing: PricingWatch | None,
        object_ref: Callable[[Any], ObjectRef],
    ) -> None:
        self.reports = reports
        self.profiles = profiles
        self.keeper = keeper
        self.writer = writer
        self.events = events
        self.collector = collector
        self.clock = clock
        self.scrape_interval = scrape_interval
        self.pricing = pricing
        self.object_ref = object_ref

    def reconcile(self, key: str) -> Result:
        namespace, _, name = key.partition("/")
        obj = self.reports.store.get(key)
        if obj is None:
            self.collector.remove(namespace, name)
            self.writer.forget(namespace, name)
            return DONE
        if not self.keeper.restored():
            return RequeueAfter(1.0)
        meta = obj.get("metadata") or {}
        generation = int(meta.get("generation") or 0)
        current = obj.get("status") or {}
        now = self.clock.now()
        try:
            spec = parse_usagereport(obj, include_status=False).spec
        except ValidationError as exc:
            self.collector.remove(namespace, name)
            invalid: dict[str, Any] = {
                "observedGeneration": generation,
                "lastUpdated": format_time(now),
                "conditions": set_condition(
                    current.get("conditions"),
                    READY,
                    status="False",
                    reason="InvalidSpec",
                    message=str(exc),
                    observed_generation=generation,
                    now=now,
                ),
            }
            return self._write(obj, invalid, current)
        profile_key = f"{namespace}/{spec.cost_profile_ref}"
        view = self.keeper.read(
            lambda ledger: read_ledger(
                ledger,
                profile=profile_key,
                schedule=str(spec.schedule.value),
                namespaces=tuple(spec.namespaces),
                history_limit=spec.history_limit,
                now=now,
            )
        )
        booked = self.keeper.last_booked_monotonic
        stale = booked is None or (
            self.clock.monotonic() - booked > STALE_INTERVALS * self.scrape_interval
        )
        desired = report_status(
            current=current,
            generation=generation,
            view=view,
            profile_exists=self.profiles.store.get(profile_key) is not None,
            profile_name=spec.cost_profile_ref,
            stale=stale,
            history_limit=spec.history_limit,
            catalog=self.pricing.catalog if self.pricing is not None else None,
            now=now,
        )
        f = view.figures
        self.collector.update(
            ReportSeries(
                namespace=namespace,
                name=name,
                period=view.period.label,
                cost_usd=f.cost_usd,
                cost_per_million_tokens_usd=f.cost_per_million_tokens,
                gpu_efficiency_ratio=f.gpu_efficiency_ratio,
                input_tokens=f.input_tokens,
                output_tokens=f.output_tokens,
                cloud=tuple(
                    CloudSeries(
                        c["provider"], c["model"], c["estimatedCloudCostUSD"], c["savingsUSD"]
                    )
                    for c in desired["cloudComparison"]
                ),
            )
        )
        result = self._write(obj, desired, current)
        if result is DONE and not stale and booked is not None:
            # look again when the data would turn stale, in case the ledger stops booking
            left = STALE_INTERVALS * self.scrape_interval - (self.clock.monotonic() - booked)
            return RequeueAfter(max(left, 0.0) + 0.05)
        return result

    def _write(self, obj: Any, desired: Mapping[str, Any], current: Mapping[str, Any]) -> Result:
        result = self.writer.write(obj, desired)
        if result.outcome is WriteOutcome.CONFLICT:
            return RETRY
        if result.outcome is WriteOutcome.DEFERRED and result.due_in is not None:
            return RequeueAfter(result.due_in)
        if result.outcome is WriteOutcome.WRITTEN:
            self._events(obj, current, desired)
        return DONE

    def _events(self, obj: Any, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        before = find_condition(old.get("conditions"), READY)
        after = find_condition(new.get("conditions"), READY)
        if after is None:
            return
        if before is None or (before.get("status"), before.get("reason")) != (
            after.get("status"),
            after.get("reason"),
        ):
            ref = self.object_ref(obj)
            if after.get("status") == "True":
                self.events.normal(ref, str(after["reason"]), str(after["message"]))
            else:
                self.events.warning(ref, str(after["reason"]), str(after["message"]))
        if old.get("period") and new.get("period") and old["period"] != new["period"]:
            self.events.normal(
                self.object_ref(obj),
                "PeriodClosed",
                f"period {old['period']} closed; now reporting {new['period']}",
            )


def build_usagereport_controller(
    context: Any, keeper: LedgerKeeper, pricing: PricingWatch
) -> Controller:
    reports = context.custom_informer(USAGEREPORT.kind)
    profiles = context.custom_informer(COSTPROFILE.kind)
    collector = UsageReportCollector()
    context.register_collector(collector, leader_only=True)
    reconciler = UsageReportReconciler(
        reports=reports,
        profiles=profiles,
        keeper=keeper,
        writer=context.status_writer(USAGEREPORT.kind, REPORT_RULES),
        events=context.events,
        collector=collector,
        clock=context.clock,
        scrape_interval=context.config.scrape_interval,
        pricing=pricing,
        object_ref=lambda obj: context.object_ref(USAGEREPORT.kind, obj),
    )
    controller: Controller = context.controller(
        "usagereport",
        reconciler.reconcile,
        primary=reports,
        # every booking enqueues them all: the echo of our own status write is not news
        primary_updates=spec_or_metadata_changed,
    )
    keeper.subscribe(controller.enqueue_all)
    profiles.add_handler(
        EventHandler(
            on_add=controller.enqueue_all,
            on_update=lambda *_: None,
            on_delete=controller.enqueue_all,
        )
    )
    return controller


def attribution_collector(keeper: LedgerKeeper) -> AttributionCollector:
    def read() -> tuple[dict[tuple[str, str, str], list[float]], dict[str, float]]:
        return keeper.read(
            lambda ledger: (
                {k: list(v) for k, v in ledger.attributed.items()},
                dict(ledger.attributed_idle),
            )
        )

    return AttributionCollector(read)
