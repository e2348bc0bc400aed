"""The operator process: wiring, probes, metrics, leader election and an orderly shutdown.

What runs where:

- on every replica: the informers (pods, nodes, the three CRDs, plus whatever components ask
  for), the health series, ``/healthz`` (threads alive), ``/readyz`` (caches synced; standbys
  are ready too) and ``/metrics``;
- on the leader only: the components registered with ``leader_only=True`` (every controller
  that writes, the sampler) and collectors registered with ``leader_only=True`` (CR-derived
  series).

Later parts plug in through :class:`ComponentSpec` (a name and a ``build(context)`` returning
something with ``start/stop/join/alive``) and :meth:`OperatorContext.add_shutdown_hook`.

Shutdown on SIGTERM/SIGINT, within ``shutdown_timeout`` (10 s): stop the components in order
(the sampler abandons its scrapes in flight and publishes nothing more; workers finish their
current reconcile), run the shutdown hooks while still holding the Lease (the ledger
checkpoints there), release the Lease with whatever is left of the budget so a standby takes
over at once, stop the informers and servers, exit 0. Losing the Lease skips the hooks (another
replica may already be writing) and exits 1. A watchdog ends the process if any step hangs.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import attrs
import structlog
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder

from infercost.api import GROUP, RESOURCE_TYPES, VERSION
from infercost.controllers.config import OperatorConfig, describe
from infercost.controllers.sampling import Sampler, build_sampler
from infercost.kube.client import (
    AccessCheck,
    StartupError,
    StartupRetry,
    check_access,
    check_api,
    check_crds,
    check_namespace,
    load_api_client,
)
from infercost.kube.clock import Clock, RealClock
from infercost.kube.controller import Controller, Reconcile
from infercost.kube.events import EventRecorder, ObjectRef
from infercost.kube.health import HealthMetrics
from infercost.kube.informer import Informer, InformerFactory
from infercost.kube.leaderelection import LeaderElector, default_identity
from infercost.kube.rest import CONFIGMAPS, LEASES, NODES, PODS, Resource, RestClient
from infercost.kube.status import StatusRules, StatusWriter

__all__ = [
    "CUSTOM_RESOURCES",
    "Component",
    "ComponentSpec",
    "Operator",
    "OperatorContext",
    "configure_logging",
    "run_operator",
]

log = structlog.get_logger("infercost.controllers.operator")

CUSTOM_RESOURCES: dict[str, Resource] = {
    rt.kind: Resource(GROUP, VERSION, rt.plural, rt.kind, True) for rt in RESOURCE_TYPES
}


class Component(Protocol):
    """Anything the operator starts and stops: controllers, the sampler loop, watchers."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the component's threads to end; whether they all have."""
        ...

    def alive(self) -> bool:
        """Healthy: no thread died while it was supposed to run (``/healthz``)."""
        ...


@attrs.frozen
class ComponentSpec:
    name: str
    build: Callable[[OperatorContext], Component]
    # Only the leader runs components that write to the cluster.
    leader_only: bool = True


def default_components() -> list[ComponentSpec]:
    """The components of a full operator; each later part adds its entry here."""
    from infercost.controllers.accounting import build_accounting
    from infercost.controllers.costprofile import build_costprofile_controller

    return [
        ComponentSpec("sampler", lambda context: context.sampler, leader_only=True),
        ComponentSpec("costprofile", build_costprofile_controller, leader_only=True),
        ComponentSpec("accounting", build_accounting, leader_only=True),
    ]


class _LeaderGate:
    """Exposes a collector's series only while this replica leads (SPEC §6.1)."""

    def __init__(self, collector: Any, is_leader: Callable[[], bool]) -> None:
        self._collector = collector
        self._is_leader = is_leader

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterable[Any]:
        if self._is_leader():
            yield from self._collector.collect()


