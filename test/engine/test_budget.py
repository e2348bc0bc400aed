"""SPEC §2.3 budget figures, with every expected value worked out by hand in the comments."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infercost.api import (
    AlertThreshold,
    BudgetScope,
    Severity,
    TokenBudgetSpec,
    parse_tokenbudget,
)
from infercost.api import BudgetState as ApiBudgetState
from infercost.engine.budget import (
    SEVERITIES,
    BudgetFigures,
    BudgetState,
    ThresholdCrossing,
    evaluate_budget,
    month_period,
    run_rate_window,
)
from infercost.kube.conditions import set_condition

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def spec(limit: float = 1000.0, *thresholds: tuple[int, str]) -> TokenBudgetSpec:
    return TokenBudgetSpec(
        scope=BudgetScope("team-a"),
        monthly_limit_usd=limit,
        alert_thresholds=tuple(AlertThreshold(p, Severity(s)) for p, s in thresholds),
    )


STANDARD = spec(1000.0, (50, "info"), (80, "warning"), (100, "critical"))


def evaluate(
    budget: TokenBudgetSpec,
    spend: float,
    when: str,
    *,
    rate: float = 0.0,
    previous: dict[int, dt.datetime] | None = None,
    previous_period: str | None = None,
) -> BudgetFigures:
    """Evaluate with a run-rate window of 192 h (8 full days of ledger) spending ``rate``/h."""
    return evaluate_budget(
        budget,
        spend_usd=spend,
        window_spend_usd=rate * 192,
        window_hours=192.0,
        last_updated=at(when),
        previous_crossings=previous,
        previous_period_start=at(previous_period) if previous_period else None,
    )


# --- periods ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "start", "end", "hours"),
    [
        ("2026-02-10T09:00:00", "2026-02-01", "2026-03-01", 28 * 24),  # 672 h
        ("2024-02-29T23:59:59", "2024-02-01", "2024-03-01", 29 * 24),  # leap year: 696 h
        ("2026-01-31T12:00:00", "2026-01-01", "2026-02-01", 31 * 24),  # 744 h
        ("2026-04-01T00:00:00", "2026-04-01", "2026-05-01", 30 * 24),  # the first instant
        ("2026-12-31T23:59:59", "2026-12-01", "2027-01-01", 31 * 24),  # year end
    ],
)
def test_period_is_the_calendar_month_in_utc(when: str, start: str, end: str, hours: int) -> None:
    period = month_period(at(when))
    assert (period.start, period.end, period.hours) == (at(start), at(end), hours)


def test_period_of_a_time_with_an_offset_is_its_utc_month() -> None:
    # 01:00 on March 1st at UTC+2 is 23:00 on February 28th in UTC.
    local = dt.datetime(2026, 3, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert month_period(local).start == at("2026-02-01T00:00:00")


def test_naive_times_are_rejected() -> None:
    with pytest.raises(ValueError, match="last_updated must be timezone-aware"):
        evaluate_budget(
            STANDARD,
            spend_usd=1.0,
            window_spend_usd=0.0,
            window_hours=0.0,
            last_updated=dt.datetime(2026, 4, 1),
        )


# --- run-rate window --------------------------------------------------------------------------


def test_run_rate_window_is_today_and_seven_days_back_across_a_month_boundary() -> None:
    # March 3rd 06:00: the window starts at midnight on February 24th (2026 is not a leap year:
    # Feb 24..28 is 5 days, March 1..2 two more, then 6 h of March 3rd = 174 h).
    window = run_rate_window(at("2026-03-03T06:00:00"), at("2025-06-01T00:00:00"))
    assert window.start == at("2026-02-24T00:00:00")
    assert window.measured_from == window.start
    assert window.hours == 174.0


def test_run_rate_window_in_a_leap_year_starts_on_february_25th() -> None:
    # 2024: Feb 25..29 is 5 days, March 1..2 two more, 6 h of March 3rd.
    window = run_rate_window(at("2024-03-03T06:00:00"), at("2024-01-01T00:00:00"))
    assert window.start == at("2024-02-25T00:00:00")
    assert window.hours == 174.0


def test_run_rate_window_starts_at_the_ledgers_first_sample_when_that_is_later() -> None:
    window = run_rate_window(at("2026-03-03T06:00:00"), at("2026-03-02T18:30:00"))
    assert window.start == at("2026-02-24T00:00:00")  # the lines to sum do not change
    assert window.measured_from == at("2026-03-02T18:30:00")
    assert window.hours == 11.5


def test_run_rate_window_without_samples_has_no_hours() -> None:
    assert run_rate_window(at("2026-03-03T06:00:00"), None).hours == 0.0
    # A first sample stamped after the data (a clock that stepped back) measures nothing.
    assert run_rate_window(at("2026-03-03T06:00:00"), at("2026-03-03T07:00:00")).hours == 0.0


# --- spend, utilization, projection -----------------------------------------------------------


def test_mid_month_figures_by_hand() -> None:
    # April has 30 days; on the 11th at 00:00, 20 days = 480 h are left. 300 USD spent, 1 USD/h:
    # projected 300 + 480 = 780; the limit (700 USD away = 700 h) is beyond month end.
    f = evaluate(STANDARD, 300.0, "2026-04-11T00:00:00", rate=1.0)
    assert (f.period_start, f.period_end) == (at("2026-04-01T00:00:00"), at("2026-05-01T00:00:00"))
    assert f.current_spend_usd == 300.0
    assert f.utilization_percent == 30.0
    assert f.used_ratio == 0.3
    assert f.run_rate_usd_per_hour == 1.0
    assert f.projected_spend_usd == 780.0
    assert f.projected_exhaustion is None
    assert f.state is BudgetState.OK
    assert f.thresholds_crossed == ()


def test_projected_exhaustion_by_hand() -> None:
    # 2.5 USD/h: projected 300 + 2.5 × 480 = 1500; the remaining 700 USD last 280 h =
    # 11 days 16 h after April 11th 00:00.
    f = evaluate(STANDARD, 300.0, "2026-04-11T00:00:00", rate=2.5)
    assert f.projected_spend_usd == 1500.0
    assert f.projected_exhaustion == at("2026-04-22T16:00:00")


@pytest.mark.parametrize(
    ("when", "projected"),
    [
        # February 2026: 14 days 12 h = 348 h left; 100 + 0.5 × 348.
        ("2026-02-14T12:00:00", 274.0),
        # February 2024 has a 29th: 15 days 12 h = 372 h left; 100 + 0.5 × 372.
        ("2024-02-14T12:00:00", 286.0),
        # January: the 31st at 00:00 leaves 24 h.
        ("2026-01-31T00:00:00", 112.0),
        # December 31st at 12:00 leaves 12 h until the new year.
        ("2026-12-31T12:00:00", 106.0),
    ],
)
def test_projection_uses_the_hours_left_in_that_month(when: str, projected: float) -> None:
    assert evaluate(STANDARD, 100.0, when, rate=0.5).projected_spend_usd == projected


def test_projection_with_a_window_shorter_than_eight_days() -> None:
    # The ledger started 12 h ago and the namespace spent 30 USD since: r = 2.5 USD/h.
    last = at("2026-04-11T00:00:00")
    window = run_rate_window(last, at("2026-04-10T12:00:00"))
    f = evaluate_budget(
        STANDARD,
        spend_usd=30.0,
        window_spend_usd=30.0,
        window_hours=window.hours,
        last_updated=last,
    )
    assert f.run_rate_usd_per_hour == 2.5
    assert f.projected_spend_usd == 30.0 + 2.5 * 480  # 1230
    # 970 USD at 2.5 USD/h = 388 h = 16 days 4 h.
    assert f.projected_exhaustion == at("2026-04-27T04:00:00")


def test_zero_run_rate_projects_the_current_spend_and_no_exhaustion() -> None:
    f = evaluate(STANDARD, 420.0, "2026-04-11T00:00:00", rate=0.0)
    assert f.run_rate_usd_per_hour == 0.0
    assert f.projected_spend_usd == 420.0
    assert f.projected_exhaustion is None
    # No hours to measure (no sample yet): the rate is 0, not a division by zero.
    g = evaluate_budget(
        STANDARD,
        spend_usd=0.0,
        window_spend_usd=0.0,
        window_hours=0.0,
        last_updated=at("2026-04-11T00:00:00"),
    )
    assert (g.run_rate_usd_per_hour, g.projected_spend_usd, g.projected_exhaustion) == (
        0.0,
        0.0,
        None,
    )


def test_exhaustion_exactly_at_period_end_is_absent() -> None:
    # January 30th 08:00 leaves 40 h; 100 USD left at 2.5 USD/h is exactly 40 h: the limit is
    # reached at periodEnd itself, which is no longer this month.
    f = evaluate(STANDARD, 900.0, "2026-01-30T08:00:00", rate=2.5)
    assert f.projected_spend_usd == 1000.0
    assert f.projected_exhaustion is None
    # One more USD per hour reaches it 100/3.5 h = 28 h 34 min 17.14 s later (to the second).
    g = evaluate(STANDARD, 900.0, "2026-01-30T08:00:00", rate=3.5)
    assert g.projected_exhaustion == at("2026-01-31T12:34:17")


def test_exhaustion_after_period_end_is_absent_even_for_a_tiny_rate() -> None:
    # 1e-12 USD/h would reach the limit in ~1e14 hours: absent, and no overflow on the way.
    f = evaluate(STANDARD, 10.0, "2026-04-11T00:00:00", rate=1e-12)
    assert f.projected_exhaustion is None


def test_spend_exactly_at_the_limit_is_exceeded() -> None:
    f = evaluate(STANDARD, 1000.0, "2026-04-11T00:00:00", rate=3.0)
    assert f.utilization_percent == 100.0
    assert f.state is BudgetState.EXCEEDED
    assert f.projected_exhaustion is None  # already reached
    assert f.projected_spend_usd == 1000.0 + 3.0 * 480
    assert [c.percent for c in f.thresholds_crossed] == [50, 80, 100]
    assert (f.budget_exceeded.status, f.budget_exceeded.reason) == ("True", "LimitReached")
    assert f.budget_exceeded.message == (
        "spend of namespace team-a reached the monthly limit of 1,000.00 USD"
    )


def test_just_below_the_limit_is_not_exceeded() -> None:
    f = evaluate(STANDARD, 999.99, "2026-04-11T00:00:00")
    assert f.state is BudgetState.WARNING  # the critical 100 % is not crossed; 80 % is
    assert [c.percent for c in f.thresholds_crossed] == [50, 80]
    assert f.budget_exceeded.status == "False"


# --- thresholds and state ---------------------------------------------------------------------


def test_threshold_exactly_reached_is_crossed() -> None:
    # 29 of 100 USD is exactly 29 %, although 0.29 × 100 is 28.999999999999996 in floating
    # point: the percentage is computed as spend × 100 ÷ limit.
    budget = spec(100.0, (29, "warning"))
    f = evaluate(budget, 29.0, "2026-04-11T00:00:00")
    assert f.utilization_percent == 29.0
    assert f.used_ratio == 0.29
    assert [c.percent for c in f.thresholds_crossed] == [29]
    assert f.state is BudgetState.WARNING


LIMITS = st.floats(min_value=0.01, max_value=1e9, allow_nan=False, allow_infinity=False)
SPENDS = st.floats(min_value=0, max_value=1e10, allow_nan=False, allow_infinity=False)


@given(limit=LIMITS)
def test_spend_equal_to_any_limit_crosses_the_100_percent_threshold(limit: float) -> None:
    # In floating point, limit × 100 ÷ limit is just below 100 for about one limit in fifteen
    # (e.g. 0.7); the budget would be Exceeded without its 100 % threshold or alert.
    f = evaluate(spec(limit, (100, "critical")), limit, "2026-04-11T00:00:00")
    assert f.state is BudgetState.EXCEEDED
    assert f.utilization_percent == 100.0
    assert f.used_ratio == 1.0
    assert [c.percent for c in f.thresholds_crossed] == [100]


@given(spend=SPENDS, limit=LIMITS, percent=st.integers(min_value=1, max_value=1000))
def test_a_threshold_reached_in_exact_arithmetic_is_crossed(
    spend: float, limit: float, percent: int
) -> None:
    f = evaluate(spec(limit, (percent, "warning")), spend, "2026-04-11T00:00:00")
    if Fraction(spend) * 100 >= percent * Fraction(limit):
        assert [c.percent for c in f.thresholds_crossed] == [percent]
        assert f.utilization_percent >= percent


def test_thresholds_above_100_percent() -> None:
    budget = spec(1000.0, (150, "info"), (100, "warning"), (120, "critical"))
    f = evaluate(budget, 1250.0, "2026-04-11T00:00:00")
    assert f.utilization_percent == 125.0
    assert [(c.percent, c.severity) for c in f.thresholds_crossed] == [
        (100, "warning"),
        (120, "critical"),
    ]
    assert f.state is BudgetState.EXCEEDED  # spend ≥ limit wins over the thresholds


def test_info_thresholds_never_change_the_state() -> None:
    budget = spec(1000.0, (10, "info"), (50, "info"))
    f = evaluate(budget, 600.0, "2026-04-11T00:00:00")
    assert [c.percent for c in f.thresholds_crossed] == [10, 50]
    assert f.state is BudgetState.OK


def test_the_most_severe_crossed_threshold_sets_the_state_whatever_its_percent() -> None:
    # A critical threshold below a warning one: at 85 % both are crossed and critical wins.
    budget = spec(1000.0, (80, "warning"), (50, "critical"), (30, "info"))
    f = evaluate(budget, 850.0, "2026-04-11T00:00:00")
    assert [c.percent for c in f.thresholds_crossed] == [30, 50, 80]
    assert f.state is BudgetState.CRITICAL
    # At 60 % the warning threshold is not crossed yet, the critical one is.
    assert evaluate(budget, 600.0, "2026-04-11T00:00:00").state is BudgetState.CRITICAL
    assert evaluate(budget, 400.0, "2026-04-11T00:00:00").state is BudgetState.OK


def test_warning_state() -> None:
    f = evaluate(STANDARD, 800.0, "2026-04-11T00:00:00")
    assert f.state is BudgetState.WARNING
    assert f.budget_exceeded.message == (
        "spend of namespace team-a is below the monthly limit of 1,000.00 USD; "
        "thresholds crossed: 50% (info), 80% (warning)"
    )


def test_no_thresholds() -> None:
    f = evaluate(spec(1000.0), 999.0, "2026-04-11T00:00:00")
    assert f.thresholds_crossed == ()
    assert f.state is BudgetState.OK
    assert f.budget_exceeded.message == (
        "spend of namespace team-a is below the monthly limit of 1,000.00 USD"
    )


def test_crossing_time_is_kept_within_the_month_and_restarts_with_the_next() -> None:
    first = evaluate(STANDARD, 850.0, "2026-04-11T00:00:00")
    assert first.thresholds_crossed == (
        ThresholdCrossing(50, "info", at("2026-04-11T00:00:00")),
        ThresholdCrossing(80, "warning", at("2026-04-11T00:00:00")),
    )
    carried = {c.percent: c.crossed_time for c in first.thresholds_crossed}
    later = evaluate(
        STANDARD, 1000.0, "2026-04-20T00:00:00", previous=carried, previous_period="2026-04-01"
    )
    assert later.thresholds_crossed == (
        ThresholdCrossing(50, "info", at("2026-04-11T00:00:00")),
        ThresholdCrossing(80, "warning", at("2026-04-11T00:00:00")),
        ThresholdCrossing(100, "critical", at("2026-04-20T00:00:00")),
    )
    # A status from another month carries nothing (here the limit was lowered on May 2nd).
    may = evaluate(
        spec(10.0, (50, "info")),
        6.0,
        "2026-05-02T00:00:00",
        previous=carried,
        previous_period="2026-04-01",
    )
    assert may.thresholds_crossed == (ThresholdCrossing(50, "info", at("2026-05-02T00:00:00")),)


def test_a_carried_crossing_time_outside_the_month_so_far_is_not_trusted() -> None:
    bogus = {50: at("2026-04-25T00:00:00"), 80: at("2026-03-31T23:59:59")}
    f = evaluate(
        STANDARD, 850.0, "2026-04-11T00:00:00", previous=bogus, previous_period="2026-04-01"
    )
    assert [c.crossed_time for c in f.thresholds_crossed] == [at("2026-04-11T00:00:00")] * 2


# --- conditions -------------------------------------------------------------------------------


def test_conditions_do_not_change_while_only_the_amounts_move() -> None:
    a = evaluate(STANDARD, 810.0, "2026-04-11T00:00:00", rate=1.0)
    b = evaluate(STANDARD, 830.5, "2026-04-11T10:00:00", rate=2.0)
    assert (a.ready, a.budget_exceeded) == (b.ready, b.budget_exceeded)
    assert (a.ready.status, a.ready.reason) == ("True", "BudgetComputed")
    assert a.ready.message == (
        "spend of namespace team-a in 2026-04 (UTC) is counted from the cost ledger"
    )
    assert (a.budget_exceeded.status, a.budget_exceeded.reason) == ("False", "WithinLimit")


def test_conditions_are_accepted_by_the_status_writer() -> None:
    # The apiserver's metav1.Condition rules, as infercost.kube.conditions checks them.
    for f in (
        evaluate(STANDARD, 10.0, "2026-04-11T00:00:00"),
        evaluate(STANDARD, 1000.0, "2026-04-11T00:00:00"),
    ):
        conditions: list[dict[str, Any]] = []
        for type_, outcome in (("Ready", f.ready), ("BudgetExceeded", f.budget_exceeded)):
            conditions = set_condition(
                conditions,
                type_,
                status=outcome.status,
                reason=outcome.reason,
                message=outcome.message,
                observed_generation=1,
                now=at("2026-04-11T00:00:00"),
            )
        assert [c["type"] for c in conditions] == ["Ready", "BudgetExceeded"]


# --- inputs -----------------------------------------------------------------------------------


def test_the_parsed_sample_budget_is_an_input() -> None:
    budget = parse_tokenbudget(
        {
            "apiVersion": "finops.infercost.ai/v1alpha1",
            "kind": "TokenBudget",
            "metadata": {"name": "team-a-monthly", "namespace": "finance"},
            "spec": {
                "scope": {"namespace": "team-a"},
                "monthlyLimitUSD": 5000,
                "alertThresholds": [
                    {"percent": 80, "severity": "warning"},
                    {"percent": 50, "severity": "info"},
                ],
            },
        }
    )
    f = evaluate_budget(
        budget.spec,
        spend_usd=4000.0,
        window_spend_usd=0.0,
        window_hours=0.0,
        last_updated=at("2026-11-27T10:00:00"),
    )
    assert f.utilization_percent == 80.0
    assert [(c.percent, c.severity) for c in f.thresholds_crossed] == [
        (50, "info"),
        (80, "warning"),
    ]
    assert f.state is BudgetState.WARNING
    assert ApiBudgetState(f.state.value) is ApiBudgetState.WARNING


def test_engine_vocabulary_matches_the_crd() -> None:
    assert {s.value for s in BudgetState} == {s.value for s in ApiBudgetState}
    assert set(SEVERITIES) == {s.value for s in Severity}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("spend_usd", -1.0, "spend_usd must be a finite amount >= 0, got -1.0"),
        ("window_spend_usd", float("nan"), "window_spend_usd must be a finite amount"),
        ("window_hours", float("inf"), "window_hours must be a finite amount"),
    ],
)
def test_bad_amounts_are_named(field: str, value: float, message: str) -> None:
    kwargs: dict[str, Any] = {
        "spend_usd": 1.0,
        "window_spend_usd": 0.0,
        "window_hours": 0.0,
        field: value,
    }
    with pytest.raises(ValueError, match=message):
        evaluate_budget(STANDARD, last_updated=at("2026-04-11T00:00:00"), **kwargs)
