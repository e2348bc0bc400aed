"""UsageReport: a cost report over a calendar period (SPEC §2.2).

Spec and status models only; the figures are computed by ``infercost.engine`` from the ledger.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import attrs

from infercost.api.meta import (
    Condition,
    conditions_field,
    last_updated_field,
    observed_generation_field,
)
from infercost.api.names import (
    DNS1123_LABEL,
    DNS1123_LABEL_HELP,
    DNS1123_SUBDOMAIN,
    DNS1123_SUBDOMAIN_HELP,
)
from infercost.api.schema import (
    DateTime,
    Enum,
    Integer,
    List,
    Model,
    Number,
    Object,
    String,
    crd,
)


class Schedule(enum.StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


@attrs.frozen
class UsageReportSpec(Model):
    """What to report on and over which period."""

    cost_profile_ref: str = attrs.field(
        **crd(
            "costProfileRef",
            String(
                min_length=1,
                max_length=253,
                pattern=DNS1123_SUBDOMAIN,
                pattern_help=f"the name of a CostProfile, {DNS1123_SUBDOMAIN_HELP}",
            ),
            "Name of a CostProfile in the report's namespace.",
        )
    )
    schedule: Schedule = attrs.field(
        default=Schedule.DAILY,
        **crd(
            "schedule",
            Enum(Schedule),
            "Reporting period: daily, weekly (ISO week from Monday) or monthly, in UTC.",
        ),
    )
    namespaces: tuple[str, ...] = attrs.field(
        default=(),
        **crd(
            "namespaces",
            List(
                String(
                    min_length=1,
                    max_length=63,
                    pattern=DNS1123_LABEL,
                    pattern_help=f"a namespace name, {DNS1123_LABEL_HELP}",
                ),
                list_type="set",
            ),
            "Namespaces the report covers; empty covers all namespaces, __unallocated__ included.",
        ),
    )
    history_limit: int = attrs.field(
        default=12,
        **crd(
            "historyLimit",
            Integer(minimum=0, maximum=60, format="int32"),
            "Number of closed periods kept in status.history.",
        ),
    )


_TOKENS = Integer(minimum=0)


# Fields the breakdown lines (byModel, byNamespace, history) share with the totals, declared once.


def _input_tokens_field() -> Any:
    return attrs.field(**crd("inputTokens", _TOKENS, "Input tokens, cached ones included."))


def _output_tokens_field() -> Any:
    return attrs.field(**crd("outputTokens", _TOKENS, "Output tokens."))


def _cost_usd_field() -> Any:
    return attrs.field(**crd("estimatedCostUSD", Number(), "Cost in USD."))


def _cost_per_million_field() -> Any:
    return attrs.field(
        default=None,
        **crd(
            "costPerMillionTokens",
            Number(),
            "USD per million input + output tokens; absent without tokens.",
        ),
    )


@attrs.frozen
class ModelCost(Model):
    """Cost and tokens of one model in one namespace."""

    model: str = attrs.field(**crd("model", String(), "Model name as served."))
    namespace: str = attrs.field(
        **crd("namespace", String(), "Namespace of the pods that served it.")
    )
    input_tokens: int = _input_tokens_field()
    output_tokens: int = _output_tokens_field()
    estimated_cost_usd: float = _cost_usd_field()
    cost_per_million_tokens: float | None = _cost_per_million_field()


@attrs.frozen
class NamespaceCost(Model):
    """Cost and tokens of one namespace."""

    namespace: str = attrs.field(
        **crd("namespace", String(), "Namespace of the pods that did the work.")
    )
    input_tokens: int = _input_tokens_field()
    output_tokens: int = _output_tokens_field()
    estimated_cost_usd: float = _cost_usd_field()
    cost_per_million_tokens: float | None = _cost_per_million_field()
    share_percent: float | None = attrs.field(
        default=None, **crd("sharePercent", Number(), "Share of the report's cost in percent.")
    )


@attrs.frozen
class CloudComparison(Model):
    """What the same tokens would cost at a cloud API's list prices."""

    provider: str = attrs.field(**crd("provider", String(), "Cloud provider of the price entry."))
    model: str = attrs.field(**crd("model", String(), "Cloud model of the price entry."))
    estimated_cloud_cost_usd: float = attrs.field(
        **crd("estimatedCloudCostUSD", Number(), "Cost of the compared tokens at list prices, USD.")
    )
    savings_usd: float = attrs.field(
        **crd(
            "savingsUSD",
            Number(),
            "Cloud cost minus on-prem cost (negative when cloud is cheaper).",
        )
    )
    savings_percent: float | None = attrs.field(
        default=None,
        **crd(
            "savingsPercent",
            Number(),
            "Savings as a percentage of the cloud cost; absent when the cloud cost is 0.",
        ),
    )
    equivalent_to: tuple[str, ...] = attrs.field(
        default=(),
        **crd(
            "equivalentTo",
            List(String()),
            "On-prem models of the same open-weight family; empty for flagship entries, which "
            "cover the whole report.",
        ),
    )
    break_even_tokens_per_day: float | None = attrs.field(
        default=None,
        **crd(
            "breakEvenTokensPerDay",
            Number(),
            "Daily tokens above which on-prem is cheaper; absent when it never is.",
        ),
    )


