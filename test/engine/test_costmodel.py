"""SPEC §5 formulas and the §2.1 power resolution, recomputed by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from infercost.api import Hardware
from infercost.engine.costmodel import (
    ExporterState,
    ExporterStatus,
    Fallback,
    GpuPower,
    amortization_end,
    amortization_rate_per_hour,
    combine_exporter_statuses,
    cost_rates,
    electricity_cost_per_hour,
    energy_cost_usd,
    millijoules_to_kwh,
    resolve_power,
    split_amortization,
    unit_rate_per_hour,
    watt_seconds_to_kwh,
)

UTC = dt.UTC

# An 8×H100 pool at $30,000 per GPU ($240,000), 3 years, 10 % maintenance, 700 W TDP,
# $0.12/kWh at PUE 1.4.
H100_POOL = Hardware(
    gpu_model="NVIDIA H100 80GB HBM3",
    gpu_count=8,
    purchase_price_usd=240_000,
    amortization_years=3,
    maintenance_percent_per_year=0.10,
    tdp_watts=700,
)


def test_h100_pool_hourly_cost_by_hand() -> None:
    # 240000 / (3 × 8760) = 9.132420091…; 240000 × 0.10 / 8760 = 2.739726027…
    assert amortization_rate_per_hour(H100_POOL) == pytest.approx(9.1324200913 + 2.7397260274)
    # 8 GPUs × 700 W = 5.6 kW × $0.12 × 1.4 = $0.9408/h
    rates = cost_rates(H100_POOL, power_watts=8 * 700, rate_per_kwh=0.12, pue_factor=1.4)
    assert rates.electricity_cost_per_hour == pytest.approx(0.9408)
    assert rates.hourly_cost_usd == pytest.approx(11.8721461187 + 0.9408)


def test_homelab_single_gpu_by_hand() -> None:
    # RTX 4090, the api's defaults: 3 years, no maintenance
    rig = Hardware(gpu_model="RTX 4090", gpu_count=1, purchase_price_usd=1_800)
    assert amortization_rate_per_hour(rig) == pytest.approx(1800 / 26280)  # 0.0684931…
    rates = cost_rates(rig, power_watts=350, rate_per_kwh=0.30)
    assert rates.electricity_cost_per_hour == pytest.approx(0.105)
    assert rates.hourly_cost_usd == pytest.approx(0.0684931507 + 0.105)


def test_amortization_stops_after_purchase_date_plus_years_but_maintenance_does_not() -> None:
    pool = Hardware(
        gpu_model="H100",
        gpu_count=4,
        purchase_price_usd=87_600,
        amortization_years=2,
        maintenance_percent_per_year=0.05,
        purchase_date=dt.date(2024, 1, 1),
    )
    # depreciation 87600 / 17520 = $5/h, maintenance 87600 × 0.05 / 8760 = $0.50/h
    end = dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(hours=17520)
    assert amortization_end(pool) == end  # 2025-12-31T00:00Z: 2024 has a leap day
    assert amortization_rate_per_hour(pool, end - dt.timedelta(seconds=1)) == pytest.approx(5.5)
    assert amortization_rate_per_hour(pool, end) == pytest.approx(0.5)
    assert amortization_rate_per_hour(pool, dt.datetime(2026, 6, 1, tzinfo=UTC)) == 0.5
    # an aware time in another zone is the same instant
    tz = dt.timezone(dt.timedelta(hours=-5))
    assert amortization_rate_per_hour(pool, end.astimezone(tz)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="naive datetime"):
        amortization_rate_per_hour(pool, dt.datetime(2026, 1, 1))


def test_unit_conversions() -> None:
    assert millijoules_to_kwh(3.6e9) == 1.0
    assert watt_seconds_to_kwh(3.6e6) == 1.0
    # 700 W for an hour, as DCGM reports it: 700 × 3600 × 1000 mJ
    assert millijoules_to_kwh(700 * 3600 * 1000) == pytest.approx(0.7)
    assert energy_cost_usd(0.7, 0.12, 1.4) == pytest.approx(0.1176)
    assert electricity_cost_per_hour(700, 0.12, 1.4) == pytest.approx(0.1176)


def test_per_gpu_unit_follows_node_capacity_and_shortfall_is_pool_idle() -> None:
    amort = amortization_rate_per_hour(H100_POOL)
    split = split_amortization(amort, 8, {"node-a": 4, "node-b": 2})
    unit = amort / 8
    assert split.unit_rate_per_hour == pytest.approx(unit)
    assert [(n.node, n.gpus, n.amortization_per_hour) for n in split.nodes] == [
        ("node-a", 4.0, pytest.approx(4 * unit)),
        ("node-b", 2.0, pytest.approx(2 * unit)),
    ]
    assert split.pool_idle_per_hour == pytest.approx(2 * unit)
    assert split.total_per_hour == pytest.approx(amort)
    assert split.matched_gpus == 6 and split.excess_gpus == 0


def test_nodes_without_capacity_share_gpu_count_evenly() -> None:
    split = split_amortization(12.0, 8, {"a": None, "b": None, "c": None})
    assert [n.gpus for n in split.nodes] == pytest.approx([8 / 3] * 3)
    assert split.pool_idle_per_hour == pytest.approx(0)
    assert split.total_per_hour == pytest.approx(12.0)


def test_no_matched_node_makes_everything_pool_idle() -> None:
    split = split_amortization(12.0, 8, {})
    assert split.nodes == () and split.pool_idle_per_hour == 12.0


def test_more_gpus_than_gpu_count_share_the_amortization() -> None:
    # SPEC §5: unitRate = amortizationRatePerHour / max(gpuCount, Σ owned GPUs)
    split = split_amortization(8.0, 8, {"a": 8, "b": 8})
    assert split.excess_gpus == 8 and split.pool_idle_per_hour == 0
    assert split.unit_rate_per_hour == 0.5
    assert [n.amortization_per_hour for n in split.nodes] == [4.0, 4.0]
    assert split.total_per_hour == 8.0, "never more than the pool's amortization"


def test_nodes_without_capacity_count_none_when_another_owned_node_reports_it() -> None:
    # Only when no owned node reports capacity do the owned nodes share gpuCount equally.
    split = split_amortization(8.0, 8, {"a": 4, "b": None, "c": 0})
    assert [(n.node, n.gpus) for n in split.nodes] == [("a", 4.0), ("b", 0.0), ("c", 0.0)]
    assert split.pool_idle_per_hour == 4.0
    shared = split_amortization(8.0, 8, {"b": None, "c": 0})
    assert [n.gpus for n in shared.nodes] == [4.0, 4.0]


def test_unit_rate_needs_gpus() -> None:
    with pytest.raises(ValueError):
        unit_rate_per_hour(1.0, 0)


# --- power resolution ----------------------------------------------------------------------


def gpus(node: str, *watts: float) -> list[GpuPower]:
    return [GpuPower(f"GPU-{node}-{i}", str(i), w) for i, w in enumerate(watts)]


def test_every_gpu_measured_counts_its_reading() -> None:
    res = resolve_power(
        {"n1": 2, "n2": 2},
        4,
        {"n1": ExporterStatus.answered(), "n2": ExporterStatus.answered()},
        {"n1": gpus("n1", 500, 480), "n2": gpus("n2", 300, 70)},
        tdp_watts=700,
    )
    assert res.power_watts == pytest.approx(1350)
    assert res.gpus_reporting == 4 and res.matched_gpus == 4 and res.fallback_gpus == 0
    assert [(node, g.gpu) for node, g in res.measured] == [
        ("n1", "0"),
        ("n1", "1"),
        ("n2", "0"),
        ("n2", "1"),
    ]


def test_gpus_without_a_reading_count_tdp_watts() -> None:
    res = resolve_power(
        {"n1": 2, "n2": 2, "n3": 1, "n4": 1, "n5": 4},
        10,
        {
            "n1": ExporterStatus.answered(),
            "n2": ExporterStatus.failed("timeout after 5s"),
            "n3": ExporterStatus.answered(),
            "n5": ExporterStatus.answered(),
        },
        {"n1": gpus("n1", 400, 400), "n5": gpus("n5", 300)},
        tdp_watts=700,
    )
    assert res.gpus_reporting == 3 and res.fallback is Fallback.TDP
    # measured 1100 W + 7 fallback GPUs × 700 W
    assert res.power_watts == pytest.approx(1100 + 7 * 700)
    assert {n.node: n.fallback_gpus for n in res.nodes} == {
        "n1": 0,
        "n2": 2,
        "n3": 1,
        "n4": 1,
        "n5": 3,
    }
    assert res.nodes[1].exporter == ExporterStatus.failed("timeout after 5s")
    assert res.nodes[3].exporter is None, "no exporter found on n4"
    assert res.exporter_failed


def test_without_tdp_the_mean_of_measured_gpus_stands_in() -> None:
    res = resolve_power(
        {"n1": 2, "n2": 2}, 4, {"n1": ExporterStatus.answered()}, {"n1": gpus("n1", 600, 200)}
    )
    assert res.fallback is Fallback.MEASURED_MEAN
    assert res.fallback_watts_per_gpu == pytest.approx(400)
    assert res.power_watts == pytest.approx(800 + 2 * 400)


def test_without_readings_tdp_or_nothing() -> None:
    failed = resolve_power(
        {"n1": 4, "n2": 4},
        8,
        {"n1": ExporterStatus.failed("connection refused"), "n2": ExporterStatus.not_found()},
        {},
        tdp_watts=350,
    )
    assert failed.power_watts == pytest.approx(8 * 350) and failed.exporter_failed
    nothing = resolve_power({"n1": 2}, 2, {}, {"other-node": gpus("x", 500)})
    assert nothing.fallback is Fallback.NONE
    assert nothing.power_watts == 0 and nothing.gpus_reporting == 0, "others' readings ignored"
    assert not nothing.exporter_failed


def test_a_profile_that_owns_no_node_draws_no_power() -> None:
    # Its GPUs are not counted twice: no node, no power, whatever tdpWatts says (SPEC §2.1).
    res = resolve_power({}, 8, {}, {}, tdp_watts=700)
    assert res.power_watts == 0 and res.gpus_reporting == 0
    assert res.matched_gpus == 0 and res.nodes == ()


def test_nodes_without_capacity_count_gpu_count_evenly_for_power() -> None:
    res = resolve_power(
        {"n1": None, "n2": None},
        4,
        {"n1": ExporterStatus.answered()},
        {"n1": gpus("n1", 100, 100)},
        tdp_watts=50,
    )
    assert res.matched_gpus == 4
    assert res.power_watts == pytest.approx(200 + 2 * 50)


def test_combine_exporter_statuses() -> None:
    ok, bad = ExporterStatus.answered(), ExporterStatus.failed("timeout")
    assert combine_exporter_statuses([bad, ok]).state is ExporterState.ANSWERED
    assert combine_exporter_statuses([bad, ExporterStatus.failed("x")]).error == "timeout; x"
    assert combine_exporter_statuses([]).state is ExporterState.NOT_FOUND


def test_evaluate_profile_h100_pool_measured_by_dcgm() -> None:
    from infercost.engine.costmodel import evaluate_profile

    readings = {
        "n1": gpus("n1", 650, 640, 600, 610),
        "n2": gpus("n2", 300, 310, 120, 70),
    }
    cost = evaluate_profile(
        H100_POOL,
        rate_per_kwh=0.12,
        pue_factor=1.4,
        node_capacities={"n1": 4, "n2": 4},
        exporters={"n1": ExporterStatus.answered(), "n2": ExporterStatus.answered()},
        readings=readings,
    )
    # 3300 W measured → 3.3 kW × 0.12 × 1.4 = $0.5544/h; amortization $11.8721461187/h
    assert cost.current_power_draw_watts == pytest.approx(3300)
    assert cost.electricity_cost_per_hour == pytest.approx(0.5544)
    assert cost.hourly_cost_usd == pytest.approx(11.8721461187 + 0.5544)
    assert cost.matched_gpus == 8 and cost.gpus_reporting == 8
    assert cost.amortization.excess_gpus == 0 and cost.amortization.pool_idle_per_hour == 0


def test_evaluate_profile_when_gpu_count_and_nodes_disagree() -> None:
    from infercost.engine.costmodel import evaluate_profile

    common = {"rate_per_kwh": 0.1, "pue_factor": 1.0, "exporters": {}, "readings": {}}
    fewer = evaluate_profile(H100_POOL, node_capacities={"n1": 4}, **common)  # type: ignore[arg-type]
    # power counts the GPUs that exist (M = 4 on the matched node) at tdpWatts; the missing
    # four are pool idle in amortization only
    assert fewer.current_power_draw_watts == pytest.approx(4 * 700)
    half = fewer.amortization_rate_per_hour / 2
    assert fewer.amortization.pool_idle_per_hour == pytest.approx(half)
    more = evaluate_profile(H100_POOL, node_capacities={"n1": 8, "n2": 8}, **common)  # type: ignore[arg-type]
    assert more.amortization.matched_gpus == 16 and more.amortization.excess_gpus == 8
