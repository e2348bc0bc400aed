"""A UsageReport's figures (SPEC §2.2, §5) as sums of ledger lines.

Every figure is a sum over the lines of the report's period, CostProfile and namespaces: so
Σ byModel = Σ byNamespace = ``estimatedCostUSD``, and daily reports add up to weekly and
monthly ones. Pure: the caller picks the lines (:meth:`Ledger.lines_of`) and turns the result
into a status.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import attrs

from infercost.engine.ledger import (
    F_ACTIVE_S,
    F_AMORT,
    F_ELEC,
    F_EST_KWH,
    F_GPU_S,
    F_IDLE_AMORT,
    F_IDLE_ELEC,
    F_IDLE_KWH,
    F_KWH,
    NON_INFERENCE,
    T_CACHED,
    T_IN,
    T_OUT,
    T_UNCACHED,
    Line,
    LineKey,
)

__all__ = ["Figures", "GroupFigures", "per_million", "report_figures"]


def per_million(cost_usd: float, tokens: int) -> float | None:
    """``cost / (tokens / 1e6)``; ``None`` without tokens."""
    return cost_usd / (tokens / 1e6) if tokens > 0 else None


@attrs.frozen
class GroupFigures:
    """One (model, namespace) or one namespace."""

    model: str
    namespace: str
    input_tokens: int
    cached_input_tokens: int
    uncached_input_tokens: int
    output_tokens: int
    cost_usd: float
    non_idle_electricity_usd: float
    family: str | None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def cost_per_million_tokens(self) -> float | None:
        return per_million(self.cost_usd, self.tokens)


@attrs.frozen
class Figures:
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    uncached_input_tokens: int
    cost_usd: float
    amortization_usd: float
    electricity_usd: float
    energy_kwh: float
    idle_cost_usd: float
    marginal_cost_per_million_tokens: float | None
    gpu_efficiency_ratio: float | None
    by_model: tuple[GroupFigures, ...]
    by_namespace: tuple[GroupFigures, ...]

    @property
    def cost_per_million_tokens(self) -> float | None:
        return per_million(self.cost_usd, self.input_tokens + self.output_tokens)

    def share_percent(self, cost_usd: float) -> float | None:
        return cost_usd / self.cost_usd * 100.0 if self.cost_usd > 0 else None


@attrs.define
class _Acc:
    tokens: list[int] = attrs.Factory(lambda: [0, 0, 0, 0])
    cost: float = 0.0
    marginal_elec: float = 0.0
    family: str | None = None

    def add(self, line: Line) -> None:
        for i, t in enumerate(line.tokens):
            self.tokens[i] += t
        self.cost += line.cost_usd
        self.marginal_elec += line.values[F_ELEC] - line.values[F_IDLE_ELEC]
        if self.family is None:
            self.family = line.family

    def figures(self, model: str, namespace: str) -> GroupFigures:
        return GroupFigures(
            model=model,
            namespace=namespace,
            input_tokens=self.tokens[T_IN],
            cached_input_tokens=self.tokens[T_CACHED],
            uncached_input_tokens=self.tokens[T_UNCACHED],
            output_tokens=self.tokens[T_OUT],
            cost_usd=self.cost,
            non_idle_electricity_usd=self.marginal_elec,
            family=self.family,
        )


def report_figures(
    lines: Iterable[tuple[LineKey, Line]],
    profile: str,
    namespaces: Collection[str] = (),
) -> Figures:
    """The figures over ``lines`` of CostProfile ``profile`` (``namespace/name``), restricted to
    ``namespaces`` (empty: all, ``__unallocated__`` included)."""
    wanted = set(namespaces)
    total = _Acc()
    amort = elec = kwh = idle = 0.0
    active = gpu_seconds = 0.0
    marginal_elec = marginal_est_kwh = marginal_kwh = 0.0
    marginal_tokens = 0
    by_model: dict[tuple[str, str], _Acc] = {}
    by_ns: dict[str, _Acc] = {}
    for (_, _, line_profile, ns, model), line in lines:
        if line_profile != profile or (wanted and ns not in wanted):
            continue
        v = line.values
        total.add(line)
        amort += v[F_AMORT]
        elec += v[F_ELEC]
        kwh += v[F_KWH]
        idle += v[F_IDLE_AMORT] + v[F_IDLE_ELEC]
        if model != NON_INFERENCE:
            active += v[F_ACTIVE_S]
            gpu_seconds += v[F_GPU_S]
        tokens = line.tokens[T_IN] + line.tokens[T_OUT]
        if tokens > 0:
            marginal_tokens += tokens
            marginal_elec += v[F_ELEC] - v[F_IDLE_ELEC]
            marginal_kwh += v[F_KWH] - v[F_IDLE_KWH]
            marginal_est_kwh += v[F_EST_KWH]
        by_model.setdefault((model, ns), _Acc()).add(line)
        by_ns.setdefault(ns, _Acc()).add(line)
    # absent with no tokens, or when all of that energy is estimated (SPEC §5)
    all_estimated = marginal_kwh > 0 and marginal_est_kwh >= marginal_kwh * (1 - 1e-12)
    marginal = None
    if marginal_tokens > 0 and not all_estimated:
        marginal = marginal_elec / marginal_tokens * 1e6
    return Figures(
        input_tokens=total.tokens[T_IN],
        output_tokens=total.tokens[T_OUT],
        cached_input_tokens=total.tokens[T_CACHED],
        uncached_input_tokens=total.tokens[T_UNCACHED],
        cost_usd=total.cost,
        amortization_usd=amort,
        electricity_usd=elec,
        energy_kwh=kwh,
        idle_cost_usd=idle,
        marginal_cost_per_million_tokens=marginal,
        gpu_efficiency_ratio=active / gpu_seconds if gpu_seconds > 0 else None,
        by_model=tuple(a.figures(m, ns) for (m, ns), a in sorted(by_model.items())),
        by_namespace=tuple(a.figures("", ns) for ns, a in sorted(by_ns.items())),
    )
