"""GPU power, energy and holders from dcgm-exporter pages (SPEC §3.2).

One reading per physical GPU, deduplicated by ``UUID`` (``uuid`` with the exporter's old label
names). MIG: dcgm-exporter repeats the device-level fields (power, total energy) on one row per
GPU instance (``GPU_I_ID``), with that instance's pod; power and energy belong to the physical
GPU, so the first row's values are kept once and every instance's holder is listed. A GPU row
without a UUID is keyed by its host and index.

Holders come from the ``pod``/``namespace`` labels (``exported_pod``/``exported_namespace``
when the page passed through a Prometheus that renamed them; those win over the plain ones,
which then name the exporter itself). Empty strings mean no pod holds the GPU.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import attrs

from infercost.api.sharing import SharingTable
from infercost.collect.errors import MissingMetricsError
from infercost.collect.scanning import MetricsScanner, Sample, check_text, serves_prefix
from infercost.engine.costmodel import GpuPower

POWER = "DCGM_FI_DEV_POWER_USAGE"
ENERGY = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
_SCANNER = MetricsScanner([POWER, ENERGY])


@attrs.frozen
class GpuHolder:
    namespace: str
    pod: str
    mig_instance: str | None = None
    """``GPU_I_ID`` of the MIG instance the pod holds; ``None`` for a whole GPU."""
    mig_profile: str | None = None
    """``GPU_I_PROFILE`` of that instance (``3g.40gb``)."""


@attrs.frozen
class GpuReading:
    """One physical GPU as its exporter reported it."""

    uuid: str
    gpu: str
    model_name: str | None
    hostname: str | None
    power_watts: float | None
    energy_mj: float | None
    holders: tuple[GpuHolder, ...]
    pod_mapping: bool
    """Whether the exporter reports holders at all (Kubernetes mapping on)."""
    mig: bool = False

    def power(self) -> GpuPower | None:
        """The engine's view of this GPU when it has a usable power reading."""
        if self.power_watts is None:
            return None
        return GpuPower(self.uuid, self.gpu, self.power_watts)


@attrs.frozen
class DcgmPage:
    gpus: tuple[GpuReading, ...]

    def by_hostname(self) -> dict[str | None, tuple[GpuReading, ...]]:
        out: dict[str | None, list[GpuReading]] = {}
        for gpu in self.gpus:
            out.setdefault(gpu.hostname, []).append(gpu)
        return {host: tuple(gs) for host, gs in out.items()}


def _usable(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) or value < 0 else value


# GPU ids and indexes and GPU models, repeated by every cycle's pages and kept between cycles:
# what is kept holds the first cycle's strings
_one = SharingTable(1 << 16).one


def _key(sample: Sample) -> str:
    """The GPU's id, interned: what keeps a GPU between cycles (the ledger's GPU state, the
    power series) then holds the one string every cycle's page reads, not a copy per cycle."""
    uuid = sample.label("UUID") or sample.label("uuid")
    if uuid:
        return _one(uuid)
    host = sample.label("Hostname") or sample.label("hostname") or ""
    return _one(f"{host}/gpu{sample.label('gpu', '?')}")


def _holder(sample: Sample) -> tuple[bool, GpuHolder | None]:
    """(mapping present, holder or None when the row says the GPU is unheld)."""
    if sample.label("exported_pod") is not None:
        pod, namespace = sample.label("exported_pod"), sample.label("exported_namespace")
    elif sample.label("pod") is not None:
        pod, namespace = sample.label("pod"), sample.label("namespace")
    else:
        return False, None
    if not pod:
        return True, None
    # not in the table of shared names: nothing keeps a holder past the cycle that read it
    # (the ledger keeps the cached pod it names), so a table entry would be its only keeper
    return True, GpuHolder(
        namespace or "",
        pod,
        sample.label("GPU_I_ID") or None,
        sample.label("GPU_I_PROFILE") or None,
    )


