"""How a sampling cycle's CPU and the operator's memory grow with the cluster (SPEC §9).

Runs :mod:`bench.cycle` at 250, 500, 1,000, 2,000 and 4,000 pods, each in a fresh process (so
each RSS is that size's alone), with the full-size cluster's proportions (four pods per node,
40 pods per CostProfile, four reports per profile, a namespace and a budget per 20 pods). Fits
``cpu = a · pods^exponent`` and ``rss = a · pods^rss_exponent`` by least squares on the
logarithms (target exponent ≤ 1.15: a cycle costs about the same per pod at every size).
RSS includes the interpreter and libraries, so its exponent is well below 1; the slope in MB
per 1,000 pods is reported too.

Run: ``python -m bench scaling [--small] [--sizes 250,500,...]``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from bench._timing import emit, log, machine, parser, run_bench

ROOT = Path(__file__).resolve().parents[1]
SIZES = (250, 500, 1000, 2000, 4000)
SMALL_SIZES = (20, 40, 80)


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of ``ys`` on ``xs``."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0, my
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my - slope * mx


def one_size(pods: int, cycles: int) -> dict[str, object]:
    return run_bench("cycle", "--pods", str(pods), "--cycles", str(cycles), "--frozen", "0")


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--sizes", help="comma-separated pod counts (default 250,...,4000)")
    p.add_argument("--cycles", type=int, default=2, help="measured cycles per size")
    args = p.parse_args(argv)
    sizes = (
        tuple(int(s) for s in args.sizes.split(","))
        if args.sizes
        else (SMALL_SIZES if args.small else SIZES)
    )
    rows = []
    for pods in sizes:
        started = time.monotonic()
        r = one_size(pods, args.cycles)
        log(
            f"{pods} pods: {r['cpu_seconds_per_cycle']} s CPU per cycle, {r['rss_mb']} MB RSS "
            f"({time.monotonic() - started:.0f} s)"
        )
        rows.append(
            {
                "pods": pods,
                "cpu_seconds_per_cycle": r["cpu_seconds_per_cycle"],
                "rss_mb": r["rss_mb"],
                "checkpoint_bytes_per_1000_pods": r["checkpoint_bytes_per_1000_pods"],
            }
        )
    logs = [math.log(float(str(r["pods"]))) for r in rows]
    cpu = [max(1e-6, float(str(r["cpu_seconds_per_cycle"]))) for r in rows]
    rss = [float(str(r["rss_mb"])) for r in rows]
    exponent, _ = fit(logs, [math.log(c) for c in cpu])
    rss_exponent, _ = fit(logs, [math.log(m) for m in rss])
    rss_slope, _ = fit([float(str(r["pods"])) for r in rows], rss)
    return emit(
        {
            "benchmark": "scaling",
            "small": args.small,
            "sizes": rows,
            "exponent": round(exponent, 3),
            "target_exponent": 1.15,
            "rss_exponent": round(rss_exponent, 3),
            "rss_mb_per_1000_pods": round(rss_slope * 1000, 1),
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    sys.exit(main())