class OperatorContext:
    """What a component gets to build itself: shared clients, caches, clock and metrics."""

    def __init__(
        self,
        *,
        config: OperatorConfig,
        rest: RestClient,
        clock: Clock,
        metrics: HealthMetrics,
        informers: InformerFactory,
        events: EventRecorder,
        identity: str,
        is_leader: Callable[[], bool],
        add_shutdown_hook: Callable[[str, Callable[[], None]], None],
        sampler: Sampler,
    ) -> None:
        self.config = config
        self.sampler = sampler
        """The operator's one sampler: the ``sampler`` component, and what the CostProfile
        controller (and the ledger) subscribe to."""
        self.rest = rest
        self.clock = clock
        self.metrics = metrics
        self.registry: CollectorRegistry = metrics.registry
        self.informers = informers
        self.events = events
        self.identity = identity
        self.is_leader = is_leader
        self._add_hook = add_shutdown_hook

    def custom_informer(self, kind: str) -> Informer:
        """The shared informer of CostProfiles, UsageReports or TokenBudgets (by kind)."""
        return self.informers.informer(CUSTOM_RESOURCES[kind])

    def object_ref(self, kind: str, obj: Any) -> ObjectRef:
        """The Event reference of a cached CostProfile/UsageReport/TokenBudget."""
        return ObjectRef.of(obj, CUSTOM_RESOURCES[kind])

    def status_writer(self, kind: str, rules: StatusRules | None = None) -> StatusWriter:
        return StatusWriter(
            self.rest,
            CUSTOM_RESOURCES[kind],
            rules,
            interval_seconds=self.config.status_interval,
            clock=self.clock,
            metrics=self.metrics,
        )

    def controller(
        self,
        name: str,
        reconcile: Reconcile,
        *,
        primary: Informer | None = None,
        requires: Sequence[Informer] = (),
        workers: int = 1,
        resync_seconds: float | None = None,
    ) -> Controller:
        return Controller(
            name,
            reconcile,
            primary=primary,
            requires=requires,
            workers=workers,
            resync_seconds=resync_seconds,
            clock=self.clock,
            metrics=self.metrics,
        )

    def add_shutdown_hook(self, name: str, hook: Callable[[], None]) -> None:
        """Run ``hook`` on a clean shutdown, while the Lease is still held."""
        self._add_hook(name, hook)

    def register_collector(self, collector: Any, *, leader_only: bool = True) -> None:
        self.registry.register(_LeaderGate(collector, self.is_leader) if leader_only else collector)


def configure_logging(log_format: str, level: str, stream: Any = None) -> None:
    """structlog to stdout (JSON lines or console), filtered at ``level``."""
    numeric = getattr(logging, level.upper())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


class _Servers:
    """/healthz and /readyz on one address, /metrics on another (or the same)."""

    def __init__(
        self,
        config: OperatorConfig,
        registry: CollectorRegistry,
        healthy: Callable[[], tuple[bool, str]],
        ready: Callable[[], tuple[bool, str]],
    ) -> None:
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        routes_health = {"/healthz": healthy, "/readyz": ready}
        same = config.metrics_bind == config.health_bind
        self._bind(config.health_bind, routes_health, registry if same else None, "health")
        if not same:
            self._bind(config.metrics_bind, {}, registry, "metrics")

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [s.server_address[:2] for s in self._servers]  # type: ignore[misc]

    def _bind(
        self,
        address: tuple[str, int],
        probes: dict[str, Callable[[], tuple[bool, str]]],
        registry: CollectorRegistry | None,
        what: str,
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in probes:
                    ok, detail = probes[path]()
                    body = (detail or ("ok" if ok else "not ready")).encode() + b"\n"
                    self._send(200 if ok else 503, "text/plain; charset=utf-8", body)
                elif path == "/metrics" and registry is not None:
                    encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                    self._send(200, content_type, encoder(registry))
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found\n")

            def _send(self, code: int, content_type: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        host, port = address
        try:
            server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {host or '*'}:{port} for {what}: {exc.strerror or exc}"
            ) from exc
        server.daemon_threads = True
        self._servers.append(server)

    def start(self) -> None:
        for server in self._servers:
            t = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True
            )
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


