"""Simulated inference servers and DCGM exporters for the cluster benchmarks, in a process of
their own, serving pre-rendered pages.

Every page is rendered once, by :mod:`infercost.testing.simservers.pages` (the formats of the
real servers), and cut into a template at the values that move: the token counters of an
inference page, the energy counters of an exporter page. A request joins the template with the
values of the current step, formatted as the real server formats them, so no renderer runs
while the operator scrapes and the fleet's CPU stays out of the operator's way.

Protocol, one line each way (``python -m bench._fleet``):

- in: the fleet as one JSON object ``{"second_octet": N, "endpoints": [...]}``; each endpoint
  is ``{"kind": "vllm" | "llamacpp" | "dcgm", ...}`` (see :func:`template_of`);
- out: ``ready {"addresses": [...]}`` once every endpoint listens (one loopback address per
  endpoint, in order), or ``error <message>``;
- in: ``step N``: every counter moves to step N (traffic); out: ``ok N``;
- in: ``quit`` (or end of input): stop.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client.utils import floatToGoString

from infercost.testing.simservers.farm import ServerFarm
from infercost.testing.simservers.pages import (
    GpuState,
    ModelCounters,
    render_dcgm,
    render_llamacpp,
    render_vllm,
)
from infercost.testing.simservers.servers import LoopbackPool, bind

STEP_SECONDS = 30.0
"""Simulated time between two steps (one scrape interval)."""


class Template:
    """A page cut at its moving values: ``render(step)`` joins the pieces with the values."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.values: list[Callable[[int], str]] = []
        self._current: list[bytes] = []

    def text(self, chunk: bytes) -> None:
        self._current.append(chunk)

    def value(self, at_step: Callable[[int], str]) -> None:
        self.pieces.append(b"".join(self._current))
        self._current = []
        self.values.append(at_step)

    def close(self) -> Template:
        self.pieces.append(b"".join(self._current))
        self._current = []
        return self

    def render(self, step: int) -> bytes:
        out = [self.pieces[0]]
        for value, piece in zip(self.values, self.pieces[1:], strict=True):
            out.append(value(step).encode("ascii"))
            out.append(piece)
        return b"".join(out)


def _cut(page: bytes, moving: Callable[[bytes], Callable[[int], str] | None]) -> Template:
    """Cut ``page`` at the value of every sample line for which ``moving`` returns a formatter."""
    template = Template()
    for line in page.splitlines(keepends=True):
        at_step = None if line.startswith(b"#") else moving(line)
        if at_step is None:
            template.text(line)
            continue
        cut = line.rstrip(b"\n").rindex(b" ") + 1
        template.text(line[:cut])
        template.value(at_step)
        template.text(line[len(line.rstrip(b"\n")) :])
    return template.close()


def _counter(base: int, per_step: int, fmt: Callable[[float], str]) -> Callable[[int], str]:
    return lambda step: fmt(base + per_step * step)


