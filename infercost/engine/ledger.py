"""The ledger of SPEC §4: the single source of every cost figure.

Lines are accumulators per (UTC day, CostProfile, namespace, model) — kept per checkpoint shard
so that each shard is a self-contained part of the whole — of tokens (integers), amortization,
electricity, energy, their idle parts, estimated energy and GPU-seconds. :meth:`Ledger.book`
takes one :class:`Observation` (what a sampling cycle saw, in plain values) and books the
interval since the previous one: token deltas per raw series with resets, energy per GPU from
its counter with resets and outages, amortization at the rates in force at the interval's
start, everything sent to (namespace, model) keys by :func:`~.attribution.attribute` and split at
UTC midnight.

Pure: no clock (times come in with the observation), no I/O (state goes out as plain dicts
through :meth:`Ledger.dump_shard` and comes back through :meth:`Ledger.restore`).
Never negative, never backwards: a closed day is never touched again, and an observation that
is not later than the previous one books nothing.
"""

from __future__ import annotations

import array
import datetime as dt
import math
import sys
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from infercost.engine.attribution import (
    AMORTIZATION,
    ELECTRICITY,
    ENERGY,
    ESTIMATED,
    GPU_SECONDS,
    AttributionInput,
    attribute,
)
from infercost.engine.costmodel import (
    MILLIJOULES_PER_KWH,
    WATT_SECONDS_PER_KWH,
    HardwareSpec,
    amortization_end,
    depreciation_rate_per_hour,
    maintenance_rate_per_hour,
)
from infercost.engine.periods import (
    Piece,
    day_label,
    previous_day,
    split_at_midnight,
    split_whole,
)

__all__ = [
    "FIELDS",
    "IDLE_MODEL",
    "NON_INFERENCE",
    "NO_TRAFFIC",
    "ROLE_CACHED",
    "ROLE_INPUT",
    "ROLE_OUTPUT",
    "TOKENS",
    "UNALLOCATED",
    "BookingResult",
    "Economics",
    "GpuObservation",
    "HoldObservation",
    "Ledger",
    "Line",
    "LineKey",
    "NodeObservation",
    "Observation",
    "PodObservation",
    "ProfileObservation",
    "SeriesReading",
    "amortization_usd",
    "shard_of",
]

NO_TRAFFIC = "(no-traffic)"
NON_INFERENCE = "(non-inference)"
IDLE_MODEL = "(idle)"
UNALLOCATED = "__unallocated__"

ROLE_INPUT, ROLE_CACHED, ROLE_OUTPUT = 1, 2, 4

FIELDS = (
    "amortization_usd",
    "electricity_usd",
    "energy_kwh",
    "idle_amortization_usd",
    "idle_electricity_usd",
    "idle_energy_kwh",
    "estimated_energy_kwh",
    "idle_estimated_energy_kwh",
    "active_gpu_seconds",
    "gpu_seconds",
    "idle_gpu_seconds",
)
(
    F_AMORT,
    F_ELEC,
    F_KWH,
    F_IDLE_AMORT,
    F_IDLE_ELEC,
    F_IDLE_KWH,
    F_EST_KWH,
    F_IDLE_EST_KWH,
    F_ACTIVE_S,
    F_GPU_S,
    F_IDLE_GPU_S,
) = range(len(FIELDS))
TOKENS = ("input_tokens", "cached_input_tokens", "uncached_input_tokens", "output_tokens")
T_IN, T_CACHED, T_UNCACHED, T_OUT = range(len(TOKENS))

_ZERO_VALUES = (0.0,) * len(FIELDS)
_ZERO_TOKENS = (0,) * len(TOKENS)

DEFERRAL_LIMIT_SECONDS = 24 * 3600.0
"""SPEC §4: a GPU whose energy counter stays unreadable longer than this is estimated."""
STATE_VERSION = 1


# -------------------------------------------------------------------------------------------
# inputs


@attrs.frozen
class Economics:
    """The rates in force for booking (SPEC §4: checkpointed per profile), derived from a
    CostProfile's last valid spec by :meth:`of`."""

    gpu_count: int
    depreciation_per_hour_usd: float
    """``purchasePriceUSD / (amortizationYears × 8760)`` for the whole pool."""
    maintenance_per_hour_usd: float
    depreciation_end: float | None
    """Unix seconds when the purchase price is written off (``purchaseDate`` + years)."""
    tdp_watts: float | None
    rate_per_kwh: float
    pue_factor: float = 1.0

    @classmethod
    def of(cls, hardware: HardwareSpec, rate_per_kwh: float, pue_factor: float = 1.0) -> Economics:
        end = amortization_end(hardware)
        return cls(
            gpu_count=hardware.gpu_count,
            depreciation_per_hour_usd=depreciation_rate_per_hour(hardware),
            maintenance_per_hour_usd=maintenance_rate_per_hour(hardware),
            depreciation_end=None if end is None else end.timestamp(),
            tdp_watts=hardware.tdp_watts,
            rate_per_kwh=rate_per_kwh,
            pue_factor=pue_factor,
        )

    @property
    def usd_per_kwh(self) -> float:
        return self.rate_per_kwh * self.pue_factor


@attrs.frozen
class SeriesReading:
    """One raw token counter of a pod: ``key`` identifies the series (name and full label
    set); ``roles`` is a mask of :data:`ROLE_INPUT`, :data:`ROLE_CACHED`, :data:`ROLE_OUTPUT`."""

    key: str
    model: str
    roles: int
    value: float
    created: float | None = None


@attrs.frozen
class PodObservation:
    uid: str
    namespace: str
    name: str
    node: str
    inference: bool
    scraped: bool
    """A successful scrape at this sample: ``readings`` are current."""
    start_time: dt.datetime | None = None
    restart_count: int | None = None
    """Restarts of the container serving the metrics port; ``None`` when unknown."""
    readings: tuple[SeriesReading, ...] = ()
    families: Mapping[str, str] = attrs.field(factory=dict)
    """model → open-weight family, resolved by the caller when the tokens are read."""


@attrs.frozen
class GpuObservation:
    id: str
    """The GPU's UUID, or ``<node>/gpu<i>`` for a GPU no exporter reports."""
    energy_mj: float | None = None
    power_watts: float | None = None


@attrs.frozen
class HoldObservation:
    gpu: str
    pod_uid: str
    namespace: str
    pod: str
    share: float
    inference: bool = False
    """Whether the holder is an inference pod (else it books as ``(non-inference)``)."""


@attrs.frozen
class NodeObservation:
    name: str
    profile: str
    """The owning CostProfile (``namespace/name``) at this sample."""
    gpus: float | None
    """``nvidia.com/gpu`` capacity ÷ replicas; ``None`` when the node does not report it."""
    boot_id: str = ""
    readings: tuple[GpuObservation, ...] = ()
    holds: tuple[HoldObservation, ...] = ()


@attrs.frozen
class ProfileObservation:
    key: str
    economics: Economics
    """The last valid spec."""
    overlap: bool = False
    """Owns no node because another profile owns all its nodes: books nothing."""


