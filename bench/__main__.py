"""Run benchmarks: ``python -m bench`` runs them all, ``python -m bench NAME [ARGS...]`` one.

Each benchmark is a module ``bench.<name>`` with ``main(argv) -> int``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def available() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")
    )


def main(argv: list[str]) -> int:
    names = available()
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("benchmarks:", ", ".join(names))
        return 0
    if argv:
        name, rest = argv[0], argv[1:]
        if name not in names:
            print(
                f"bench: unknown benchmark {name!r}; available: {', '.join(names)}", file=sys.stderr
            )
            return 2
        return int(importlib.import_module(f"bench.{name}").main(rest))
    status = 0
    for name in names:
        print(f"== {name}", flush=True)
        status |= int(importlib.import_module(f"bench.{name}").main([]))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
