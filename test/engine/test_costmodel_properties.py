"""Invariants of the per-GPU unit split and the power resolution over arbitrary inputs.

The expected figures are derived from the inputs with the SPEC's rules, written out here on
their own (a node's GPUs are its capacity, else gpuCount shared evenly; a GPU without a reading
counts tdpWatts, else the mean of the measured GPUs, else 0 W); nothing is read back from the
result to compute what the result should be.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from infercost.engine.costmodel import (
    DCGMReason,
    ExporterStatus,
    GpuPower,
    PowerSource,
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


def spec_node_gpus(caps: dict[str, int | None], gpu_count: int) -> dict[str, float]:
    """SPEC §5: a matched node's GPUs are its capacity, else gpuCount ÷ matched nodes."""
    return {n: float(c) if c is not None else gpu_count / len(caps) for n, c in caps.items()}


def close(actual: float, expected: float) -> bool:
    return abs(actual - expected) <= 1e-9 * max(1.0, abs(expected))


@settings(max_examples=200, deadline=None)
@given(capacities, st.integers(min_value=1, max_value=32), st.floats(0, 1000))
def test_amortization_is_never_lost_or_invented_below_gpu_count(caps, gpu_count, amort) -> None:  # type: ignore[no-untyped-def]
    split = split_amortization(amort, gpu_count, caps)
    node_gpus = spec_node_gpus(caps, gpu_count)
    held = sum(node_gpus.values())
    # Every node carries its GPUs at amort ÷ gpuCount each; the GPUs of gpuCount no node
    # holds are pool idle. Below gpuCount the whole amortization is accounted for, no more.
    assert {n.node: n.gpus for n in split.nodes} == node_gpus
    for node in split.nodes:
        assert close(node.amortization_per_hour, amort * node_gpus[node.node] / gpu_count)
    assert close(split.pool_idle_per_hour, amort * max(0.0, gpu_count - held) / gpu_count)
    if held <= gpu_count:
        assert close(split.total_per_hour, amort)
        assert split.excess_gpus == 0
    else:
        assert close(split.excess_gpus, held - gpu_count)


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
def test_power_is_measured_plus_fallback_and_the_state_matches(scenario) -> None:  # type: ignore[no-untyped-def]
    caps, gpu_count, exporters, readings, tdp = scenario
    res = resolve_power(caps, gpu_count, exporters, readings, tdp)
    # Readings exist only for matched nodes and carry distinct UUIDs and valid watts here.
    watts = [g.watts for gs in readings.values() for g in gs]
    if caps:
        node_gpus = spec_node_gpus(caps, gpu_count)
        unmeasured = sum(max(0.0, node_gpus[n] - len(readings.get(n, ()))) for n in node_gpus)
    else:
        unmeasured = float(gpu_count)
    per_gpu = tdp if tdp is not None else (sum(watts) / len(watts) if watts else 0.0)
    expected = sum(watts) + unmeasured * per_gpu
    assert abs(res.power_watts - expected) <= 1e-6 * max(1.0, expected)
    assert res.gpus_reporting == len(watts)
    assert close(res.fallback_watts_per_gpu, per_gpu)
    if res.reason is DCGMReason.HEALTHY:
        assert res.power_source is PowerSource.DCGM and unmeasured == 0
    elif res.reason is DCGMReason.PARTIAL:
        assert res.power_source is PowerSource.PARTIAL and res.gpus_reporting >= 1
        for node in res.nodes:
            if node.fallback_gpus:
                assert f"node {node.node}" in res.message
    else:
        assert res.gpus_reporting == 0
        assert res.power_source is (PowerSource.TDP if tdp is not None else PowerSource.NONE)
        failed = any(exporters.get(n) is not None and exporters[n].state.value == "failed"
                     for n in caps)  # fmt: skip
        assert (res.reason is DCGMReason.SCRAPE_FAILED) == (bool(caps) and failed)
    assert res.status in ("True", "Unknown", "False")
