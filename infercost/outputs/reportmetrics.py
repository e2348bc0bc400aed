"""UsageReport and attribution series for Prometheus (SPEC §6.1), rendered at scrape time.

- ``infercost_usagereport_cost_usd``, ``_cost_per_million_tokens_usd``,
  ``_gpu_efficiency_ratio`` {usagereport, report_namespace, period} and
  ``infercost_usagereport_tokens`` {…, direction}: period-to-date gauges of each report;
- ``infercost_cloud_equivalent_cost_usd``, ``infercost_savings_vs_cloud_usd``
  {usagereport, report_namespace, provider, cloud_model};
- counters ``infercost_tokens_total`` {namespace, model, direction, costprofile,
  costprofile_namespace}, ``infercost_cost_usd_total`` {namespace, model, costprofile,
  costprofile_namespace}, ``infercost_idle_cost_usd_total`` {costprofile,
  costprofile_namespace}: what this process attributed since it started (from 0, never restored
  from the checkpoint), read from a callable at scrape time.

Records are plain values; a deleted report's record is removed and its series vanish.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping

import attrs
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "AttributionCollector",
    "CloudSeries",
    "LedgerHealthCollector",
    "ReportSeries",
    "UsageReportCollector",
]

_REPORT = ["usagereport", "report_namespace", "period"]
_CLOUD = ["usagereport", "report_namespace", "provider", "cloud_model"]


@attrs.frozen
class CloudSeries:
    provider: str
    cloud_model: str
    cloud_cost_usd: float
    savings_usd: float


@attrs.frozen
class ReportSeries:
    namespace: str
    name: str
    period: str
    cost_usd: float
    cost_per_million_tokens_usd: float | None
    gpu_efficiency_ratio: float | None
    input_tokens: int
    output_tokens: int
    cloud: tuple[CloudSeries, ...] = ()


class UsageReportCollector(Collector):
    def __init__(self) -> None:
        self._records: dict[tuple[str, str], ReportSeries] = {}
        self._lock = threading.Lock()

    def update(self, record: ReportSeries) -> None:
        with self._lock:
            self._records[(record.namespace, record.name)] = record

    def remove(self, namespace: str, name: str) -> None:
        with self._lock:
            self._records.pop((namespace, name), None)

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            records = sorted(self._records.values(), key=lambda r: (r.namespace, r.name))
        cost = GaugeMetricFamily(
            "infercost_usagereport_cost_usd", "Cost of the report's period so far.", labels=_REPORT
        )
        per_m = GaugeMetricFamily(
            "infercost_usagereport_cost_per_million_tokens_usd",
            "Cost per million input + output tokens of the report's period so far.",
            labels=_REPORT,
        )
        eff = GaugeMetricFamily(
            "infercost_usagereport_gpu_efficiency_ratio",
            "Active GPU-seconds over GPU-seconds in the report's period.",
            labels=_REPORT,
        )
        tokens = GaugeMetricFamily(
            "infercost_usagereport_tokens",
            "Tokens of the report's period so far.",
            labels=[*_REPORT, "direction"],
        )
        cloud = GaugeMetricFamily(
            "infercost_cloud_equivalent_cost_usd",
            "The report's tokens at the cloud entry's list prices.",
            labels=_CLOUD,
        )
        savings = GaugeMetricFamily(
            "infercost_savings_vs_cloud_usd",
            "Cloud cost minus on-prem cost (negative when the cloud is cheaper).",
            labels=_CLOUD,
        )
        for r in records:
            labels = [r.name, r.namespace, r.period]
            cost.add_metric(labels, r.cost_usd)
            if r.cost_per_million_tokens_usd is not None:
                per_m.add_metric(labels, r.cost_per_million_tokens_usd)
            if r.gpu_efficiency_ratio is not None:
                eff.add_metric(labels, r.gpu_efficiency_ratio)
            tokens.add_metric([*labels, "input"], r.input_tokens)
            tokens.add_metric([*labels, "output"], r.output_tokens)
            for c in r.cloud:
                cl = [r.name, r.namespace, c.provider, c.cloud_model]
                cloud.add_metric(cl, c.cloud_cost_usd)
                savings.add_metric(cl, c.savings_usd)
        yield from (cost, per_m, eff, tokens, cloud, savings)


class AttributionCollector(Collector):
    """The ``*_total`` counters, read from the ledger's per-process sums at scrape time.

    ``read`` returns ((profile key, namespace, model) → [input, output, USD], profile key →
    idle USD)."""

    def __init__(
        self,
        read: Callable[[], tuple[Mapping[tuple[str, str, str], list[float]], Mapping[str, float]]],
    ) -> None:
        self._read = read

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        attributed, idle = self._read()
        tokens = CounterMetricFamily(
            "infercost_tokens",
            "Tokens attributed by this process since it started.",
            labels=["namespace", "model", "direction", "costprofile", "costprofile_namespace"],
        )
        cost = CounterMetricFamily(
            "infercost_cost_usd",
            "Cost (USD) attributed by this process since it started, idle share included.",
            labels=["namespace", "model", "costprofile", "costprofile_namespace"],
        )
        idle_cost = CounterMetricFamily(
            "infercost_idle_cost_usd",
            "Idle cost (USD) booked by this process since it started.",
            labels=["costprofile", "costprofile_namespace"],
        )
        for (profile, ns, model), (tin, tout, usd) in sorted(attributed.items()):
            pns, _, pname = profile.partition("/")
            tokens.add_metric([ns, model, "input", pname, pns], tin)
            tokens.add_metric([ns, model, "output", pname, pns], tout)
            cost.add_metric([ns, model, pname, pns], usd)
        for profile, usd in sorted(idle.items()):
            pns, _, pname = profile.partition("/")
            idle_cost.add_metric([pname, pns], usd)
        yield from (tokens, cost, idle_cost)


class LedgerHealthCollector(Collector):
    """``infercost_ledger_last_checkpoint_timestamp_seconds``: when the leader last checkpointed
    the ledger (a booking with nothing to write counts), from a callable read at scrape time."""

    def __init__(self, read: Callable[[], float | None]) -> None:
        self._read = read

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        value = self._read()
        family = GaugeMetricFamily(
            "infercost_ledger_last_checkpoint_timestamp_seconds",
            "Unix time of the ledger's last successful checkpoint.",
        )
        if value is not None:
            family.add_metric([], value)
        yield family
