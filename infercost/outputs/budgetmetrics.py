"""TokenBudget series for Prometheus (SPEC §6.1), computed at scrape time from plain records.

The TokenBudget controller hands this module one :class:`BudgetSeries` per budget after each
reconcile and removes it when the budget is deleted; a scrape renders whatever records exist
at that moment, so a deleted budget's series disappear with its record. The budget's
PrometheusRule (:mod:`infercost.outputs.rules`) alerts on these series, so their names and
labels are defined here once and imported there.

Series, each with ``budget``, ``budget_namespace`` (where the TokenBudget lives) and
``scope_namespace`` (whose spend it limits):

- ``infercost_budget_limit_usd``: ``spec.monthlyLimitUSD``;
- ``infercost_budget_spend_usd``: ``status.currentSpendUSD``;
- ``infercost_budget_used_ratio``: ``status.utilizationPercent`` ÷ 100 (1 = the limit);
- ``infercost_budget_projected_spend_usd``: ``status.projectedSpendUSD``.

The scope namespace is deliberately not called ``namespace``: the operator's own scrape adds a
``namespace`` target label, and the alert rules set ``namespace`` to the scope themselves.
The collector is thread-safe: the controller updates records from its workers while the HTTP
server renders them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import attrs
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from infercost.api import TokenBudgetSpec
from infercost.engine.budget import BudgetFigures

__all__ = [
    "BUDGET_LABELS",
    "LIMIT_USD",
    "PROJECTED_SPEND_USD",
    "SPEND_USD",
    "USED_RATIO",
    "BudgetCollector",
    "BudgetSeries",
]

LIMIT_USD = "infercost_budget_limit_usd"
SPEND_USD = "infercost_budget_spend_usd"
USED_RATIO = "infercost_budget_used_ratio"
PROJECTED_SPEND_USD = "infercost_budget_projected_spend_usd"
BUDGET_LABELS: tuple[str, str, str] = ("budget", "budget_namespace", "scope_namespace")


@attrs.frozen
class BudgetSeries:
    """Everything the series of one TokenBudget show."""

    namespace: str
    name: str
    scope_namespace: str
    limit_usd: float
    spend_usd: float
    used_ratio: float
    projected_spend_usd: float

    @classmethod
    def of(
        cls, namespace: str, name: str, spec: TokenBudgetSpec, figures: BudgetFigures
    ) -> BudgetSeries:
        """The record of a budget from its spec and the figures its status shows."""
        return cls(
            namespace=namespace,
            name=name,
            scope_namespace=spec.scope.namespace,
            limit_usd=float(spec.monthly_limit_usd),
            spend_usd=figures.current_spend_usd,
            used_ratio=figures.used_ratio,
            projected_spend_usd=figures.projected_spend_usd,
        )

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


class BudgetCollector(Collector):
    """A ``prometheus_client`` collector over the current TokenBudget records."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], BudgetSeries] = {}
        self._lock = threading.Lock()

    def update(self, record: BudgetSeries) -> None:
        """Set (or replace) the record of one budget."""
        with self._lock:
            self._records[record.key] = record

    def remove(self, namespace: str, name: str) -> None:
        """Forget a budget; its series disappear from the next scrape."""
        with self._lock:
            self._records.pop((namespace, name), None)

    def records(self) -> list[BudgetSeries]:
        with self._lock:
            return [self._records[k] for k in sorted(self._records)]

    def describe(self) -> Iterable[Metric]:
        # Described lazily: collect() runs only at scrape time.
        return []

    def collect(self) -> Iterator[Metric]:
        labels = list(BUDGET_LABELS)
        limit = GaugeMetricFamily(
            LIMIT_USD, "Monthly spend limit of a TokenBudget in USD.", labels=labels
        )
        spend = GaugeMetricFamily(
            SPEND_USD,
            "Spend of the budget's scope namespace this calendar month (UTC) in USD.",
            labels=labels,
        )
        ratio = GaugeMetricFamily(
            USED_RATIO,
            "Spend this month as a fraction of the budget's monthly limit (1 = the limit).",
            labels=labels,
        )
        projected = GaugeMetricFamily(
            PROJECTED_SPEND_USD,
            "Spend projected to the end of the month at the recent run rate, in USD.",
            labels=labels,
        )
        for r in self.records():
            values = [r.name, r.namespace, r.scope_namespace]
            limit.add_metric(values, r.limit_usd)
            spend.add_metric(values, r.spend_usd)
            ratio.add_metric(values, r.used_ratio)
            projected.add_metric(values, r.projected_spend_usd)
        yield from (limit, spend, ratio, projected)
