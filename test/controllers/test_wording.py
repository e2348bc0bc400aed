"""The SPEC §2.1 vocabulary over the engine's power facts: DCGMReachable states and messages,
powerSource, and what Ready says about gpuCount."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infercost.api import PowerSource
from infercost.controllers.wording import (
    DCGMReason,
    dcgm_reachable,
    gpu_count_message,
    power_source,
)
from infercost.engine.costmodel import (
    ExporterStatus,
    GpuPower,
    PowerResolution,
    resolve_power,
    split_amortization,
)


def gpus(node: str, *watts: float) -> list[GpuPower]:
    return [GpuPower(f"GPU-{node}-{i}", str(i), w) for i, w in enumerate(watts)]


def state(res: PowerResolution) -> tuple[str, DCGMReason, PowerSource]:
    reachable = dcgm_reachable(res)
    return reachable.status, reachable.reason, power_source(res)


def test_healthy_when_every_gpu_has_a_reading() -> None:
    res = resolve_power(
        {"n1": 2, "n2": 2},
        4,
        {"n1": ExporterStatus.answered(), "n2": ExporterStatus.answered()},
        {"n1": gpus("n1", 500, 480), "n2": gpus("n2", 300, 70)},
        tdp_watts=700,
    )
    assert state(res) == ("True", DCGMReason.HEALTHY, PowerSource.DCGM)
    assert "all 4 GPUs on 2 node(s)" in dcgm_reachable(res).message


def test_partial_names_each_node_without_readings_and_why() -> None:
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
    assert state(res) == ("Unknown", DCGMReason.PARTIAL, PowerSource.PARTIAL)
    message = dcgm_reachable(res).message
    assert message.startswith("3 of 10 GPUs report power through DCGM")
    assert "node n2: DCGM exporter failed: timeout after 5s" in message
    assert "node n3: the DCGM exporter answered without power readings" in message
    assert "node n4: no DCGM exporter found" in message
    assert "node n5: only 1 of 4 GPUs have a reading" in message
    assert "n1" not in message.replace("n1 ", "")  # the healthy node is not blamed
    assert "the other 7 count 700 W each (tdpWatts)" in message


def test_partial_without_tdp_names_the_mean_without_quoting_it() -> None:
    res = resolve_power(
        {"n1": 2, "n2": 2}, 4, {"n1": ExporterStatus.answered()}, {"n1": gpus("n1", 600, 200)}
    )
    message = dcgm_reachable(res).message
    assert "the mean power of the measured GPUs" in message
    assert "set spec.hardware.tdpWatts" in message
    # The mean moves with every reading; the condition message must not.
    assert "400" not in message


def test_scrape_failed_carries_the_error_and_tdp_stands_in() -> None:
    res = resolve_power(
        {"n1": 4, "n2": 4},
        8,
        {"n1": ExporterStatus.failed("connection refused"), "n2": ExporterStatus.not_found()},
        {},
        tdp_watts=350,
    )
    assert state(res) == ("False", DCGMReason.SCRAPE_FAILED, PowerSource.TDP)
    message = dcgm_reachable(res).message
    assert "connection refused" in message and "node n2" in message
    assert message.endswith("using tdpWatts 350 W per GPU")


@pytest.mark.parametrize(
    "exporters",
    [
        {},  # no exporter on the nodes
        {"n1": ExporterStatus.answered()},  # answered without readings for these nodes
    ],
)
def test_not_found_without_exporters_or_without_readings(
    exporters: dict[str, ExporterStatus],
) -> None:
    res = resolve_power({"n1": 2}, 2, exporters, {"other-node": gpus("x", 500)})
    assert state(res) == ("False", DCGMReason.NOT_FOUND, PowerSource.NONE)
    message = dcgm_reachable(res).message
    assert "node n1" in message and "set spec.hardware.tdpWatts" in message


def test_a_profile_that_owns_no_node_is_not_found_with_no_power_source() -> None:
    res = resolve_power({}, 8, {}, {}, tdp_watts=700)
    assert state(res) == ("False", DCGMReason.NOT_FOUND, PowerSource.NONE)
    assert "no node matches" in dcgm_reachable(res).message


def test_gpu_count_message_says_when_nodes_and_gpu_count_disagree() -> None:
    assert gpu_count_message(split_amortization(8.0, 8, {"n1": 4}), 8) == (
        "the nodeSelector matches 4 of 8 GPUs; the rest is booked as pool idle"
    )
    assert gpu_count_message(split_amortization(8.0, 8, {"n1": 8, "n2": 8}), 8) == (
        "the nodeSelector matches 16 GPUs but gpuCount is 8; the amortization is spread over all 16"
    )
    assert gpu_count_message(split_amortization(8.0, 8, {"n1": 8}), 8) is None
    assert gpu_count_message(split_amortization(8.0, 8, {}), 8) is None


capacities = st.dictionaries(
    st.sampled_from([f"n{i}" for i in range(6)]),
    st.one_of(st.none(), st.integers(min_value=0, max_value=8)),
    max_size=6,
)
statuses = st.sampled_from(
    [ExporterStatus.answered(), ExporterStatus.failed("timeout"), ExporterStatus.not_found()]
)


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
def test_exactly_one_state_matches_the_facts(scenario) -> None:  # type: ignore[no-untyped-def]
    caps, gpu_count, exporters, readings, tdp = scenario
    res = resolve_power(caps, gpu_count, exporters, readings, tdp)
    status, reason, source = state(res)
    if reason is DCGMReason.HEALTHY:
        assert source is PowerSource.DCGM and res.fallback_gpus == 0 and res.gpus_reporting
    elif reason is DCGMReason.PARTIAL:
        assert source is PowerSource.PARTIAL and res.gpus_reporting >= 1
        for node in res.nodes:
            if node.fallback_gpus:
                assert f"node {node.node}" in dcgm_reachable(res).message
    else:
        assert res.gpus_reporting == 0
        with_tdp = tdp is not None and bool(caps)
        assert source is (PowerSource.TDP if with_tdp else PowerSource.NONE)
        failed = any(exporters.get(n) is not None and exporters[n].state.value == "failed"
                     for n in caps)  # fmt: skip
        assert (reason is DCGMReason.SCRAPE_FAILED) == (bool(caps) and failed)
    assert status in ("True", "Unknown", "False")
