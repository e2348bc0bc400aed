"""A crash between the two writes of the checkpoint that closes a day.

The first booking after midnight closes the day: the keeper writes the closed day to its
monthly object, then the hot shards. Killed between the two (or the hot write failing), the
checkpoint holds the day twice: closed, and still open in the older hot shard. Restoring from it
must not count the day twice (``infercost export`` reads the same checkpoint, and a report read
before the next booking would show the doubled day), and the next booking must end where an
uninterrupted ledger is.
"""

from __future__ import annotations

import datetime as dt
import json

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

MIDNIGHT = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
DAY = "2026-11-27"
PROFILE = "infra/h100"
ECON = Economics.of(
    Hardware(gpu_model="H100", gpu_count=1, purchase_price_usd=26_280.0, amortization_years=3.0),
    rate_per_kwh=0.10,
    pue_factor=1.5,
)
SHARDS = 4


def observation(seconds: float, tokens: int) -> Observation:
    """The cluster ``seconds`` after midnight: one GPU at 400 W, one pod that has served
    ``tokens`` prompt tokens (and a fifth of that generated)."""
    energy_mj = 1e9 + 400.0 * 1000.0 * (seconds + 3600)
    pod = PodObservation(
        uid="u1",
        namespace="team-a",
        name="vllm-0",
        node="n1",
        inference=True,
        scraped=True,
        start_time=MIDNIGHT - dt.timedelta(days=1),
        restart_count=0,
        readings=(
            SeriesReading("prompt{m=llama}", "llama", ROLE_INPUT, float(tokens)),
            SeriesReading("gen{m=llama}", "llama", ROLE_OUTPUT, float(tokens // 5)),
        ),
    )
    node = NodeObservation(
        "n1",
        PROFILE,
        1.0,
        "boot-1",
        (GpuObservation("GPU-1", energy_mj, 400.0),),
        (HoldObservation("GPU-1", "u1", "team-a", "vllm-0", 1.0, True),),
    )
    return Observation(
        MIDNIGHT + dt.timedelta(seconds=seconds),
        (ProfileObservation(PROFILE, ECON),),
        (node,),
        (pod,),
    )


SAMPLES = [(-90, 1000), (-60, 4000), (-30, 9000), (30, 15000), (60, 16000), (90, 20000)]


def day_figures(ledger: Ledger, day: str) -> tuple[int, int, float]:
    tokens_in = tokens_out = 0
    cost = 0.0
    for _, line in ledger.lines_of([day]):
        tokens_in += line.tokens[0]
        tokens_out += line.tokens[3]
        cost += line.cost_usd
    return tokens_in, tokens_out, round(cost, 12)


def _roundtrip(value: object) -> object:
    return json.loads(json.dumps(value))


def test_a_crash_between_the_closed_day_and_the_hot_shards_counts_the_day_once() -> None:
    whole = Ledger(shards=SHARDS)
    for seconds, tokens in SAMPLES:
        whole.book(observation(seconds, tokens))

    crashed = Ledger(shards=SHARDS)
    for seconds, tokens in SAMPLES[:3]:
        crashed.book(observation(seconds, tokens))
    before_midnight = day_figures(crashed, DAY)
    # the last hot shards that made it to the API server
    hot = [_roundtrip(crashed.dump_shard(s)) for s in range(SHARDS)]
    # the booking after midnight closes the day; its closed day is written, then the crash
    result = crashed.book(observation(*SAMPLES[3]))
    assert result.closed_days == (DAY,)
    closed = {DAY: [(s, _roundtrip(crashed.dump_closed(s, DAY))) for s in range(SHARDS)]}

    restored = Ledger(shards=SHARDS)
    restored.restore(hot, closed)  # type: ignore[arg-type]
    # the day as the checkpoint can vouch for it: once, as of the last hot write
    assert day_figures(restored, DAY) == before_midnight

    for seconds, tokens in SAMPLES[3:]:
        restored.book(observation(seconds, tokens))
    for day in (DAY, "2026-11-28"):
        got, want = day_figures(restored, day), day_figures(whole, day)
        assert got[:2] == want[:2], day
        assert abs(got[2] - want[2]) <= 1e-9 * want[2], day
