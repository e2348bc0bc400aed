"""``python -m infercost.testing.kubesim``: run the emulator standalone until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .emulator import KubeSim


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m infercost.testing.kubesim",
        description="Serve an emulated Kubernetes API on a loopback address.",
    )
    parser.add_argument("--port", type=int, required=True, help="TCP port (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--crds",
        action="append",
        default=[],
        metavar="DIR",
        help="install every CustomResourceDefinition in DIR (or file) at start; repeatable",
    )
    parser.add_argument(
        "--kubeconfig", metavar="OUT", help="write a kubeconfig for the server here"
    )
    parser.add_argument(
        "--watch-history",
        type=int,
        default=4096,
        metavar="N",
        help="events retained per resource before an older watch gets 410 Gone (default 4096)",
    )
    parser.add_argument(
        "--bookmark-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between watch bookmarks (default 5)",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NAME",
        help="create this namespace at start (besides default and the kube-* ones); repeatable",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f"kubesim: --port must be between 0 and 65535, got {args.port}", file=sys.stderr)
        return 2
    if args.watch_history < 1:
        print(
            f"kubesim: --watch-history must be at least 1, got {args.watch_history}",
            file=sys.stderr,
        )
        return 2
    if args.bookmark_interval <= 0:
        print("kubesim: --bookmark-interval must be positive", file=sys.stderr)
        return 2
    try:
        sim = KubeSim(
            crd_dirs=args.crds,
            host=args.host,
            port=args.port,
            watch_history=args.watch_history,
            kubeconfig_path=args.kubeconfig,
            bookmark_interval=args.bookmark_interval,
            namespaces=args.namespace,
        )
        sim.start()
    except (OSError, ValueError) as exc:
        print(f"kubesim: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"kubesim ready on {sim.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