@attrs.frozen
class Observation:
    time: dt.datetime
    profiles: tuple[ProfileObservation, ...]
    nodes: tuple[NodeObservation, ...]
    pods: tuple[PodObservation, ...]
    present_pods: frozenset[str] | None = None
    """UIDs of every pod in the cache; ``None``: every pod of :attr:`pods`."""


# -------------------------------------------------------------------------------------------
# state


LineKey = tuple[int, str, str, str, str]
"""(shard, day, profile, namespace, model)."""


def _float_row(values: Iterable[float]) -> array.array[float]:
    return array.array("d", values)


def _int_row(values: Iterable[int]) -> array.array[int]:
    return array.array("q", values)


@attrs.define
class Line:
    """One accumulator line. Its figures are rows of machine numbers (``values`` by
    :data:`FIELDS`, ``tokens`` by :data:`TOKENS`), not lists of Python numbers: a line costs
    about 300 bytes instead of 700, and closed days keep thousands of lines."""

    values: array.array[float] = attrs.field(
        factory=lambda: _float_row(_ZERO_VALUES), converter=_float_row
    )
    tokens: array.array[int] = attrs.field(
        factory=lambda: _int_row(_ZERO_TOKENS), converter=_int_row
    )
    family: str | None = None

    @property
    def cost_usd(self) -> float:
        return self.values[F_AMORT] + self.values[F_ELEC]

    @property
    def idle_cost_usd(self) -> float:
        return self.values[F_IDLE_AMORT] + self.values[F_IDLE_ELEC]

    def add(self, other: Line) -> None:
        for i, v in enumerate(other.values):
            self.values[i] += v
        for i, t in enumerate(other.tokens):
            self.tokens[i] += t
        if self.family is None:
            self.family = other.family

    def value(self, name: str) -> float:
        return self.values[FIELDS.index(name)]


@attrs.define
class _Node:
    profile: str
    shard: int
    t0: float
    coverage: float
    gpus: float
    boot_id: str
    gpu_ids: list[str] = attrs.Factory(list)
    """GPUs whose energy counter the ledger follows on this node."""


@attrs.define
class _Profile:
    t0: float
    economics: Economics
    owned_gpus: float
    mode: str
    """``owns`` (owns nodes), ``none`` (matches no node: all pool idle), ``overlap``."""


Mark = tuple[int, float | None]
"""A series' watermark: its whole value and its ``*_created`` value (``None``: not served)."""


@attrs.frozen
class _SeriesKeys:
    """The series keys of a pod, and where each one's watermark is: one object shared by every
    pod that serves the same series (replicas of a model)."""

    keys: tuple[str, ...]
    index: Mapping[str, int]


_NO_SERIES = _SeriesKeys((), {})


@attrs.frozen
class _Pod:
    """The watermarks of one pod (SPEC §4), kept compact: the ledger holds one per pod between
    samples. ``marks`` holds one number per series of ``series`` (its whole value: counters
    are read as floats, and stored as such they stay exact), then, when any series of the pod
    has a ``*_created`` value, one more per series (NaN: none)."""

    node: str
    restart_count: int | None
    series: _SeriesKeys = _NO_SERIES
    marks: array.array[float] = attrs.field(factory=lambda: array.array("d"))

    def mark(self, i: int) -> Mark:
        n = len(self.series.keys)
        created = self.marks[n + i] if len(self.marks) > n else math.nan
        return int(self.marks[i]), None if math.isnan(created) else created

    def dump(self) -> list[Any]:
        """``[node, restartCount, {series: [value, created]}]`` (checkpoint form)."""
        keys = self.series.keys
        n = len(keys)
        values = self.marks[:n].tolist()
        created: list[float | None] = [None] * n
        if len(self.marks) > n:
            created = [None if math.isnan(c) else c for c in self.marks[n:]]
        series = {k: [int(v), c] for k, v, c in zip(keys, values, created, strict=True)}
        return [self.node, self.restart_count, series]


@attrs.define
class _Deferral:
    seconds: float
    usd_per_kwh: float
    shard: int
    profile: str
    rows: list[tuple[str, str, float, bool]]
    """(namespace, model, weight, idle)."""


def _optional(value: float) -> float | None:
    return None if math.isnan(value) else value


def _number(value: float | None) -> float:
    return math.nan if value is None else value


class _GpuTable:
    """The energy state of every GPU the ledger follows (SPEC §4: counter watermark, boot ID,
    last power reading, deferrals), one column per field and one row per GPU: an object per
    GPU with a float object per reading cost ~180 bytes a GPU, and a node has eight. NaN
    stands for "none" in the number columns; deferrals, rare, are kept by GPU only while there
    are some."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self.ids: list[str] = []
        self.node: list[str] = []
        self.boot_id: list[str] = []
        self.energy_mj = array.array("d")
        self.watts = array.array("d")
        self.since = array.array("d")
        """Start of the current outage (unix seconds)."""
        self.rebase = bytearray()
        """The counter's next reading only re-bases its watermark."""
        self.deferred: dict[str, list[_Deferral]] = {}

    def counted(self, gid: str) -> bool:
        """Whether the GPU has an energy counter watermark."""
        row = self.rows.get(gid)
        return row is not None and not math.isnan(self.energy_mj[row])

    def put(
        self,
        gid: str,
        node: str,
        energy_mj: float | None,
        boot_id: str,
        watts: float | None,
        *,
        rebase: bool = False,
        since: float | None = None,
        deferred: list[_Deferral] | None = None,
    ) -> None:
        """Start following a GPU afresh (a GPU already followed loses its state)."""
        row = self.rows.get(gid)
        if row is None:
            self.rows[gid] = len(self.ids)
            self.ids.append(gid)
            self.node.append(node)
            self.boot_id.append(boot_id)
            self.energy_mj.append(_number(energy_mj))
            self.watts.append(_number(watts))
            self.since.append(_number(since))
            self.rebase.append(rebase)
        else:
            self.node[row], self.boot_id[row] = node, boot_id
            self.energy_mj[row], self.watts[row] = _number(energy_mj), _number(watts)
            self.since[row], self.rebase[row] = _number(since), rebase
        if deferred:
            self.deferred[gid] = deferred
        else:
            self.deferred.pop(gid, None)

    def remove(self, gid: str) -> None:
        """Stop following a GPU: the last row moves into its place."""
        row = self.rows.pop(gid)
        last = len(self.ids) - 1
        if row != last:
            moved = self.ids[last]
            self.rows[moved] = row
            self.ids[row], self.node[row] = moved, self.node[last]
            self.boot_id[row] = self.boot_id[last]
            self.energy_mj[row], self.watts[row] = self.energy_mj[last], self.watts[last]
            self.since[row], self.rebase[row] = self.since[last], self.rebase[last]
        del self.ids[last], self.node[last], self.boot_id[last]
        del self.energy_mj[last], self.watts[last], self.since[last], self.rebase[last]
        self.deferred.pop(gid, None)

    def dump(self, gid: str) -> list[Any]:
        row = self.rows[gid]
        return [
            self.node[row],
            _optional(self.energy_mj[row]),
            self.boot_id[row],
            _optional(self.watts[row]),
            bool(self.rebase[row]),
            _optional(self.since[row]),
            [
                [d.seconds, d.usd_per_kwh, d.profile, [list(r) for r in d.rows]]
                for d in self.deferred.get(gid, ())
            ],
        ]

    def load(self, gid: str, raw: Sequence[Any], shards: int) -> None:
        node, energy, boot, watts, rebase, since, deferred = raw
        self.put(
            gid,
            node,
            energy,
            boot,
            watts,
            rebase=bool(rebase),
            since=since,
            deferred=[
                _Deferral(
                    secs,
                    rate,
                    shard_of(node, shards),
                    profile,
                    [(r[0], r[1], float(r[2]), bool(r[3])) for r in rows],
                )
                for secs, rate, profile, rows in deferred
            ],
        )


