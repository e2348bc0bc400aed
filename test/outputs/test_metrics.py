"""The CostProfile collector renders current records at scrape time."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from infercost.engine.costmodel import GpuPower
from infercost.outputs.metrics import (
    POWER_SOURCES,
    CostProfileCollector,
    CostProfileSeries,
    NodePowerSeries,
)


def record(name: str = "h100", namespace: str = "ml", source: str = "DCGM") -> CostProfileSeries:
    return CostProfileSeries(
        namespace=namespace,
        name=name,
        gpu_model='NVIDIA "H100"',
        hourly_cost_usd=6.18,
        amortization_per_hour_usd=6.0,
        electricity_per_hour_usd=0.18,
        power_watts=1200.0,
        power_source=source,
        nodes=(
            NodePowerSeries("gpu-1", (GpuPower("GPU-a", "0", 700.0),)),
            NodePowerSeries("gpu-2", (GpuPower("GPU-b", "0", 500.0),)),
        ),
    )


def scrape(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_series_names_labels_and_values() -> None:
    registry = CollectorRegistry()
    collector = CostProfileCollector()
    registry.register(collector)
    collector.update(record())
    series = scrape(registry)
    profile = {
        ("costprofile", "h100"),
        ("costprofile_namespace", "ml"),
        ("gpu_model", 'NVIDIA "H100"'),
    }
    assert series[("infercost_costprofile_hourly_cost_usd", frozenset(profile))] == 6.18
    assert series[("infercost_costprofile_amortization_per_hour_usd", frozenset(profile))] == 6.0
    assert series[("infercost_costprofile_electricity_per_hour_usd", frozenset(profile))] == 0.18
    assert series[("infercost_costprofile_power_watts", frozenset(profile))] == 1200.0
    sources = {
        source: series[
            ("infercost_costprofile_power_source", frozenset(profile | {("source", source)}))
        ]
        for source in POWER_SOURCES
    }
    assert sources == {"DCGM": 1.0, "Partial": 0.0, "TDP": 0.0, "None": 0.0}
    gpu = frozenset(
        {
            ("costprofile", "h100"),
            ("costprofile_namespace", "ml"),
            ("node", "gpu-1"),
            ("gpu", "0"),
            ("uuid", "GPU-a"),
        }
    )
    assert series[("infercost_gpu_power_watts", gpu)] == 700.0


def test_removed_and_replaced_records() -> None:
    registry = CollectorRegistry()
    collector = CostProfileCollector()
    registry.register(collector)
    collector.update(record("a"))
    collector.update(record("b", source="TDP"))
    collector.update(record("b", source="None"))
    collector.remove("ml", "a")
    collector.remove("ml", "never-there")
    series = scrape(registry)
    names = {dict(labels)["costprofile"] for _, labels in series}
    assert names == {"b"}
    active = [
        dict(labels)["source"]
        for (name, labels), value in series.items()
        if name == "infercost_costprofile_power_source" and value == 1.0
    ]
    assert active == ["None"]
    collector.remove("ml", "b")
    assert not scrape(registry), "no records: the families are empty"


def test_an_unknown_power_source_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of DCGM, Partial, TDP, None"):
        record(source="Measured")


PROFILE_FAMILIES = (
    "infercost_costprofile_hourly_cost_usd",
    "infercost_costprofile_amortization_per_hour_usd",
    "infercost_costprofile_electricity_per_hour_usd",
    "infercost_costprofile_power_watts",
)


def test_every_scrape_during_updates_is_one_consistent_snapshot() -> None:
    registry = CollectorRegistry()
    collector = CostProfileCollector()
    registry.register(collector)
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            collector.update(record(f"p{i % 50}"))
            collector.remove("ml", f"p{(i + 25) % 50}")
            i += 1

    def profiles(series: dict, family: str) -> list[str]:  # type: ignore[type-arg]
        return sorted(dict(labels)["costprofile"] for name, labels in series if name == family)

    t = threading.Thread(target=churn)
    t.start()
    try:
        for _ in range(50):
            series = scrape(registry)
            names = profiles(series, PROFILE_FAMILIES[0])
            # A profile is in every family or in none, with its record's values and exactly
            # one active power source: no scrape sees half an update or half a removal.
            for family in PROFILE_FAMILIES[1:]:
                assert profiles(series, family) == names, family
            assert profiles(series, "infercost_costprofile_power_source") == sorted(
                names * len(POWER_SOURCES)
            )
            assert profiles(series, "infercost_gpu_power_watts") == sorted(names * 2)
            hourly = {
                value
                for (name, _), value in series.items()
                if name == "infercost_costprofile_hourly_cost_usd"
            }
            assert hourly <= {6.18}
            active = [
                dict(labels)["source"]
                for (name, labels), value in series.items()
                if name == "infercost_costprofile_power_source" and value == 1.0
            ]
            assert active == ["DCGM"] * len(names)
    finally:
        stop.set()
        t.join()
    final = scrape(registry)
    expected = sorted(r.name for r in collector.records())
    assert profiles(final, PROFILE_FAMILIES[0]) == expected, "the last update is what is served"
