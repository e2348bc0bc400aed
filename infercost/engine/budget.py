"""The figures of a TokenBudget's status (SPEC §2.3), as a pure function of spend and time.

The TokenBudget controller asks the ledger for two sums of the scope namespace's lines — the
calendar month to date, and the run-rate window (:func:`run_rate_window`) — and hands them here
with the time of the data (``last_updated``). :func:`evaluate_budget` returns everything the
status shows: the period, spend, utilization, the projection to month end, the state, the
thresholds crossed and the ``Ready`` / ``BudgetExceeded`` conditions.

This module must not read a clock, the ledger or Kubernetes objects: it takes plain values (the
spec is read through :class:`BudgetSpec`, which the parsed ``TokenBudgetSpec`` satisfies) so
that every rule of §2.3 can be tested with hand-computed numbers. Periods are calendar months in
UTC; all datetimes must be timezone-aware.

Condition messages name the situation (limit, crossed thresholds), never the moving amounts: a
condition change is written at once, so a message that changed with every sample would turn
the status's write cadence into a write per sample.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Protocol

import attrs

__all__ = [
    "LIMIT_REACHED_REASON",
    "READY_REASON",
    "RUN_RATE_PREVIOUS_DAYS",
    "SEVERITIES",
    "WITHIN_LIMIT_REASON",
    "BudgetFigures",
    "BudgetSpec",
    "BudgetState",
    "ConditionOutcome",
    "MonthPeriod",
    "RunRateWindow",
    "ScopeSpec",
    "ThresholdCrossing",
    "ThresholdSpec",
    "evaluate_budget",
    "month_period",
    "run_rate_window",
]

RUN_RATE_PREVIOUS_DAYS = 7
"""The run rate covers the UTC day of the data and this many days before it."""

SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
"""Threshold severities, least severe first."""

_SECONDS_PER_HOUR = 3600.0


class BudgetState(enum.Enum):
    """``status.state``; the values are the CRD's."""

    OK = "OK"
    WARNING = "Warning"
    CRITICAL = "Critical"
    EXCEEDED = "Exceeded"


class ThresholdSpec(Protocol):
    """One entry of ``spec.alertThresholds``."""

    @property
    def percent(self) -> int: ...

    @property
    def severity(self) -> str: ...


class ScopeSpec(Protocol):
    @property
    def namespace(self) -> str: ...


class BudgetSpec(Protocol):
    """What the figures need of ``TokenBudget.spec`` (the parsed ``TokenBudgetSpec`` fits)."""

    @property
    def scope(self) -> ScopeSpec: ...

    @property
    def monthly_limit_usd(self) -> float: ...

    @property
    def alert_thresholds(self) -> Sequence[ThresholdSpec]: ...


