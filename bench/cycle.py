"""One sampling cycle of the whole operator on a simulated cluster (SPEC §9).

2,000 inference pods on 500 nodes (8 GPUs each, named by DCGM), 50 CostProfiles, 200
UsageReports and 100 TokenBudgets (see :mod:`bench._cluster`); the API emulator and the
simulated servers run in child processes, the operator in this one on a fake clock. After a
warm-up, each traffic cycle moves the clock and every counter one scrape interval; the CPU this
process spends until every controller is idle is one cycle's cost (target: ≤ 1/3 of the
30 s interval). Frozen cycles sample again at the same instant with no traffic: the operator
must write nothing (target 0). Checkpoint size is read from the ledger's ConfigMaps.

Run: ``python -m bench cycle [--small] [--pods N] [--cycles N]``.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections import Counter

from bench._cluster import INTERVAL_SECONDS, Cluster, Shape
from bench._timing import current_rss_mb, emit, log, machine, parser, peak_rss_mb

SMALL = Shape.scaled(40)


def run(shape: Shape, *, cycles: int, warmup: int, frozen: int) -> dict[str, object]:
    started = time.monotonic()
    with Cluster(shape) as cluster:
        cluster.start_operator()
        log(f"operator up after {time.monotonic() - started:.1f} s; {warmup} warm-up cycle(s)")
        for _ in range(warmup):
            cluster.cycle(traffic=True)
        traffic = []
        for i in range(cycles):
            result = cluster.cycle(traffic=True)
            log(
                f"traffic cycle {i + 1}: {result.cpu_seconds:.2f} s CPU, "
                f"{result.wall_seconds:.2f} s wall, writes {result.writes}"
            )
            traffic.append(result)
        still = []
        for i in range(frozen):
            result = cluster.cycle(traffic=False)
            log(f"frozen cycle {i + 1}: {result.cpu_seconds:.2f} s CPU, writes {result.writes}")
            still.append(result)
        checkpoint = cluster.checkpoint_bytes()
        gc.collect()
        rss = current_rss_mb()
        idle_rate = cluster.idle_rate
    writes: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for result in traffic:
        writes.update(result.writes)
        threads.update(result.by_thread)
    cpu = [r.cpu_seconds for r in traffic]
    per_cycle = statistics.median(cpu) if cpu else 0.0
    return {
        "pods": shape.pods,
        "nodes": shape.nodes,
        "profiles": shape.profiles,
        "reports": shape.reports,
        "budgets": shape.budgets,
        "cycles": len(traffic),
        "cpu_seconds_per_cycle": round(per_cycle, 3),
        "cpu_seconds_per_cycle_max": round(max(cpu, default=0.0), 3),
        "interval_seconds": INTERVAL_SECONDS,
        "cpu_share_of_interval": round(per_cycle / INTERVAL_SECONDS, 4),
        "target_cpu_share_of_interval": round(1 / 3, 4),
        "wall_seconds_per_cycle": round(statistics.median(r.wall_seconds for r in traffic), 3)
        if traffic
        else 0.0,
        "idle_cpu_rate_subtracted": round(idle_rate, 4),
        "cpu_seconds_per_cycle_by_thread": {
            kind: round(seconds / len(traffic), 3) for kind, seconds in threads.most_common()
        }
        if traffic
        else {},
        "rss_mb": round(rss, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "target_rss_mb": 300,
        "writes_per_cycle_frozen": max((r.total_writes for r in still), default=0),
        "frozen_cycles": len(still),
        "writes_per_cycle_traffic": {
            kind: round(n / len(traffic), 2) for kind, n in sorted(writes.items())
        }
        if traffic
        else {},
        "checkpoint_objects": checkpoint["objects"],
        "checkpoint_bytes": checkpoint["total"],
        "checkpoint_bytes_per_1000_pods": round(checkpoint["total"] / shape.pods * 1000),
        "checkpoint_largest_object_bytes": checkpoint["largest"],
    }


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--pods", type=int, help="inference pods (default 2,000; 40 with --small)")
    p.add_argument("--cycles", type=int, help="measured traffic cycles (default 4; 2 --small)")
    p.add_argument("--warmup", type=int, default=1, help="traffic cycles before measuring")
    p.add_argument("--frozen", type=int, default=2, help="cycles with a frozen clock")
    args = p.parse_args(argv)
    if args.pods:
        shape = Shape() if args.pods == Shape().pods else Shape.scaled(args.pods)
    else:
        shape = SMALL if args.small else Shape()
    cycles = args.cycles if args.cycles is not None else (2 if args.small else 4)
    result = run(shape, cycles=cycles, warmup=args.warmup, frozen=args.frozen)
    return emit({"benchmark": "cycle", "small": args.small, **result, "machine": machine()})


if __name__ == "__main__":
    sys.exit(main())
