"""What the operator keeps per cached pod (SPEC §9: ≤ 2 KB), and the emulator's list/watch speed.

Each size runs in a process of its own (``python -m bench memory --child PODS``): the
simulated cluster of :mod:`bench._cluster` with a fixed set of CostProfiles, reports, budgets
and namespaces, so that only pods (four to a node) grow. ``tracemalloc`` starts just before the
operator does; after two booked cycles, what is still allocated is everything the operator
keeps: the informer caches, the sampler's and the ledger's state, the controllers' and
collectors' state. ``bytes_per_pod`` is the slope between two sizes, so fixed costs cancel; the
slope is also broken down by component: ``ledger`` for what was allocated while booking,
else the outermost ``infercost`` module on the allocation's recorded stack, i.e. the thread
that made it (``kube/informer.py``: the caches; ``collect/scraping.py``: the scrape workers;
``controllers/sampling.py``: the sampler and the sample it keeps).
``pod_cache_bytes_per_cached_pod`` is the informers' part per pod in the cache (inference pods
and exporter pods).

The emulator part times a LIST of every pod and the ADDED events a watch receives while pods
are created, through the real ``kubernetes`` client configuration and ``RestClient``.

Run: ``python -m bench memory [--small]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench._cluster import Cluster, Emulator, Shape, _inference_pod, _plan
from bench._timing import current_rss_mb, emit, log, machine, parser, run_bench
from infercost.kube.rest import PODS, RestClient
from infercost.testing.scenario import NAMESPACES

ROOT = Path(__file__).resolve().parents[1]
SIZES = (500, 2000)
SMALL_SIZES = (20, 40)
INFORMERS = "infercost/kube/informer.py"
"""What the informer threads allocated and still hold: the caches."""
LEDGER = ("infercost/engine/ledger.py", "infercost/controllers/ledger.py")


def child(pods: int, small: bool) -> dict[str, object]:
    if small:
        shape = Shape(pods=pods, profiles=2, reports=8, budgets=4, namespaces=4)
    else:
        shape = Shape(pods=pods, profiles=10, reports=40, budgets=20, namespaces=20)
    with Cluster(shape) as cluster:
        gc.collect()
        rss_before = current_rss_mb()
        tracemalloc.start(8)
        cluster.start_operator(measure_idle=False)
        for _ in range(2):
            cluster.cycle(traffic=True)
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_after = current_rss_mb()
    by_module: Counter[str] = Counter()
    for stat in snapshot.statistics("traceback"):
        by_module[_component(stat.traceback)] += stat.size
    return {
        "pods": pods,
        "cached_pods": pods + shape.nodes,  # every node also runs a DCGM exporter pod
        "traced_bytes": current,
        "rss_growth_mb": round(rss_after - rss_before, 2),
        "by_module": dict(by_module),
    }


def _component(traceback: tracemalloc.Traceback) -> str:
    """Who keeps an allocation: the ledger when it was made while booking, else the outermost
    ``infercost`` module among the recorded frames (the thread that made it)."""
    modules = []
    for frame in traceback:  # oldest first
        name = frame.filename.replace(os.sep, "/")
        if "/infercost/" in name and "/infercost/testing/" not in name:
            modules.append("infercost/" + name.rsplit("/infercost/", 1)[1])
    if any(m in LEDGER for m in modules):
        return "ledger"
    return modules[0] if modules else "(outside infercost)"


def run_child(pods: int, small: bool) -> dict[str, object]:
    return run_bench("memory", "--child", str(pods), *(["--small"] if small else []))


def emulator_throughput(pods: int, watched: int) -> dict[str, float]:
    """LIST objects/s with ``pods`` pods stored; ADDED events/s while ``watched`` more are made."""
    with tempfile.TemporaryDirectory(prefix="infercost-bench-") as tmp:
        emulator = Emulator(Path(tmp))
        try:
            rest: RestClient = emulator.rest
            _, plans = _plan(Shape(pods=pods + watched, namespaces=20))
            for ns in sorted({p.namespace for p in plans}):
                rest.create(
                    NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                )
            bodies = [
                _inference_pod(p, f"10.1.{i // 250}.{i % 250 + 1}") for i, p in enumerate(plans)
            ]
            started = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda b: rest.create(PODS, b, b["metadata"]["namespace"]), bodies[:pods]
                    )
                )
            create_s = time.monotonic() - started
            started = time.monotonic()
            listed = rest.list(PODS)
            list_s = time.monotonic() - started
            size = len(json.dumps(listed))
            version = listed["metadata"]["resourceVersion"]
            received = threading.Event()
            count = [0]

            def watch() -> None:
                stream = rest.watch(
                    PODS.path(None),
                    query={
                        "watch": "true",
                        "resourceVersion": version,
                        "allowWatchBookmarks": "false",
                    },
                    timeout=(5.0, 120.0),
                )
                try:
                    for event in stream:
                        if event.get("type") == "ADDED":
                            count[0] += 1
                            if count[0] >= watched:
                                received.set()
                                return
                finally:
                    stream.close()

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            started = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda b: rest.create(PODS, b, b["metadata"]["namespace"]), bodies[pods:]
                    )
                )
            received.wait(120)
            watch_s = time.monotonic() - started
            watcher.join(5)
        finally:
            emulator.close()
    return {
        "emulator_pods_listed": len(listed["items"]),
        "emulator_list_objects_per_s": round(len(listed["items"]) / list_s),
        "emulator_list_mb_per_s": round(size / 1e6 / list_s, 2),
        "emulator_create_per_s": round(pods / create_s),
        "emulator_watch_events_per_s": round(count[0] / watch_s),
        "emulator_watch_events": count[0],
    }


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.small)), flush=True)
        return 0
    sizes = SMALL_SIZES if args.small else SIZES
    rows = []
    for pods in sizes:
        started = time.monotonic()
        rows.append(run_child(pods, args.small))
        log(
            f"{pods} pods: {int(str(rows[-1]['traced_bytes'])) / 1e6:.1f} MB traced "
            f"({time.monotonic() - started:.0f} s)"
        )
    small, large = rows[0], rows[-1]
    span = int(str(large["pods"])) - int(str(small["pods"]))
    per_pod = (int(str(large["traced_bytes"])) - int(str(small["traced_bytes"]))) / span
    modules_small = dict(small["by_module"])  # type: ignore[call-overload]
    modules_large = dict(large["by_module"])  # type: ignore[call-overload]
    breakdown = {
        name: round((modules_large.get(name, 0) - modules_small.get(name, 0)) / span)
        for name in set(modules_small) | set(modules_large)
    }
    top = dict(sorted(breakdown.items(), key=lambda kv: -kv[1])[:8])
    cached_span = int(str(large["cached_pods"])) - int(str(small["cached_pods"]))
    informer_bytes = modules_large.get(INFORMERS, 0) - modules_small.get(INFORMERS, 0)
    rss_per_pod = (
        (float(str(large["rss_growth_mb"])) - float(str(small["rss_growth_mb"]))) * 1e6 / span
    )
    log(f"{per_pod:.0f} bytes per pod; measuring the emulator")
    throughput = emulator_throughput(*((200, 100) if args.small else (2000, 1000)))
    return emit(
        {
            "benchmark": "memory",
            "small": args.small,
            "sizes": [int(str(r["pods"])) for r in rows],
            "bytes_per_pod": round(per_pod),
            # the same total over every pod the cache holds (exporter pods too)
            "bytes_per_cached_pod": round(per_pod * span / cached_span),
            "target_bytes_per_pod": 2048,
            "rss_bytes_per_pod": round(rss_per_pod),
            "rss_growth_mb_by_size": {str(r["pods"]): r["rss_growth_mb"] for r in rows},
            "bytes_per_pod_by_component": top,
            "pod_cache_bytes_per_cached_pod": round(informer_bytes / cached_span),
            **throughput,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    sys.exit(main())