def _utc(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware, got {value.isoformat()}")
    return value.astimezone(dt.UTC)


# ---------------------------------------------------------------------------------------------
# periods


@attrs.frozen
class MonthPeriod:
    """A calendar month in UTC, ``end`` exclusive."""

    start: dt.datetime
    end: dt.datetime

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / _SECONDS_PER_HOUR


def month_period(at: dt.datetime) -> MonthPeriod:
    """The calendar month (UTC) that contains ``at``."""
    at = _utc(at, "at")
    start = dt.datetime(at.year, at.month, 1, tzinfo=dt.UTC)
    if at.month == 12:
        end = dt.datetime(at.year + 1, 1, 1, tzinfo=dt.UTC)
    else:
        end = dt.datetime(at.year, at.month + 1, 1, tzinfo=dt.UTC)
    return MonthPeriod(start, end)


@attrs.frozen
class RunRateWindow:
    """The lines the run rate sums, and the hours it divides them by."""

    start: dt.datetime
    """Midnight UTC seven days before the day of the data: the first day whose lines count."""
    measured_from: dt.datetime | None
    """``max(start, first sample of the ledger)``; ``None`` before the first sample."""
    hours: float
    """From ``measured_from`` to the time of the data; 0 when there is nothing to measure."""


def run_rate_window(last_updated: dt.datetime, first_sample: dt.datetime | None) -> RunRateWindow:
    """The run-rate window of SPEC §2.3: today and the 7 previous UTC days, up to the data.

    The window crosses month boundaries (on the 3rd it reaches back into the previous month);
    it starts no earlier than the ledger's first sample, since nothing before it was counted.
    """
    last_updated = _utc(last_updated, "last_updated")
    today = dt.datetime(last_updated.year, last_updated.month, last_updated.day, tzinfo=dt.UTC)
    start = today - dt.timedelta(days=RUN_RATE_PREVIOUS_DAYS)
    if first_sample is None:
        return RunRateWindow(start, None, 0.0)
    measured_from = max(start, _utc(first_sample, "first_sample"))
    seconds = (last_updated - measured_from).total_seconds()
    return RunRateWindow(start, measured_from, max(0.0, seconds) / _SECONDS_PER_HOUR)


# ---------------------------------------------------------------------------------------------
# figures


@attrs.frozen
class ThresholdCrossing:
    """An entry of ``status.thresholdsCrossed``."""

    percent: int
    severity: str
    crossed_time: dt.datetime
    """The time of the first data of this month that showed the threshold crossed."""


@attrs.frozen
class ConditionOutcome:
    """Status, reason and message of a condition, for ``infercost.kube.conditions``."""

    status: str
    reason: str
    message: str


READY_REASON = "BudgetComputed"
WITHIN_LIMIT_REASON = "WithinLimit"
LIMIT_REACHED_REASON = "LimitReached"


@attrs.frozen
class BudgetFigures:
    """Everything a TokenBudget status shows besides the PrometheusRule reference."""

    period_start: dt.datetime
    period_end: dt.datetime
    current_spend_usd: float
    utilization_percent: float
    used_ratio: float
    """``utilization_percent / 100``, exported as ``infercost_budget_used_ratio``.

    Derived from the percentage (not as spend ÷ limit) so that a threshold listed in
    ``thresholds_crossed`` always satisfies its alert's ``used_ratio >= percent/100``.
    """
    run_rate_usd_per_hour: float
    projected_spend_usd: float
    projected_exhaustion: dt.datetime | None
    state: BudgetState
    thresholds_crossed: tuple[ThresholdCrossing, ...]
    ready: ConditionOutcome
    budget_exceeded: ConditionOutcome


def _check_amount(value: float, name: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite amount >= 0, got {value!r}")
    return float(value)


def _thresholds(spec: BudgetSpec) -> list[tuple[int, str]]:
    seen: set[int] = set()
    out: list[tuple[int, str]] = []
    for i, threshold in enumerate(spec.alert_thresholds):
        severity = str(threshold.severity)
        if severity not in SEVERITIES:
            raise ValueError(
                f"alertThresholds[{i}].severity: {severity!r} is not one of {', '.join(SEVERITIES)}"
            )
        if threshold.percent in seen:
            raise ValueError(f"alertThresholds[{i}].percent: {threshold.percent} is listed twice")
        seen.add(threshold.percent)
        out.append((threshold.percent, severity))
    return sorted(out)


def _usd(amount: float) -> str:
    return f"{amount:,.2f} USD"


def evaluate_budget(
    spec: BudgetSpec,
    *,
    spend_usd: float,
    window_spend_usd: float,
    window_hours: float,
    last_updated: dt.datetime,
    previous_crossings: Mapping[int, dt.datetime] | None = None,
    previous_period_start: dt.datetime | None = None,
) -> BudgetFigures:
    """The status figures of a budget from the ledger's sums (SPEC §2.3).

    ``spend_usd`` is the month-to-date spend of the scope namespace (the month of
    ``last_updated``); ``window_spend_usd`` its spend in the run-rate window and
    ``window_hours`` the window's hours (both from :func:`run_rate_window`).
    ``previous_crossings`` (percent → time) and ``previous_period_start`` come from the status
    being replaced: a threshold still crossed in the same month keeps the time it was first
    crossed.
    """
    limit_usd = float(spec.monthly_limit_usd)
    if not math.isfinite(limit_usd) or limit_usd <= 0:
        raise ValueError(f"monthlyLimitUSD must be > 0, got {spec.monthly_limit_usd!r}")
    spend_usd = _check_amount(spend_usd, "spend_usd")
    window_spend_usd = _check_amount(window_spend_usd, "window_spend_usd")
    window_hours = _check_amount(window_hours, "window_hours")
    last_updated = _utc(last_updated, "last_updated")
    period = month_period(last_updated)
    thresholds = _thresholds(spec)

    # Correctly rounded from the exact quotient: spend == limit is exactly 100 % (in floats,
    # spend × 100 ÷ limit falls just below 100 for about one limit in fifteen), and an exact
    # quotient at or above a threshold's percent never rounds below it.
    utilization_percent = float(Fraction(spend_usd) * 100 / Fraction(limit_usd))
    rate_usd_per_hour = window_spend_usd / window_hours if window_hours > 0 else 0.0
    seconds_left = max(0.0, (period.end - last_updated).total_seconds())
    projected_spend_usd = spend_usd + rate_usd_per_hour * seconds_left / _SECONDS_PER_HOUR

    exhaustion: dt.datetime | None = None
    if spend_usd < limit_usd and rate_usd_per_hour > 0:
        seconds_to_limit = (limit_usd - spend_usd) / rate_usd_per_hour * _SECONDS_PER_HOUR
        # Compared before building a timedelta: a tiny rate puts the limit centuries away.
        if seconds_to_limit < seconds_left:
            exhaustion = (last_updated + dt.timedelta(seconds=seconds_to_limit)).replace(
                microsecond=0
            )
            if exhaustion >= period.end:
                exhaustion = None

    carried: Mapping[int, dt.datetime] = {}
    if (
        previous_crossings
        and previous_period_start is not None
        and _utc(previous_period_start, "previous_period_start") == period.start
    ):
        carried = previous_crossings
    crossed: list[ThresholdCrossing] = []
    for percent, severity in thresholds:
        if utilization_percent >= percent:
            when = carried.get(percent)
            if when is None or not period.start <= _utc(when, "crossed time") <= last_updated:
                when = last_updated
            crossed.append(ThresholdCrossing(percent, severity, _utc(when, "crossed time")))

    if spend_usd >= limit_usd:
        state = BudgetState.EXCEEDED
    else:
        # info thresholds are listed but never change the state.
        severities = {c.severity for c in crossed}
        state = BudgetState.OK
        if "critical" in severities:
            state = BudgetState.CRITICAL
        elif "warning" in severities:
            state = BudgetState.WARNING

    scope = spec.scope.namespace
    ready = ConditionOutcome(
        "True",
        READY_REASON,
        f"spend of namespace {scope} in {period.start:%Y-%m} (UTC) is counted from the cost ledger",
    )
    crossed_text = ", ".join(f"{c.percent}% ({c.severity})" for c in crossed)
    if state is BudgetState.EXCEEDED:
        exceeded = ConditionOutcome(
            "True",
            LIMIT_REACHED_REASON,
            f"spend of namespace {scope} reached the monthly limit of {_usd(limit_usd)}",
        )
    else:
        message = f"spend of namespace {scope} is below the monthly limit of {_usd(limit_usd)}"
        if crossed:
            message += f"; thresholds crossed: {crossed_text}"
        exceeded = ConditionOutcome("False", WITHIN_LIMIT_REASON, message)

    return BudgetFigures(
        period_start=period.start,
        period_end=period.end,
        current_spend_usd=spend_usd,
        utilization_percent=utilization_percent,
        used_ratio=utilization_percent / 100.0,
        run_rate_usd_per_hour=rate_usd_per_hour,
        projected_spend_usd=projected_spend_usd,
        projected_exhaustion=exhaustion,
        state=state,
        thresholds_crossed=tuple(crossed),
        ready=ready,
        budget_exceeded=exceeded,
    )