@attrs.define
class _Row:
    gpu: str
    model: str | None
    host: str | None
    power: float | None = None
    energy: float | None = None
    seen: set[str] = attrs.Factory(set)
    holders: list[GpuHolder] = attrs.Factory(list)
    mapping: bool = False
    mig: bool = False

    def add(self, metric: str, sample: Sample) -> None:
        if metric not in self.seen:  # MIG rows repeat the device value: keep the first
            self.seen.add(metric)
            if metric == POWER:
                self.power = _usable(sample.value)
            else:
                self.energy = _usable(sample.value)
        mapped, holder = _holder(sample)
        self.mapping = self.mapping or mapped
        self.mig = self.mig or sample.label("GPU_I_ID") is not None
        if holder is not None and holder not in self.holders:
            self.holders.append(holder)

    def reading(self, uuid: str) -> GpuReading:
        return GpuReading(
            uuid=uuid,
            gpu=self.gpu,
            model_name=self.model,
            hostname=self.host,
            power_watts=self.power,
            energy_mj=self.energy,
            holders=tuple(self.holders),
            pod_mapping=self.mapping,
            mig=self.mig,
        )


def read_dcgm(body: bytes) -> DcgmPage:
    """Read power and energy per GPU from a dcgm-exporter page.

    Raises ``not_prometheus_text`` for bodies that are not text, and ``missing_metrics`` for a
    page that is not a dcgm-exporter's. A valid page without GPU rows has no readings.
    """
    text = check_text(body)
    found = _SCANNER.scan(text, checked=True)
    if not found[POWER] and not found[ENERGY]:
        if _declares(text, POWER) or _declares(text, ENERGY):
            # The exporter runs and declares the families, but reports no GPU (no driver
            # loaded, every GPU filtered out): a page without readings, not an error.
            return DcgmPage(())
        if text.strip() and not serves_prefix(text, ["DCGM_"]):
            raise MissingMetricsError(
                f"the page is not a dcgm-exporter page: no {POWER} or {ENERGY} and no DCGM_ series"
            )
        if serves_prefix(text, ["DCGM_"]):
            raise MissingMetricsError(
                f"the dcgm-exporter page has neither {POWER} nor {ENERGY}: "
                "enable them in the exporter's collectors CSV"
            )
        return DcgmPage(())

    rows: dict[str, _Row] = {}
    for metric in (POWER, ENERGY):
        for sample in found[metric]:
            key = _key(sample)
            entry = rows.get(key)
            if entry is None:
                model = sample.label("modelName")
                host = sample.label("Hostname") or sample.label("hostname")
                entry = rows[key] = _Row(
                    gpu=_one(sample.label("gpu", "") or ""),
                    model=_one(model) if model else None,
                    host=host or None,
                )
            entry.add(metric, sample)
    gpus = [entry.reading(key) for key, entry in rows.items()]
    return DcgmPage(tuple(gpus))


def _declares(text: bytes, family: str) -> bool:
    """Whether the page has a ``# TYPE`` or ``# HELP`` line for ``family``."""
    name = family.encode("ascii")
    return any(
        text.startswith(head + name) or b"\n" + head + name in text
        for head in (b"# TYPE ", b"# HELP ")
    )


def dedupe_gpus(
    by_node: Mapping[str, Sequence[GpuReading]],
) -> dict[str, tuple[GpuReading, ...]]:
    """One reading per GPU UUID (two exporters on a node, a ``--dcgm-url`` target that also
    runs as a pod): the first one wins, nodes in name order, each node's readings in the order
    given (its exporters oldest first, SPEC §4). The only place readings are deduplicated:
    everything downstream relies on it."""
    seen: set[str] = set()
    out: dict[str, tuple[GpuReading, ...]] = {}
    for node in sorted(by_node):
        kept = []
        for reading in by_node[node]:
            if reading.uuid not in seen:
                seen.add(reading.uuid)
                kept.append(reading)
        out[node] = tuple(kept)
    return out


@attrs.frozen
class NodeAssignment:
    by_node: Mapping[str, tuple[GpuReading, ...]]
    unassigned: tuple[GpuReading, ...]
    """Readings of a ``--dcgm-url`` page without a Hostname/hostname label."""


def assign_nodes(page: DcgmPage, exporter_node: str | None) -> NodeAssignment:
    """The node of each reading: the exporter pod's ``spec.nodeName`` for discovered
    exporters; the ``Hostname``/``hostname`` label only for ``--dcgm-url`` targets
    (``exporter_node=None``)."""
    if exporter_node is not None:
        return NodeAssignment({exporter_node: page.gpus} if page.gpus else {}, ())
    by_node: dict[str, list[GpuReading]] = {}
    unassigned = []
    for gpu in page.gpus:
        if gpu.hostname:
            by_node.setdefault(gpu.hostname, []).append(gpu)
        else:
            unassigned.append(gpu)
    return NodeAssignment({n: tuple(g) for n, g in by_node.items()}, tuple(unassigned))
