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


def spec_node_gpus(caps: dict[str, int | None], gpu_count: int) -> dict[str, float]:
    """SPEC §5: an owned node's GPUs are its capacity (absent or 0: none); only when no owned
    node reports any do they share gpuCount equally."""
    if any(caps.values()):
        return {n: float(c or 0) for n, c in caps.items()}
    return {n: gpu_count / len(caps) for n in caps}


def close(actual: float, expected: float) -> bool:
    return abs(actual - expected) <= 1e-9 * max(1.0, abs(expected))


@settings(max_examples=200, deadline=None)
@given(capacities, st.integers(min_value=1, max_value=32), st.floats(0, 1000))
def test_amortization_is_never_lost_or_invented(caps, gpu_count, amort) -> None:  # type: ignore[no-untyped-def]
    split = split_amortization(amort, gpu_count, caps)
    node_gpus = spec_node_gpus(caps, gpu_count)
    held = sum(node_gpus.values())
    # Every node carries its GPUs at amort ÷ max(gpuCount, owned GPUs) each; the GPUs of
    # gpuCount no node holds are pool idle; the whole amortization is accounted for, no more.
    unit = amort / max(gpu_count, held) if node_gpus else amort / gpu_count
    assert {n.node: n.gpus for n in split.nodes} == node_gpus
    for node in split.nodes:
        assert close(node.amortization_per_hour, unit * node_gpus[node.node])
    assert close(split.pool_idle_per_hour, unit * max(0.0, gpu_count - held))
    assert close(split.total_per_hour, amort)
    assert split.pool_idle_per_hour >= 0


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
    # Readings exist only for matched nodes and carry distinct UUIDs and valid watts here.
    watts = [g.watts for gs in readings.values() for g in gs]
    node_gpus = spec_node_gpus(caps, gpu_count)
    unmeasured = sum(max(0.0, node_gpus[n] - len(readings.get(n, ()))) for n in node_gpus)
    per_gpu = tdp if tdp is not None else (sum(watts) / len(watts) if watts else 0.0)
    # a profile that owns no node draws no power (SPEC §2.1)
    expected = sum(watts) + unmeasured * per_gpu if caps else 0.0
    assert abs(res.power_watts - expected) <= 1e-6 * max(1.0, expected)
    assert res.gpus_reporting == len(watts)
    if tdp is not None:
        assert res.fallback is Fallback.TDP and res.fallback_watts_per_gpu == tdp
    elif res.gpus_reporting:
        assert res.fallback is Fallback.MEASURED_MEAN
        assert close(res.fallback_watts_per_gpu, per_gpu)
    else:
        assert res.fallback is Fallback.NONE and res.power_watts == 0
