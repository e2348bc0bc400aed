"""Every benchmark runs at ``--small`` and ends with its one-line JSON result.

Only the shape of each result is checked here, and what does not depend on timing (a frozen
cycle writes nothing, the sizes asked for are the sizes measured): timings belong to the
benchmarks themselves and to docs/performance.md, never to an assertion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

KEYS = {
    "scanner": {"speedup", "mb_per_s", "regex_finditer_mb_per_s", "page_bytes", "llamacpp"},
    "attribution": {"pods", "ratio_to_copy", "ratio_to_copy_warm", "ratio_python_loop"},
    "cycle": {
        "pods",
        "cpu_seconds_per_cycle",
        "interval_seconds",
        "rss_mb",
        "writes_per_cycle_frozen",
        "writes_per_cycle_traffic",
        "checkpoint_bytes_per_1000_pods",
    },
    "scaling": {"sizes", "exponent", "rss_exponent"},
    "memory": {
        "bytes_per_pod",
        "bytes_per_cached_pod",
        "emulator_list_objects_per_s",
        "emulator_watch_events_per_s",
    },
}


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m bench ARGS`` from the repository root (``bench`` is not in the wheel)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def run_small(name: str) -> dict[str, Any]:
    proc = bench(name, "--small")
    assert proc.returncode == 0, f"bench {name} --small failed:\n{proc.stderr[-3000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"bench {name} --small printed nothing"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def test_every_benchmark_is_listed_and_checked_here() -> None:
    proc = bench("--help")
    assert proc.returncode == 0, proc.stderr
    listed = next(line for line in proc.stdout.splitlines() if line.startswith("benchmarks:"))
    assert {name.strip() for name in listed.split(":", 1)[1].split(",")} == set(KEYS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(KEYS))
def test_small_run_ends_with_its_json_result(name: str) -> None:
    result = run_small(name)
    assert result["benchmark"] == name
    assert result["small"] is True
    missing = KEYS[name] - set(result)
    assert not missing, f"bench {name} result lacks {sorted(missing)}"
    if name == "cycle":
        # SPEC §9: with a frozen clock and no traffic the operator writes nothing
        assert result["writes_per_cycle_frozen"] == 0
        assert result["writes_per_cycle_traffic"].get("checkpoint", 0) > 0
    if name == "scaling":
        assert [row["pods"] for row in result["sizes"]] == [20, 40, 80]
    if name == "attribution":
        assert result["pods"] > 1000