@attrs.frozen
class BookingResult:
    booked: bool
    closed_days: tuple[str, ...] = ()
    changed_shards: frozenset[int] = frozenset()
    reason: str = ""


def shard_of(name: str, shards: int) -> int:
    """The checkpoint shard of a node (or of a profile's pool, by ``pool:<key>``)."""
    return zlib.crc32(name.encode()) % shards


class _NodeShards(dict[str, int]):
    """node → :func:`shard_of`, worked out on first use."""

    def __init__(self, shards: int) -> None:
        super().__init__()
        self.shards = shards

    def __missing__(self, node: str) -> int:
        shard = self[node] = shard_of(node, self.shards)
        return shard


def amortization_usd(econ: Economics, start: float, end: float) -> float:
    """The pool's amortization over ``(start, end]`` (unix seconds): depreciation until its end
    (split by time inside the interval), maintenance always (SPEC §5)."""
    hours = max(0.0, end - start) / 3600.0
    depreciating = hours
    if econ.depreciation_end is not None:
        depreciating = max(0.0, min(end, econ.depreciation_end) - start) / 3600.0
    return econ.depreciation_per_hour_usd * depreciating + econ.maintenance_per_hour_usd * hours


def _ts(at: dt.datetime) -> float:
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at.isoformat()}: pass an aware (UTC) time")
    return at.timestamp()


def _dt(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _usable(value: float | None) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value) or value < 0:
        return None
    return value


# -------------------------------------------------------------------------------------------
# the ledger


