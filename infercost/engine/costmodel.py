"""The cost model of SPEC §5 and the power resolution of SPEC §2.1, as pure functions.

Everything here takes plain values (prices, rates, GPU counts, readings, a time ``at``) and
returns immutable results. No clock, no I/O: the CostProfile controller and the ledger pass in
what they observed. It computes facts; it never words them or maps them to condition states
(:mod:`infercost.controllers.wording` does). Units are in the names: ``_usd``,
``_per_hour``, ``_watts``, ``_kwh``, ``_mj``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs

HOURS_PER_YEAR = 8760.0
"""SPEC §5: a year of amortization and maintenance is 8760 hours (leap days are not special)."""
MILLIJOULES_PER_KWH = 3.6e9
WATT_SECONDS_PER_KWH = 3.6e6


def millijoules_to_kwh(millijoules: float) -> float:
    """DCGM's energy counter (mJ) to kWh."""
    return millijoules / MILLIJOULES_PER_KWH


def watt_seconds_to_kwh(watt_seconds: float) -> float:
    """Power × time (W·s, i.e. J) to kWh."""
    return watt_seconds / WATT_SECONDS_PER_KWH


# ---------------------------------------------------------------------------------------------
# amortization


class HardwareSpec(Protocol):
    """What the cost model reads of a CostProfile's ``spec.hardware``.

    :class:`infercost.api.Hardware` is one: its bounds (``gpuCount`` ≥ 1, ``amortizationYears``
    in (0, 20], …) and defaults are the api's, checked once when the spec is parsed; the
    engine takes the parsed object as it is.
    """

    @property
    def gpu_count(self) -> int: ...

    @property
    def purchase_price_usd(self) -> float: ...

    @property
    def amortization_years(self) -> float: ...

    @property
    def maintenance_percent_per_year(self) -> float: ...

    @property
    def tdp_watts(self) -> float | None: ...

    @property
    def purchase_date(self) -> dt.date | None: ...


def amortization_end(hardware: HardwareSpec) -> dt.datetime | None:
    """When the purchase price is fully written off: ``purchaseDate + amortizationYears``.

    A year is 8760 hours here too, so the write-off sums exactly to the purchase price. A plain
    date means midnight UTC.
    """
    if hardware.purchase_date is None:
        return None
    return _utc(hardware.purchase_date) + dt.timedelta(
        hours=hardware.amortization_years * HOURS_PER_YEAR
    )


