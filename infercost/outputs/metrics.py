"""CostProfile series for Prometheus (SPEC §6.1), computed at scrape time from plain records.

The CostProfile controller hands this module one :class:`CostProfileSeries` per honoured
profile after each reconcile and removes it when the profile is deleted (or stops being
honoured); a scrape renders whatever records exist at that moment, so a deleted profile's
series disappear with its record. Nothing here knows about Kubernetes objects or the
controller: records are plain values.

Series (every one carries ``costprofile`` and ``costprofile_namespace``):

- ``infercost_costprofile_hourly_cost_usd``, ``_amortization_per_hour_usd``,
  ``_electricity_per_hour_usd``, ``_power_watts`` {…, gpu_model}: the status's display rates;
- ``infercost_costprofile_power_source`` {…, gpu_model, source}: one series per source
  (``DCGM``, ``Partial``, ``TDP``, ``None``), 1 for the active one and 0 for the others, in the
  style of kube-state-metrics' state series. Grafana shows the active source with
  ``infercost_costprofile_power_source == 1``, and an alert on losing DCGM can compare with 0
  (``infercost_costprofile_power_source{source="DCGM"} == 0``) instead of relying on a series
  going absent;
- ``infercost_gpu_power_watts`` {…, node, gpu, uuid}: each GPU with a DCGM reading.

The collector is thread-safe: the controller updates records from its workers while the HTTP
server renders them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import attrs
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from infercost.api import PowerSource
from infercost.engine.costmodel import GpuPower

__all__ = ["POWER_SOURCES", "CostProfileCollector", "CostProfileSeries", "NodePowerSeries"]

POWER_SOURCES: tuple[str, ...] = tuple(s.value for s in PowerSource)
"""Every value of the ``source`` label, in a stable order."""

_PROFILE_LABELS = ["costprofile", "costprofile_namespace", "gpu_model"]


@attrs.frozen
class NodePowerSeries:
    """The measured GPUs of one node of a profile: one ``infercost_gpu_power_watts`` each.
    Per node rather than per GPU, so that the record shares the GPUs the power resolution
    holds instead of copying each one."""

    node: str
    gpus: tuple[GpuPower, ...]


@attrs.frozen
class CostProfileSeries:
    """Everything the series of one CostProfile show."""

    namespace: str
    name: str
    gpu_model: str
    hourly_cost_usd: float
    amortization_per_hour_usd: float
    electricity_per_hour_usd: float
    power_watts: float
    power_source: str
    """One of :data:`POWER_SOURCES`."""
    nodes: tuple[NodePowerSeries, ...] = ()
    """The owned nodes with a measured GPU."""

    def __attrs_post_init__(self) -> None:
        if self.power_source not in POWER_SOURCES:
            raise ValueError(
                f"power source {self.power_source!r} is not one of {', '.join(POWER_SOURCES)}"
            )

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


class CostProfileCollector(Collector):
    """A ``prometheus_client`` collector over the current CostProfile records."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], CostProfileSeries] = {}
        self._lock = threading.Lock()

    def update(self, record: CostProfileSeries) -> None:
        """Set (or replace) the record of one profile."""
        with self._lock:
            self._records[record.key] = record

    def remove(self, namespace: str, name: str) -> None:
        """Forget a profile; its series disappear from the next scrape."""
        with self._lock:
            self._records.pop((namespace, name), None)

    def records(self) -> list[CostProfileSeries]:
        with self._lock:
            return [self._records[k] for k in sorted(self._records)]

    def describe(self) -> Iterable[Metric]:
        # Described lazily: collect() runs only at scrape time.
        return []

    def collect(self) -> Iterator[Metric]:
        records = self.records()
        hourly = GaugeMetricFamily(
            "infercost_costprofile_hourly_cost_usd",
            "Current cost rate of a CostProfile in USD per hour (amortization + electricity).",
            labels=_PROFILE_LABELS,
        )
        amortization = GaugeMetricFamily(
            "infercost_costprofile_amortization_per_hour_usd",
            "Amortization and maintenance of a CostProfile in USD per hour.",
            labels=_PROFILE_LABELS,
        )
        electricity = GaugeMetricFamily(
            "infercost_costprofile_electricity_per_hour_usd",
            "Electricity of a CostProfile at the current power draw, PUE included, "
            "in USD per hour.",
            labels=_PROFILE_LABELS,
        )
        power = GaugeMetricFamily(
            "infercost_costprofile_power_watts",
            "Current GPU power draw of a CostProfile in watts (before PUE).",
            labels=_PROFILE_LABELS,
        )
        source = GaugeMetricFamily(
            "infercost_costprofile_power_source",
            "1 for the source of a CostProfile's power figure (DCGM, Partial, TDP, None), "
            "0 for the others.",
            labels=[*_PROFILE_LABELS, "source"],
        )
        gpu_power = GaugeMetricFamily(
            "infercost_gpu_power_watts",
            "Power draw of one GPU as DCGM reports it, in watts.",
            labels=["costprofile", "costprofile_namespace", "node", "gpu", "uuid"],
        )
        for r in records:
            labels = [r.name, r.namespace, r.gpu_model]
            hourly.add_metric(labels, r.hourly_cost_usd)
            amortization.add_metric(labels, r.amortization_per_hour_usd)
            electricity.add_metric(labels, r.electricity_per_hour_usd)
            power.add_metric(labels, r.power_watts)
            for value in POWER_SOURCES:
                source.add_metric([*labels, value], 1.0 if value == r.power_source else 0.0)
            for n in r.nodes:
                for g in n.gpus:
                    gpu_power.add_metric([r.name, r.namespace, n.node, g.gpu, g.uuid], g.watts)
        yield from (hourly, amortization, electricity, power, source, gpu_power)