class Ledger:
    """See the module docstring. Not thread-safe: the caller serialises :meth:`book`,
    :meth:`dump_shard` and :meth:`restore`."""

    def __init__(self, *, shards: int = 16) -> None:
        if shards < 1:
            raise ValueError("a ledger needs at least one shard")
        self.shards = shards
        self.attributed: dict[tuple[str, str, str], list[float]] = {}
        """(profile, namespace, model) → [input tokens, output tokens, USD] booked by this
        instance since it was created (never restored: the ``*_total`` counters of SPEC §6.1)."""
        self.attributed_idle: dict[str, float] = {}
        """profile → idle USD booked by this instance since it was created."""
        self._reset()

    def _reset(self) -> None:
        self.first_sample: float | None = None
        self.last_time: float | None = None
        self.lines: dict[LineKey, Line] = {}
        """Lines of the open days (not yet closed)."""
        self.closed: dict[str, dict[LineKey, Line]] = {}
        """Closed days, by day label."""
        self.coverage: dict[tuple[int, str, str], float] = {}
        """(shard, day, profile) → seconds the ledger booked for the profile."""
        self.closed_coverage: dict[str, dict[tuple[int, str, str], float]] = {}
        self._nodes: dict[str, _Node] = {}
        self._profiles: dict[str, _Profile] = {}
        self._pods: dict[str, _Pod] = {}
        self._key_sets: dict[tuple[str, ...], _SeriesKeys] = {}
        """One copy of each pod's tuple of series keys (see :meth:`_pod`)."""
        self._key_sets_kept = 0
        self._gpus = _GpuTable()
        self._weights: dict[tuple[str, str], dict[tuple[str, str], float]] = {}
        """(day, profile) → (namespace, model) → non-idle cost, for the idle split."""

    # -- reading -----------------------------------------------------------------------------

    def days(self) -> list[str]:
        """Every day the ledger still keeps, open or closed, in order."""
        open_days = {key[1] for key in self.lines}
        return sorted(set(self.closed) | open_days)

    def lines_of(self, days: Iterable[str]) -> Iterable[tuple[LineKey, Line]]:
        wanted = set(days)
        for day in sorted(wanted & set(self.closed)):
            yield from self.closed[day].items()
        for key, line in self.lines.items():
            if key[1] in wanted:
                yield key, line

    def covered_seconds(self, days: Iterable[str], profile: str) -> float:
        wanted = set(days)
        total = 0.0
        for day in wanted:
            for (_, d, p), seconds in self.closed_coverage.get(day, {}).items():
                if d == day and p == profile:
                    total += seconds
        for (_, d, p), seconds in self.coverage.items():
            if d in wanted and p == profile:
                total += seconds
        return total

    def is_closed(self, day: str) -> bool:
        return day in self.closed

    # -- booking -----------------------------------------------------------------------------

    def book(self, obs: Observation) -> BookingResult:
        """Book the interval that ends at ``obs.time``; see the module docstring."""
        t1 = _ts(obs.time)
        if self.last_time is not None and t1 <= self.last_time:
            return BookingResult(False, reason="not later than the last booked sample")
        changed: set[int] = set()
        if self.first_sample is None:
            self.first_sample = t1

        profiles = {p.key: p for p in obs.profiles}
        owned: dict[str, list[NodeObservation]] = {}
        for node in obs.nodes:
            if node.profile in profiles:
                owned.setdefault(node.profile, []).append(node)
        node_gpus = self._node_gpus(obs.nodes, profiles, owned)

        batch = _Batch(self, t1)
        by_name = {n.name: n for n in obs.nodes}
        # nodes covered since a previous sample: their interval (t0, t1], with the owner at t0
        for name, state in list(self._nodes.items()):
            batch.add_node(name, state, by_name.get(name))
            changed.add(state.shard)
        # profiles' pools: the shortfall, or everything for a profile that owns no node
        for key, pstate in self._profiles.items():
            batch.add_pool(key, pstate)
            changed.add(shard_of(f"pool:{key}", self.shards))
        # tokens of the pods on covered nodes
        present = obs.present_pods
        if present is None:
            present = frozenset(p.uid for p in obs.pods)
        for pod in obs.pods:
            batch.add_pod(pod)
        closed = batch.commit()
        changed |= batch.changed

        # state for the next interval
        for uid in [u for u in self._pods if u not in present]:
            changed.add(shard_of(self._pods[uid].node, self.shards))
            del self._pods[uid]
        now_owned = {n.name: n for ns in owned.values() for n in ns}
        for name in [n for n in self._nodes if n not in now_owned]:
            changed.add(self._nodes[name].shard)
            del self._nodes[name]
            for uid in [u for u, p in self._pods.items() if p.node == name]:
                del self._pods[uid]
            gpus = self._gpus
            for gid in [g for g, row in gpus.rows.items() if gpus.node[row] == name]:
                gpus.remove(gid)
        for name, node in now_owned.items():
            known = self._nodes.get(name)
            if known is None:
                state = self._nodes[name] = _Node(
                    profile=node.profile,
                    shard=shard_of(name, self.shards),
                    t0=t1,
                    coverage=t1,
                    gpus=node_gpus.get(name, 0.0),
                    boot_id=node.boot_id,
                )
                # watermarks only: the node is covered from now on
                for r in node.readings:
                    self._gpus.put(
                        r.id, name, _usable(r.energy_mj), node.boot_id, _usable(r.power_watts)
                    )
                state.gpu_ids = [r.id for r in node.readings if _usable(r.energy_mj) is not None]
                for pod in obs.pods:
                    if pod.node == name and pod.scraped:
                        self._set_watermarks(pod)
            else:
                state = known
            state.profile = node.profile  # an owner change applies from now on
            state.t0 = t1
            state.gpus = node_gpus.get(name, 0.0)
            state.boot_id = node.boot_id
            changed.add(state.shard)
        for key in [k for k in self._profiles if k not in profiles]:
            del self._profiles[key]
            # a deleted profile's counters go with it (its series disappear)
            for counted in [c for c in self.attributed if c[0] == key]:
                del self.attributed[counted]
            self.attributed_idle.pop(key, None)
        for key, prof in profiles.items():
            mode = "overlap" if prof.overlap else ("owns" if owned.get(key) else "none")
            self._profiles[key] = _Profile(
                t0=t1,
                economics=prof.economics,
                owned_gpus=sum(node_gpus.get(n.name, 0.0) for n in owned.get(key, ())),
                mode=mode,
            )
            changed.add(shard_of(f"pool:{key}", self.shards))
        self.last_time = t1
        return BookingResult(True, tuple(closed), frozenset(changed))

    def _node_gpus(
        self,
        nodes: Sequence[NodeObservation],
        profiles: Mapping[str, ProfileObservation],
        owned: Mapping[str, list[NodeObservation]],
    ) -> dict[str, float]:
        """GPUs per owned node (SPEC §5): capacity ÷ replicas; only when no owned node of a
        profile reports capacity do its nodes share ``gpuCount`` equally."""
        out: dict[str, float] = {}
        for key, members in owned.items():
            if all(n.gpus is None for n in members):
                even = profiles[key].economics.gpu_count / len(members)
                out.update((n.name, even) for n in members)
            else:
                out.update((n.name, float(n.gpus or 0.0)) for n in members)
        return out

    # -- tokens ------------------------------------------------------------------------------

    def _set_watermarks(self, pod: PodObservation) -> None:
        self._pods[pod.uid] = self._pod(
            pod.node, pod.restart_count, {r.key: (_whole(r.value), r.created) for r in pod.readings}
        )

    def _pod(self, node: str, restart_count: int | None, marks: Mapping[str, Mark]) -> _Pod:
        """A pod's watermarks in their compact form. Series keys are interned strings in tuples
        the ledger shares between pods; the table of tuples is rebuilt from the pods it holds
        whenever it has doubled, so key sets no pod serves any more do not accumulate."""
        keys = tuple(marks)
        shared = self._key_sets.get(keys)
        if shared is None:
            if len(self._key_sets) >= max(64, 2 * self._key_sets_kept):
                self._key_sets = {p.series.keys: p.series for p in self._pods.values()}
                self._key_sets_kept = len(self._key_sets)
            keys = tuple(sys.intern(k) for k in keys)
            shared = self._key_sets.setdefault(
                keys, _SeriesKeys(keys, {k: i for i, k in enumerate(keys)})
            )
        values: list[float] = [v for v, _ in marks.values()]
        if any(c is not None for _, c in marks.values()):
            values += [math.nan if c is None else c for _, c in marks.values()]
        return _Pod(node, restart_count, shared, array.array("d", values))

    def _token_deltas(
        self, pod: PodObservation, node: _Node
    ) -> tuple[dict[str, list[int]], float] | None:
        """model → [input, cached, output] whole-token deltas of a scraped pod, and the start
        of the span they were served in (unix seconds): the node's last sample, or the pod's
        ``startTime`` when it was first seen and started later (SPEC §4). ``None`` when the pod
        only sets watermarks (first seen, started before its node's coverage)."""
        state = self._pods.get(pod.uid)
        since = node.t0
        if state is None:
            started = pod.start_time
            if started is None or math.floor(_ts(started)) < math.floor(node.coverage):
                self._set_watermarks(pod)
                return None
            state = _Pod(pod.node, pod.restart_count)
            counted_whole = True
            since = max(since, _ts(started))
        else:
            counted_whole = False
        restarted = (
            state.restart_count is not None
            and pod.restart_count is not None
            and pod.restart_count != state.restart_count
        )
        out: dict[str, list[int]] = {}
        index = state.series.index
        fresh: dict[str, Mark] = {}
        for reading in pod.readings:
            value = _whole(reading.value)
            i = index.get(reading.key)
            mark_value, mark_created = (None, None) if i is None else state.mark(i)
            if (
                counted_whole
                or mark_value is None
                or restarted
                or value < mark_value
                or (
                    reading.created is not None
                    and mark_created is not None
                    and reading.created != mark_created
                )
            ):
                delta = value
            else:
                delta = value - mark_value
            fresh[reading.key] = (value, reading.created)
            if delta <= 0:
                continue
            row = out.setdefault(reading.model, [0, 0, 0])
            if reading.roles & ROLE_INPUT:
                row[0] += delta
            if reading.roles & ROLE_CACHED:
                row[1] += delta
            if reading.roles & ROLE_OUTPUT:
                row[2] += delta
        # series that vanished from the page keep their watermarks
        for key, i in index.items():
            if key not in fresh:
                fresh[key] = state.mark(i)
        self._pods[pod.uid] = self._pod(pod.node, pod.restart_count, fresh)
        return out, since

    # -- energy ------------------------------------------------------------------------------

    def _gpu_energy(
        self,
        gid: str,
        *,
        node: str,
        reading: GpuObservation | None,
        boot_id: str,
        seconds: float,
        t1: float,
        fallback_watts: float | None,
    ) -> tuple[float, float, str | None, float]:
        """Energy of one GPU over an interval of ``seconds`` ending at ``t1`` (SPEC §4).

        Returns (kWh, of which estimated, how to settle earlier deferred intervals — ``None``,
        ``"counter"`` or ``"estimate"`` —, kWh of the counter's delta that belongs to them).
        kWh is NaN while the GPU's energy is deferred (its counter cannot be read).
        """
        gpus = self._gpus
        row = gpus.rows.get(gid)
        energy = _usable(reading.energy_mj) if reading else None
        watts = _usable(reading.power_watts) if reading else None

        def fallback(span: float) -> float:
            return (fallback_watts or 0.0) * span / WATT_SECONDS_PER_KWH

        if row is None or math.isnan(gpus.energy_mj[row]):
            # no counter yet: the GPU's own power gauge, else the fallback
            kwh = watts * seconds / WATT_SECONDS_PER_KWH if watts is not None else fallback(seconds)
            gpus.put(gid, node, energy, boot_id, watts)
            return kwh, kwh, None, 0.0
        if energy is None:
            # the counter could be read before: defer, for at most 24 hours
            if math.isnan(gpus.since[row]):
                gpus.since[row] = t1 - seconds
            if gpus.rebase[row] or t1 - gpus.since[row] > DEFERRAL_LIMIT_SECONDS:
                gpus.rebase[row] = True
                return fallback(seconds), fallback(seconds), "estimate", 0.0
            return math.nan, 0.0, None, 0.0
        last_mj, last_boot = gpus.energy_mj[row], gpus.boot_id[row]
        reset = energy < last_mj or bool(last_boot and boot_id != last_boot)
        rebase = bool(gpus.rebase[row])
        previous_watts = _optional(gpus.watts[row])
        delta_kwh = (energy - last_mj) / MILLIJOULES_PER_KWH
        gpus.energy_mj[row], gpus.boot_id[row], gpus.watts[row] = energy, boot_id, _number(watts)
        gpus.rebase[row], gpus.since[row] = False, math.nan
        if reset or rebase:
            if reset and previous_watts is not None and watts is not None:
                kwh = (previous_watts + watts) / 2 * seconds / WATT_SECONDS_PER_KWH
            else:
                kwh = fallback(seconds)
            return kwh, kwh, "estimate", 0.0
        deferrals = gpus.deferred.get(gid)
        deferred = sum(d.seconds for d in deferrals) if deferrals else 0.0
        if deferred <= 0:
            return delta_kwh, 0.0, None, 0.0
        share_now = seconds / (seconds + deferred)
        return delta_kwh * share_now, 0.0, "counter", delta_kwh * (1.0 - share_now)

    def _settle(
        self, gid: str, how: str, recovered_kwh: float, fallback_watts: float | None
    ) -> list[tuple[int, str, str, str, float, float, bool, bool]]:
        """Book a GPU's deferred intervals into today's lines: (shard, profile, ns, model, kWh,
        USD, idle, estimated) rows. ``counter``: the counter's delta spread by seconds;
        ``estimate``: each interval from the fallback power (SPEC §4 outages)."""
        deferred = self._gpus.deferred.pop(gid, None)
        if not deferred:
            return []
        total = sum(d.seconds for d in deferred)
        estimate = how == "estimate"
        out = []
        for d in deferred:
            if estimate:
                kwh = (fallback_watts or 0.0) * d.seconds / WATT_SECONDS_PER_KWH
            else:
                kwh = recovered_kwh * d.seconds / total if total > 0 else 0.0
            for ns, model, weight, idle in d.rows:
                part = kwh * weight
                out.append(
                    (d.shard, d.profile, ns, model, part, part * d.usd_per_kwh, idle, estimate)
                )
        return out

    # -- closing -----------------------------------------------------------------------------

    def _close_days(self, t1: float) -> list[str]:
        """Days that ended at or before ``t1`` close (SPEC §4: the first sample after a day's
        end has been booked)."""
        today = day_label(_dt(t1))
        ending = sorted(
            {k[1] for k in self.lines if k[1] < today}
            | {k[1] for k in self.coverage if k[1] < today}
        )
        for day in ending:
            moved = {k: v for k, v in self.lines.items() if k[1] == day}
            for k in moved:
                del self.lines[k]
            self.closed.setdefault(day, {}).update(moved)
            covered = {c: v for c, v in self.coverage.items() if c[1] == day}
            for c in covered:
                del self.coverage[c]
            self.closed_coverage.setdefault(day, {}).update(covered)
        # the idle split may look back one day
        yesterday = day_label(_dt(t1 - 86400.0))
        for key in [k for k in self._weights if k[0] < yesterday]:
            del self._weights[key]
        return ending

    def forget_closed_before(self, day: str) -> None:
        """Drop closed days older than ``day`` from memory (they stay in their checkpoint)."""
        for d in [d for d in self.closed if d < day]:
            del self.closed[d]
            self.closed_coverage.pop(d, None)

    # -- persistence -------------------------------------------------------------------------

    def dump_shard(self, shard: int) -> dict[str, Any]:
        """The hot state of one shard as plain JSON-able values (SPEC §4 checkpoint)."""
        nodes = {n: s for n, s in self._nodes.items() if s.shard == shard}
        # pods and GPUs name their node: look each node's shard up once, not per pod and GPU
        node_shard = _NodeShards(self.shards)
        node_shard.update((n, s.shard) for n, s in self._nodes.items())
        pods = {u: p for u, p in self._pods.items() if node_shard[p.node] == shard}
        table = self._gpus
        gpus = [g for g, row in table.rows.items() if node_shard[table.node[row]] == shard]
        profiles = {
            k: p for k, p in self._profiles.items() if shard_of(f"pool:{k}", self.shards) == shard
        }
        return {
            "v": STATE_VERSION,
            "shard": shard,
            "shards": self.shards,
            "first": self.first_sample,
            "time": self.last_time,
            "nodes": {
                n: [s.profile, s.t0, s.coverage, s.gpus, s.boot_id, s.gpu_ids]
                for n, s in nodes.items()
            },
            "profiles": {k: _dump_profile(p) for k, p in profiles.items()},
            "pods": {u: p.dump() for u, p in pods.items()},
            "gpus": {g: table.dump(g) for g in gpus},
            "lines": _dump_lines((k, v) for k, v in self.lines.items() if k[0] == shard),
            "coverage": [[d, p, s] for (sh, d, p), s in self.coverage.items() if sh == shard],
        }

    def dump_closed(self, shard: int, day: str) -> list[list[Any]]:
        """One closed day's lines of one shard (written once, when the day closes)."""
        lines = self.closed.get(day, {})
        cov = self.closed_coverage.get(day, {})
        out = _dump_lines((k, v) for k, v in lines.items() if k[0] == shard)
        out.append(["coverage", [[p, s] for (sh, _, p), s in cov.items() if sh == shard]])
        return out

    def restore(
        self,
        shards: Sequence[Mapping[str, Any]],
        closed: Mapping[str, Sequence[tuple[int, Sequence[Any]]]] = {},
    ) -> None:
        """Replace the state with checkpointed shards (``dump_shard`` values) and closed days
        (day → [(shard, ``dump_closed`` value)]). Shards of another shard count are accepted:
        every piece of state carries what it needs."""
        self._reset()
        times = []
        firsts = []
        # (shard as written, day) still open in a hot shard: that shard was last written
        # before the day closed (the writer stopped between the closed day and the hot
        # shards), so its closed part of the day is not counted; the next booking re-books the
        # rest of the day from the older state and closes it again.
        still_open = {
            (int(data["shard"]), line[0]) for data in shards for line in data.get("lines") or ()
        }
        for data in shards:
            if data.get("v") != STATE_VERSION:
                raise ValueError(f"ledger shard version {data.get('v')!r} is not supported")
            if data.get("time") is not None:
                times.append(float(data["time"]))
            if data.get("first") is not None:
                firsts.append(float(data["first"]))
            for name, (profile, t0, coverage, gpus, boot, ids) in data["nodes"].items():
                self._nodes[name] = _Node(
                    profile, shard_of(name, self.shards), t0, coverage, gpus, boot, list(ids)
                )
            for key, raw in data["profiles"].items():
                self._profiles[key] = _load_profile(raw)
            for uid, (node, restarts, series) in data["pods"].items():
                self._pods[uid] = self._pod(
                    node, restarts, {k: (v, c) for k, (v, c) in series.items()}
                )
            for gid, raw in data["gpus"].items():
                self._gpus.load(gid, raw, self.shards)
            shard = int(data["shard"]) % self.shards
            for key, line in _load_lines(data["lines"], shard):
                self.lines.setdefault(key, Line()).add(line)
            for day, profile, seconds in data["coverage"]:
                cov_key = (shard_of(f"pool:{profile}", self.shards), day, profile)
                self.coverage[cov_key] = self.coverage.get(cov_key, 0.0) + seconds
        for day, parts in closed.items():
            for part_shard, raw in parts:
                if (part_shard, day) in still_open:
                    continue
                entries = [r for r in raw if r[0] != "coverage"]
                for key, line in _load_lines(entries, part_shard % self.shards):
                    self.closed.setdefault(day, {}).setdefault(key, Line()).add(line)
                for r in raw:
                    if r[0] == "coverage":
                        for profile, seconds in r[1]:
                            ck = (shard_of(f"pool:{profile}", self.shards), day, profile)
                            bucket = self.closed_coverage.setdefault(day, {})
                            bucket[ck] = bucket.get(ck, 0.0) + seconds
        # shards written at slightly different instants: continue from the oldest
        self.last_time = min(times) if times else None
        self.first_sample = min(firsts) if firsts else None
        for (_, day, profile, ns, model), line in [*self.lines.items()]:
            self._add_weight(day, profile, ns, model, line)
        for lines in self.closed.values():
            for (_, d, profile, ns, model), line in lines.items():
                self._add_weight(d, profile, ns, model, line)

    def _attribute(
        self, profile: str, ns: str, model: str, cost: float, *, tin: int = 0, tout: int = 0
    ) -> None:
        acc = self.attributed.setdefault((profile, ns, model), [0.0, 0.0, 0.0])
        acc[0] += tin
        acc[1] += tout
        acc[2] += cost

    def _add_weight(self, day: str, profile: str, ns: str, model: str, line: Line) -> None:
        self._add_weight_amount(day, profile, ns, model, line.cost_usd - line.idle_cost_usd)

    def _add_weight_amount(self, day: str, profile: str, ns: str, model: str, cost: float) -> None:
        if cost > 0:
            bucket = self._weights.setdefault((day, profile), {})
            bucket[(ns, model)] = bucket.get((ns, model), 0.0) + cost

    def _idle_weights(self, day: str, profile: str) -> list[tuple[str, str, float]]:
        """SPEC §5: idle goes to the profile's keys by their non-idle cost of the day (this
        interval included), else of the previous day, else to ``__unallocated__``."""
        for d in (day, previous_day(day)):
            bucket = self._weights.get((d, profile))
            if bucket:
                total = sum(bucket.values())
                if total > 0:
                    return [(ns, m, c / total) for (ns, m), c in sorted(bucket.items())]
        return [(UNALLOCATED, IDLE_MODEL, 1.0)]


