"""Simulated inference servers and DCGM exporters with ground truth, rates and resets.

Token counters advance by explicit :meth:`SimInferenceServer.serve` calls or by rates
integrated over an injected clock (evaluated when a page is rendered or :meth:`advance` is
called). The ground truth (``truth()``) is what the server served since it was created, across
counter resets; the operator's totals must equal it up to the last successful scrape.

DCGM exporters integrate each GPU's power curve over the same clock into the energy counter
(mJ), exactly as the hardware counter does.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Self

from infercost.testing.simservers.httpserver import (
    Fault,
    PageServer,
    bind_error_is_address_in_use,
)
from infercost.testing.simservers.pages import GpuState, ModelCounters, render, render_dcgm

Clock = Callable[[], float]
HttpFactory = Callable[..., Any]
"""``PageServer`` or ``ServerFarm.add``: (host, port, render, paths=...) → an endpoint."""

DEFAULT_PORTS = {
    "vllm": 8000,
    "vllm-v0": 8000,
    "llamacpp": 8080,
    "sglang": 30000,
    "tgi": 80,
    "triton": 8002,
    "lmdeploy": 23333,
    "nim": 8000,
}


class SimClock:
    """A manual clock (seconds since the epoch) shared by servers, exporters and tests."""

    def __init__(self, start: float = 1_795_766_400.0):  # 2026-11-27T00:00:00Z
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock does not go backwards")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, now: float) -> None:
        with self._lock:
            self._now = now


class LoopbackPool:
    """Hands out distinct 127.x.y.z addresses, one per simulated pod.

    The second octet is picked per process so that test runs in parallel processes rarely
    collide; a bind that still collides moves on to the next address (see :func:`bind`).
    """

    _lock = threading.Lock()

    def __init__(self, second_octet: int | None = None):
        if second_octet is None:
            second_octet = 1 + (os.getpid() * 7 + random.randrange(1 << 16)) % 250
        if not 1 <= second_octet <= 254:
            raise ValueError("second octet must be in 1..254")
        self._second = second_octet
        self._next = 0
        self._in_use: set[str] = set()

    def allocate(self) -> str:
        with self._lock:
            while True:
                third, fourth = divmod(self._next, 254)
                self._next += 1
                if third > 254:
                    raise RuntimeError("the loopback pool is exhausted")
                ip = f"127.{self._second}.{third}.{fourth + 1}"
                if ip not in self._in_use:
                    self._in_use.add(ip)
                    return ip

    def release(self, ip: str) -> None:
        with self._lock:
            self._in_use.discard(ip)


def bind(pool: LoopbackPool, make: Callable[[str], PageServer], attempts: int = 16) -> PageServer:
    """Start ``make(ip)`` on a fresh address, retrying with another when it is taken."""
    last: OSError | None = None
    for _ in range(attempts):
        server = make(pool.allocate())
        try:
            return server.start()
        except OSError as exc:
            if not bind_error_is_address_in_use(exc):
                raise
            last = exc
    raise RuntimeError(f"no free loopback address after {attempts} attempts: {last}")


class _Rates:
    def __init__(self) -> None:
        self.input_per_second = 0.0
        self.cached_per_second = 0.0
        self.output_per_second = 0.0
        self.carry = [0.0, 0.0, 0.0]


class _Served:
    """What a simulated server and a simulated exporter share: a page served over HTTP on one
    loopback address, started, stopped and broken on purpose through ``self.http``."""

    http: PageServer

    @property
    def host(self) -> str:
        return self.http.host

    @property
    def port(self) -> int:
        return self.http.port

    @property
    def url(self) -> str:
        return self.http.url

    def start(self) -> Self:
        self.http.start()
        return self

    def stop(self) -> None:
        self.http.stop()

    def set_fault(self, kind: str = "none", **options: float) -> None:
        self.http.fault = Fault(kind, **options)  # type: ignore[arg-type]


class SimInferenceServer(_Served):
    """One simulated inference server (one pod).

    ``backend`` is a renderer name (``vllm``, ``vllm-v0``, ``llamacpp``, ``sglang``, ``tgi``,
    ``triton``, ``lmdeploy``, ``nim``). ``models`` × ``engines`` counter sets are kept; vLLM and
    LMDeploy show the ``engine`` label, the others ignore it.
    """

    def __init__(
        self,
        backend: str,
        host: str,
        *,
        port: int | None = None,
        models: Sequence[str] = ("meta-llama/Llama-3.1-8B-Instruct",),
        engines: int = 1,
        clock: Clock = time.time,
        render_options: dict[str, object] | None = None,
        http_factory: HttpFactory | None = None,
    ):
        if backend not in DEFAULT_PORTS:
            raise ValueError(f"unknown simulated backend {backend!r}")
        if backend in ("llamacpp", "tgi") and (len(models) != 1 or engines != 1):
            raise ValueError(f"{backend} serves one model on one engine")
        self.backend = backend
        self.clock = clock
        self.render_options = dict(render_options or {})
        now = clock()
        self.counters = [
            ModelCounters(model=m, engine=str(e), created=now)
            for m in models
            for e in range(engines)
        ]
        self._truth: dict[tuple[str, str], list[int]] = {
            (c.model, c.engine): [0, 0, 0] for c in self.counters
        }
        self._rates = {(c.model, c.engine): _Rates() for c in self.counters}
        self._last = now
        self._lock = threading.RLock()
        path = "/v1/metrics" if backend == "nim" else "/metrics"
        self.http = (http_factory or PageServer)(
            host, port if port is not None else DEFAULT_PORTS[backend], self.page, paths=(path,)
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def loading(self) -> None:
        """Refuse connections, as a server still loading its model."""
        self.http.loading()

    def ready(self) -> None:
        self.http.ready()

    # -- traffic ------------------------------------------------------------------------------

    def _counter(self, model: str | None, engine: str | int) -> ModelCounters:
        model = model if model is not None else self.counters[0].model
        for c in self.counters:
            if c.model == model and c.engine == str(engine):
                return c
        raise KeyError(f"no model {model!r} on engine {engine}")

    def serve(
        self,
        input_tokens: int,
        output_tokens: int,
        *,
        cached_tokens: int = 0,
        model: str | None = None,
        engine: str | int = 0,
    ) -> None:
        """Serve one request: counters and ground truth move together."""
        with self._lock:
            self.advance()
            counter = self._counter(model, engine)
            counter.serve(input_tokens, output_tokens, cached_tokens)
            truth = self._truth[(counter.model, counter.engine)]
            truth[0] += input_tokens
            truth[1] += cached_tokens
            truth[2] += output_tokens

    def set_rate(
        self,
        input_per_second: float,
        output_per_second: float,
        *,
        cached_per_second: float = 0.0,
        model: str | None = None,
        engine: str | int = 0,
    ) -> None:
        """Serve tokens continuously at these rates as the clock moves."""
        with self._lock:
            self.advance()
            rates = self._rates[(self._counter(model, engine).model, str(engine))]
            rates.input_per_second = input_per_second
            rates.cached_per_second = cached_per_second
            rates.output_per_second = output_per_second

    def advance(self) -> None:
        """Apply the rates up to the clock's now (called by every page render)."""
        with self._lock:
            now = self.clock()
            elapsed = max(0.0, now - self._last)
            self._last = now
            if not elapsed:
                return
            for counter in self.counters:
                rates = self._rates[(counter.model, counter.engine)]
                amounts = []
                for i, rate in enumerate(
                    (rates.input_per_second, rates.cached_per_second, rates.output_per_second)
                ):
                    exact = rate * elapsed + rates.carry[i]
                    whole = int(exact)
                    rates.carry[i] = exact - whole
                    amounts.append(whole)
                inputs, cached, outputs = amounts
                cached = min(cached, inputs)
                if inputs or outputs:
                    self.serve(inputs, outputs, cached_tokens=cached, model=counter.model,
                               engine=counter.engine)  # fmt: skip

    def reset(self, *, engine: str | int | None = None) -> None:
        """Restart the counters (a process restart): values drop to 0, ``_created`` moves."""
        with self._lock:
            self.advance()
            for counter in self.counters:
                if engine is None or counter.engine == str(engine):
                    counter.reset(self.clock())

    def bump_created(self, seconds: float = 1.0) -> None:
        """Change the ``_created`` timestamps without touching the values."""
        with self._lock:
            for counter in self.counters:
                counter.created += seconds

    def truth(self) -> dict[tuple[str, str], int]:
        """Tokens served since creation per (model, role); roles input/cached/output."""
        with self._lock:
            self.advance()
            out: dict[tuple[str, str], int] = {}
            for (model, _), (inputs, cached, outputs) in self._truth.items():
                for role, value in (("input", inputs), ("cached", cached), ("output", outputs)):
                    out[(model, role)] = out.get((model, role), 0) + value
            return out

    def page(self) -> bytes:
        with self._lock:
            self.advance()
            return render(self.backend, self.counters, **self.render_options)


