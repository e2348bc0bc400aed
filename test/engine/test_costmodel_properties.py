"""Invariants of the per-GPU unit split and the power resolution over arbitrary inputs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infercost.engine.costmodel import (
    ExporterStatus,
    Fallback,
    GpuPower,
    resolve_power,
    split_amortization,
)

capacities = st.dictionaries(
    st.sampled_from([f"n{i}" for i in range(6)]),
    st.one_of(st.none(), st.integers(min_value=0, max_value=8)),
    max_size=6,
)
statuses = st.sampled_from(
    [ExporterStatus.answered(), ExporterStatus.failed("timeout"), ExporterStatus.not_found()]
)


@settings(max_examples=200, deadline=None)
@given(capacities, st.integers(min_value=1, max_value=32), st.floats(0, 1000))
def test_amortization_is_never_lost_or_invented(caps, gpu_count, amort) -> None:  # type: ignore[no-untyped-def]
    split = split_amortization(amort, gpu_count, caps)
    assert abs(split.total_per_hour - amort) <= 1e-9 * max(1.0, amort)
    assert split.pool_idle_per_hour >= 0
    unit = amort / max(gpu_count, split.matched_gpus)
    for node in split.nodes:
        assert abs(node.amortization_per_hour - unit * node.gpus) <= 1e-9 * max(1.0, amort)


@st.composite
def scenarios(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    caps = draw(capacities)
    exporters = {n: draw(statuses) for n in caps if draw(st.booleans())}
    readings = {}
    uuid = 0
    for node, cap in caps.items():
        status = exporters.get(node)
        if status is not None and status.state.value == "answered":
            count = draw(st.integers(min_value=0, max_value=(cap or 2)))
            watts = draw(st.lists(st.floats(0, 1000), min_size=count, max_size=count))
            readings[node] = [GpuPower(f"GPU-{uuid + i}", str(i), w) for i, w in enumerate(watts)]
            uuid += count
    tdp = draw(st.one_of(st.none(), st.floats(1, 1000)))
    gpu_count = draw(st.integers(min_value=1, max_value=32))
    return caps, gpu_count, exporters, readings, tdp


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_power_is_measured_plus_fallback(scenario) -> None:  # type: ignore[no-untyped-def]
    caps, gpu_count, exporters, readings, tdp = scenario
    res = resolve_power(caps, gpu_count, exporters, readings, tdp)
    measured = sum(g.watts for n in res.nodes for g in n.measured)
    expected = measured + res.fallback_gpus * res.fallback_watts_per_gpu  # no node: no power
    assert abs(res.power_watts - expected) <= 1e-6 * max(1.0, expected)
    assert res.gpus_reporting == sum(len(n.measured) for n in res.nodes)
    assert res.matched_gpus == pytest.approx(sum(n.gpus for n in res.nodes))
    if tdp is not None:
        assert res.fallback is Fallback.TDP and res.fallback_watts_per_gpu == tdp
    elif res.gpus_reporting:
        assert res.fallback is Fallback.MEASURED_MEAN
    else:
        assert res.fallback is Fallback.NONE and res.power_watts == 0