def _whole(value: float) -> int:
    """Token counters are whole numbers; llama.cpp prints them with ``%g`` (SPEC §3.1)."""
    if math.isnan(value) or math.isinf(value) or value < 0:
        return 0
    return round(value)


def _dump_profile(p: _Profile) -> list[Any]:
    e = p.economics
    return [
        p.t0,
        p.owned_gpus,
        p.mode,
        [
            e.gpu_count,
            e.depreciation_per_hour_usd,
            e.maintenance_per_hour_usd,
            e.depreciation_end,
            e.tdp_watts,
            e.rate_per_kwh,
            e.pue_factor,
        ],
    ]


def _load_profile(raw: Sequence[Any]) -> _Profile:
    t0, owned, mode, (count, depreciation, maintenance, end, tdp, rate, pue) = raw
    return _Profile(
        t0, Economics(int(count), depreciation, maintenance, end, tdp, rate, pue), owned, mode
    )


def _dump_lines(items: Iterable[tuple[LineKey, Line]]) -> list[list[Any]]:
    return [
        [day, profile, ns, model, line.family, line.values.tolist(), line.tokens.tolist()]
        for (_, day, profile, ns, model), line in sorted(items)
    ]


def _load_lines(raw: Iterable[Sequence[Any]], shard: int) -> Iterable[tuple[LineKey, Line]]:
    for day, profile, ns, model, family, values, tokens in raw:
        key = (shard, day, profile, ns, model)
        yield key, Line([float(v) for v in values], [int(t) for t in tokens], family)


