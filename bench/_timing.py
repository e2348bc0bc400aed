"""Shared plumbing of the benchmarks: CPU timing, logging to stderr, the one-line JSON result.

Timings are the CPU time of the measuring thread (``time.thread_time``), not wall time: the
machines these run on are shared, and another process's load must not count against either side
of a ratio. Each side is the best of several rounds, both measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_bench(*args: str) -> dict[str, Any]:
    """``python -m bench ARGS`` in a process of its own; its JSON result (the last stdout line).
    A failure raises with the end of its stderr."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench {' '.join(args)} failed: {proc.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> int:
    """Print the result as the last line of stdout (one JSON object); return the exit status."""
    print(json.dumps(result, sort_keys=False), flush=True)
    return 0


def parser(doc: str | None) -> argparse.ArgumentParser:
    text = (doc or "").strip()
    p = argparse.ArgumentParser(
        description=text.splitlines()[0] if text else None,
        epilog="The result is one JSON object on the last line of stdout; progress goes to stderr.",
    )
    p.add_argument("--small", action="store_true", help="a quick run for CI (timings meaningless)")
    return p


def best_cpu_seconds(fn: Callable[[], object], *, rounds: int, min_seconds: float = 0.02) -> float:
    """Best CPU time of one call of ``fn`` over ``rounds`` rounds (each loops to ≥ min_seconds)."""
    loops = 1
    while True:
        start = time.thread_time()
        for _ in range(loops):
            fn()
        if time.thread_time() - start >= min_seconds or loops >= 1 << 20:
            break
        loops *= 2
    best = float("inf")
    for _ in range(rounds):
        start = time.thread_time()
        for _ in range(loops):
            fn()
        best = min(best, (time.thread_time() - start) / loops)
    return best


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        model = platform.processor()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    """Resident set size now, from /proc (falls back to the peak)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except OSError:
        return peak_rss_mb()
    return pages * resource.getpagesize() / (1024.0 * 1024.0)


def pin_allocator() -> bool:
    """Fix glibc's allocator thresholds for the rest of the process (Linux/glibc only).

    By default glibc moves its mmap and trim thresholds as large blocks come and go, so whether
    a numpy temporary costs fresh pages (a page fault per 4 KiB, several µs each in a virtual
    machine) depends on what ran before: a copy measured after one workload can be ten times
    slower than after another. With fixed thresholds and no trimming, freed memory is reused
    and both sides of a ratio are measured on the same footing. Returns whether it applied.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    ok &= libc.mallopt(m_trim_threshold, 1 << 30)
    return bool(ok)


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def last_level_cache_bytes() -> int:
    """The largest CPU cache (sysfs), or 32 MiB when it cannot be read."""
    sizes = []
    for index in range(8):
        path = f"/sys/devices/system/cpu/cpu0/cache/index{index}/size"
        try:
            with open(path, encoding="ascii") as f:
                text = f.read().strip()
        except OSError:
            continue
        scale = {"K": 1024, "M": 1024 * 1024}.get(text[-1:], 1)
        digits = text[:-1] if text[-1:] in ("K", "M") else text
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes, default=32 * 1024 * 1024)
