"""The ledger's checkpoint in ConfigMaps (SPEC §4) through the emulator: closed days are kept
for at least 40 days and old months pruned; a shard of 5,000 pods stays well under 1 MiB; a
restore gives back the same figures."""

from __future__ import annotations

import datetime as dt

from infercost.api import Hardware
from infercost.controllers.ledgerstore import LedgerStore, retained_since
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
from infercost.kube.rest import CONFIGMAPS
from infercost.testing.kubefixtures import KubeEnv

NS = "infercost-system"
ECON = Economics.of(Hardware(gpu_model="H100", gpu_count=8, purchase_price_usd=200_000.0), 0.1, 1.2)
START = dt.datetime(2026, 8, 1, 12, tzinfo=dt.UTC)


def _pods(n: int, node: str, value: float) -> tuple[PodObservation, ...]:
    return tuple(
        PodObservation(
            uid=f"{node}-pod-{i:05d}-7d9f8c6b5a4e3d2c1b0a",
            namespace=f"team-{i % 7}",
            name=f"vllm-{i}",
            node=node,
            inference=True,
            scraped=True,
            start_time=START - dt.timedelta(days=1),
            restart_count=0,
            readings=tuple(
                SeriesReading(
                    f'vllm:{kind}_tokens_total{{engine="{e}",model_name="meta-llama/Llama-3.1-8B"}}',
                    "meta-llama/Llama-3.1-8B",
                    role,
                    value,
                    1_790_000_000.0,
                )
                for e in range(2)
                for kind, role in (("prompt", ROLE_INPUT), ("generation", ROLE_OUTPUT))
            ),
        )
        for i in range(n)
    )


def _observation(at: dt.datetime, pods: int, value: float) -> Observation:
    gpus = tuple(GpuObservation(f"GPU-{i}", 1e9 * value / 100, 300.0) for i in range(8))
    holds = tuple(
        HoldObservation(
            f"GPU-{i % 8}", f"n1-pod-{i:05d}-7d9f8c6b5a4e3d2c1b0a", "t", "p", 0.01, True
        )
        for i in range(min(pods, 64))
    )
    return Observation(
        at,
        (ProfileObservation("infra/pool", ECON),),
        (NodeObservation("n1", "infra/pool", 8.0, "boot", gpus, holds),),
        _pods(pods, "n1", value),
    )


def test_closed_days_are_kept_three_months_and_restored(kube: KubeEnv) -> None:
    store = LedgerStore(kube.rest, NS, shards=1)
    ledger = Ledger(shards=1)
    at = START
    for day in range(100):
        result = ledger.book(_observation(at, 3, float(day * 1000)))
        for closed in result.closed_days:
            store.write_closed(ledger, closed)
        store.prune(at.date())
        store.write_shard(ledger, 0)
        at += dt.timedelta(days=1)
    names = sorted(cm["metadata"]["name"] for cm in kube.rest.list(CONFIGMAPS, NS)["items"])
    months = [n.rsplit("-", 2)[-2] + "-" + n.rsplit("-", 1)[-1] for n in names if n.count("-") == 4]
    assert months == ["2026-09", "2026-10", "2026-11"]
    restored = LedgerStore(kube.rest, NS, shards=1).load()
    kept = sorted(restored.closed)
    assert kept[0] == retained_since(at.date()).isoformat()
    assert len(kept) >= 40
    # the restored closed days hold the same lines as the live ledger
    for day in kept:
        live = {k: v.tokens for k, v in ledger.closed[day].items()}
        assert {k: v.tokens for k, v in restored.closed[day].items()} == live


def test_a_shard_of_5000_pods_stays_well_under_one_mebibyte(kube: KubeEnv) -> None:
    store = LedgerStore(kube.rest, NS, shards=1)
    ledger = Ledger(shards=1)
    ledger.book(_observation(START, 5000, 1000.0))
    ledger.book(_observation(START + dt.timedelta(seconds=30), 5000, 2000.0))
    assert store.write_shard(ledger, 0)
    raw = store.store.get("infercost-ledger-0")
    assert raw is not None
    size = len(raw.entries["state"])
    assert size < 512 * 1024, f"{size} bytes"
    # unchanged: not written again
    assert not store.write_shard(ledger, 0)


def test_a_restored_ledger_is_not_written_back_until_a_booking_changes_it(kube: KubeEnv) -> None:
    store = LedgerStore(kube.rest, NS, shards=4)
    ledger = Ledger(shards=4)
    ledger.book(_observation(START, 40, 1000.0))
    ledger.book(_observation(START + dt.timedelta(seconds=30), 40, 2000.0))
    assert [store.write_shard(ledger, s) for s in range(4)].count(True) >= 2
    # a new leader: what it restored is what is stored, so nothing is written again
    successor = LedgerStore(kube.rest, NS, shards=4)
    restored = successor.load()
    assert not any(successor.write_shard(restored, s) for s in range(4))
    result = restored.book(_observation(START + dt.timedelta(seconds=60), 40, 3000.0))
    assert all(successor.write_shard(restored, s) for s in result.changed_shards)