class Operator:
    """One operator process. ``run()`` blocks until SIGTERM/SIGINT or a lost Lease."""

    def __init__(
        self,
        config: OperatorConfig,
        *,
        api_client: Any = None,
        registry: CollectorRegistry | None = None,
        clock: Clock | None = None,
        components: Sequence[ComponentSpec] | None = None,
        identity: str | None = None,
        startup_retry: StartupRetry | None = None,
    ) -> None:
        self.config = config
        self.startup_retry = startup_retry or StartupRetry()
        self.clock = clock or RealClock(config.clock_offset)
        self._api_client = api_client
        if registry is None:
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.metrics = HealthMetrics(registry)
        self.identity = identity or default_identity()
        self._specs = list(default_components() if components is None else components)
        self._hooks: list[tuple[str, Callable[[], None]]] = []
        self._stop = threading.Event()
        self._stopping = False
        self._lost = False
        self._leading = threading.Event()
        self._leader_components: list[tuple[str, Component]] = []
        self._components: list[tuple[str, Component]] = []
        # Re-entrant: a component may ask for the probes while it is being started.
        self._components_lock = threading.RLock()
        self.exit_code = 0
        self.rest: RestClient | None = None
        self.informers: InformerFactory | None = None
        self.elector: LeaderElector | None = None
        self.context: OperatorContext | None = None
        self._servers: _Servers | None = None

    # -- registration ------------------------------------------------------------------------

    def register(self, spec: ComponentSpec) -> None:
        if self.context is not None:
            raise RuntimeError("components must be registered before the operator starts")
        self._specs.append(spec)

    def add_shutdown_hook(self, name: str, hook: Callable[[], None]) -> None:
        self._hooks.append((name, hook))

    def is_leader(self) -> bool:
        return self._leading.is_set()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return self._servers.addresses if self._servers else []

    # -- probes ------------------------------------------------------------------------------

    def healthy(self) -> tuple[bool, str]:
        problems = []
        if self.informers is not None and not self.informers.alive():
            problems.append("an informer thread died")
        with self._components_lock:
            comps = list(self._components) + list(self._leader_components)
        problems.extend(f"component {name} stopped" for name, c in comps if not c.alive())
        if self.elector is not None and not self._stopping and not self.elector.is_alive():
            problems.append("leader election stopped")
        return (not problems, "; ".join(problems))

    def ready(self) -> tuple[bool, str]:
        if self.informers is None:
            return False, "starting"
        pending = [i.name for i in self.informers.informers() if not i.has_synced()]
        if pending:
            return False, "caches not synced: " + ", ".join(pending)
        elector = self.elector
        if elector is not None and not self.is_leader() and not elector.lease_readable():
            lease = f"{self.config.namespace}/{self.config.lease_name}"
            return False, f"cannot read the leader Lease {lease}"
        return True, "ok"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect, check, serve probes, start informers and leader election (non-blocking).

        Raises :class:`StartupError` with a one-line message when the cluster is not usable.
        """
        cfg = self.config
        api_client = self._api_client or load_api_client(cfg.kubeconfig)
        rest = RestClient(api_client)
        self.rest = rest
        retry = self.startup_retry
        version = check_api(rest, retry)
        check_crds(rest, CUSTOM_RESOURCES.values(), retry)
        check_namespace(rest, cfg.namespace, retry)
        checks = [
            AccessCheck("list", PODS, why="find inference pods and GPU holders"),
            AccessCheck("list", NODES, why="match CostProfiles to nodes"),
            *(
                AccessCheck("list", r, why=f"reconcile {r.kind}s")
                for r in CUSTOM_RESOURCES.values()
            ),
            AccessCheck("list", CONFIGMAPS, cfg.namespace, why="restore the ledger checkpoint"),
        ]
        if cfg.leader_elect:
            checks.append(
                AccessCheck("get", LEASES, cfg.namespace, cfg.lease_name, why="elect a leader")
            )
        check_access(rest, checks, retry)
        self._servers = _Servers(cfg, self.metrics.registry, self.healthy, self.ready)
        log.info("starting", version=version, identity=self.identity, config=describe(cfg))

        self.informers = InformerFactory(rest, clock=self.clock, metrics=self.metrics)
        self.informers.pods()
        self.informers.nodes()
        for res in CUSTOM_RESOURCES.values():
            self.informers.informer(res)
        events = EventRecorder(
            rest, host=self.identity, clock=self.clock, default_namespace=cfg.namespace
        )
        sampler = build_sampler(
            cfg,
            informers=self.informers,
            profiles=self.informers.informer(CUSTOM_RESOURCES["CostProfile"]),
            clock=self.clock,
            metrics=self.metrics,
        )
        self.context = OperatorContext(
            config=cfg,
            rest=rest,
            clock=self.clock,
            metrics=self.metrics,
            informers=self.informers,
            events=events,
            identity=self.identity,
            is_leader=self.is_leader,
            add_shutdown_hook=self.add_shutdown_hook,
            sampler=sampler,
        )
        # Build every component now, so they register their informers and handlers before
        # the informers start; only the non-leader ones start now.
        for spec in self._specs:
            comp = spec.build(self.context)
            with self._components_lock:
                target = self._leader_components if spec.leader_only else self._components
                target.append((spec.name, comp))
        self._servers.start()
        self.informers.start()
        with self._components_lock:
            for _, comp in self._components:
                comp.start()
        if cfg.leader_elect:
            self.elector = LeaderElector(
                rest,
                namespace=cfg.namespace,
                name=cfg.lease_name,
                identity=self.identity,
                lease_duration=cfg.lease_duration,
                renew_deadline=cfg.renew_deadline,
                retry_period=cfg.retry_period,
                clock=self.clock,
                metrics=self.metrics,
                on_started_leading=self._on_started_leading,
                on_stopped_leading=self._on_stopped_leading,
            )
            self.elector.start()
        else:
            self.metrics.leader.set(1)
            self._on_started_leading()

    def _on_started_leading(self) -> None:
        # Under the lock, so that a shutdown either sees these components started (and stops
        # them) or keeps them from starting at all.
        with self._components_lock:
            if self._stopping:
                return
            self._leading.set()
            log.info(
                "leading: starting controllers",
                components=[n for n, _ in self._leader_components],
            )
            for _, comp in self._leader_components:
                comp.start()

    def _on_stopped_leading(self) -> None:
        self._leading.clear()
        if not self._stopping:
            self._lost = True
            self.exit_code = 1
            log.error("lost the leader lease; exiting so a fresh process can campaign again")
            self.request_stop()

    def request_stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    def shutdown(self) -> int:
        """Stop in order within ``shutdown_timeout``; returns the exit code.

        1. every component, in registration order (the sampler first: its scrapes in flight
           are abandoned and it publishes nothing more), each joined for at most 3 s;
        2. the shutdown hooks, in registration order, while the Lease is still held (the
           ledger checkpoints here);
        3. the Lease release, with whatever is left of the budget (logged when abandoned);
        4. the informers and the HTTP servers.
        """
        budget = self.config.shutdown_timeout
        deadline = time.monotonic() + budget - 0.5

        def remaining(cap: float) -> float:
            return max(0.0, min(cap, deadline - time.monotonic()))

        watchdog = threading.Timer(budget, self._force_exit)
        watchdog.daemon = True
        watchdog.start()
        with self._components_lock:
            self._stopping = True
            was_leader = self.is_leader()
            comps = list(self._leader_components) + list(self._components)
        for _, comp in comps:
            comp.stop()
        for name, comp in comps:
            if not comp.join(remaining(3.0)) and not self._lost:
                log.warning("component did not stop in time", component=name)
        if was_leader and not self._lost:
            for name, hook in self._hooks:
                self._run_hook(name, hook, remaining(budget))
        self._leading.clear()
        if self.elector is not None:
            self.elector.stop()
            self.elector.join(remaining(budget))
            if self.elector.is_alive():
                log.error(
                    "leader lease release abandoned: the shutdown budget ran out; a standby "
                    "takes over when the lease expires",
                    lease=f"{self.config.namespace}/{self.config.lease_name}",
                    lease_seconds=self.config.lease_duration,
                )
        self.metrics.leader.set(0)
        if self.informers is not None:
            self.informers.stop()
            self.informers.join(remaining(1.0))
        if self._servers is not None:
            self._servers.stop()
        watchdog.cancel()
        log.info("stopped", exit_code=self.exit_code)
        return self.exit_code

    def _run_hook(self, name: str, hook: Callable[[], None], timeout: float) -> None:
        errors: list[BaseException] = []

        def call() -> None:
            try:
                hook()
            except Exception as exc:
                errors.append(exc)

        t = threading.Thread(target=call, name=f"hook-{name}", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            log.error("shutdown hook did not finish in time", hook=name)
        elif errors:
            log.error("shutdown hook failed", hook=name, error=str(errors[0]))
        else:
            log.info("shutdown hook done", hook=name)

    def _force_exit(self) -> None:
        log.error("shutdown took too long; exiting", timeout=self.config.shutdown_timeout)
        os._exit(self.exit_code or 1)

    def run(self) -> int:
        """Start, block until told to stop, shut down; returns the exit code."""
        self.start()
        self._install_signal_handlers()
        self._stop.wait()
        return self.shutdown()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, _frame: Any) -> None:
            log.info("signal received; shutting down", signal=signal.Signals(signum).name)
            self.request_stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def run_operator(config: OperatorConfig) -> int:
    """The body of ``infercost run``: one-line errors on stderr, never a traceback."""
    configure_logging(config.log_format, config.log_level)
    operator = Operator(config)
    try:
        return operator.run()
    except StartupError as exc:
        print(f"infercost run: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug must still end in one readable line
        message = " ".join(str(exc).split())
        print(f"infercost run: error: unexpected {type(exc).__name__}: {message}", file=sys.stderr)
        return 1