def _utc(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass an aware (UTC) time")
        return value.astimezone(dt.UTC)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def depreciation_rate_per_hour(hardware: HardwareSpec, at: dt.datetime | None = None) -> float:
    """``purchasePriceUSD / (amortizationYears × 8760)``; 0 from ``amortization_end`` on."""
    end = amortization_end(hardware)
    if end is not None and at is not None and _utc(at) >= end:
        return 0.0
    return hardware.purchase_price_usd / (hardware.amortization_years * HOURS_PER_YEAR)


def maintenance_rate_per_hour(hardware: HardwareSpec) -> float:
    """``purchasePriceUSD × maintenancePercentPerYear / 8760`` (never stops)."""
    return hardware.purchase_price_usd * hardware.maintenance_percent_per_year / HOURS_PER_YEAR


def amortization_rate_per_hour(hardware: HardwareSpec, at: dt.datetime | None = None) -> float:
    """SPEC §5 ``amortizationRatePerHour`` at time ``at`` (USD per hour for the whole pool).

    Without ``at`` the purchase date is not considered (the rate while amortizing).
    """
    return depreciation_rate_per_hour(hardware, at) + maintenance_rate_per_hour(hardware)


def unit_rate_per_hour(
    amortization_per_hour: float, gpu_count: int, owned_gpus: float = 0.0
) -> float:
    """SPEC §5 per-GPU ``unitRate = amortizationRatePerHour / max(gpuCount, Σ owned GPUs)``:
    more GPUs than ``gpuCount`` share the pool's amortization, never add to it."""
    if gpu_count < 1:
        raise ValueError(f"gpuCount must be at least 1, got {gpu_count}")
    return amortization_per_hour / max(float(gpu_count), owned_gpus)


def node_gpu_counts(
    node_capacities: Mapping[str, float | None], gpu_count: int
) -> dict[str, float]:
    """GPUs each owned node counts for (SPEC §5): its GPUs (``nvidia.com/gpu`` capacity ÷
    replicas; absent or 0 = none); only when no owned node reports any do the owned nodes
    share ``gpuCount`` equally."""
    if not node_capacities:
        return {}
    if any(capacity for capacity in node_capacities.values()):
        return {node: float(capacity or 0) for node, capacity in node_capacities.items()}
    even = gpu_count / len(node_capacities)
    return dict.fromkeys(node_capacities, even)


@attrs.frozen
class NodeAmortization:
    node: str
    gpus: float
    amortization_per_hour: float


@attrs.frozen
class PoolAmortization:
    """How a profile's amortization is carried by its matched nodes (SPEC §5 per-GPU unit).

    ``pool_idle_per_hour`` is the shortfall: the GPUs of ``gpuCount`` that no matched node
    holds (all of them with no matched node). ``excess_gpus`` counts GPUs the nodes hold beyond
    ``gpuCount``: the unit rate then divides the amortization over all of them, so the nodes
    together carry exactly the pool's amortization (the Ready message says so).
    """

    unit_rate_per_hour: float
    nodes: tuple[NodeAmortization, ...]
    pool_idle_per_hour: float
    matched_gpus: float
    excess_gpus: float

    @property
    def total_per_hour(self) -> float:
        return sum(n.amortization_per_hour for n in self.nodes) + self.pool_idle_per_hour


def split_amortization(
    amortization_per_hour: float,
    gpu_count: int,
    node_capacities: Mapping[str, float | None],
) -> PoolAmortization:
    """Split ``amortization_per_hour`` over the matched nodes by their GPUs."""
    counts = node_gpu_counts(node_capacities, gpu_count)
    matched = sum(counts.values())
    unit = unit_rate_per_hour(amortization_per_hour, gpu_count, matched)
    nodes = tuple(
        NodeAmortization(node, gpus, unit * gpus) for node, gpus in sorted(counts.items())
    )
    shortfall = max(0.0, gpu_count - matched)
    return PoolAmortization(
        unit_rate_per_hour=unit,
        nodes=nodes,
        pool_idle_per_hour=unit * shortfall,
        matched_gpus=matched,
        excess_gpus=max(0.0, matched - gpu_count),
    )


# ---------------------------------------------------------------------------------------------
# electricity


def electricity_cost_per_hour(
    power_watts: float, rate_per_kwh: float, pue_factor: float = 1.0
) -> float:
    """SPEC §5 ``currentPowerDrawWatts / 1000 × ratePerKWh × pueFactor`` (USD per hour)."""
    return power_watts / 1000.0 * rate_per_kwh * pue_factor


def energy_cost_usd(energy_kwh: float, rate_per_kwh: float, pue_factor: float = 1.0) -> float:
    """Interval electricity of a GPU: its energy (kWh, before PUE) × rate × PUE."""
    return energy_kwh * rate_per_kwh * pue_factor


@attrs.frozen
class CostRates:
    """The display rates of a CostProfile's status."""

    amortization_rate_per_hour: float
    electricity_cost_per_hour: float

    @property
    def hourly_cost_usd(self) -> float:
        return self.amortization_rate_per_hour + self.electricity_cost_per_hour


def cost_rates(
    hardware: HardwareSpec,
    *,
    power_watts: float,
    rate_per_kwh: float,
    pue_factor: float = 1.0,
    at: dt.datetime | None = None,
) -> CostRates:
    return CostRates(
        amortization_rate_per_hour=amortization_rate_per_hour(hardware, at),
        electricity_cost_per_hour=electricity_cost_per_hour(power_watts, rate_per_kwh, pue_factor),
    )


# ---------------------------------------------------------------------------------------------
# power resolution (SPEC §2.1): measured where DCGM reads a GPU, a fallback elsewhere


class ExporterState(enum.Enum):
    ANSWERED = "answered"
    """At least one exporter of the node returned a usable page."""
    FAILED = "failed"
    """Exporters were found for the node and none answered."""
    NOT_FOUND = "not_found"
    """No exporter runs on the node."""


@attrs.frozen
class ExporterStatus:
    state: ExporterState
    error: str | None = None

    @classmethod
    def answered(cls) -> ExporterStatus:
        return cls(ExporterState.ANSWERED)

    @classmethod
    def failed(cls, error: str) -> ExporterStatus:
        return cls(ExporterState.FAILED, error)

    @classmethod
    def not_found(cls) -> ExporterStatus:
        return cls(ExporterState.NOT_FOUND)


def combine_exporter_statuses(statuses: Sequence[ExporterStatus]) -> ExporterStatus:
    """One node's status from all of its exporters (duplicates happen): any answer wins."""
    if any(s.state is ExporterState.ANSWERED for s in statuses):
        return ExporterStatus.answered()
    errors = [s.error or "failed" for s in statuses if s.state is ExporterState.FAILED]
    if errors:
        return ExporterStatus.failed("; ".join(dict.fromkeys(errors)))
    return ExporterStatus.not_found()


@attrs.frozen
class GpuPower:
    """One measured GPU (already deduplicated by UUID by the reader)."""

    uuid: str
    gpu: str
    watts: float


class Fallback(enum.Enum):
    """Where a GPU without a reading gets its power from (SPEC §2.1, in this order)."""

    TDP = "tdp"
    """``spec.hardware.tdpWatts``."""
    MEASURED_MEAN = "measured_mean"
    """The mean of the profile's measured GPUs."""
    NONE = "none"
    """Nothing to go by: 0 W."""


@attrs.frozen
class NodePower:
    node: str
    gpus: float
    """GPUs the node counts for (its GPUs, else gpuCount ÷ matched nodes)."""
    measured: tuple[GpuPower, ...]
    fallback_gpus: float
    """GPUs of the node without a reading."""
    fallback_watts_per_gpu: float
    exporter: ExporterStatus | None
    """What the node's DCGM exporters did; ``None`` when none was found."""

    @property
    def measured_watts(self) -> float:
        return sum(g.watts for g in self.measured)

    @property
    def power_watts(self) -> float:
        return self.measured_watts + self.fallback_gpus * self.fallback_watts_per_gpu


@attrs.frozen
class PowerResolution:
    """The power of a profile's owned nodes: per node what was measured and what falls back."""

    power_watts: float
    matched_gpus: float
    """GPUs of the owned nodes (0 when the profile owns none)."""
    gpus_reporting: int
    fallback: Fallback
    fallback_watts_per_gpu: float
    nodes: tuple[NodePower, ...]

    @property
    def fallback_gpus(self) -> float:
        return sum(n.fallback_gpus for n in self.nodes)

    @property
    def exporter_failed(self) -> bool:
        """An exporter of some owned node was found and failed."""
        return any(n.exporter is not None and n.exporter.state is ExporterState.FAILED
                   for n in self.nodes)  # fmt: skip

    @property
    def measured(self) -> tuple[tuple[str, GpuPower], ...]:
        """(node, GPU) of every measured GPU, for ``infercost_gpu_power_watts``."""
        return tuple((n.node, g) for n in self.nodes for g in n.measured)


def resolve_power(
    node_capacities: Mapping[str, float | None],
    gpu_count: int,
    exporters: Mapping[str, ExporterStatus],
    readings: Mapping[str, Sequence[GpuPower]],
    tdp_watts: float | None = None,
) -> PowerResolution:
    """Decide, per owned node and GPU, measured or fallback power (SPEC §2.1).

    ``node_capacities``: owned node → its GPUs (``None`` when unknown); ``exporters``: node →
    what its DCGM exporters did (a node absent here had none); ``readings``: node → its
    measured GPUs, one per UUID with a usable value, as the reader delivers them
    (:func:`infercost.collect.dcgm.dedupe_gpus`); readings of unowned nodes are ignored. A
    profile that owns no node draws no power: its GPUs are another profile's, or nowhere, so
    they are not counted twice.
    """
    counts = node_gpu_counts(node_capacities, gpu_count)
    measured_by_node = {
        node: tuple(sorted(readings.get(node, ()), key=lambda g: (_index_key(g.gpu), g.uuid)))
        for node in sorted(counts)
    }
    all_measured = [g for gs in measured_by_node.values() for g in gs]

    if tdp_watts is not None:
        fallback, kind = float(tdp_watts), Fallback.TDP
    elif all_measured:
        fallback, kind = (
            sum(g.watts for g in all_measured) / len(all_measured),
            Fallback.MEASURED_MEAN,
        )
    else:
        fallback, kind = 0.0, Fallback.NONE

    nodes = tuple(
        NodePower(
            node=node,
            gpus=counts[node],
            measured=measured_by_node[node],
            fallback_gpus=max(0.0, counts[node] - len(measured_by_node[node])),
            fallback_watts_per_gpu=fallback,
            exporter=exporters.get(node),
        )
        for node in sorted(counts)
    )
    return PowerResolution(
        power_watts=sum(n.power_watts for n in nodes),
        matched_gpus=sum(counts.values()),
        gpus_reporting=len(all_measured),
        fallback=kind,
        fallback_watts_per_gpu=fallback,
        nodes=nodes,
    )


def _index_key(gpu: str) -> tuple[int, str]:
    return (int(gpu), "") if gpu.isdigit() else (1 << 30, gpu)


# ---------------------------------------------------------------------------------------------
# one profile's display status


@attrs.frozen
class ProfileCost:
    """The computed part of a CostProfile's status (SPEC §2.1) at one instant."""

    hourly_cost_usd: float
    amortization_rate_per_hour: float
    electricity_cost_per_hour: float
    current_power_draw_watts: float
    power: PowerResolution
    amortization: PoolAmortization

    @property
    def matched_gpus(self) -> float:
        return self.power.matched_gpus

    @property
    def gpus_reporting(self) -> int:
        return self.power.gpus_reporting


def evaluate_profile(
    hardware: HardwareSpec,
    *,
    rate_per_kwh: float,
    pue_factor: float,
    node_capacities: Mapping[str, float | None],
    exporters: Mapping[str, ExporterStatus],
    readings: Mapping[str, Sequence[GpuPower]],
    at: dt.datetime | None = None,
) -> ProfileCost:
    """Everything a CostProfile's status shows about cost and power, from plain inputs."""
    power = resolve_power(
        node_capacities, hardware.gpu_count, exporters, readings, hardware.tdp_watts
    )
    amortization_per_hour = amortization_rate_per_hour(hardware, at)
    pool = split_amortization(amortization_per_hour, hardware.gpu_count, node_capacities)
    electricity = electricity_cost_per_hour(power.power_watts, rate_per_kwh, pue_factor)
    return ProfileCost(
        hourly_cost_usd=amortization_per_hour + electricity,
        amortization_rate_per_hour=amortization_per_hour,
        electricity_cost_per_hour=electricity,
        current_power_draw_watts=power.power_watts,
        power=power,
        amortization=pool,
    )
