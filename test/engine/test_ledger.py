"""The ledger (SPEC §4, §5): every expected figure below is worked out by hand from the SPEC's
formulas, not by calling the implementation."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from infercost.api import Hardware
from infercost.engine.ledger import (
    IDLE_MODEL,
    NO_TRAFFIC,
    NON_INFERENCE,
    ROLE_CACHED,
    ROLE_INPUT,
    ROLE_OUTPUT,
    UNALLOCATED,
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

DATA = Path(__file__).resolve().parents[1] / "data"
T0 = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.UTC)
PROFILE = "infra/h100"
# 8760 h × 3 years: $26,280 → exactly $1 per GPU-hour for one GPU
HW = Hardware(gpu_model="H100", gpu_count=1, purchase_price_usd=26_280.0, amortization_years=3.0)
ECON = Economics.of(HW, rate_per_kwh=0.10, pue_factor=1.5)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def vllm(
    uid="u1",
    ns="team-a",
    *,
    inp=0,
    out=0,
    cached=0,
    restarts=0,
    model="llama",
    scraped=True,
    start=None,
    node="n1",
):
    return PodObservation(
        uid=uid,
        namespace=ns,
        name=f"pod-{uid}",
        node=node,
        inference=True,
        scraped=scraped,
        start_time=start or (T0 - dt.timedelta(hours=1)),
        restart_count=restarts,
        readings=(
            SeriesReading(f"prompt{{model={model}}}", model, ROLE_INPUT, inp),
            SeriesReading(f"cached{{model={model}}}", model, ROLE_CACHED, cached),
            SeriesReading(f"gen{{model={model}}}", model, ROLE_OUTPUT, out),
        ),
    )


def node(energy_mj=None, *, holds=(), gpus=1.0, boot="b1", watts=500.0, name="n1", uuid="GPU-1"):
    readings = () if energy_mj is None else (GpuObservation(uuid, energy_mj, watts),)
    return NodeObservation(name, PROFILE, gpus, boot, readings, tuple(holds))


def held_by(uid="u1", ns="team-a", share=1.0, inference=True, uuid="GPU-1"):
    return HoldObservation(uuid, uid, ns, f"pod-{uid}", share, inference)


def obs(t, nodes, pods, econ=ECON, profiles=None):
    profs = profiles if profiles is not None else (ProfileObservation(PROFILE, econ),)
    return Observation(at(t), profs, tuple(nodes), tuple(pods))


def totals(ledger: Ledger, **match):
    out = {"cost": 0.0, "input": 0, "output": 0, "cached": 0, "kwh": 0.0, "idle": 0.0}
    for (_, day, profile, ns, model), line in [*ledger.lines.items()] + [
        (k, v) for d in ledger.closed.values() for k, v in d.items()
    ]:
        key = {"day": day, "profile": profile, "namespace": ns, "model": model}
        if any(key[k] != v for k, v in match.items()):
            continue
        out["cost"] += line.cost_usd
        out["idle"] += line.idle_cost_usd
        out["input"] += line.tokens[0]
        out["cached"] += line.tokens[1]
        out["output"] += line.tokens[3]
        out["kwh"] += line.value("energy_kwh")
    return out


KWH = 3.6e9  # mJ per kWh


def test_one_gpu_one_pod_books_amortization_energy_and_tokens() -> None:
    ledger = Ledger(shards=4)
    ledger.book(obs(0, [node(0.0, holds=[held_by()])], [vllm(inp=1000, out=100)]))
    # an hour later: 0.4 kWh on the counter, 5000 more prompt and 700 more generated tokens
    ledger.book(
        obs(3600, [node(0.4 * KWH, holds=[held_by()])], [vllm(inp=6000, out=800, cached=50)])
    )
    t = totals(ledger, namespace="team-a", model="llama")
    assert t["input"] == 5000
    assert t["output"] == 700
    assert t["cached"] == 50
    assert t["kwh"] == pytest.approx(0.4)
    # $1 amortization + 0.4 kWh × $0.10 × 1.5 PUE
    assert t["cost"] == pytest.approx(1.0 + 0.06)
    assert t["idle"] == 0.0


def test_counter_reset_by_value_and_by_container_restart() -> None:
    ledger = Ledger(shards=1)
    ledger.book(obs(0, [node(0.0, holds=[held_by()])], [vllm(inp=1000, out=100)]))
    ledger.book(obs(30, [node(1e6, holds=[held_by()])], [vllm(inp=1200, out=120)]))
    # the server restarted: the counter starts again from 0 and reads 50
    ledger.book(obs(60, [node(2e6, holds=[held_by()])], [vllm(inp=50, out=5)]))
    # the container restarted, and the counter is by chance higher than the watermark
    ledger.book(obs(90, [node(3e6, holds=[held_by()])], [vllm(inp=80, out=9, restarts=1)]))
    t = totals(ledger)
    assert t["input"] == 200 + 50 + 80
    assert t["output"] == 20 + 5 + 9


def test_a_pod_first_seen_counts_its_whole_counter_only_when_it_started_after_coverage() -> None:
    ledger = Ledger(shards=1)
    ledger.book(obs(0, [node(0.0)], []))
    late = vllm("late", inp=300, out=30, start=at(10))
    early = vllm("early", inp=9000, out=900, start=at(-3600))
    ledger.book(obs(30, [node(1e6)], [late, early]))
    t = totals(ledger)
    assert t["input"] == 300
    assert t["output"] == 30
    ledger.book(
        obs(60, [node(2e6)], [vllm("late", inp=310, out=31), vllm("early", inp=9100, out=901)])
    )
    t = totals(ledger)
    assert (t["input"], t["output"]) == (300 + 10 + 100, 30 + 1 + 1)


def test_interval_split_at_midnight_keeps_whole_tokens() -> None:
    ledger = Ledger(shards=2)
    midnight = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
    start = (midnight - T0).total_seconds() - 20  # 23:59:40
    ledger.book(obs(start, [node(0.0, holds=[held_by()])], [vllm(inp=0, out=0)]))
    # 60 s interval, 20 s before midnight and 40 s after; 1001 tokens
    result = ledger.book(obs(start + 60, [node(0.0, holds=[held_by()])], [vllm(inp=1001, out=0)]))
    before = totals(ledger, day="2026-11-27")
    after = totals(ledger, day="2026-11-28")
    assert before["input"] == 333  # floor(1001 × 1/3)
    assert after["input"] == 668
    assert before["cost"] == pytest.approx(20 / 3600)
    assert after["cost"] == pytest.approx(40 / 3600)
    assert result.closed_days == ("2026-11-27",)
    assert ledger.is_closed("2026-11-27")


MIDNIGHT = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)


def _first_seen_across_midnight(started: dt.datetime) -> tuple[dict, dict]:
    """The node's previous sample is at 23:59:50; a pod started at ``started`` is first seen at
    00:00:20 with 250 input and 25 output tokens."""
    ledger = Ledger(shards=2)
    before = (MIDNIGHT - T0).total_seconds() - 10
    ledger.book(obs(before, [node(0.0)], []))
    ledger.book(obs(before + 30, [node(0.0)], [vllm("new", inp=250, out=25, start=started)]))
    return totals(ledger, day="2026-11-27"), totals(ledger, day="2026-11-28")


def test_a_pod_started_after_midnight_books_all_its_first_tokens_on_the_new_day() -> None:
    old_day, new_day = _first_seen_across_midnight(MIDNIGHT + dt.timedelta(seconds=10))
    assert (old_day["input"], old_day["output"]) == (0, 0)
    assert (new_day["input"], new_day["output"]) == (250, 25)
    # the GPU's hour is still the whole interval's, split by time: 10 s before midnight
    assert old_day["cost"] == pytest.approx(10 / 3600)
    assert new_day["cost"] == pytest.approx(20 / 3600)


def test_a_pod_started_before_midnight_splits_its_first_tokens_from_its_start() -> None:
    # served over [23:59:55, 00:00:20]: 5 s before midnight and 20 s after, 1:4
    old_day, new_day = _first_seen_across_midnight(MIDNIGHT - dt.timedelta(seconds=5))
    assert (old_day["input"], old_day["output"]) == (50, 5)
    assert (new_day["input"], new_day["output"]) == (200, 20)


def test_a_first_seen_pod_and_a_known_one_of_the_same_model_split_by_their_own_spans() -> None:
    """Two pods of one (namespace, model) line: the known one served over the whole interval
    (10 s : 20 s), the new one only since its start after midnight."""
    ledger = Ledger(shards=1)
    before = (MIDNIGHT - T0).total_seconds() - 10
    ledger.book(obs(before, [node(0.0)], [vllm("old", inp=1000)]))
    late = vllm("new", inp=90, start=MIDNIGHT + dt.timedelta(seconds=1))
    ledger.book(obs(before + 30, [node(0.0)], [vllm("old", inp=1300), late]))
    assert totals(ledger, day="2026-11-27")["input"] == 100  # ⌊300 × 1/3⌋
    assert totals(ledger, day="2026-11-28")["input"] == 200 + 90


def test_unheld_gpu_with_no_cost_anywhere_goes_to_unallocated() -> None:
    ledger = Ledger(shards=1)
    ledger.book(obs(0, [node(0.0)], []))
    ledger.book(obs(3600, [node(0.0)], []))
    t = totals(ledger, namespace=UNALLOCATED, model=IDLE_MODEL)
    assert t["cost"] == pytest.approx(1.0)
    assert t["idle"] == pytest.approx(1.0)


def test_idle_follows_the_days_non_idle_cost() -> None:
    hw = Hardware(gpu_model="H100", gpu_count=4, purchase_price_usd=4 * 26_280.0)
    econ = Economics.of(hw, 0.0)
    n = NodeObservation(
        "n1",
        PROFILE,
        4.0,
        "b",
        (),
        (
            HoldObservation("n1/gpu0", "a", "team-a", "a", 1.0, True),
            HoldObservation("n1/gpu1", "b", "team-b", "b", 1.0, False),
        ),
    )
    pods = [vllm("a", "team-a", inp=0, out=0)]
    ledger = Ledger(shards=1)
    ledger.book(obs(0, [n], pods, econ))
    ledger.book(obs(3600, [n], [vllm("a", "team-a", inp=10, out=10)], econ))
    # two GPUs held ($1 each), two idle ($2) split 1:1 by the day's non-idle cost
    a = totals(ledger, namespace="team-a")
    b = totals(ledger, namespace="team-b", model=NON_INFERENCE)
    assert a["cost"] == pytest.approx(2.0)
    assert a["idle"] == pytest.approx(1.0)
    assert b["cost"] == pytest.approx(2.0)


def test_a_pod_without_tokens_books_no_traffic() -> None:
    ledger = Ledger(shards=1)
    ledger.book(obs(0, [node(0.0, holds=[held_by()])], [vllm()]))
    ledger.book(obs(3600, [node(0.0, holds=[held_by()])], [vllm()]))
    assert totals(ledger, model=NO_TRAFFIC)["cost"] == pytest.approx(1.0)


def test_dcgm_outage_defers_energy_until_the_counter_is_read_again() -> None:
    ledger = Ledger(shards=1)
    pods = [vllm(inp=0, out=0)]
    ledger.book(obs(0, [node(0.0, holds=[held_by()])], pods))
    # two hours without the exporter: no reading of GPU-1
    ledger.book(obs(3600, [node(None, holds=[held_by()])], [vllm(inp=10, out=0)]))
    assert totals(ledger)["kwh"] == 0.0
    ledger.book(obs(7200, [node(None, holds=[held_by()])], [vllm(inp=20, out=0)]))
    # back: the counter moved by 0.9 kWh over three hours
    ledger.book(obs(10800, [node(0.9 * KWH, holds=[held_by()])], [vllm(inp=30, out=0)]))
    t = totals(ledger)
    assert t["kwh"] == pytest.approx(0.9)
    assert t["cost"] == pytest.approx(3.0 + 0.9 * 0.15)


def test_outage_ended_by_a_reboot_is_estimated_from_tdp() -> None:
    hw = Hardware(gpu_model="H100", gpu_count=1, purchase_price_usd=26_280.0, tdp_watts=700.0)
    econ = Economics.of(hw, 0.10, 1.0)
    ledger = Ledger(shards=1)
    ledger.book(obs(0, [node(5 * KWH, holds=[held_by()])], [vllm()], econ))
    ledger.book(obs(3600, [node(None, holds=[held_by()])], [vllm()], econ))
    # the node rebooted: a new boot ID and the counter starts low
    ledger.book(
        obs(7200, [node(0.1 * KWH, boot="b2", watts=300, holds=[held_by()])], [vllm()], econ)
    )
    t = totals(ledger)
    # deferred hour: 700 W × 1 h; the reboot hour: mean of 500 W and 300 W
    assert t["kwh"] == pytest.approx(0.7 + 0.4)


def test_wall_time_stepping_back_books_nothing() -> None:
    ledger = Ledger(shards=1)
    ledger.book(obs(0, [node(0.0, holds=[held_by()])], [vllm()]))
    ledger.book(obs(60, [node(0.0, holds=[held_by()])], [vllm(inp=5)]))
    before = totals(ledger)
    assert not ledger.book(obs(30, [node(0.0, holds=[held_by()])], [vllm(inp=9)])).booked
    assert totals(ledger) == before


def test_shortfall_of_gpu_count_is_pool_idle() -> None:
    hw = Hardware(gpu_model="H100", gpu_count=3, purchase_price_usd=3 * 26_280.0)
    econ = Economics.of(hw, 0.0)
    ledger = Ledger(shards=3)
    ledger.book(obs(0, [node(0.0, holds=[held_by()])], [vllm()], econ))
    ledger.book(obs(3600, [node(0.0, holds=[held_by()])], [vllm(inp=5, out=5)], econ))
    t = totals(ledger)
    assert t["cost"] == pytest.approx(3.0)
    assert t["idle"] == pytest.approx(2.0)
    assert totals(ledger, namespace="team-a")["cost"] == pytest.approx(3.0)


def test_checkpoint_round_trip_continues_exactly() -> None:
    def run(restart: bool) -> dict:
        ledger = Ledger(shards=4)
        ledger.book(obs(0, [node(0.0, holds=[held_by()])], [vllm(inp=100, out=10)]))
        ledger.book(obs(60, [node(1e6, holds=[held_by()])], [vllm(inp=200, out=20)]))
        if restart:
            shards = [json.loads(json.dumps(ledger.dump_shard(s))) for s in range(4)]
            ledger = Ledger(shards=4)
            ledger.restore(shards)
        # a gap of an hour (operator down), with traffic
        ledger.book(obs(3660, [node(9e6, holds=[held_by()])], [vllm(inp=900, out=90)]))
        return totals(ledger)

    uninterrupted, restarted = run(False), run(True)
    assert restarted["input"] == uninterrupted["input"] == 800
    assert restarted["cost"] == pytest.approx(uninterrupted["cost"], rel=1e-12)


def test_a_price_edit_during_a_gap_applies_from_when_it_was_observed() -> None:
    ledger = Ledger(shards=1)
    ledger.book(obs(0, [node(0.0, holds=[held_by()])], [vllm()]))
    # the operator is down for two hours; the price doubled meanwhile and is seen at restart
    doubled = Economics.of(
        Hardware(gpu_model="H100", gpu_count=1, purchase_price_usd=2 * 26_280.0),
        rate_per_kwh=0.10,
        pue_factor=1.5,
    )
    ledger.book(obs(7200, [node(0.0, holds=[held_by()])], [vllm()], econ=doubled))
    assert totals(ledger)["cost"] == pytest.approx(2.0)  # the gap at the old $1/h
    ledger.book(obs(10800, [node(0.0, holds=[held_by()])], [vllm()], econ=doubled))
    assert totals(ledger)["cost"] == pytest.approx(2.0 + 2.0)  # then $2/h


def test_time_sliced_node_counts_its_physical_gpus() -> None:
    """4 replicas of 1 GPU: capacity 4 ÷ replicas 4 = 1 GPU; three pods with limits of 1 hold
    1 ÷ max(1, 3) of it each (SPEC §5)."""
    hw = Hardware(gpu_model="H100", gpu_count=1, purchase_price_usd=26_280.0)
    econ = Economics.of(hw, 0.0)
    holds = [HoldObservation("n1/gpu0", u, f"ns-{u}", u, 1 / 3, True) for u in "abc"]
    n = NodeObservation("n1", PROFILE, 1.0, "b", (), tuple(holds))
    pods = [vllm(u, f"ns-{u}") for u in "abc"]
    ledger = Ledger(shards=1)
    ledger.book(obs(0, [n], pods, econ))
    ledger.book(obs(3600, [n], pods, econ))
    for u in "abc":
        assert totals(ledger, namespace=f"ns-{u}")["cost"] == pytest.approx(1 / 3)
    assert totals(ledger)["idle"] == pytest.approx(0.0, abs=1e-12)


def test_a_pod_recreated_under_the_same_name_while_down_counts_from_zero() -> None:
    ledger = Ledger(shards=1)
    ledger.book(obs(0, [node(0.0, holds=[held_by("old")])], [vllm("old", inp=5000)]))
    ledger.book(obs(30, [node(0.0, holds=[held_by("old")])], [vllm("old", inp=5100)]))
    # down; the pod is deleted and a new one (new UID) starts and serves 70 tokens
    new = vllm("new", inp=70, start=at(600))
    ledger.book(obs(1200, [node(0.0, holds=[held_by("new")])], [new]))
    assert totals(ledger)["input"] == 100 + 70


def test_a_sidecar_restart_is_not_a_reset() -> None:
    """The serving container's restart count is what the sampler reports; a sidecar restart
    leaves it unchanged, so the counter keeps its watermark."""
    ledger = Ledger(shards=1)
    ledger.book(obs(0, [node(0.0)], [vllm(inp=1000, restarts=2)]))
    ledger.book(obs(30, [node(0.0)], [vllm(inp=1010, restarts=2)]))
    assert totals(ledger)["input"] == 10


def test_a_checkpoint_written_by_an_earlier_release_restores_identically() -> None:
    """``test/data/ledger/checkpoint-v1.json`` was written by the ledger before its per-pod
    watermarks took their compact form: it restores to the same state (dumped again, it is the
    same checkpoint), and booking continues from its watermarks: vllm pod u1 had 1300 input,
    25 cached and 160 output tokens, llama.cpp pod u2 (created 1795766400) 650 + 80 input,
    80 cached, 95 output."""
    written = json.loads((DATA / "ledger" / "checkpoint-v1.json").read_text())
    ledger = Ledger(shards=2)
    ledger.restore(written)
    assert [ledger.dump_shard(s) for s in range(2)] == written

    def llama(inp: int, cached: int, out: int, created: float) -> PodObservation:
        def series(name: str, roles: int, value: int) -> SeriesReading:
            return SeriesReading(name, "qwen", roles, value, created)

        return PodObservation(
            uid="u2",
            namespace="team-b",
            name="pod-u2",
            node="n1",
            inference=True,
            scraped=True,
            start_time=at(-3600),
            readings=(
                series("llamacpp:prompt_tokens_total{}", ROLE_INPUT, inp),
                series("llamacpp:prompt_tokens_cached_total{}", ROLE_INPUT | ROLE_CACHED, cached),
                series("llamacpp:tokens_predicted_total{}", ROLE_OUTPUT, out),
            ),
        )

    holds = [held_by("u1", share=0.5), held_by("u2", ns="team-b", share=0.5)]
    before_a, before_b = totals(ledger, namespace="team-a"), totals(ledger, namespace="team-b")
    ledger.book(
        obs(
            60,
            [node(4e6, holds=holds)],
            # u1 continues; u2's server restarted (a new *_created): its counters count whole
            [vllm("u1", inp=1400, out=200, cached=30), llama(5, 2, 3, 1795770000.0)],
        )
    )
    after_a, after_b = totals(ledger, namespace="team-a"), totals(ledger, namespace="team-b")
    booked_a = [after_a[k] - before_a[k] for k in ("input", "cached", "output")]
    booked_b = [after_b[k] - before_b[k] for k in ("input", "cached", "output")]
    assert booked_a == [100, 5, 40]
    assert booked_b == [7, 2, 3]


def test_a_node_leaving_coverage_leaves_the_other_nodes_energy_exact() -> None:
    """n1's GPUs were followed first; when n1 stops being owned its state goes, and n2's
    counter watermark and its pending outage must come through untouched."""
    hw = Hardware(gpu_model="H100", gpu_count=2, purchase_price_usd=2 * 26_280.0)
    econ = Economics.of(hw, 0.10, 1.0)

    def n1(mj: float) -> NodeObservation:
        return node(mj, name="n1", uuid="GPU-A")

    def n2(mj: float | None) -> NodeObservation:
        return node(mj, name="n2", uuid="GPU-B")

    ledger = Ledger(shards=2)
    ledger.book(obs(0, [n1(0.0), n2(1.0 * KWH)], [], econ))
    ledger.book(obs(3600, [n1(0.2 * KWH), n2(None)], [], econ))  # n2's exporter is down
    # n1 is no longer owned by any profile; n2's counter is back: 0.5 kWh over two hours
    unowned = NodeObservation("n1", "infra/other", 1.0, "b1")
    ledger.book(obs(7200, [unowned, n2(1.5 * KWH)], [], econ))
    assert totals(ledger)["kwh"] == pytest.approx(0.2 + 0.5)
    shards = [json.loads(json.dumps(ledger.dump_shard(s))) for s in range(2)]
    assert [g for s in shards for g in s["gpus"]] == ["GPU-B"]
    restored = Ledger(shards=2)
    restored.restore(shards)
    restored.book(obs(10800, [n2(1.8 * KWH)], [], econ))
    assert totals(restored)["kwh"] == pytest.approx(0.2 + 0.5 + 0.3)
