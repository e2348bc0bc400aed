"""A simulated month of a small GPU cluster, booked into a real :class:`Ledger`.

Exports, reports and checkpoints need a ledger with everything a real one holds: two
CostProfiles (a datacenter pool with DCGM counters and a shortfall of one GPU, a workstation
without capacity or DCGM, its GPU shared by token share), inference pods with and without an
open-weight family, a training pod that holds a GPU on weekdays, pods that serve nothing for
hours, a DCGM outage, idle days before the first request and intervals split at midnight.
Traffic follows a daily curve with seeded noise, so the same arguments always book the same
ledger. Samples are ``step_seconds`` apart (default 15 minutes: a month books in seconds; the
ledger treats the spacing like any gap).
"""

from __future__ import annotations

import datetime as dt
import math
import random

from infercost.api import Hardware
from infercost.engine.ledger import (
    ROLE_CACHED,
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

__all__ = ["DATACENTER", "WORKSTATION", "simulated_ledger"]

DATACENTER = "infra/h100-pool"
WORKSTATION = "lab/rtx4090"

_DC_ECON = Economics.of(
    Hardware(
        gpu_model="H100",
        gpu_count=5,
        purchase_price_usd=30_000.0,
        maintenance_percent_per_year=0.05,
    ),
    rate_per_kwh=0.12,
    pue_factor=1.4,
)
_WS_ECON = Economics.of(
    Hardware(gpu_model="H100", gpu_count=1, purchase_price_usd=1_599.0, tdp_watts=450.0),
    rate_per_kwh=0.30,
)

# (uid, namespace, node, model, family, peak input tokens per second)
_SERVERS = (
    ("a70b", "team-a", "dc-1", "meta-llama/Llama-3.3-70B-Instruct", "llama-3.3-70b", 900.0),
    ("b-mis", "team-b", "dc-2", "mistralai/Ministral-8B-Instruct", None, 400.0),
    ("d-qwen", "team-d", "ws-1", "Qwen/Qwen3-32B", "qwen3-32b", 60.0),
    ("a-8b", "team-a", "ws-1", "meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b", 30.0),
)
_TRAINER = ("c-train", "team-c", "dc-2")


def _load(at: dt.datetime, rng: random.Random) -> float:
    """Share of peak traffic: a daily curve peaking at 15:00 UTC, quieter at weekends."""
    hour = at.hour + at.minute / 60
    curve = max(0.0, math.sin((hour - 3) / 24 * 2 * math.pi))
    weekend = 0.3 if at.weekday() >= 5 else 1.0
    return curve * weekend * rng.uniform(0.6, 1.2)


def simulated_ledger(
    start: dt.datetime,
    days: int,
    *,
    step_seconds: float = 900.0,
    seed: int = 7,
    shards: int = 4,
) -> Ledger:
    """Book ``days`` days from ``start`` (aware, UTC), plus one more sample so that the last
    day closes and the next one is open. Nothing is served on the first day (all idle), the
    workstation's qwen pod serves nothing on day 3 (``(no-traffic)``), and ``dc-1``'s
    exporter loses its energy counters from 02:00 to 06:00 on day 5."""
    if start.tzinfo is None:
        raise ValueError("start must be an aware (UTC) datetime")
    rng = random.Random(seed)
    ledger = Ledger(shards=shards)
    counters = {uid: [0.0, 0.0, 0.0] for uid, *_ in _SERVERS}
    energy_mj = {f"{n}-gpu{i}": 0.0 for n in ("dc-1", "dc-2") for i in range(2)}
    pod_start = start - dt.timedelta(days=30)
    profiles = (
        ProfileObservation(DATACENTER, _DC_ECON),
        ProfileObservation(WORKSTATION, _WS_ECON),
    )
    steps = int(days * 86_400 / step_seconds) + 1
    for n in range(steps + 1):
        at = start + dt.timedelta(seconds=n * step_seconds)
        day = (at - start).days
        load = _load(at, rng) if day >= 1 else 0.0
        training = at.weekday() < 5 and 8 <= at.hour < 18
        pods = []
        busy: dict[str, float] = {}
        for uid, ns, node, model, family, peak in _SERVERS:
            served = 0.0 if (uid == "d-qwen" and day == 3) else load
            tokens_in = peak * served * step_seconds * (n > 0)
            c = counters[uid]
            c[0] += round(tokens_in)
            c[1] += round(tokens_in * 0.4)
            c[2] += round(tokens_in * 0.25)
            busy[node] = max(busy.get(node, 0.0), served)
            pods.append(
                PodObservation(
                    uid=uid,
                    namespace=ns,
                    name=f"{uid}-0",
                    node=node,
                    inference=True,
                    scraped=True,
                    start_time=pod_start,
                    restart_count=0,
                    readings=(
                        SeriesReading(f"prompt{{model={model}}}", model, ROLE_INPUT, c[0]),
                        SeriesReading(f"cached{{model={model}}}", model, ROLE_CACHED, c[1]),
                        SeriesReading(f"gen{{model={model}}}", model, ROLE_OUTPUT, c[2]),
                    ),
                    families={model: family} if family else {},
                )
            )
        if training:
            uid, ns, node = _TRAINER
            pods.append(PodObservation(uid, ns, f"{uid}-0", node, False, False, pod_start))
        outage = day == 5 and 2 <= at.hour < 6
        nodes = []
        for node in ("dc-1", "dc-2"):
            readings = []
            for i in range(2):
                gid = f"{node}-gpu{i}"
                held = node == "dc-1" or i == 0 or training
                watts = 90.0 + (560.0 * busy.get(node, 0.0) if held else 0.0)
                energy_mj[gid] += watts * step_seconds * 1000.0
                if node == "dc-1" and outage:
                    readings.append(GpuObservation(gid))
                else:
                    readings.append(GpuObservation(gid, energy_mj[gid], watts))
            holds = [HoldObservation(f"{node}-gpu0", *_holder(node), 1.0, True)]
            if node == "dc-1":
                holds.append(HoldObservation("dc-1-gpu1", "a70b", "team-a", "a70b-0", 1.0, True))
            elif training:
                holds.append(
                    HoldObservation("dc-2-gpu1", _TRAINER[0], _TRAINER[1], "c-train-0", 1.0)
                )
            nodes.append(
                NodeObservation(node, DATACENTER, 2.0, "boot-1", tuple(readings), tuple(holds))
            )
        nodes.append(NodeObservation("ws-1", WORKSTATION, None, "boot-w"))
        ledger.book(Observation(at, profiles, tuple(nodes), tuple(pods)))
    return ledger


def _holder(node: str) -> tuple[str, str, str]:
    return ("a70b", "team-a", "a70b-0") if node == "dc-1" else ("b-mis", "team-b", "b-mis-0")
