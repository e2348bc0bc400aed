"""What a CostProfile's status says about the engine's facts: condition states and messages.

The engine (:mod:`infercost.engine.costmodel`) computes power and amortization as numbers and
enums; this module turns them into the SPEC §2.1 vocabulary — the four ``DCGMReachable``
states, ``powerSource`` and the sentences of condition messages, which name CRD fields and
flags a user can act on. Pure functions; no I/O.

Messages contain no measured values or times (only counts and configured figures), so they
change only when the situation does: a changed message is written at once.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import attrs

from infercost.api import PowerSource
from infercost.engine.costmodel import (
    ExporterState,
    Fallback,
    NodePower,
    PoolAmortization,
    PowerResolution,
)

__all__ = [
    "DCGMReason",
    "DcgmReachable",
    "dcgm_reachable",
    "format_gpus",
    "format_names",
    "format_watts",
    "gpu_count_message",
    "power_source",
]


class DCGMReason(enum.Enum):
    """The reasons of ``DCGMReachable`` (SPEC §2.1 table)."""

    HEALTHY = "DCGMHealthy"
    PARTIAL = "DCGMPartial"
    SCRAPE_FAILED = "DCGMScrapeFailed"
    NOT_FOUND = "DCGMNotFound"


_STATUS = {
    DCGMReason.HEALTHY: "True",
    DCGMReason.PARTIAL: "Unknown",
    DCGMReason.SCRAPE_FAILED: "False",
    DCGMReason.NOT_FOUND: "False",
}


@attrs.frozen
class DcgmReachable:
    """The ``DCGMReachable`` condition of a profile."""

    reason: DCGMReason
    message: str

    @property
    def status(self) -> str:
        """True, Unknown or False."""
        return _STATUS[self.reason]


def format_gpus(count: float) -> str:
    return str(int(count)) if float(count).is_integer() else f"{count:.2f}"


def format_watts(watts: float) -> str:
    return f"{watts:.0f} W" if watts >= 10 else f"{watts:.1f} W"


def format_names(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def dcgm_reachable(power: PowerResolution) -> DcgmReachable:
    """Exactly one of the four states, from what each owned node's exporters did."""
    if not power.nodes:
        return DcgmReachable(
            DCGMReason.NOT_FOUND,
            "no node matches the nodeSelector, so no GPU power can be measured",
        )
    problems = [_missing(n) for n in power.nodes if n.fallback_gpus > 0]
    if power.gpus_reporting and not problems:
        return DcgmReachable(
            DCGMReason.HEALTHY,
            f"all {format_gpus(power.matched_gpus)} GPUs on {len(power.nodes)} node(s) report "
            "power through DCGM",
        )
    if power.gpus_reporting:
        rest = (
            f"{format_watts(power.fallback_watts_per_gpu)} each (tdpWatts)"
            if power.fallback is Fallback.TDP
            # The measured mean moves with every reading; the message names it, not its value.
            else "the mean power of the measured GPUs "
            "(set spec.hardware.tdpWatts to use a fixed figure)"
        )
        return DcgmReachable(
            DCGMReason.PARTIAL,
            f"{power.gpus_reporting} of {format_gpus(power.matched_gpus)} GPUs report power "
            f"through DCGM; {'; '.join(problems)}; the other "
            f"{format_gpus(power.fallback_gpus)} count {rest}",
        )
    if not problems:
        problems = [f"node {n.node} holds no GPUs" for n in power.nodes]
    message = "no GPU power readings: " + "; ".join(problems)
    message += (
        f"; using tdpWatts {format_watts(power.fallback_watts_per_gpu)} per GPU"
        if power.fallback is Fallback.TDP
        else "; set spec.hardware.tdpWatts to estimate power (counting 0 W until then)"
    )
    reason = DCGMReason.SCRAPE_FAILED if power.exporter_failed else DCGMReason.NOT_FOUND
    return DcgmReachable(reason, message)


def _missing(node: NodePower) -> str:
    """Why GPUs of ``node`` have no reading."""
    if node.measured:
        return (
            f"node {node.node}: only {len(node.measured)} of {format_gpus(node.gpus)} GPUs "
            "have a reading (the exporter does not report the others)"
        )
    status = node.exporter
    if status is None or status.state is ExporterState.NOT_FOUND:
        return (
            f"node {node.node}: no DCGM exporter found on the node "
            "(check that dcgm-exporter runs there and matches --dcgm-selector)"
        )
    if status.state is ExporterState.FAILED:
        return f"node {node.node}: DCGM exporter failed: {status.error or 'unknown error'}"
    return f"node {node.node}: the DCGM exporter answered without power readings for this node"


def power_source(power: PowerResolution) -> PowerSource:
    """``powerSource``: DCGM when every GPU is measured, Partial when some are, else TDP when
    ``tdpWatts`` stands in, else None (0 W; also for a profile that owns no node)."""
    if power.gpus_reporting and power.fallback_gpus == 0:
        return PowerSource.DCGM
    if power.gpus_reporting:
        return PowerSource.PARTIAL
    if power.nodes and power.fallback is Fallback.TDP:
        return PowerSource.TDP
    return PowerSource.NONE


def gpu_count_message(pool: PoolAmortization, gpu_count: int) -> str | None:
    """Set when the owned nodes hold more (or fewer) GPUs than ``gpuCount``."""
    if not pool.nodes:
        return None
    if pool.excess_gpus > 0:
        return (
            f"the nodeSelector matches {format_gpus(pool.matched_gpus)} GPUs but gpuCount is "
            f"{gpu_count}; the amortization is spread over all "
            f"{format_gpus(pool.matched_gpus)}"
        )
    if pool.matched_gpus < gpu_count:
        return (
            f"the nodeSelector matches {format_gpus(pool.matched_gpus)} of {gpu_count} "
            "GPUs; the rest is booked as pool idle"
        )
    return None
