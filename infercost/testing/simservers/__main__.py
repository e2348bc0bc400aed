"""Run a fleet of simulated inference servers and DCGM exporters in their own process.

    python -m infercost.testing.simservers --inference vllm:200 --inference llamacpp:40 \\
        --nodes 60 --gpus-per-node 8 --rate 40:12 --manifest fleet.json

Every server gets its own loopback address (127.N.x.y) on its backend's default port; all of
them share one event loop. Inference pods are spread round-robin over the nodes
(``sim-node-<i>``); each node gets one DCGM exporter whose GPUs are held by the pods placed on
it. The manifest (JSON) lists every endpoint with what an emulated Pod needs (namespace, name,
node, IP, port, path, backend, models, GPUs). ``simservers ready: <n> endpoints`` is printed
once everything listens; SIGTERM or SIGINT stops the fleet.
"""

from __future__ import annotations

import argparse
import functools
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infercost.testing.simservers.farm import ServerFarm
from infercost.testing.simservers.servers import (
    DEFAULT_PORTS,
    LoopbackPool,
    SimDcgmExporter,
    SimInferenceServer,
    bind,
)

MODELS = {
    "llamacpp": ["llama-3.2-3b"],
    "tgi": ["mistral-7b"],
}


def _inference_spec(text: str) -> tuple[str, int]:
    backend, _, count = text.partition(":")
    if backend not in DEFAULT_PORTS:
        raise argparse.ArgumentTypeError(
            f"unknown backend {backend!r}; expected one of {', '.join(DEFAULT_PORTS)}"
        )
    try:
        number = int(count or "1")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the count after ':' is not a number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the count must be at least 1")
    return backend, number


def _rate(text: str) -> tuple[float, float]:
    try:
        inputs, outputs = (float(p) for p in text.split(":", 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected INPUT:OUTPUT tokens per second, e.g. 40:12"
        ) from None
    return inputs, outputs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m infercost.testing.simservers", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--inference",
        type=_inference_spec,
        action="append",
        default=[],
        metavar="BACKEND:COUNT",
        help="simulated inference servers (repeatable)",
    )
    parser.add_argument("--nodes", type=int, default=1, help="nodes to spread pods over")
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--no-dcgm", action="store_true", help="no DCGM exporters")
    parser.add_argument(
        "--rate",
        type=_rate,
        default=(0.0, 0.0),
        metavar="IN:OUT",
        help="tokens per second served by each inference server",
    )
    parser.add_argument("--namespaces", type=int, default=4, help="namespaces to spread pods over")
    parser.add_argument(
        "--second-octet",
        type=int,
        default=None,
        help="use addresses 127.N.x.y (default: picked per process)",
    )
    parser.add_argument("--manifest", type=Path, help="write the endpoint list here (JSON)")
    return parser  # fmt: skip


def _start(pool: LoopbackPool, create: Callable[[str], Any]) -> Any:
    """Create a simulated server on a free loopback address and start it."""
    made: list[Any] = []

    def make(ip: str) -> Any:
        made.append(create(ip))
        return made[-1].http

    bind(pool, make)
    return made[-1]


def start_fleet(args: argparse.Namespace, farm: ServerFarm) -> list[dict[str, Any]]:
    if args.nodes < 1 or args.gpus_per_node < 0 or args.namespaces < 1:
        raise SystemExit("--nodes and --namespaces must be at least 1, --gpus-per-node >= 0")
    pool = LoopbackPool(args.second_octet)
    nodes = [f"sim-node-{i}" for i in range(args.nodes)]
    manifest: list[dict[str, Any]] = []
    placed: dict[str, list[dict[str, Any]]] = {node: [] for node in nodes}
    index = 0
    for backend, count in args.inference:
        for _ in range(count):
            node = nodes[index % len(nodes)]
            models = MODELS.get(backend, [f"sim/{backend}-model"])
            server = _start(
                pool,
                functools.partial(
                    SimInferenceServer, backend, models=models, http_factory=farm.add
                ),
            )
            server.set_rate(*args.rate)
            entry = {
                "kind": "inference",
                "backend": "vllm" if backend == "vllm-v0" else backend,
                "namespace": f"sim-team-{index % args.namespaces}",
                "name": f"sim-{backend}-{index}",
                "node": node,
                "ip": server.host,
                "port": server.port,
                "path": server.http.paths[0],
                "models": models,
                "gpus": [],
            }
            placed[node].append(entry)
            manifest.append(entry)
            index += 1
    if not args.no_dcgm and args.gpus_per_node:
        for node in nodes:
            exporter = _start(
                pool,
                functools.partial(
                    SimDcgmExporter, gpus=args.gpus_per_node, node=node, http_factory=farm.add
                ),
            )
            pods = placed[node]
            for gpu in exporter.gpus:
                if pods:
                    pod = pods[gpu.index % len(pods)]
                    exporter.assign(gpu.index, pod["namespace"], pod["name"])
                    exporter.set_power(gpu.index, 450.0)
                    pod["gpus"].append(gpu.uuid)
                else:
                    exporter.set_power(gpu.index, 65.0)
            manifest.append(
                {
                    "kind": "dcgm",
                    "namespace": "gpu-operator",
                    "name": f"nvidia-dcgm-exporter-{node}",
                    "node": node,
                    "ip": exporter.host,
                    "port": exporter.port,
                    "path": "/metrics",
                    "gpus": [g.uuid for g in exporter.gpus],
                }
            )
    return manifest


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with ServerFarm() as farm:
        manifest = start_fleet(args, farm)
        text = json.dumps(manifest, indent=1)
        if args.manifest:
            args.manifest.write_text(text)
        print(f"simservers ready: {len(manifest)} endpoints", flush=True)
        while not stop.wait(0.5):
            time.sleep(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