# -------------------------------------------------------------------------------------------
# one booking


@attrs.define
class _Unit:
    """One thing that carries cost over one interval: a node's GPU or a pool's virtual GPU."""

    gpu_id: str
    node: str | None
    shard: int
    profile: str
    amounts: list[float]
    usd_per_kwh: float
    deferred: bool = False


class _Batch:
    """Collects one observation's intervals, then books them (grouped by interval start)."""

    def __init__(self, ledger: Ledger, t1: float) -> None:
        self.ledger = ledger
        self.t1 = t1
        self.units: dict[float, list[_Unit]] = {}
        self.node_state: dict[str, _Node] = {}
        self.node_obs: dict[str, NodeObservation] = {}
        self.pods: dict[float, list[tuple[PodObservation, dict[str, list[int]], float]]] = {}
        self.recovered: list[tuple[int, str, str, str, float, float, bool, bool]] = []
        self.changed: set[int] = set()

    # -- gathering ---------------------------------------------------------------------------

    def add_node(self, name: str, state: _Node, node: NodeObservation | None) -> None:
        ledger = self.ledger
        prof = ledger._profiles.get(state.profile)
        if prof is None or prof.mode == "overlap":
            return
        t0 = state.t0
        seconds = self.t1 - t0
        if seconds <= 0:
            return
        econ = prof.economics
        denominator = max(float(econ.gpu_count), prof.owned_gpus)
        node_amort = amortization_usd(econ, t0, self.t1) / denominator * state.gpus
        readings = {r.id: r for r in node.readings} if node else {}
        # GPUs known from earlier samples that vanished from the page stay (deferred)
        ids = list(dict.fromkeys([*readings, *state.gpu_ids]))
        for i in range(len(ids), math.ceil(state.gpus)):
            ids.append(f"{name}/gpu{i}")
        if not ids:
            return
        boot = node.boot_id if node else state.boot_id
        measured = [w for r in readings.values() if (w := _usable(r.power_watts)) is not None]
        fallback = econ.tdp_watts
        if fallback is None and measured:
            fallback = sum(measured) / len(measured)
        per_gpu_amort = node_amort / len(ids)
        per_gpu_seconds = seconds * min(1.0, state.gpus / len(ids))
        units = self.units.setdefault(t0, [])
        for gid in ids:
            kwh, est, settle, recovered = ledger._gpu_energy(
                gid,
                node=name,
                reading=readings.get(gid),
                boot_id=boot,
                seconds=seconds,
                t1=self.t1,
                fallback_watts=fallback,
            )
            deferred = math.isnan(kwh)
            if deferred:
                kwh = est = 0.0
            units.append(
                _Unit(
                    gid,
                    name,
                    state.shard,
                    state.profile,
                    [per_gpu_amort, kwh * econ.usd_per_kwh, kwh, est, per_gpu_seconds],
                    econ.usd_per_kwh,
                    deferred,
                )
            )
            if settle is not None:
                self.recovered += ledger._settle(gid, settle, recovered, fallback)
        state.gpu_ids = [g for g in ids if ledger._gpus.counted(g)]
        self.node_state[name] = state
        if node is not None:
            self.node_obs[name] = node

    def add_pool(self, key: str, prof: _Profile) -> None:
        if prof.mode == "overlap":
            return
        seconds = self.t1 - prof.t0
        if seconds <= 0:
            return
        econ = prof.economics
        denominator = max(float(econ.gpu_count), prof.owned_gpus)
        if prof.mode == "owns":
            short = max(0.0, econ.gpu_count - prof.owned_gpus)
        else:
            short = float(econ.gpu_count)
        if short <= 0:
            return
        amort = amortization_usd(econ, prof.t0, self.t1) / denominator * short
        self.units.setdefault(prof.t0, []).append(
            _Unit(
                f"pool:{key}",
                None,
                shard_of(f"pool:{key}", self.ledger.shards),
                key,
                [amort, 0.0, 0.0, 0.0, short * seconds],
                prof.economics.usd_per_kwh,
            )
        )

    def add_pod(self, pod: PodObservation) -> None:
        state = self.node_state.get(pod.node)
        if state is None or not pod.scraped or not pod.inference:
            return
        counted = self.ledger._token_deltas(pod, state)
        if counted is None:
            return
        deltas, since = counted
        self.pods.setdefault(state.t0, []).append((pod, deltas, since))

    # -- booking -----------------------------------------------------------------------------

    def commit(self) -> list[str]:
        ledger = self.ledger
        for t0 in sorted(set(self.units) | set(self.pods)):
            self._book_group(t0, self.units.get(t0, []), self.pods.get(t0, []))
        today = day_label(_dt(self.t1))
        for shard, profile, ns, model, kwh, usd, idle, estimated in self.recovered:
            line = ledger.lines.setdefault((shard, today, profile, ns, model), Line())
            v = line.values
            v[F_KWH] += kwh
            v[F_ELEC] += usd
            ledger._attribute(profile, ns, model, usd)
            if idle:
                ledger.attributed_idle[profile] = ledger.attributed_idle.get(profile, 0.0) + usd
                v[F_IDLE_KWH] += kwh
                v[F_IDLE_ELEC] += usd
                if estimated:
                    v[F_IDLE_EST_KWH] += kwh
            else:
                if estimated:
                    v[F_EST_KWH] += kwh
                ledger._add_weight_amount(today, profile, ns, model, usd)
            self.changed.add(shard)
        return ledger._close_days(self.t1)

    def _book_group(
        self,
        t0: float,
        units: list[_Unit],
        pods: list[tuple[PodObservation, dict[str, list[int]], float]],
    ) -> None:
        ledger = self.ledger
        pieces = split_at_midnight(_dt(t0), _dt(self.t1))
        if not pieces:
            return
        node_index: dict[str, int] = {}
        for u in units:
            if u.node is not None:
                node_index.setdefault(u.node, len(node_index))
        for pod, _, _ in pods:
            node_index.setdefault(pod.node, len(node_index))
        groups: dict[tuple[int, str], int] = {}
        gpu_index: dict[str, int] = {}
        for i, u in enumerate(units):
            groups.setdefault((u.shard, u.profile), len(groups))
            gpu_index[u.gpu_id] = i

        keys: dict[tuple[int, str, str, str], int] = {}
        key_tokens: dict[int, list[int]] = {}
        late_tokens: dict[tuple[int, float], list[int]] = {}
        """Tokens of pods first seen that started after ``t0``, by (key, pod start)."""
        key_family: dict[int, str | None] = {}
        pod_index: dict[str, int] = {}
        pod_node: list[int] = []
        pod_inference: list[bool] = []
        entry_ptr = [0]
        entry_key: list[int] = []
        entry_tokens: list[float] = []

        def key_of(shard: int, profile: str, ns: str, model: str) -> int:
            return keys.setdefault((shard, profile, ns, model), len(keys))

        for pod, deltas, since in pods:
            state = self.node_state[pod.node]
            pod_index[pod.uid] = len(pod_node)
            pod_node.append(node_index[pod.node])
            pod_inference.append(True)
            served = {m: d for m, d in deltas.items() if d[0] + d[2] > 0}
            if served:
                for model, (tin, tcached, tout) in sorted(served.items()):
                    k = key_of(state.shard, state.profile, pod.namespace, model)
                    entry_key.append(k)
                    entry_tokens.append(float(tin + tout))
                    acc = key_tokens.setdefault(k, [0, 0, 0, 0])
                    if since > t0:
                        acc = late_tokens.setdefault((k, since), [0, 0, 0, 0])
                        key_tokens.setdefault(k, [0, 0, 0, 0])
                    acc[T_IN] += tin
                    acc[T_CACHED] += tcached
                    acc[T_UNCACHED] += max(0, tin - tcached)
                    acc[T_OUT] += tout
                    key_family.setdefault(k, pod.families.get(model))
            else:
                entry_key.append(key_of(state.shard, state.profile, pod.namespace, NO_TRAFFIC))
                entry_tokens.append(0.0)
            entry_ptr.append(len(entry_key))

        hold_gpu: list[int] = []
        hold_pod: list[int] = []
        hold_share: list[float] = []
        for name, node in self.node_obs.items():
            state = self.node_state[name]
            if state.t0 != t0:
                continue
            for h in node.holds:
                g = gpu_index.get(h.gpu)
                if g is None or h.share <= 0:
                    continue
                p = pod_index.get(h.pod_uid)
                if p is None:
                    # a GPU holder that serves no inference (or is not scraped this time)
                    p = pod_index[h.pod_uid] = len(pod_node)
                    pod_node.append(node_index.setdefault(name, len(node_index)))
                    pod_inference.append(False)
                    model = NO_TRAFFIC if h.inference else NON_INFERENCE
                    entry_key.append(key_of(state.shard, state.profile, h.namespace, model))
                    entry_tokens.append(0.0)
                    entry_ptr.append(len(entry_key))
                hold_gpu.append(g)
                hold_pod.append(p)
                hold_share.append(h.share)

        amounts = np.array([u.amounts for u in units], dtype=np.float64).reshape(-1, 5)
        result = attribute(
            AttributionInput(
                gpu_node=np.array(
                    [node_index[u.node] if u.node is not None else -1 for u in units],
                    dtype=np.int64,
                ),
                gpu_group=np.array([groups[(u.shard, u.profile)] for u in units], dtype=np.int64),
                gpu_amounts=amounts,
                hold_gpu=np.array(hold_gpu, dtype=np.int64),
                hold_pod=np.array(hold_pod, dtype=np.int64),
                hold_share=np.array(hold_share, dtype=np.float64),
                pod_node=np.array(pod_node, dtype=np.int64),
                pod_inference=np.array(pod_inference, dtype=bool),
                entry_ptr=np.array(entry_ptr, dtype=np.int64),
                entry_key=np.array(entry_key, dtype=np.int64),
                entry_tokens=np.array(entry_tokens, dtype=np.float64),
                n_nodes=len(node_index),
                n_keys=len(keys),
                n_groups=len(groups),
            )
        )
        key_list = list(keys)
        group_list = list(groups)
        active = result.key_active_seconds
        last_weights: dict[str, list[tuple[str, str, float]]] = {}
        token_parts = _token_parts(pieces, key_tokens, late_tokens, self.t1)
        for n, piece in enumerate(pieces):
            f = piece.fraction
            for k, (shard, profile, ns, model) in enumerate(key_list):
                a = result.key_amounts[k]
                tokens = key_tokens.get(k)
                if not tokens and not a.any():
                    continue
                line = ledger.lines.setdefault((shard, piece.day, profile, ns, model), Line())
                if line.family is None:
                    line.family = key_family.get(k)
                v = line.values
                v[F_AMORT] += a[AMORTIZATION] * f
                v[F_ELEC] += a[ELECTRICITY] * f
                v[F_KWH] += a[ENERGY] * f
                v[F_EST_KWH] += a[ESTIMATED] * f
                v[F_GPU_S] += a[GPU_SECONDS] * f
                v[F_ACTIVE_S] += active[k] * f
                cost = (a[AMORTIZATION] + a[ELECTRICITY]) * f
                ledger._add_weight_amount(piece.day, profile, ns, model, cost)
                ledger._attribute(profile, ns, model, cost)
                self.changed.add(shard)
            for k, by_piece in token_parts.items():
                parts = by_piece[n]
                if parts is None:
                    continue
                shard, profile, ns, model = key_list[k]
                line = ledger.lines[(shard, piece.day, profile, ns, model)]
                for t, part in enumerate(parts):
                    line.tokens[t] += part
                ledger._attribute(profile, ns, model, 0.0, tin=parts[T_IN], tout=parts[T_OUT])
            for g, (shard, profile) in enumerate(group_list):
                idle = result.idle_amounts[g] * f
                weights = ledger._idle_weights(piece.day, profile)
                last_weights[profile] = weights
                if not idle.any():
                    continue
                for ns, model, w in weights:
                    line = ledger.lines.setdefault((shard, piece.day, profile, ns, model), Line())
                    v = line.values
                    v[F_AMORT] += idle[AMORTIZATION] * w
                    v[F_ELEC] += idle[ELECTRICITY] * w
                    v[F_KWH] += idle[ENERGY] * w
                    v[F_IDLE_AMORT] += idle[AMORTIZATION] * w
                    v[F_IDLE_ELEC] += idle[ELECTRICITY] * w
                    v[F_IDLE_KWH] += idle[ENERGY] * w
                    v[F_IDLE_EST_KWH] += idle[ESTIMATED] * w
                    v[F_GPU_S] += idle[GPU_SECONDS] * w
                    v[F_IDLE_GPU_S] += idle[GPU_SECONDS] * w
                    ledger._attribute(
                        profile, ns, model, (idle[AMORTIZATION] + idle[ELECTRICITY]) * w
                    )
                ledger.attributed_idle[profile] = ledger.attributed_idle.get(profile, 0.0) + float(
                    idle[AMORTIZATION] + idle[ELECTRICITY]
                )
                self.changed.add(shard)
            for profile in {p for _, p in group_list}:
                key = (shard_of(f"pool:{profile}", ledger.shards), piece.day, profile)
                ledger.coverage[key] = (
                    ledger.coverage.get(key, 0.0) + (piece.end - piece.start).total_seconds()
                )
        # deferred GPUs: remember where their cost went, to book their energy later
        for i, u in enumerate(units):
            if not u.deferred:
                continue
            rows = [(key_list[k][2], key_list[k][3], w, False) for k, w in result.rows_of(i)]
            rest = float(result.gpu_remainder[i])
            if rest > 0:
                rows += [(ns, m, w * rest, True) for ns, m, w in last_weights.get(u.profile, [])]
            deferral = _Deferral(self.t1 - t0, u.usd_per_kwh, u.shard, u.profile, rows)
            ledger._gpus.deferred.setdefault(u.gpu_id, []).append(deferral)
            self.changed.add(u.shard)


