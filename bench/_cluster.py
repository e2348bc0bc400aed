"""A simulated cluster for the cycle, scaling and memory benchmarks.

Three processes:

- the Kubernetes API emulator (``python -m infercost.testing.kubesim``), whose request log
  counts the operator's writes;
- the fleet (:mod:`bench._fleet`): every inference pod's server and every node's DCGM exporter,
  serving pre-rendered pages;
- this one: the objects are created through the emulator with the scenario builders of
  :mod:`infercost.testing.scenario`, then the whole operator (:class:`Operator` with its default
  components: informers, sampler, CostProfile controller, ledger keeper and checkpoint,
  UsageReport and TokenBudget controllers) runs here on a :class:`FakeClock`, without leader
  election. Each :meth:`Cluster.cycle` moves the clock one scrape interval (and the fleet one
  step when there is traffic), waits until the sample is booked and every controller is idle,
  and returns the CPU this process spent and the writes the emulator received.

The cluster: ``pods`` inference pods, four to a node of 8 GPUs (each pod holds 2, named by
DCGM), spread over namespaces; one in ten is a llama.cpp server, one vLLM pod in ten serves two
models; ``profiles`` CostProfiles select the nodes by a pool label; four UsageReports per
profile (daily, weekly, monthly, and monthly filtered to a few namespaces); a TokenBudget per
namespace, up to ``budgets``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
from prometheus_client import CollectorRegistry

from bench._timing import log
from infercost.controllers.config import OperatorConfig
from infercost.controllers.operator import Operator, configure_logging
from infercost.controllers.sampling import Sample
from infercost.kube.client import load_api_client
from infercost.kube.clock import FakeClock
from infercost.kube.rest import CONFIGMAPS, NODES, PODS, ConflictError, RestClient
from infercost.testing.scenario import (
    COSTPROFILES,
    NAMESPACES,
    TOKENBUDGETS,
    USAGEREPORTS,
    costprofile,
    gpu_node,
    make_dcgm_exporter_pod,
    make_pod,
    tokenbudget,
    usagereport,
)

ROOT = Path(__file__).resolve().parents[1]
OPERATOR_NAMESPACE = "infercost-system"
GPUS_PER_NODE = 8
PODS_PER_NODE = 4
INTERVAL_SECONDS = 30.0
POOL_LABEL = "bench.infercost.ai/pool"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@attrs.frozen
class Shape:
    """How big the simulated cluster is."""

    pods: int = 2000
    profiles: int = 50
    reports: int = 200
    budgets: int = 100
    namespaces: int = 100

    @property
    def nodes(self) -> int:
        return max(1, -(-self.pods // PODS_PER_NODE))

    @classmethod
    def scaled(cls, pods: int) -> Shape:
        """The full-size cluster's proportions at ``pods`` pods (40 pods per profile, four
        reports per profile, a namespace and a budget per 20 pods)."""
        profiles = max(1, round(pods / 40))
        namespaces = max(1, round(pods / 20))
        return cls(
            pods=pods,
            profiles=profiles,
            reports=4 * profiles,
            budgets=namespaces,
            namespaces=namespaces,
        )


@attrs.frozen
class CycleResult:
    cpu_seconds: float
    wall_seconds: float
    writes: dict[str, int]
    by_thread: dict[str, float] = attrs.field(factory=dict)
    """CPU seconds per kind of thread (``scrape``, ``sampler``, ``usagereport-worker``, …)."""

    @property
    def total_writes(self) -> int:
        return sum(self.writes.values())


# Runs a module as ``python -m`` would, after asking Linux to end it when its parent ends (a
# benchmark stopped by a signal leaves no emulator or fleet behind).
_RUN_MODULE = """
import ctypes, runpy, signal, sys
try:
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def _module_command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-c", _RUN_MODULE, module, *args]


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds of every live thread of this process, summed by name without its number
    (``scrape-7`` → ``scrape``), read from /proc (Linux; empty elsewhere)."""
    clock_ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        tid = thread.native_id
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        seconds = (int(fields[11]) + int(fields[12])) / clock_ticks
        kind = re.sub(r"[-_]?\d+$", "", thread.name) or thread.name
        out[kind] = out.get(kind, 0.0) + seconds
    return out


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _read_line(proc: subprocess.Popen[str], prefix: str, what: str, timeout: float) -> str:
    """The first stdout line of ``proc`` starting with ``prefix`` (lines before are skipped)."""
    assert proc.stdout is not None
    found: list[str] = []

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(prefix) or line.startswith("error"):
                found.append(line.strip())
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    if not found:
        raise RuntimeError(f"{what} did not start within {timeout:.0f} s")
    if found[0].startswith("error"):
        raise RuntimeError(f"{what}: {found[0]}")
    return found[0][len(prefix) :].strip()


class Emulator:
    """The API emulator in a child process."""

    def __init__(self, workdir: Path) -> None:
        self.kubeconfig = workdir / "kubeconfig"
        self.proc = subprocess.Popen(
            _module_command(
                "infercost.testing.kubesim",
                "--port",
                "0",
                "--crds",
                str(ROOT / "manifests" / "crd"),
                "--crds",
                str(ROOT / "infercost" / "testing" / "crds"),
                "--kubeconfig",
                str(self.kubeconfig),
                "--namespace",
                OPERATOR_NAMESPACE,
                "--watch-history",
                "100000",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=_env(),
        )
        self.url = _read_line(self.proc, "kubesim ready on ", "the API emulator", 60)
        self.rest = RestClient(load_api_client(str(self.kubeconfig)), user_agent="bench-setup")

    def _control(self, method: str, path: str) -> Any:
        import urllib.request

        req = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")

    def clear_requests(self) -> None:
        self._control("DELETE", "/_kubesim/requests")

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._control("GET", "/_kubesim/requests")
        return result

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class FleetProcess:
    """The simulated servers and exporters in a child process (:mod:`bench._fleet`)."""

    def __init__(self, endpoints: list[dict[str, Any]]) -> None:
        self.proc = subprocess.Popen(
            _module_command("bench._fleet"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=_env(),
            cwd=ROOT,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"endpoints": endpoints}) + "\n")
        self.proc.stdin.flush()
        ready = _read_line(self.proc, "ready ", "the simulated fleet", 300)
        self.addresses: list[str] = json.loads(ready)["addresses"]
        self.step = 0

    def set_step(self, step: int) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"step {step}\n")
        self.proc.stdin.flush()
        _read_line(self.proc, "ok ", "the fleet step", 30)
        self.step = step

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                self.proc.wait(10)


@attrs.frozen
class _PodPlan:
    deployment: str
    name: str
    namespace: str
    node: str
    backend: str
    models: tuple[str, ...]


def _plan(shape: Shape) -> tuple[list[str], list[_PodPlan]]:
    nodes = [f"gpu-{i:05d}" for i in range(shape.nodes)]
    pods = []
    for i in range(shape.pods):
        backend = "llamacpp" if i % 10 == 9 else "vllm"
        if backend == "llamacpp":
            models: tuple[str, ...] = ("llama-3.2-3b-instruct-q4",)
        elif i % 10 == 4:
            models = ("meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct")
        else:
            models = (("meta-llama/Llama-3.3-70B-Instruct", "mistralai/Mistral-7B-v0.3")[i % 2],)
        deployment = f"{backend}-{i // 2:05d}"
        pods.append(
            _PodPlan(
                deployment=deployment,
                name=f"{deployment}-7d9f8c6b5-{i % 2}x{i:05d}",
                namespace=f"team-{i % shape.namespaces:03d}",
                node=nodes[i // PODS_PER_NODE],
                backend=backend,
                models=models,
            )
        )
    return nodes, pods


def _gpu_uuid(node: str, index: int) -> str:
    return f"GPU-{zlib.crc32(f'{node}/{index}'.encode()):08x}-4b1d-8e2f-{index:04d}-{node}"


def _endpoints(shape: Shape, nodes: list[str], pods: list[_PodPlan]) -> list[dict[str, Any]]:
    """Fleet endpoints: every inference pod, then every node's exporter."""
    out: list[dict[str, Any]] = []
    for i, pod in enumerate(pods):
        rate = [1800 + 13 * (i % 50), 600 + 7 * (i % 30), 420 + 5 * (i % 40)]
        base = [9_000_000 + 1_000 * i, 2_500_000 + 300 * i, 2_000_000 + 200 * i]
        if pod.backend == "vllm":
            out.append({"kind": "vllm", "models": list(pod.models), "base": base, "rate": rate})
        else:
            out.append({"kind": "llamacpp", "model": pod.models[0], "base": base, "rate": rate})
    by_node: dict[str, list[_PodPlan]] = {}
    for pod in pods:
        by_node.setdefault(pod.node, []).append(pod)
    gpus_per_pod = GPUS_PER_NODE // PODS_PER_NODE
    for node in nodes:
        on_node = by_node.get(node, [])
        gpus = []
        for g in range(GPUS_PER_NODE):
            holder = on_node[g // gpus_per_pod] if g // gpus_per_pod < len(on_node) else None
            gpus.append(
                {
                    "uuid": _gpu_uuid(node, g),
                    "watts": 420.0 + 10 * (g % 5) if holder else 68.0,
                    "namespace": holder.namespace if holder else "",
                    "pod": holder.name if holder else "",
                }
            )
        out.append({"kind": "dcgm", "node": node, "gpus": gpus})
    return out


def _inference_pod(plan: _PodPlan, ip: str) -> dict[str, Any]:
    """An inference pod as a Deployment creates it: the fields the operator reads, and the ones
    a real pod carries that it must not keep (image, args, env, probes, volumes)."""
    deployment = plan.deployment
    port = 8080 if plan.backend == "llamacpp" else 8000
    pod = make_pod(
        plan.name,
        namespace=plan.namespace,
        ip=ip,
        node=plan.node,
        labels={
            "app.kubernetes.io/name": deployment,
            "app.kubernetes.io/component": "inference",
            "app.kubernetes.io/part-of": "llm-platform",
        },
        annotations={
            "infercost.ai/backend": plan.backend,
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port),
            "kubectl.kubernetes.io/restartedAt": "2026-11-20T09:12:44Z",
        },
        gpus=GPUS_PER_NODE // PODS_PER_NODE,
        ports=[("http", port)],
        containers=["server", "log-shipper"],
        owner=("ReplicaSet", f"{deployment}-7d9f8c6b5"),
        template_hash="7d9f8c6b5",
    )
    server = pod["spec"]["containers"][0]
    server.update(
        {
            "image": "vllm/vllm-openai:v0.11.0"
            if plan.backend == "vllm"
            else "ghcr.io/ggml-org/llama.cpp:server-cuda",
            "args": ["--model", plan.models[0], "--tensor-parallel-size", "2", "--port", str(port)],
            "env": [
                {"name": "HF_HOME", "value": "/models/cache"},
                {"name": "VLLM_LOGGING_LEVEL", "value": "INFO"},
                {
                    "name": "HF_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}},
                },
            ],
            "readinessProbe": {"httpGet": {"path": "/health", "port": port}, "periodSeconds": 5},
            "volumeMounts": [
                {"name": "models", "mountPath": "/models"},
                {"name": "shm", "mountPath": "/dev/shm"},
            ],
        }
    )
    server["resources"]["requests"] = {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "2"}
    pod["spec"]["containers"][1].update({"image": "fluent/fluent-bit:3.1", "resources": {}})
    pod["spec"].update(
        {
            "volumes": [
                {"name": "models", "persistentVolumeClaim": {"claimName": "models"}},
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
            ],
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "serviceAccountName": "default",
        }
    )
    pod["status"]["conditions"] = [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-27T08:01:10Z"},
        {"type": "ContainersReady", "status": "True"},
        {"type": "PodScheduled", "status": "True"},
    ]
    pod["status"]["hostIP"] = "10.0.0.1"
    return pod


