"""From DCGM exporter scrapes to the per-node inputs of the power resolution (SPEC §2.1, §3.2).

Glue between :mod:`scraping`, :mod:`dcgm` and :func:`infercost.engine.costmodel.resolve_power`:
for every node it decides what its exporters did (answered, failed with which error, none found)
and which GPUs it reported, deduplicated by UUID. Pure: it takes the discovery and the results
(pages already read by :func:`dcgm_reader` in the scrape workers, or bodies it reads).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

import attrs

from infercost.collect.dcgm import DcgmPage, GpuReading, assign_nodes, dedupe_gpus, read_dcgm
from infercost.collect.discovery import ExporterDiscovery, ExporterTarget
from infercost.collect.errors import ScrapeError
from infercost.collect.scraping import ScrapeResult, ScrapeTarget
from infercost.engine.costmodel import (
    ExporterStatus,
    GpuPower,
    combine_exporter_statuses,
)


@attrs.frozen
class DcgmCollection:
    """What the DCGM exporters said in one sampling cycle."""

    statuses: Mapping[str, ExporterStatus]
    """node → combined status of its exporters (nodes without any are absent)."""
    gpus: Mapping[str, tuple[GpuReading, ...]]
    """node → its GPUs, one reading per UUID."""
    errors: tuple[tuple[str, ScrapeError], ...]
    """(target URL, error) of every exporter that failed, for logs and health metrics."""
    unplaced: tuple[GpuReading, ...]
    """Readings of ``--dcgm-url`` pages without a Hostname/hostname label."""
    url_failure: str | None = None
    """The errors of failed ``--dcgm-url`` targets, which may have been any node's exporter."""

    def power(self, nodes: Iterable[str] | None = None) -> dict[str, list[GpuPower]]:
        """node → measured GPUs (those with a power reading), the input of ``resolve_power``."""
        chosen = set(nodes) if nodes is not None else set(self.gpus)
        out: dict[str, list[GpuPower]] = {}
        for node in sorted(chosen):
            readings = [p for g in self.gpus.get(node, ()) if (p := g.power()) is not None]
            if readings:
                out[node] = readings
        return out

    def statuses_for(self, nodes: Iterable[str]) -> dict[str, ExporterStatus]:
        """The exporter status of each of ``nodes`` for ``resolve_power``: its own exporters',
        else a failed ``--dcgm-url`` target's, else absent (no exporter found)."""
        out = {}
        for node in nodes:
            status = self.statuses.get(node)
            if status is None and self.url_failure is not None:
                status = ExporterStatus.failed(self.url_failure)
            if status is not None:
                out[node] = status
        return out


def gather_dcgm(
    discovery: ExporterDiscovery,
    results: Sequence[ScrapeResult],
    url_targets: Sequence[ExporterTarget] = (),
    url_results: Sequence[ScrapeResult] = (),
) -> DcgmCollection:
    """Combine scrape results of discovered exporters (``results[i]`` belongs to
    ``discovery.targets[i]``) and of ``--dcgm-url`` targets into per-node facts, one reading
    per GPU UUID (:func:`~infercost.collect.dcgm.dedupe_gpus`; on a node the oldest exporter
    pod wins, ``--dcgm-url`` targets come last).

    A node's exporter failed when its page could not be fetched or read; an exporter pod that
    is not Running with an IP counts as failed too (the message names the pod). A ``--dcgm-url``
    target places its readings by their hostname label; when it fails, nodes without any other
    answer count it as their failure.
    """
    if len(results) != len(discovery.targets) or len(url_results) != len(url_targets):
        raise ValueError("one scrape result per exporter target is needed")
    per_node: dict[str, list[ExporterStatus]] = {}
    gpus: dict[str, list[GpuReading]] = {}
    errors: list[tuple[str, ScrapeError]] = []
    unplaced: list[GpuReading] = []

    def read(target: ExporterTarget, result: ScrapeResult) -> list[GpuReading] | None:
        error = result.error
        if error is None:
            if isinstance(result.page, DcgmPage):
                return list(result.page.gpus)
            try:
                return list(read_dcgm(result.body or b"").gpus)
            except ScrapeError as exc:
                error = exc
        errors.append((target.url, error))
        return None

    # Oldest exporter pod first on each node: its readings win a UUID two exporters report.
    ordered = sorted(zip(discovery.targets, results, strict=True), key=lambda tr: _age_order(tr[0]))
    for target, result in ordered:
        assert target.node is not None
        page = read(target, result)
        if page is None:
            error = errors[-1][1]
            per_node.setdefault(target.node, []).append(
                ExporterStatus.failed(f"{target.url} ({target.pod}): {error}")
            )
            continue
        per_node.setdefault(target.node, []).append(ExporterStatus.answered())
        gpus.setdefault(target.node, []).extend(page)

    for node, pods in discovery.not_running.items():
        names = ", ".join(str(p) for p in pods)
        per_node.setdefault(node, []).append(
            ExporterStatus.failed(f"exporter pod {names} is not running with an IP")
        )

    url_failures: list[str] = []
    for target, result in zip(url_targets, url_results, strict=True):
        page = read(target, result)
        if page is None:
            url_failures.append(f"{target.url}: {errors[-1][1]}")
            continue
        placed = assign_nodes(DcgmPage(tuple(page)), None)
        for node, readings in placed.by_node.items():
            per_node.setdefault(node, []).append(ExporterStatus.answered())
            gpus.setdefault(node, []).extend(readings)
        unplaced.extend(placed.unassigned)

    statuses = {node: combine_exporter_statuses(s) for node, s in per_node.items()}
    url_failure = "--dcgm-url " + "; ".join(url_failures) if url_failures else None
    return DcgmCollection(statuses, dedupe_gpus(gpus), tuple(errors), tuple(unplaced), url_failure)


def dcgm_reader(target: ScrapeTarget, body: bytes) -> DcgmPage:
    """The :data:`~infercost.collect.scraping.Reader` of exporter pages: the GPU readings."""
    return read_dcgm(body)


def _age_order(target: ExporterTarget) -> tuple[str, bool, datetime, str]:
    """Node, then creationTimestamp (unknown last), then pod, for the UUID precedence."""
    created = target.created or datetime.max.replace(tzinfo=UTC)
    return (target.node or "", target.created is None, created, str(target.pod))
