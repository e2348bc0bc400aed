"""Entry point of the ``infercost`` command.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``. Those modules keep heavy imports inside ``run`` so that
``infercost validate`` in a GitOps pipeline does not pay for the operator's imports.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import infercost

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("infercost.cli.validate", "check CostProfile/UsageReport/TokenBudget manifests"),
    "run": ("infercost.cli.run", "run the operator"),
    "export": ("infercost.cli.export", "write the ledger's costs for finance (FOCUS 1.2 CSV)"),
    "version": ("", "print the version"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infercost",
        description="Cost per token, per model and per namespace for LLM inference on Kubernetes.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if module_name:
            importlib.import_module(module_name).add_arguments(cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "version":
        print(f"infercost {infercost.__version__}")
        return 0
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    return int(module.run(args))


if __name__ == "__main__":
    sys.exit(main())
