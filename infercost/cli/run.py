"""``infercost run``: the operator process.

Flags are those of SPEC §7 (see :data:`infercost.controllers.config.FLAGS`); each may also
come from ``INFERCOST_<NAME>``. A configuration or startup problem is printed as one line on
stderr (``infercost run: error: …``) with exit status 2 (configuration) or 1 (cluster), never a
traceback.
"""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from infercost.controllers.config import FLAGS

    for flag in FLAGS:
        shown = flag.default_help or flag.default
        default = f"default {shown}" if shown else "default none"
        help_text = f"{flag.help} [{flag.env}; {default}]"
        if flag.name == "leader-elect":
            parser.add_argument(
                "--leader-elect",
                dest="leader_elect",
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"elect a leader through a Lease [{flag.env}; default on]",
            )
        elif flag.repeatable:
            parser.add_argument(
                f"--{flag.name}",
                dest=flag.dest,
                action="append",
                default=None,
                metavar=flag.metavar,
                help=help_text,
            )
        else:
            parser.add_argument(
                f"--{flag.name}",
                dest=flag.dest,
                default=None,
                metavar=flag.metavar,
                help=help_text,
            )


def run(args: argparse.Namespace) -> int:
    from infercost.controllers.config import FLAGS, ConfigError, build_config

    values = {flag.dest: getattr(args, flag.dest, None) for flag in FLAGS}
    try:
        config = build_config(values, os.environ)
    except ConfigError as exc:
        print(f"infercost run: error: {exc}", file=sys.stderr)
        return 2
    from infercost.controllers.operator import run_operator

    return run_operator(config)
