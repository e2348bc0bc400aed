"""The worked example of docs/accounting.md, booked through the ledger and read as a report."""

from __future__ import annotations

import datetime as dt

import pytest

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
from infercost.engine.report import report_figures

T0 = dt.datetime(2026, 11, 27, 10, tzinfo=dt.UTC)
PROFILE = "infra/pool-a"
ECON = Economics.of(
    Hardware(gpu_model="H100", gpu_count=2, purchase_price_usd=52_560.0), 0.12, 1.25
)


def _observe(ledger: Ledger, hours: float, e0: float, e1: float, tokens: dict) -> None:
    readings = tuple(
        SeriesReading(f"{d}{{{m}}}", m, role, tokens.get((m, d), 0))
        for m in ("llama", "qwen")
        for d, role in (("in", ROLE_INPUT), ("out", ROLE_OUTPUT))
    )
    pod = PodObservation("u", "team-a", "vllm-0", "n1", True, True, T0, 0, readings)
    node = NodeObservation(
        "n1",
        PROFILE,
        2.0,
        "b",
        (GpuObservation("GPU-0", e0, 400.0), GpuObservation("GPU-1", e1, 100.0)),
        (HoldObservation("GPU-0", "u", "team-a", "vllm-0", 1.0, True),),
    )
    ledger.book(
        Observation(
            T0 + dt.timedelta(hours=hours), (ProfileObservation(PROFILE, ECON),), (node,), (pod,)
        )
    )


def test_the_worked_example_of_the_accounting_docs() -> None:
    ledger = Ledger(shards=2)
    _observe(ledger, 0, 0.0, 0.0, {})
    _observe(
        ledger,
        1,
        1.44e9,
        0.36e9,
        {
            ("llama", "in"): 600_000,
            ("llama", "out"): 150_000,
            ("qwen", "in"): 200_000,
            ("qwen", "out"): 50_000,
        },
    )
    f = report_figures(ledger.lines_of(ledger.days()), PROFILE)
    assert f.cost_usd == pytest.approx(2.075)
    assert f.amortization_usd == pytest.approx(2.0)
    assert f.electricity_usd == pytest.approx(0.075)
    assert f.energy_kwh == pytest.approx(0.5)
    assert f.idle_cost_usd == pytest.approx(1.015)
    assert (f.input_tokens, f.output_tokens) == (800_000, 200_000)
    assert f.cost_per_million_tokens == pytest.approx(2.075)
    assert f.marginal_cost_per_million_tokens == pytest.approx(0.06)
    assert f.gpu_efficiency_ratio == pytest.approx(0.5)
    by_model = {g.model: g.cost_usd for g in f.by_model}
    assert by_model == {"llama": pytest.approx(1.55625), "qwen": pytest.approx(0.51875)}
    assert sum(g.cost_usd for g in f.by_namespace) == pytest.approx(f.cost_usd, rel=1e-12)


def test_a_namespace_filter_keeps_only_its_lines() -> None:
    ledger = Ledger(shards=1)
    _observe(ledger, 0, 0.0, 0.0, {})
    _observe(ledger, 1, 1.44e9, 0.36e9, {("llama", "in"): 10})
    assert report_figures(ledger.lines_of(ledger.days()), PROFILE, ["team-b"]).cost_usd == 0.0
    only = report_figures(ledger.lines_of(ledger.days()), PROFILE, ["team-a"])
    assert only.cost_usd == pytest.approx(2.075)
