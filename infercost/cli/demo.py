"""``infercost demo``: the real operator on a simulated GPU cluster, with a live view.

One process group: this process runs the Kubernetes API emulator and the simulated cluster of
a scenario (GPU nodes with DCGM exporters, vLLM / llama.cpp / SGLang servers whose traffic
advances with real time, CostProfiles, UsageReports and TokenBudgets; see
:mod:`infercost.testing.demoscenario` and docs/demo.md), and starts ``infercost run`` as a
child process against it with short scrape and status intervals. It then shows the figures the
operator writes, refreshed every two seconds (``rich`` on a terminal, plain text otherwise),
with the kubeconfig and the ``kubectl`` commands to look for yourself.

It stops on Ctrl-C, SIGTERM or the end of ``--duration`` (counted from the moment the
operator is ready): the operator gets SIGTERM and checkpoints, then the servers and the
emulator close, leaving no process and no listening socket behind. ``--output json`` prints the
final CostProfiles, UsageReports and TokenBudgets (a ``kind: List``) on standard output.

The simulated cluster comes from ``infercost.testing``, which the wheel ships for this command
and the production image leaves out; it is loaded by name, so that no runtime package imports
the testing package and an installation without it gets one clear line.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TextIO

from infercost.cli.cluster import CommandError, Connection
from infercost.cli.status import Snapshot, snapshot_tables
from infercost.cli.tables import Table, render_plain

__all__ = ["add_arguments", "run"]

DEFAULT_SCRAPE_INTERVAL = "2s"
DEFAULT_STATUS_INTERVAL = "2s"
REFRESH_SECONDS = 2.0
PLAIN_REFRESH_SECONDS = 10.0
READY_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 15.0
OPERATOR_NAMESPACE = "infercost-system"
SCENARIO_MODULE = "infercost.testing.demoscenario"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration",
        metavar="DURATION",
        help="stop after this long once the operator is ready (30s, 5m, 1h); default: run "
        "until Ctrl-C",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        metavar="PORT",
        help="port of the emulated Kubernetes API on 127.0.0.1 (default: any free port)",
    )
    parser.add_argument(
        "--scenario",
        metavar="FILE",
        help="YAML scenario: nodes, GPUs, pods, token rates, CRs (docs/demo.md; default: the "
        "bundled one)",
    )
    parser.add_argument(
        "--clock-offset",
        default="0s",
        metavar="DURATION",
        help="shift the operator's clock (passed to infercost run), e.g. to start just "
        "before midnight UTC and watch the day roll over",
    )
    parser.add_argument(
        "--scrape-interval",
        default=DEFAULT_SCRAPE_INTERVAL,
        metavar="DURATION",
        help=f"the operator's --scrape-interval (default {DEFAULT_SCRAPE_INTERVAL})",
    )
    parser.add_argument(
        "--status-interval",
        default=DEFAULT_STATUS_INTERVAL,
        metavar="DURATION",
        help=f"the operator's --status-interval (default {DEFAULT_STATUS_INTERVAL})",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("view", "json"),
        default="view",
        help="view: a live view; json: the view on stderr and the final CRs as JSON on stdout",
    )


class _Cluster(Protocol):
    """What the demo needs of :class:`infercost.testing.demoscenario.SimulatedCluster`."""

    kubeconfig: str
    url: str
    addresses: list[tuple[str, int]]

    def start(self) -> Any: ...

    def stop(self) -> None: ...


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux kill the child when this process dies (even by
    SIGKILL), so a crashed demo does not leave an operator behind."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


class OperatorProcess:
    """``infercost run`` as a child process, its log in a file."""

    def __init__(self, argv: Sequence[str], log_path: Path, health_port: int) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.health_port = health_port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFERCOST_")}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent(),  # noqa: PLW1509 - it only calls prctl
            )

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.health_port}/readyz"
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, stop: threading.Event, timeout: float) -> bool:
        """Poll ``/readyz``; False when the process exits, ``stop`` is set or time runs out."""
        deadline = time.monotonic() + timeout
        while not stop.is_set() and time.monotonic() < deadline:
            if self.exited() is not None:
                return False
            if self.ready():
                return True
            stop.wait(0.25)
        return False

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM (the operator checkpoints and exits), SIGKILL if it does not in time."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def last_lines(self, count: int = 5) -> list[str]:
        """The log's last lines (the one-line startup error, when there is one)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines if line.strip()][-count:]


class UsageError(CommandError):
    """A flag or scenario the demo cannot use (exit status 2)."""


