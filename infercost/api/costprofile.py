"""CostProfile: the hardware economics of a node or GPU pool (SPEC §2.1).

Spec and status models only; the cost formulas live in ``infercost.engine``.
"""

from __future__ import annotations

import datetime as dt
import enum

import attrs

from infercost.api.meta import (
    Condition,
    conditions_field,
    last_updated_field,
    observed_generation_field,
)
from infercost.api.names import LABEL_VALUE, LABEL_VALUE_HELP, label_key_problem
from infercost.api.schema import (
    Date,
    Enum,
    FrozenMap,
    Integer,
    List,
    Model,
    Number,
    Object,
    String,
    StringMap,
    crd,
)


@attrs.frozen
class Hardware(Model):
    """The GPU pool and what it cost."""

    gpu_model: str = attrs.field(
        **crd(
            "gpuModel",
            String(min_length=1, max_length=128),
            "GPU model, free form (shown in dashboards), e.g. NVIDIA H100 SXM5 80GB.",
        )
    )
    gpu_count: int = attrs.field(
        **crd(
            "gpuCount",
            Integer(minimum=1, format="int32"),
            "Number of GPUs in the pool that purchasePriceUSD paid for.",
        )
    )
    purchase_price_usd: float = attrs.field(
        **crd("purchasePriceUSD", Number(minimum=0), "Purchase price of the whole pool in USD.")
    )
    amortization_years: float = attrs.field(
        default=3.0,
        **crd(
            "amortizationYears",
            Number(minimum=0, exclusive_minimum=True, maximum=20),
            "Years over which the purchase price is amortized.",
        ),
    )
    maintenance_percent_per_year: float = attrs.field(
        default=0.0,
        **crd(
            "maintenancePercentPerYear",
            Number(minimum=0, maximum=1),
            "Yearly maintenance as a fraction of the purchase price (0.10 = 10 % per year).",
        ),
    )
    tdp_watts: float | None = attrs.field(
        default=None,
        **crd(
            "tdpWatts",
            Number(minimum=0, exclusive_minimum=True),
            "Board power per GPU in watts, used when DCGM has no reading for a GPU.",
        ),
    )
    purchase_date: dt.date | None = attrs.field(
        default=None,
        **crd(
            "purchaseDate",
            Date(),
            "Purchase date; amortization (not maintenance) stops amortizationYears after it.",
        ),
    )


@attrs.frozen
class Electricity(Model):
    """What the pool's energy costs."""

    rate_per_kwh: float = attrs.field(
        **crd("ratePerKWh", Number(minimum=0), "Electricity price in USD per kWh.")
    )
    pue_factor: float = attrs.field(
        default=1.0,
        **crd(
            "pueFactor",
            Number(minimum=1.0, maximum=3.0),
            "Power usage effectiveness of the facility (total power / IT power).",
        ),
    )


@attrs.frozen
class CostProfileSpec(Model):
    """Hardware economics of a node or GPU pool."""

    hardware: Hardware = attrs.field(
        **crd("hardware", Object(Hardware), "The GPU pool and its price.")
    )
    electricity: Electricity = attrs.field(
        **crd("electricity", Object(Electricity), "Electricity price and facility overhead.")
    )
    node_selector: FrozenMap = attrs.field(
        default=FrozenMap(),
        **crd(
            "nodeSelector",
            StringMap(
                String(max_length=63, pattern=LABEL_VALUE, pattern_help=LABEL_VALUE_HELP),
                key_problem=label_key_problem,
                key_help="label keys ([prefix/]name)",
            ),
            "Node labels that all must match for a node to belong to the pool; empty selects "
            "every node.",
        ),
    )


class PowerSource(enum.StrEnum):
    DCGM = "DCGM"
    PARTIAL = "Partial"
    TDP = "TDP"
    NONE = "None"


_COUNT = Integer(minimum=0, format="int32")


@attrs.frozen
class CostProfileStatus(Model):
    """Observed state of a CostProfile."""

    hourly_cost_usd: float | None = attrs.field(
        default=None,
        **crd(
            "hourlyCostUSD",
            Number(),
            "Current cost rate in USD per hour (amortization + electricity); display only.",
        ),
    )
    amortization_rate_per_hour: float | None = attrs.field(
        default=None,
        **crd("amortizationRatePerHour", Number(), "Amortization and maintenance in USD per hour."),
    )
    electricity_cost_per_hour: float | None = attrs.field(
        default=None,
        **crd(
            "electricityCostPerHour",
            Number(),
            "Electricity at the current power draw, PUE included, in USD per hour.",
        ),
    )
    current_power_draw_watts: float | None = attrs.field(
        default=None,
        **crd(
            "currentPowerDrawWatts",
            Number(),
            "Current power draw of the pool's GPUs in watts (before PUE).",
        ),
    )
    power_source: PowerSource | None = attrs.field(
        default=None,
        **crd(
            "powerSource",
            Enum(PowerSource),
            "Where the power figure comes from: DCGM, Partial (DCGM plus fallback), TDP or None.",
        ),
    )
    matched_nodes: tuple[str, ...] = attrs.field(
        default=(), **crd("matchedNodes", List(String()), "Names of the nodes the profile owns.")
    )
    matched_gpus: int | None = attrs.field(
        default=None, **crd("matchedGPUs", _COUNT, "GPUs on the matched nodes.")
    )
    gpus_reporting: int | None = attrs.field(
        default=None, **crd("gpusReporting", _COUNT, "GPUs with a DCGM power reading.")
    )
    inference_pods: int | None = attrs.field(
        default=None, **crd("inferencePods", _COUNT, "Inference pods on the matched nodes.")
    )
    observed_generation: int | None = observed_generation_field()
    last_updated: dt.datetime | None = last_updated_field()
    conditions: tuple[Condition, ...] = conditions_field("Ready, DCGMReachable and MetricsScraped.")
