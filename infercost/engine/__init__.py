"""Cost model, ledger and attribution: pure computation over numpy arrays.

No I/O, no Kubernetes, no HTTP, no wall clock: callers pass times and samples in.
"""

from infercost.engine.costmodel import (
    CostRates,
    ExporterState,
    ExporterStatus,
    Fallback,
    GpuPower,
    HardwareSpec,
    NodePower,
    PoolAmortization,
    PowerResolution,
    ProfileCost,
    amortization_end,
    amortization_rate_per_hour,
    combine_exporter_statuses,
    cost_rates,
    electricity_cost_per_hour,
    energy_cost_usd,
    evaluate_profile,
    millijoules_to_kwh,
    resolve_power,
    split_amortization,
    unit_rate_per_hour,
    watt_seconds_to_kwh,
)

__all__ = [
    "CostRates",
    "ExporterState",
    "ExporterStatus",
    "Fallback",
    "GpuPower",
    "HardwareSpec",
    "NodePower",
    "PoolAmortization",
    "PowerResolution",
    "ProfileCost",
    "amortization_end",
    "amortization_rate_per_hour",
    "combine_exporter_statuses",
    "cost_rates",
    "electricity_cost_per_hour",
    "energy_cost_usd",
    "evaluate_profile",
    "millijoules_to_kwh",
    "resolve_power",
    "split_amortization",
    "unit_rate_per_hour",
    "watt_seconds_to_kwh",
]