class Cluster:
    """See the module docstring. Use as a context manager; everything it starts, it stops."""

    def __init__(self, shape: Shape, *, workers: int = 8) -> None:
        self.shape = shape
        self.workers = workers
        self._tmp = tempfile.TemporaryDirectory(prefix="infercost-bench-")
        self.emulator: Emulator | None = None
        self.fleet: FleetProcess | None = None
        self.operator: Operator | None = None
        self.clock = FakeClock(dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC))
        self._sampled = threading.Condition()
        self._last_sample_time: dt.datetime | None = None
        """Of the last published sample; the bench keeps no sample (it would be measured)."""
        self.idle_rate = 0.0

    # -- setup -------------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        shape = self.shape
        started = time.monotonic()
        self.emulator = Emulator(Path(self._tmp.name))
        nodes, pods = _plan(shape)
        endpoints = _endpoints(shape, nodes, pods)
        self.fleet = FleetProcess(endpoints)
        log(
            f"emulator and fleet up ({len(endpoints)} endpoints) in "
            f"{time.monotonic() - started:.1f} s; creating objects"
        )
        self._create(nodes, pods, self.fleet.addresses)
        log(f"objects created in {time.monotonic() - started:.1f} s; starting the operator")
        del nodes, pods, endpoints
        gc.collect()

    def _create(self, nodes: list[str], pods: list[_PodPlan], addresses: list[str]) -> None:
        assert self.emulator is not None
        rest = self.emulator.rest
        shape = self.shape
        for ns in sorted({p.namespace for p in pods} | {"gpu-operator"}):
            with contextlib.suppress(ConflictError):
                rest.create(
                    NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                )

        def create_pod(pod: dict[str, Any]) -> None:
            meta = pod["metadata"]
            rest.create(PODS, pod, meta["namespace"])
            rest.merge_patch(
                PODS, meta["name"], {"status": pod["status"]}, meta["namespace"], "status"
            )

        with ThreadPoolExecutor(self.workers) as pool:
            list(
                pool.map(
                    lambda i: rest.create(
                        NODES,
                        gpu_node(nodes[i], gpus=GPUS_PER_NODE, labels={POOL_LABEL: self._pool(i)}),
                    ),
                    range(len(nodes)),
                )
            )
            list(
                pool.map(
                    lambda i: create_pod(_inference_pod(pods[i], addresses[i])),
                    range(len(pods)),
                )
            )
            list(
                pool.map(
                    lambda i: create_pod(
                        make_dcgm_exporter_pod(nodes[i], addresses[len(pods) + i])
                    ),
                    range(len(nodes)),
                )
            )
        profiles = [f"pool-{k:03d}" for k in range(shape.profiles)]
        for k, name in enumerate(profiles):
            members = sum(1 for i in range(len(nodes)) if self._pool(i) == name)
            rest.create(
                COSTPROFILES,
                costprofile(
                    name,
                    namespace=OPERATOR_NAMESPACE,
                    selector={POOL_LABEL: name},
                    gpu_count=max(1, members) * GPUS_PER_NODE,
                    purchase_price_usd=280_000.0 * max(1, members),
                    maintenance_percent_per_year=0.08,
                    rate_per_kwh=0.08 + 0.01 * (k % 5),
                    pue_factor=1.3,
                ),
                OPERATOR_NAMESPACE,
            )
        team_namespaces = sorted({p.namespace for p in pods})
        for r in range(shape.reports):
            profile = profiles[r % len(profiles)]
            kind = r // len(profiles) % 4
            rest.create(
                USAGEREPORTS,
                usagereport(
                    f"{profile}-{('daily', 'weekly', 'monthly', 'teams')[kind]}-{r}",
                    namespace=OPERATOR_NAMESPACE,
                    profile=profile,
                    schedule=("daily", "weekly", "monthly", "monthly")[kind],
                    namespaces=team_namespaces[r % len(team_namespaces) :][:3] if kind == 3 else (),
                ),
                OPERATOR_NAMESPACE,
            )
        for b in range(min(shape.budgets, len(team_namespaces))):
            ns = team_namespaces[b]
            rest.create(
                TOKENBUDGETS,
                tokenbudget(
                    "monthly",
                    namespace=ns,
                    scope=ns,
                    monthly_limit_usd=2_000.0 + 100 * b,
                    thresholds=((50, "info"), (80, "warning"), (100, "critical")),
                ),
                ns,
            )

    def _pool(self, node_index: int) -> str:
        return f"pool-{node_index % self.shape.profiles:03d}"

    # -- the operator ------------------------------------------------------------------------

    def start_operator(self, *, log_level: str = "warning", measure_idle: bool = True) -> Operator:
        assert self.emulator is not None
        configure_logging("console", log_level, stream=sys.stderr)
        config = OperatorConfig(
            kubeconfig=str(self.emulator.kubeconfig),
            namespace=OPERATOR_NAMESPACE,
            metrics_bind=("127.0.0.1", 0),
            health_bind=("127.0.0.1", 0),
            leader_elect=False,
            scrape_interval=INTERVAL_SECONDS,
            log_format="console",
            log_level=log_level,
        )
        self.operator = Operator(
            config, registry=CollectorRegistry(), clock=self.clock, identity="bench"
        )
        self.operator.start()
        assert self.operator.context is not None
        self.operator.context.sampler.add_listener(self._on_sample)
        self._wait(lambda: self.operator is not None and self.operator.ready()[0], 600, "caches")
        latest = self.operator.context.sampler.latest()
        if latest is not None:
            self._on_sample(latest)
        self._wait(lambda: self._last_sample_time is not None, 600, "the first sample")
        self.settle()
        if measure_idle:
            self.idle_rate = self.idle_cpu_rate()
        return self.operator

    def _on_sample(self, sample: Sample) -> None:
        with self._sampled:
            self._last_sample_time = sample.time
            self._sampled.notify_all()

    def _sample_at(self, at: dt.datetime) -> bool:
        with self._sampled:
            return self._last_sample_time is not None and self._last_sample_time >= at

    @staticmethod
    def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.02)

    def _queues_busy(self) -> float:
        """Keys waiting in the work queues (weighted to dominate) plus reconciles run so far:
        unchanged between two looks means nothing happened. Reads only those two series (the
        registry's other collectors render every report's series)."""
        assert self.operator is not None
        metrics = self.operator.metrics
        total = 0.0
        for family in (*metrics.workqueue_depth.collect(), *metrics.reconcile_total.collect()):
            for s in family.samples:
                if s.name == "infercost_workqueue_depth":
                    total += s.value * 1e9
                elif s.name == "infercost_reconcile_total":
                    total += s.value
        return total

    def settle(self, quiet_seconds: float = 0.3, timeout: float = 600.0) -> None:
        """Wait until no queue holds work, no reconcile ran and this process used under 15 %
        of a CPU (threads waiting on the fake clock poll it) for ``quiet_seconds``."""
        deadline = time.monotonic() + timeout
        last = (self._queues_busy(), time.process_time(), time.monotonic())
        while True:
            time.sleep(quiet_seconds / 5)
            now = (self._queues_busy(), time.process_time(), time.monotonic())
            if now[0] != last[0] or now[0] >= 1e9:
                last = now
            elif now[2] - last[2] >= quiet_seconds:
                if (now[1] - last[1]) / (now[2] - last[2]) < 0.15:
                    return
                last = now
            if time.monotonic() > deadline:
                raise RuntimeError("the operator did not settle")

    def idle_cpu_rate(self, seconds: float = 2.0) -> float:
        """CPU seconds per second this process spends while nothing happens: the threads that
        wait on the fake clock poll it; a real clock costs nothing there. Subtracted from
        each cycle."""
        cpu, wall = time.process_time(), time.monotonic()
        time.sleep(seconds)
        return (time.process_time() - cpu) / (time.monotonic() - wall)

    def cycle(self, *, traffic: bool) -> CycleResult:
        """One sampling cycle: with traffic, the clock and the fleet move one interval; without,
        the clock stays (a sample is taken at the same instant)."""
        assert self.emulator is not None and self.fleet is not None
        assert self.operator is not None and self.operator.context is not None
        self.emulator.clear_requests()
        threads_before = thread_cpu_seconds()
        wall, cpu = time.monotonic(), time.process_time()
        if traffic:
            self.fleet.set_step(self.fleet.step + 1)
            target = self.clock.now() + dt.timedelta(seconds=INTERVAL_SECONDS)
            self.clock.advance(INTERVAL_SECONDS)
            self._wait(lambda: self._sample_at(target), 600, "the sample")
        else:
            self.operator.context.sampler.sample_once()
        self.settle()
        wall_used = time.monotonic() - wall
        cpu_used = max(0.0, time.process_time() - cpu - self.idle_rate * wall_used)
        threads_after = thread_cpu_seconds()
        by_thread = {
            kind: round(seconds - threads_before.get(kind, 0.0), 2)
            for kind, seconds in threads_after.items()
            if seconds - threads_before.get(kind, 0.0) >= 0.01
        }
        writes: Counter[str] = Counter()
        for r in self.emulator.requests():
            if r.get("verb") not in WRITE_VERBS or r.get("user_agent", "").startswith("bench"):
                continue
            resource = r.get("resource") or "?"
            if resource == "configmaps":
                kind = "checkpoint"
            elif r.get("subresource") == "status":
                kind = f"status:{resource}"
            else:
                kind = resource
            writes[kind] += 1
        return CycleResult(cpu_used, wall_used, dict(writes), by_thread)

    def checkpoint_bytes(self) -> dict[str, int]:
        """Bytes of the ledger's ConfigMaps (binaryData as stored, decoded from base64)."""
        assert self.emulator is not None
        import base64

        listed = self.emulator.rest.list(
            CONFIGMAPS, OPERATOR_NAMESPACE, label_selector="infercost.ai/ledger=true"
        )
        sizes = []
        for cm in listed["items"]:
            data = cm.get("binaryData") or {}
            sizes.append(sum(len(base64.b64decode(v)) for v in data.values()))
        return {"objects": len(sizes), "total": sum(sizes), "largest": max(sizes, default=0)}

    def close(self) -> None:
        if self.operator is not None:
            with contextlib.suppress(Exception):
                self.operator.request_stop()
                self.operator.shutdown()
            self.operator = None
        if self.fleet is not None:
            self.fleet.close()
            self.fleet = None
        if self.emulator is not None:
            self.emulator.close()
            self.emulator = None
        self._tmp.cleanup()


@contextlib.contextmanager
def running(shape: Shape) -> Iterator[Cluster]:
    with Cluster(shape) as cluster:
        cluster.start_operator()
        yield cluster
