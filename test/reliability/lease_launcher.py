"""``infercost run`` with shorter leader-election timings, for failover tests.

The Lease timings (15 s lease, 10 s renew deadline, 2 s retry) are fields of
:class:`~infercost.controllers.config.OperatorConfig`, not flags: a real deployment has no
reason to change them. A failover test that waited 15 s per takeover would spend most of its
time waiting, so this script builds the configuration exactly as ``infercost run`` does (same
flags, same environment variables) and only then shortens those three fields::

    python lease_launcher.py --lease-duration 4 --renew-deadline 3 --retry-period 0.5 -- \\
        --kubeconfig ... --scrape-interval 500ms

Everything after ``--`` is ``infercost run``'s command line; the process is the real operator
(:func:`~infercost.controllers.operator.run_operator`).
"""

from __future__ import annotations

import argparse
import os
import sys

import attrs


def main(argv: list[str]) -> int:
    from infercost.cli.run import add_arguments
    from infercost.controllers.config import FLAGS, ConfigError, build_config
    from infercost.controllers.operator import run_operator

    split = argv.index("--") if "--" in argv else len(argv)
    timings = argparse.ArgumentParser(prog="lease_launcher")
    timings.add_argument("--lease-duration", type=float, required=True)
    timings.add_argument("--renew-deadline", type=float, required=True)
    timings.add_argument("--retry-period", type=float, required=True)
    lease = timings.parse_args(argv[:split])
    run = argparse.ArgumentParser(prog="infercost run")
    add_arguments(run)
    args = run.parse_args(argv[split + 1 :])
    try:
        config = build_config({f.dest: getattr(args, f.dest, None) for f in FLAGS}, os.environ)
    except ConfigError as exc:
        print(f"infercost run: error: {exc}", file=sys.stderr)
        return 2
    config = attrs.evolve(
        config,
        lease_duration=lease.lease_duration,
        renew_deadline=lease.renew_deadline,
        retry_period=lease.retry_period,
    )
    return run_operator(config)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
