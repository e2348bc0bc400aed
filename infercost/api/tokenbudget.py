"""TokenBudget: a monthly spend limit for a namespace (SPEC §2.3).

Spec and status models only; spend and projections come from ``infercost.engine``.
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
from infercost.api.schema import (
    DNS1123_LABEL,
    DNS1123_LABEL_HELP,
    Boolean,
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


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class BudgetState(enum.StrEnum):
    OK = "OK"
    WARNING = "Warning"
    CRITICAL = "Critical"
    EXCEEDED = "Exceeded"


@attrs.frozen
class BudgetScope(Model):
    """Whose spend the budget limits."""

    namespace: str = attrs.field(
        **crd(
            "namespace",
            String(
                min_length=1,
                max_length=63,
                pattern=DNS1123_LABEL,
                pattern_help=f"a namespace name, {DNS1123_LABEL_HELP}",
            ),
            "Namespace whose pods' spend counts against the budget.",
        )
    )


@attrs.frozen
class AlertThreshold(Model):
    """An alert when spend reaches a percentage of the limit."""

    percent: int = attrs.field(
        **crd(
            "percent",
            Integer(minimum=1, maximum=1000, format="int32"),
            "Percentage of monthlyLimitUSD (above 100 is allowed).",
        )
    )
    severity: Severity = attrs.field(
        **crd(
            "severity",
            Enum(Severity),
            "Alert severity; warning and critical also set the budget state, info does not.",
        )
    )


@attrs.frozen
class TokenBudgetSpec(Model):
    """A monthly spend limit for a namespace with alert thresholds."""

    scope: BudgetScope = attrs.field(
        **crd("scope", Object(BudgetScope), "What the budget applies to.")
    )
    monthly_limit_usd: float = attrs.field(
        **crd(
            "monthlyLimitUSD",
            Number(minimum=0, exclusive_minimum=True),
            "Spend limit per calendar month (UTC) in USD.",
        )
    )
    alert_thresholds: tuple[AlertThreshold, ...] = attrs.field(
        default=(),
        **crd(
            "alertThresholds",
            List(Object(AlertThreshold), list_type="map", map_keys=("percent",)),
            "Alerts by percentage of the limit, one per percent.",
        ),
    )
    forecast_alert: bool = attrs.field(
        default=True,
        **crd(
            "forecastAlert",
            Boolean(),
            "Alert when the projected month-end spend exceeds the limit.",
        ),
    )


@attrs.frozen
class CrossedThreshold(Model):
    """A threshold the current month's spend has reached."""

    percent: int = attrs.field(
        **crd("percent", Integer(minimum=1, maximum=1000, format="int32"), "Threshold percent.")
    )
    severity: Severity = attrs.field(**crd("severity", Enum(Severity), "Threshold severity."))
    crossed_time: dt.datetime | None = attrs.field(
        default=None,
        **crd(
            "crossedTime",
            DateTime(),
            "Time of the first data this month that showed the threshold crossed.",
        ),
    )


@attrs.frozen
class ObjectReference(Model):
    """Name and namespace of an object the operator owns."""

    name: str = attrs.field(**crd("name", String(), "Name of the object."))
    namespace: str = attrs.field(**crd("namespace", String(), "Namespace of the object."))


@attrs.frozen
class TokenBudgetStatus(Model):
    """The current month's spend against the limit."""

    period_start: dt.datetime | None = attrs.field(
        default=None, **crd("periodStart", DateTime(), "Start of the calendar month (UTC).")
    )
    period_end: dt.datetime | None = attrs.field(
        default=None, **crd("periodEnd", DateTime(), "End of the calendar month (UTC, exclusive).")
    )
    current_spend_usd: float | None = attrs.field(
        default=None,
        **crd(
            "currentSpendUSD",
            Number(),
            "Spend of the scope namespace this month over all CostProfiles, idle share included.",
        ),
    )
    utilization_percent: float | None = attrs.field(
        default=None, **crd("utilizationPercent", Number(), "Spend as a percentage of the limit.")
    )
    projected_spend_usd: float | None = attrs.field(
        default=None,
        **crd(
            "projectedSpendUSD",
            Number(),
            "Spend projected to month end at the last 168 hours' run rate.",
        ),
    )
    projected_exhaustion: dt.datetime | None = attrs.field(
        default=None,
        **crd(
            "projectedExhaustion",
            DateTime(),
            "When the run rate crosses the limit, if before month end.",
        ),
    )
    state: BudgetState | None = attrs.field(
        default=None, **crd("state", Enum(BudgetState), "OK, Warning, Critical or Exceeded.")
    )
    thresholds_crossed: tuple[CrossedThreshold, ...] = attrs.field(
        default=(),
        **crd(
            "thresholdsCrossed", List(Object(CrossedThreshold)), "Thresholds reached this month."
        ),
    )
    prometheus_rule_ref: ObjectReference | None = attrs.field(
        default=None,
        **crd(
            "prometheusRuleRef",
            Object(ObjectReference),
            "The PrometheusRule holding this budget's alerts, when there is one.",
        ),
    )
    observed_generation: int | None = observed_generation_field()
    last_updated: dt.datetime | None = last_updated_field()
    conditions: tuple[Condition, ...] = conditions_field("Ready and BudgetExceeded.")