@attrs.frozen
class HistoryEntry(Model):
    """Totals of one closed period."""

    period: str = attrs.field(**crd("period", String(), "The closed period, e.g. 2026-11-26."))
    estimated_cost_usd: float = _cost_usd_field()
    input_tokens: int = _input_tokens_field()
    output_tokens: int = _output_tokens_field()
    cost_per_million_tokens: float | None = _cost_per_million_field()


@attrs.frozen
class UsageReportStatus(Model):
    """The current period's figures and the history of closed periods."""

    period: str | None = attrs.field(
        default=None,
        **crd(
            "period",
            String(),
            "Current period: 2026-11-27 (daily), 2026-W48 (weekly) or 2026-11 (monthly).",
        ),
    )
    period_start: dt.datetime | None = attrs.field(
        default=None, **crd("periodStart", DateTime(), "Start of the period (UTC).")
    )
    period_end: dt.datetime | None = attrs.field(
        default=None, **crd("periodEnd", DateTime(), "End of the period (UTC, exclusive).")
    )
    last_updated: dt.datetime | None = last_updated_field()
    input_tokens: int | None = attrs.field(
        default=None, **crd("inputTokens", _TOKENS, "Input tokens, cached ones included.")
    )
    output_tokens: int | None = attrs.field(
        default=None, **crd("outputTokens", _TOKENS, "Output tokens.")
    )
    cached_input_tokens: int | None = attrs.field(
        default=None,
        **crd("cachedInputTokens", _TOKENS, "Input tokens served from a prefix cache."),
    )
    estimated_cost_usd: float | None = attrs.field(
        default=None, **crd("estimatedCostUSD", Number(), "Total cost of the period so far in USD.")
    )
    amortization_cost_usd: float | None = attrs.field(
        default=None,
        **crd(
            "amortizationCostUSD", Number(), "Amortization and maintenance part of the cost in USD."
        ),
    )
    electricity_cost_usd: float | None = attrs.field(
        default=None,
        **crd(
            "electricityCostUSD", Number(), "Electricity part of the cost (PUE included) in USD."
        ),
    )
    energy_kwh: float | None = attrs.field(
        default=None, **crd("energyKWh", Number(), "GPU energy before PUE in kWh.")
    )
    idle_cost_usd: float | None = attrs.field(
        default=None, **crd("idleCostUSD", Number(), "Part of the cost that was pool idle, in USD.")
    )
    cost_per_million_tokens: float | None = _cost_per_million_field()
    marginal_cost_per_million_tokens: float | None = attrs.field(
        default=None,
        **crd(
            "marginalCostPerMillionTokens",
            Number(),
            "Electricity of GPUs serving tokens per million tokens, USD; absent without measured "
            "power.",
        ),
    )
    gpu_efficiency_ratio: float | None = attrs.field(
        default=None,
        **crd(
            "gpuEfficiencyRatio",
            Number(),
            "Fraction of GPU-seconds in which the holding inference pod served tokens; "
            "measured per scrape interval, so it depends on the scrape interval.",
        ),
    )
    by_model: tuple[ModelCost, ...] = attrs.field(
        default=(), **crd("byModel", List(Object(ModelCost)), "Cost per (model, namespace).")
    )
    by_namespace: tuple[NamespaceCost, ...] = attrs.field(
        default=(), **crd("byNamespace", List(Object(NamespaceCost)), "Cost per namespace.")
    )
    cloud_comparison: tuple[CloudComparison, ...] = attrs.field(
        default=(),
        **crd(
            "cloudComparison",
            List(Object(CloudComparison)),
            "The same tokens at cloud API list prices.",
        ),
    )
    history: tuple[HistoryEntry, ...] = attrs.field(
        default=(),
        **crd(
            "history",
            List(Object(HistoryEntry)),
            "Closed periods, newest first, at most spec.historyLimit.",
        ),
    )
    observed_generation: int | None = observed_generation_field()
    conditions: tuple[Condition, ...] = conditions_field("Ready.")