def _token_parts(
    pieces: tuple[Piece, ...],
    key_tokens: Mapping[int, list[int]],
    late_tokens: Mapping[tuple[int, float], list[int]],
    t1: float,
) -> dict[int, list[list[int] | None]]:
    """key → per piece of the interval, the whole tokens booked in it (``None``: none).

    ``key_tokens`` were served over the whole interval and are split over all its pieces;
    ``late_tokens`` (by key and pod start) only over ``[start, t1]`` (SPEC §4: a pod first seen
    that started after the node's last sample), so a pod that started after midnight books
    nothing on the day before."""
    out: dict[int, list[list[int] | None]] = {}
    for k, tokens in key_tokens.items():
        splits = [split_whole(total, pieces) for total in tokens]
        out[k] = [[split[n] for split in splits] for n in range(len(pieces))]
    if not late_tokens:
        return out
    index = {piece.day: n for n, piece in enumerate(pieces)}
    for (k, start), tokens in late_tokens.items():
        # a start at or after t1 (clocks disagree by a little): everything in the last piece
        span = split_at_midnight(_dt(start), _dt(t1)) or pieces[-1:]
        by_piece = out[k]
        for total_index, total in enumerate(tokens):
            for piece, part in zip(span, split_whole(total, span), strict=True):
                row = by_piece[index[piece.day]]
                if row is None:
                    row = by_piece[index[piece.day]] = [0] * len(TOKENS)
                row[total_index] += part
    return out