PowerCurve = Callable[[float], float]


class SimDcgmExporter(_Served):
    """A simulated dcgm-exporter for one node's GPUs.

    Each GPU's power is a constant or a curve ``f(t) -> watts``; the energy counter integrates
    it (trapezoid rule at 1 s resolution between renders) in mJ.
    """

    def __init__(
        self,
        host: str,
        *,
        gpus: int | Sequence[GpuState] = 8,
        node: str = "gpu-node-1",
        port: int = 9400,
        hostname: str | None = None,
        hostname_label: str = "Hostname",
        pod_mapping: bool = True,
        clock: Clock = time.time,
        model_name: str = "NVIDIA H100 80GB HBM3",
        http_factory: HttpFactory | None = None,
    ):
        if isinstance(gpus, int):
            rng = random.Random(f"{node}/{host}")
            self.gpus = [
                GpuState(
                    index=i,
                    uuid=f"GPU-{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4"
                    f"{rng.getrandbits(12):03x}-8{rng.getrandbits(12):03x}-"
                    f"{rng.getrandbits(48):012x}",
                    model_name=model_name,
                    energy_mj=1_000_000_000 + i * 12_345_678,
                )
                for i in range(gpus)
            ]
        else:
            self.gpus = list(gpus)
        self.node = node
        self.hostname = hostname if hostname is not None else node
        self.hostname_label = hostname_label
        self.pod_mapping = pod_mapping
        self.clock = clock
        self._curves: dict[int, PowerCurve] = {}
        self._energy_exact: dict[int, float] = {g.index: float(g.energy_mj) for g in self.gpus}
        self._last = clock()
        self._lock = threading.RLock()
        self.http = (http_factory or PageServer)(host, port, self.page, paths=("/metrics",))

    def _gpu(self, index: int) -> GpuState:
        for gpu in self.gpus:
            if gpu.index == index:
                return gpu
        raise KeyError(f"no GPU {index} on {self.node}")

    def set_power(self, index: int, watts: float | PowerCurve) -> None:
        with self._lock:
            self.advance()
            if callable(watts):
                self._curves[index] = watts
            else:
                self._curves.pop(index, None)
                self._gpu(index).power_watts = float(watts)

    def assign(self, index: int, namespace: str, pod: str, container: str = "server") -> None:
        """Record that a pod holds GPU ``index`` (kubelet PodResources as DCGM sees it)."""
        with self._lock:
            gpu = self._gpu(index)
            gpu.namespace, gpu.pod, gpu.container = namespace, pod, container

    def release(self, index: int) -> None:
        self.assign(index, "", "", "")

    def reset_energy(self, index: int | None = None) -> None:
        """The energy counter restarts from 0 (a node reboot or driver reload)."""
        with self._lock:
            self.advance()
            for gpu in self.gpus:
                if index is None or gpu.index == index:
                    gpu.energy_mj = 0
                    self._energy_exact[gpu.index] = 0.0

    def _watts(self, gpu: GpuState, t: float) -> float:
        curve = self._curves.get(gpu.index)
        return float(curve(t)) if curve is not None else gpu.power_watts

    def advance(self) -> None:
        with self._lock:
            now = self.clock()
            start = self._last
            self._last = now
            if now <= start:
                for gpu in self.gpus:
                    gpu.power_watts = self._watts(gpu, now)
                return
            steps = max(1, int(now - start))
            width = (now - start) / steps
            for gpu in self.gpus:
                joules = 0.0
                for k in range(steps):
                    a, b = start + k * width, start + (k + 1) * width
                    joules += (self._watts(gpu, a) + self._watts(gpu, b)) / 2 * width
                self._energy_exact[gpu.index] += joules * 1000.0
                gpu.energy_mj = int(self._energy_exact[gpu.index])
                gpu.power_watts = self._watts(gpu, now)

    def energy_mj(self, index: int) -> float:
        with self._lock:
            self.advance()
            return self._energy_exact[index]

    def page(self) -> bytes:
        with self._lock:
            self.advance()
            return render_dcgm(
                self.gpus,
                hostname=self.hostname,
                hostname_label=self.hostname_label,
                pod_mapping=self.pod_mapping,
            )