class _Stop:
    """SIGINT and SIGTERM set an event instead of raising, so every exit path cleans up."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signal = signal.Signals(signum).name
        self.event.set()


def _seconds(text: str, flag: str, *, positive: bool) -> float:
    from infercost.controllers.config import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    if positive and value <= 0:
        raise UsageError(f"{flag}: must be positive, got {text!r}")
    return value


def _intro(cluster: _Cluster, scenario: Any, workdir: Path, metrics_port: int, args: Any) -> str:
    kc = cluster.kubeconfig
    report = next(
        (o for o in scenario.objects if o["kind"] == "UsageReport"),
        None,
    )
    lines = [
        f"InferCost demo: {scenario.describe()}, on an emulated Kubernetes API at "
        f"{cluster.url}; the operator (infercost run) samples every {args.scrape_interval}.",
        f"Scenario: {scenario.origin}",
        "",
        f"  kubeconfig    {kc}",
        f"  kubectl       kubectl --kubeconfig {kc} get costprofiles,usagereports,tokenbudgets -A",
    ]
    if report is not None:
        meta = report["metadata"]
        lines.append(
            f"                kubectl --kubeconfig {kc} describe usagereport "
            f"-n {meta['namespace']} {meta['name']}"
        )
        lines.append(
            f"  compare       infercost compare {meta['name']} -n {meta['namespace']} "
            f"--kubeconfig {kc}"
        )
    lines += [
        f"  status        infercost status -A --kubeconfig {kc}",
        f"  metrics       curl -s http://127.0.0.1:{metrics_port}/metrics | grep ^infercost_",
        f"  operator log  {workdir / 'operator.log'}",
        "",
    ]
    return "\n".join(lines)


def _comparison_table(snapshot: Snapshot, today: dt.date) -> list[Table]:
    """The cloud comparison of the costliest report that has one, without the price list."""
    from infercost.cli.compare import CatalogSource, comparison_view
    from infercost.collect.pricing import bundled_catalog

    candidates = [r for r in snapshot.reports if (r.get("status") or {}).get("cloudComparison")]
    if not candidates:
        return []
    report = max(candidates, key=lambda r: float(r["status"].get("estimatedCostUSD") or 0.0))
    view = comparison_view(
        report, CatalogSource(bundled_catalog(), "the bundled catalog"), today=today
    )
    (table,) = view.tables()
    return [
        Table(
            title="Cloud comparison: " + table.title.replace("\n", "\n  "),
            columns=table.columns[:-1],
            rows=tuple(row[:-1] for row in table.rows),
            right=table.right,
            notes=view.summary,
        )
    ]


class _View:
    """The live view: ``rich`` on a terminal, plain snapshots otherwise."""

    def __init__(self, stream: TextIO, header: Callable[[], list[str]]) -> None:
        self.stream = stream
        self.header = header
        self.live: Any = None
        self.last_plain = 0.0
        if stream.isatty():
            try:
                from rich.console import Console
                from rich.live import Live
            except ImportError:  # pragma: no cover - rich is a dependency
                pass
            else:
                # A view taller than the terminal is cut at the bottom: redrawing more lines
                # than the screen holds would scroll copies of it into the history.
                self.live = Live(console=Console(file=stream), auto_refresh=False)

    def __enter__(self) -> _View:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.live is not None:
            self.live.stop()

    def show(self, tables: list[Table], *, final: bool = False) -> None:
        if self.live is not None:
            from infercost.cli.tables import render_rich

            self.live.update(render_rich(tables, self.header()), refresh=True)
            return
        now = time.monotonic()
        if not final and now - self.last_plain < PLAIN_REFRESH_SECONDS:
            return
        self.last_plain = now
        self.stream.write("\n".join(self.header()) + "\n\n" + render_plain(tables) + "\n")
        self.stream.flush()


def _load_scenario_module() -> Any:
    try:
        return importlib.import_module(SCENARIO_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name and SCENARIO_MODULE.startswith(exc.name):
            raise CommandError(
                "this installation of InferCost leaves out infercost.testing, which the demo "
                "runs on; install InferCost from its wheel or source (python3 -m pip install .)"
            ) from exc
        raise


def run(args: argparse.Namespace) -> int:
    stop = _Stop()
    stop.install()
    try:
        return _run(args, stop)
    except CommandError as exc:
        print(f"infercost demo: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    finally:
        stop.restore()


def _run(args: argparse.Namespace, stop: _Stop) -> int:
    duration = (
        None if args.duration is None else _seconds(args.duration, "--duration", positive=True)
    )
    offset = _seconds(args.clock_offset, "--clock-offset", positive=False)
    scrape_interval = _seconds(args.scrape_interval, "--scrape-interval", positive=True)
    _seconds(args.status_interval, "--status-interval", positive=True)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port: {args.port} is out of range 0-65535")
    scenarios = _load_scenario_module()
    try:
        scenario = scenarios.load_scenario(args.scenario)
    except scenarios.ScenarioError as exc:
        raise UsageError(f"--scenario {exc}") from None

    view_stream = sys.stderr if args.output == "json" else sys.stdout
    workdir = Path(tempfile.mkdtemp(prefix="infercost-demo-"))
    cluster: _Cluster = scenarios.SimulatedCluster(
        scenario, port=args.port, kubeconfig_path=workdir / "kubeconfig"
    )
    operator: OperatorProcess | None = None
    final: list[dict[str, Any]] = []
    code = 0
    try:
        try:
            cluster.start()
        except OSError as exc:
            raise CommandError(
                f"cannot start the emulated API on 127.0.0.1:{args.port}: {exc.strerror or exc}"
            ) from exc
        metrics_port, health_port = _free_port(), _free_port()
        flags = {
            "--kubeconfig": cluster.kubeconfig,
            "--namespace": OPERATOR_NAMESPACE,
            "--scrape-interval": args.scrape_interval,
            # one slow simulated server must not hold a short cycle up
            "--scrape-timeout": f"{min(1.0, scrape_interval / 2):g}s",
            "--status-interval": args.status_interval,
            "--metrics-bind": f"127.0.0.1:{metrics_port}",
            "--health-bind": f"127.0.0.1:{health_port}",
            "--clock-offset": args.clock_offset,
            "--log-format": "json",
        }
        argv = [sys.executable, "-m", "infercost", "run", "--no-leader-elect"]
        for flag, value in flags.items():
            argv += [flag, value]
        operator = OperatorProcess(argv, workdir / "operator.log", health_port)
        view_stream.write(_intro(cluster, scenario, workdir, metrics_port, args))
        view_stream.write("Starting the operator...\n")
        view_stream.flush()
        operator.start()
        if not operator.wait_ready(stop.event, READY_TIMEOUT_SECONDS):
            if stop.event.is_set():
                return 0
            status = operator.exited()
            detail = "\n".join(operator.last_lines()) or "(no output)"
            what = f"exited with status {status}" if status is not None else "did not get ready"
            raise CommandError(
                f"the operator {what} within {READY_TIMEOUT_SECONDS:.0f} s; its last log "
                f"lines:\n{detail}"
            )
        started = time.monotonic()
        conn = Connection(_rest(cluster), None)

        def header() -> list[str]:
            now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)
            running = int(time.monotonic() - started)
            left = (
                "until Ctrl-C" if duration is None else f"{max(0, int(duration - running))}s left"
            )
            return [
                f"InferCost demo  operator clock {now:%Y-%m-%d %H:%M:%S} UTC  "
                f"running {running}s ({left})  kubeconfig {cluster.kubeconfig}"
            ]

        view_stream.write("Operator ready. Ctrl-C stops the demo.\n")
        view_stream.flush()
        with _View(view_stream, header) as view:
            while True:
                snapshot = _snapshot(conn)
                today = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)).date()
                tables = snapshot_tables(snapshot) + _comparison_table(snapshot, today)
                done = duration is not None and time.monotonic() - started >= duration
                if operator.exited() is not None:
                    view.show(tables, final=True)
                    raise CommandError(
                        f"the operator exited with status {operator.exited()}; see "
                        f"{operator.log_path}:\n" + "\n".join(operator.last_lines())
                    )
                view.show(tables, final=done or stop.event.is_set())
                if done or stop.event.is_set():
                    break
                wait = REFRESH_SECONDS
                if duration is not None:
                    wait = min(wait, max(0.0, duration - (time.monotonic() - started)))
                stop.event.wait(wait)
        reason = stop.signal or "end of --duration"
        view_stream.write(f"Stopping ({reason}): operator, simulated servers, emulator.\n")
        view_stream.flush()
        status = operator.stop()
        if status not in (0, None):
            view_stream.write(f"The operator exited with status {status}; see its log.\n")
            code = 1
        final = _final_objects(conn)
    except CommandError:
        code = 1
        raise
    finally:
        if operator is not None:
            operator.stop()
        cluster.stop()
        if code != 0 and operator is not None and operator.process is not None:
            print(f"Kept {workdir} (the operator's log) for a look.", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.output == "json":
        sys.stdout.write(
            json.dumps({"apiVersion": "v1", "kind": "List", "items": final}, indent=2) + "\n"
        )
    return code


def _rest(cluster: _Cluster) -> Any:
    from infercost.kube.client import load_api_client
    from infercost.kube.rest import RestClient

    return RestClient(load_api_client(cluster.kubeconfig))


def _snapshot(conn: Connection) -> Snapshot:
    from infercost.cli.status import gather

    return gather(conn)


def _final_objects(conn: Connection) -> list[dict[str, Any]]:
    items = []
    for kind in ("CostProfile", "UsageReport", "TokenBudget"):
        items.extend(conn.objects(kind))
    return items
