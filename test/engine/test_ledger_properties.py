"""Ledger invariants on random histories (SPEC §4, §5): whole tokens are conserved across
midnight splits, resets and restarts; a pod that starts during the history books nothing on a
day before its start; every booked dollar is the amortization and electricity of
the covered GPU-time; nothing is negative; a checkpoint restored at any point continues exactly
as if nothing had happened."""

from __future__ import annotations

import datetime as dt
import json

from hypothesis import example, given, settings
from hypothesis import strategies as st

from infercost.api import Hardware
from infercost.engine.ledger import (
    ROLE_INPUT,
    ROLE_OUTPUT,
    Economics,
    GpuObservation,
    HoldObservation,
    Ledger,
    NodeObservation,
    Observation,
    PodObservation,
    ProfileObservation,
    SeriesReading,
)

START = dt.datetime(2026, 11, 27, 22, 0, tzinfo=dt.UTC)
HW = Hardware(gpu_model="H100", gpu_count=3, purchase_price_usd=3 * 26_280.0)  # $1 per GPU-hour
ECON = Economics.of(HW, rate_per_kwh=0.2, pue_factor=1.0)
PODS = ("a", "b", "c", "d")
LATE = "d"
"""Starts during the history, after the node's coverage began: its first counters count whole,
booked from its start."""

step = st.fixed_dictionaries(
    {
        "seconds": st.sampled_from([5.0, 30.0, 31.0, 600.0, 7200.0]),
        "served": st.lists(st.integers(0, 5000), min_size=4, max_size=4),
        "reset": st.sets(st.sampled_from(PODS), max_size=2),
        "scraped": st.sets(st.sampled_from(PODS), min_size=1),
        "watts": st.floats(50, 700),
        "dcgm": st.booleans(),
        "restart_ledger": st.booleans(),
    }
)


late_start = st.tuples(st.integers(1, 12), st.floats(0.0, 1.0, exclude_max=True))
"""The step at which pod ``d`` is first present, and when it started within the interval
before it (a fraction)."""


def _run(steps, restart_allowed: bool, late: tuple[int, float] = (99, 0.0)):
    ledger = Ledger(shards=3)
    counters = {p: [0, 0] for p in PODS}
    created = {p: 1.0 for p in PODS}  # the servers' *_created: moves on every reset
    truth = {p: [0, 0] for p in PODS}
    pending = {p: [0, 0] for p in PODS}  # served since the pod's last successful scrape
    energy_mj = 0.0
    t = 0.0
    booked_seconds = 0.0
    expected_kwh = 0.0
    first = True
    late_step, late_fraction = late
    late_started = None
    for n, s in enumerate(steps):
        if not first:
            t += s["seconds"]
        if n == late_step:
            late_started = START + dt.timedelta(seconds=t - s["seconds"] * (1 - late_fraction))
        for i, p in enumerate(PODS):
            if p == LATE and late_started is None:
                continue
            if p in s["reset"]:
                counters[p] = [0, 0]
                created[p] += 1.0
                # served since the last successful scrape and then reset: never visible
                pending[p] = [0, 0]
            counters[p][0] += s["served"][i]
            counters[p][1] += s["served"][i] // 4
            pending[p][0] += s["served"][i]
            pending[p][1] += s["served"][i] // 4
        watts = s["watts"]
        if not first:
            energy_mj += watts * s["seconds"] * 1000.0 * 2  # two measured GPUs
        pods = []
        for p in PODS:
            if p == LATE and late_started is None:
                continue
            ok = p in s["scraped"] or first
            if ok and not first:
                truth[p][0] += pending[p][0]
                truth[p][1] += pending[p][1]
            if ok:
                pending[p] = [0, 0]
            pods.append(
                PodObservation(
                    uid=p,
                    namespace=f"ns-{p}",
                    name=p,
                    node="n1",
                    inference=True,
                    scraped=ok,
                    start_time=late_started if p == LATE else START - dt.timedelta(days=1),
                    restart_count=None,
                    readings=(
                        SeriesReading("in", "m", ROLE_INPUT, counters[p][0], created[p]),
                        SeriesReading("out", "m", ROLE_OUTPUT, counters[p][1], created[p]),
                    ),
                )
            )
        readings = (
            GpuObservation("g0", energy_mj / 2, watts),
            GpuObservation("g1", energy_mj / 2, watts),
        )
        if not s["dcgm"] and 0 < n < len(steps) - 1:
            readings = ()  # exporter down: energy is deferred until the next reading
        node = NodeObservation(
            "n1",
            "ns/p",
            2.0,
            "boot",
            readings,
            (HoldObservation("g0", "a", "ns-a", "a", 1.0, True),),
        )
        result = ledger.book(
            Observation(
                START + dt.timedelta(seconds=t),
                (ProfileObservation("ns/p", ECON),),
                (node,),
                tuple(pods),
            )
        )
        if not first:
            assert result.booked
            booked_seconds += s["seconds"]
            expected_kwh += watts * s["seconds"] * 2 / 3.6e6
        first = False
        if restart_allowed and s["restart_ledger"]:
            shards = [json.loads(json.dumps(ledger.dump_shard(i))) for i in range(3)]
            closed = {
                day: [(i, json.loads(json.dumps(ledger.dump_closed(i, day)))) for i in range(3)]
                for day in ledger.closed
            }
            ledger = Ledger(shards=3)
            ledger.restore(shards, closed)
    return ledger, truth, booked_seconds, expected_kwh, late_started


