"""The pure parts of the TokenBudget controller: spend read from ledger lines, the status write
rules and the Events a status change deserves."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from infercost.controllers.tokenbudget import (
    BUDGET_RULES,
    Note,
    SpendIndex,
    budget_events,
    read_spend,
)
from infercost.engine.ledger import FIELDS, Ledger, Line
from infercost.kube.status import Change, classify_change

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


def _line(amortization: float, electricity: float = 0.0) -> Line:
    line = Line()
    line.values[FIELDS.index("amortization_usd")] = amortization
    line.values[FIELDS.index("electricity_usd")] = electricity
    return line


def _ledger() -> Ledger:
    """team-a spends 1 USD a day on each of two profiles (and 0.5 USD of electricity on the
    first) from November 20 to December 3; team-b 100 USD a day. Days before December 3 are
    closed; December 3 is open."""
    ledger = Ledger(shards=2)
    day = dt.date(2026, 11, 20)
    while day <= NOW.date():
        label = day.isoformat()
        lines = {
            (0, label, "infra/pool-a", "team-a", "qwen"): _line(1.0, 0.5),
            (1, label, "infra/pool-b", "team-a", "(non-inference)"): _line(1.0),
            (1, label, "infra/pool-b", "team-b", "(non-inference)"): _line(100.0),
        }
        if day < NOW.date():
            ledger.closed[label] = lines
        else:
            ledger.lines.update(lines)
        day += dt.timedelta(days=1)
    ledger.first_sample = dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp()
    ledger.last_time = NOW.timestamp()
    return ledger


def test_spend_is_the_month_so_far_and_the_window_reaches_into_the_previous_month() -> None:
    view = read_spend(_ledger(), SpendIndex(), "team-a", dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    assert view.last_updated == NOW  # the time of the data, not the clock
    assert view.booked
    assert view.spend_usd == pytest.approx(3 * 2.5)  # December 1st to 3rd
    # November 26th to December 3rd: 8 days of lines over 7.5 days of hours
    assert view.window_spend_usd == pytest.approx(8 * 2.5)
    assert view.window_hours == pytest.approx(7.5 * 24)


def test_the_window_starts_at_the_first_sample_when_that_is_later() -> None:
    ledger = _ledger()
    ledger.first_sample = dt.datetime(2026, 12, 2, 6, 0, tzinfo=dt.UTC).timestamp()
    view = read_spend(ledger, SpendIndex(), "team-a", NOW)
    assert view.window_hours == pytest.approx(30.0)


def test_an_index_follows_new_bookings_and_a_restored_ledger() -> None:
    ledger = _ledger()
    index = SpendIndex()
    assert read_spend(ledger, index, "team-b", NOW).spend_usd == pytest.approx(300.0)
    # a booking adds to today's line and moves the time of the data
    ledger.lines[(1, "2026-12-03", "infra/pool-b", "team-b", "(non-inference)")].values[0] += 7
    ledger.last_time = NOW.timestamp() + 30
    assert read_spend(ledger, index, "team-b", NOW).spend_usd == pytest.approx(307.0)
    # a ledger restored from a checkpoint that lacks December 2nd
    restored = _ledger()
    del restored.closed["2026-12-02"]
    assert read_spend(restored, index, "team-b", NOW).spend_usd == pytest.approx(200.0)


def test_nothing_booked_yet() -> None:
    now = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.UTC)
    view = read_spend(Ledger(), SpendIndex(), "team-a", now)
    assert (view.last_updated, view.booked) == (now, False)
    assert (view.spend_usd, view.window_spend_usd, view.window_hours) == (0.0, 0.0, 0.0)


# ---------------------------------------------------------------------------------------------
# status write rules


def _status(**changes: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "observedGeneration": 1,
        "periodStart": "2026-11-01T00:00:00Z",
        "periodEnd": "2026-12-01T00:00:00Z",
        "lastUpdated": "2026-11-27T08:00:00Z",
        "currentSpendUSD": 412.5,
        "utilizationPercent": 41.25,
        "projectedSpendUSD": 980.0,
        "state": "OK",
        "thresholdsCrossed": [
            {"percent": 25, "severity": "info", "crossedTime": "2026-11-12T10:00:30Z"}
        ],
        "prometheusRuleRef": {"name": "infercost-budget-a", "namespace": "team-a"},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "BudgetComputed",
                "message": "m",
                "observedGeneration": 1,
                "lastTransitionTime": "2026-11-01T00:00:00Z",
            }
        ],
    }
    status.update(changes)
    return {k: v for k, v in status.items() if v is not None}


def test_amounts_and_the_exhaustion_time_wait_for_the_status_interval() -> None:
    old = _status(projectedExhaustion="2026-11-29T03:00:00Z")
    moved = _status(
        currentSpendUSD=413.0,
        utilizationPercent=41.3,
        projectedSpendUSD=981.0,
        projectedExhaustion="2026-11-29T02:59:00Z",
        lastUpdated="2026-11-27T08:00:30Z",
    )
    assert classify_change(old, moved, BUDGET_RULES) is Change.CADENCE
    # an exhaustion that comes and goes with the run rate waits too
    assert classify_change(old, _status(), BUDGET_RULES) is Change.CADENCE
    assert classify_change(_status(), old, BUDGET_RULES) is Change.CADENCE
    # the next sample with the same figures writes nothing
    assert classify_change(old, {**old, "lastUpdated": "2026-11-27T08:01:00Z"}, BUDGET_RULES) is (
        Change.NONE
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"state": "Warning"},
        {
            "thresholdsCrossed": [
                {"percent": 25, "severity": "info", "crossedTime": "2026-11-12T10:00:30Z"},
                {"percent": 50, "severity": "warning", "crossedTime": "2026-11-27T08:00:30Z"},
            ]
        },
        {"thresholdsCrossed": []},
        {"prometheusRuleRef": None},
        {"periodStart": "2026-12-01T00:00:00Z"},
        {"observedGeneration": 2},
    ],
)
def test_state_thresholds_rule_and_period_are_written_at_once(changes: dict[str, Any]) -> None:
    assert classify_change(_status(), _status(**changes), BUDGET_RULES) is Change.SIGNIFICANT


# ---------------------------------------------------------------------------------------------
# Events


def _events(old: dict[str, Any], new: dict[str, Any], **kw: Any) -> list[tuple[str, str]]:
    return [(t, r) for t, r, _ in budget_events(old, new, scope="team-a", limit_usd=1000.0, **kw)]


def test_a_first_status_that_is_ok_is_no_news() -> None:
    assert _events({}, _status(thresholdsCrossed=[])) == []


def test_state_events_are_warnings_except_back_to_ok() -> None:
    assert _events(_status(), _status(state="Critical")) == [("Warning", "BudgetCritical")]
    assert _events(_status(state="Exceeded"), _status()) == [("Normal", "BudgetOK")]
    new = _status(state="Exceeded", currentSpendUSD=1003.2)
    [(_, _, message)] = budget_events(
        _status(state="Critical"), new, scope="team-a", limit_usd=1000
    )
    assert message == (
        "state Exceeded (was Critical): namespace team-a spent 1,003.20 USD of 1,000.00 USD "
        "in 2026-11 (UTC)"
    )


def test_each_threshold_crossed_once_with_its_severity() -> None:
    crossed = [
        {"percent": 25, "severity": "info", "crossedTime": "2026-11-12T10:00:30Z"},
        {"percent": 40, "severity": "info", "crossedTime": "2026-11-27T08:00:00Z"},
        {"percent": 41, "severity": "critical", "crossedTime": "2026-11-27T08:00:00Z"},
    ]
    new = _status(thresholdsCrossed=crossed, state="Critical")
    assert _events(_status(), new) == [
        ("Warning", "BudgetCritical"),
        ("Normal", "ThresholdCrossed"),
        ("Warning", "ThresholdCrossed"),
    ]
    assert _events(new, new) == []


def test_a_new_month_announces_its_crossings_again() -> None:
    december = _status(periodStart="2026-12-01T00:00:00Z", periodEnd="2027-01-01T00:00:00Z")
    assert _events(_status(), december) == [("Normal", "ThresholdCrossed")]


def test_notes_are_announced_when_they_appear_and_alerts_when_they_return() -> None:
    note = Note("alerts are off: the PrometheusRule CRD is not installed", "AlertsDisabled")
    off = _status(prometheusRuleRef=None)
    off["conditions"] = [dict(off["conditions"][0], message=f"m; {note.text}")]
    assert _events(_status(), off, notes=[note]) == [("Warning", "AlertsDisabled")]
    assert _events(off, off, notes=[note]) == []
    assert _events(off, _status()) == [("Normal", "AlertsEnabled")]
    # nothing left to alert on is not "alerts back on"
    assert _events(off, _status(prometheusRuleRef=None)) == []


def test_an_invalid_spec_is_one_warning() -> None:
    invalid = {
        "observedGeneration": 2,
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "InvalidSpec",
                "message": "metadata.name: too long",
            }
        ],
    }
    assert _events(_status(), invalid) == [("Warning", "InvalidSpec")]
    assert _events(invalid, invalid) == []