def template_of(endpoint: dict[str, Any]) -> Template:
    """The template of one endpoint.

    - ``vllm``: ``models`` (names), ``rate`` [input, cached, output] tokens per step, ``base``
      [input, cached, output] at step 0 (per model);
    - ``llamacpp``: ``model``, ``rate``, ``base``;
    - ``dcgm``: ``node``, ``gpus`` [{``uuid``, ``watts``, ``namespace``, ``pod``}].
    """
    kind = endpoint["kind"]
    if kind == "vllm":
        base, rate = endpoint["base"], endpoint["rate"]
        counters = [
            ModelCounters(
                model=m,
                input_tokens=base[0],
                cached_tokens=base[1],
                output_tokens=base[2],
                requests=base[0] // 900,
                running=3,
                waiting=1,
            )
            for m in endpoint["models"]
        ]
        page = render_vllm(counters)
        go = floatToGoString
        series = {
            b"vllm:prompt_tokens_total{": (base[0], rate[0]),
            b"vllm:prompt_tokens_cached_total{": (base[1], rate[1]),
            b"vllm:generation_tokens_total{": (base[2], rate[2]),
        }

        def moving_vllm(line: bytes) -> Callable[[int], str] | None:
            for prefix, (start, per_step) in series.items():
                if line.startswith(prefix):
                    return _counter(start, per_step, lambda v: go(float(v)))
            return None

        return _cut(page, moving_vllm)
    if kind == "llamacpp":
        base, rate = endpoint["base"], endpoint["rate"]
        counter = ModelCounters(
            model=endpoint["model"],
            input_tokens=base[0],
            cached_tokens=base[1],
            output_tokens=base[2],
            requests=base[0] // 900,
        )
        page = render_llamacpp(counter)
        g = "{:g}".format
        lines = {
            b"llamacpp:prompt_tokens_total ": (base[0] - base[1], rate[0] - rate[1]),
            b"llamacpp:prompt_tokens_cached_total ": (base[1], rate[1]),
            b"llamacpp:tokens_predicted_total ": (base[2], rate[2]),
        }

        def moving_llamacpp(line: bytes) -> Callable[[int], str] | None:
            for prefix, (start, per_step) in lines.items():
                if line.startswith(prefix):
                    return _counter(start, per_step, g)
            return None

        return _cut(page, moving_llamacpp)
    if kind == "dcgm":
        gpus = [
            GpuState(
                index=i,
                uuid=g["uuid"],
                model_name="NVIDIA H100 80GB HBM3",
                power_watts=float(g["watts"]),
                energy_mj=1_000_000_000 + i * 12_345_678,
                namespace=g.get("namespace", ""),
                pod=g.get("pod", ""),
                container="server" if g.get("pod") else "",
            )
            for i, g in enumerate(endpoint["gpus"])
        ]
        page = render_dcgm(gpus, hostname=endpoint["node"])
        by_uuid = {
            f'UUID="{g.uuid}"'.encode(): (
                int(g.energy_mj),
                int(g.power_watts * STEP_SECONDS * 1000.0),
            )
            for g in gpus
        }

        def moving_dcgm(line: bytes) -> Callable[[int], str] | None:
            if not line.startswith(b"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{"):
                return None
            for uuid, (start, per_step) in by_uuid.items():
                if uuid in line:
                    return _counter(start, per_step, lambda v: str(int(v)))
            return None

        return _cut(page, moving_dcgm)
    raise ValueError(f"unknown endpoint kind {kind!r}")


PORTS = {"vllm": 8000, "llamacpp": 8080, "dcgm": 9400}


class Fleet:
    """The endpoints of one fleet on one server farm; :attr:`step` is read by every request."""

    def __init__(self, farm: ServerFarm, second_octet: int | None = None) -> None:
        self.farm = farm
        self.pool = LoopbackPool(second_octet)
        self.step = 0
        self.addresses: list[str] = []

    def add(self, endpoint: dict[str, Any]) -> str:
        template = template_of(endpoint)
        port = PORTS[endpoint["kind"]]

        def page() -> bytes:
            return template.render(self.step)

        server = bind(self.pool, lambda ip: self.farm.add(ip, port, page))
        self.addresses.append(server.host)
        return server.host


def serve(spec: dict[str, Any], lines: Sequence[str] | Any, out: Any) -> int:
    with ServerFarm() as farm:
        fleet = Fleet(farm, spec.get("second_octet"))
        try:
            for endpoint in spec["endpoints"]:
                fleet.add(endpoint)
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            print(f"error {type(exc).__name__}: {exc}", file=out, flush=True)
            return 1
        print("ready " + json.dumps({"addresses": fleet.addresses}), file=out, flush=True)
        for line in lines:
            command, _, arg = line.strip().partition(" ")
            if command == "step":
                fleet.step = int(arg)
                print(f"ok {fleet.step}", file=out, flush=True)
            elif command == "quit":
                break
            elif command:
                print(f"error unknown command {command!r}", file=out, flush=True)
    return 0


def main() -> int:
    first = sys.stdin.readline()
    if not first:
        return 1
    return serve(json.loads(first), sys.stdin, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