def _all_lines(ledger: Ledger):
    return list(ledger.lines_of(ledger.days()))


def _step(seconds: float, served: int) -> dict:
    return {
        "seconds": seconds,
        "served": [served] * len(PODS),
        "reset": set(),
        "scraped": set(PODS),
        "watts": 300.0,
        "dcgm": True,
        "restart_ledger": True,
    }


# 22:00:00, 22:00:05, then two hours to 00:00:05; pod d started at 00:00:04.28
ACROSS_MIDNIGHT = ([_step(5.0, 10), _step(5.0, 10), _step(7200.0, 5000)], (2, 0.9999))


@settings(max_examples=60, deadline=None)
@given(st.lists(step, min_size=2, max_size=12), late_start)
@example(*ACROSS_MIDNIGHT)
def test_tokens_are_conserved_and_money_is_the_covered_gpu_time(steps, late) -> None:
    ledger, truth, seconds, kwh, late_started = _run(steps, restart_allowed=False, late=late)
    lines = _all_lines(ledger)
    if late_started is not None:
        start_day = late_started.date().isoformat()
        assert all(
            not any(line.tokens) for k, line in lines if k[1] < start_day and k[3] == f"ns-{LATE}"
        )
    assert sum(line.tokens[0] for _, line in lines) == sum(v[0] for v in truth.values())
    assert sum(line.tokens[3] for _, line in lines) == sum(v[1] for v in truth.values())
    for p in PODS:
        got = sum(line.tokens[0] for k, line in lines if k[3] == f"ns-{p}")
        assert got == truth[p][0]
    amort = sum(line.values[0] for _, line in lines)
    assert abs(amort - 3 * seconds / 3600) <= 1e-9 * max(1.0, amort)
    energy = sum(line.values[2] for _, line in lines)
    assert abs(energy - kwh) <= 1e-6 * max(1.0, kwh)
    assert all(v >= -1e-12 for _, line in lines for v in line.values)
    assert all(t >= 0 for _, line in lines for t in line.tokens)


@settings(max_examples=60, deadline=None)
@given(st.lists(step, min_size=2, max_size=12), late_start)
@example(*ACROSS_MIDNIGHT)
def test_checkpoint_restores_anywhere_change_nothing(steps, late) -> None:
    a, *_ = _run(steps, restart_allowed=False, late=late)
    b, *_ = _run(steps, restart_allowed=True, late=late)
    la = {k[1:]: line for k, line in _all_lines(a)}
    lb = {k[1:]: line for k, line in _all_lines(b)}
    assert set(la) == set(lb)
    for key, line in la.items():
        assert line.tokens == lb[key].tokens
        for x, y in zip(line.values, lb[key].values, strict=True):
            assert abs(x - y) <= 1e-9 * max(1.0, abs(x))
