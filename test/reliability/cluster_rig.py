"""The reliability suite's rig: the real operator process against the emulator and simulated
servers, with ground truth and an independent recomputation of the money.

- :class:`OperatorProcess` is ``python -m infercost run`` (or :mod:`lease_launcher` when a
  test needs short Lease timings) as a subprocess, its logs in files, its ``/metrics`` parsed.
- :class:`Cluster` builds the cluster in the emulator (nodes, DCGM exporters, inference pods
  pointing at simulated servers, CostProfiles, UsageReports) and reads what the operator left
  there: report statuses and the ledger checkpoint (ConfigMaps ``infercost-ledger-*``).

Ground truth is what the simulated servers served (``truth()``). The money is recomputed from
first principles: every test prices GPUs at exactly $1 per GPU-hour, so amortization is GPUs ×
covered hours, where the covered span runs from the ledger's first sample to its last booked
one (both read from the checkpoint: they are the operator's own clock readings, which nothing
else knows to the microsecond); electricity is the simulated exporters' energy counters × rate
× PUE. GPUs draw power only while the test says so (:meth:`Cluster.power`), so the energy
between the ledger's first and last counter readings is known exactly.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
from prometheus_client.parser import text_string_to_metric_families

import infercost
from infercost.controllers.operator import CUSTOM_RESOURCES
from infercost.kube.rest import CONFIGMAPS, NODES, PODS, NotFoundError, RestClient
from infercost.testing.kubefixtures import KubeEnv, eventually
from infercost.testing.simservers.fixtures import SimServers
from infercost.testing.simservers.objects import make_dcgm_exporter_pod, make_node, make_pod
from infercost.testing.simservers.servers import SimDcgmExporter, SimInferenceServer

__all__ = [
    "COSTPROFILES",
    "OPERATOR_NS",
    "PROFILE_NS",
    "PUE",
    "RATE",
    "TEST_AGENT",
    "USAGEREPORTS",
    "Cluster",
    "LeaseTimings",
    "OperatorProcess",
    "ShiftedClock",
]

OPERATOR_NS = "infercost-system"
PROFILE_NS = "infra"
TEST_AGENT = "reliability-test"
COSTPROFILES = CUSTOM_RESOURCES["CostProfile"]
USAGEREPORTS = CUSTOM_RESOURCES["UsageReport"]

USD_PER_GPU_HOUR = 1.0
# $1 per GPU-hour: 3 years × 8760 h of one GPU cost $26,280.
PRICE_PER_GPU = 26_280.0
RATE, PUE = 0.12, 1.25
MJ_PER_KWH = 3.6e9

_LAUNCHER = Path(__file__).with_name("lease_launcher.py")
_REPO = Path(infercost.__file__).resolve().parent.parent
_HOT_SHARD = re.compile(r"^infercost-ledger-\d+$")


class ShiftedClock:
    """Wall time shifted by an offset the test moves: the simulated servers' clock, equal to
    the operator's (``--clock-offset``) so that both agree on what day it is."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self.offset_seconds = offset_seconds

    def __call__(self) -> float:
        return time.time() + self.offset_seconds

    def shift(self, seconds: float) -> None:
        """Jump forward (while the operator is down: it was down that much longer)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset_seconds += seconds

    def rfc3339(self, at: float | None = None) -> str:
        when = dt.datetime.fromtimestamp(self() if at is None else at, dt.UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@attrs.frozen
class LeaseTimings:
    """Short Lease timings for failover tests (see :mod:`lease_launcher`)."""

    lease_duration: float = 4.0
    renew_deadline: float = 3.0
    retry_period: float = 0.5


class OperatorProcess:
    """One ``infercost run`` process; stdout and stderr go to files under ``log_dir``."""

    def __init__(
        self,
        name: str,
        kubeconfig: str,
        log_dir: Path,
        *,
        clock_offset: float = 0.0,
        interval: str = "500ms",
        timeout: str = "400ms",
        status_interval: str = "1s",
        leader_elect: bool = False,
        lease: LeaseTimings | None = None,
        extra: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.metrics_port = free_port()
        self.health_port = free_port()
        flags = [
            "--kubeconfig",
            kubeconfig,
            "--namespace",
            OPERATOR_NS,
            "--scrape-interval",
            interval,
            "--scrape-timeout",
            timeout,
            "--status-interval",
            status_interval,
            "--metrics-bind",
            f"127.0.0.1:{self.metrics_port}",
            "--health-bind",
            f"127.0.0.1:{self.health_port}",
            "--clock-offset",
            f"{clock_offset:.6f}s",
            "--log-level",
            "debug",
            "--leader-elect" if leader_elect or lease is not None else "--no-leader-elect",
            *extra,
        ]
        if lease is None:
            argv = [sys.executable, "-m", "infercost", "run", *flags]
        else:
            argv = [
                sys.executable,
                str(_LAUNCHER),
                "--lease-duration",
                str(lease.lease_duration),
                "--renew-deadline",
                str(lease.renew_deadline),
                "--retry-period",
                str(lease.retry_period),
                "--",
                *flags,
            ]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("INFERCOST_")}
        full_env.pop("KUBECONFIG", None)
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_REPO), os.environ.get("PYTHONPATH", "")) if p
        )
        full_env.update(env or {})
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self.stderr_path = log_dir / f"{name}.stderr.log"
        self._stdout = self.stdout_path.open("ab")
        self._stderr = self.stderr_path.open("ab")
        self.proc = subprocess.Popen(argv, stdout=self._stdout, stderr=self._stderr, env=full_env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no checkpoint, no Lease release."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._close_files()

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; the exit status."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self._close_files()
        return code

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Make sure the process is gone (test teardown)."""
        if self.alive():
            self.resume()
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._close_files()

    def _close_files(self) -> None:
        for f in (self._stdout, self._stderr):
            if not f.closed:
                f.close()

    def logs(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines of stdout."""
        out = []
        for line in self.stdout_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def http(self, port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]] | None:
        """Every sample of ``/metrics`` by sample name; ``None`` when it cannot be read."""
        code, body = self.http(self.metrics_port, "/metrics")
        if code != 200:
            return None
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(body):
            for s in family.samples:
                out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
        return out

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
        found = self.metrics() or {}
        return sum(
            v for lbl, v in found.get(name, ()) if all(lbl.get(k) == x for k, x in labels.items())
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n{self.logs()}")
            return self.http(self.health_port, "/readyz")[0] == 200

        eventually(ready, timeout=timeout, interval=0.1, what=f"{self.name} ready")


@attrs.define
class PodEntry:
    namespace: str
    name: str
    node: str
    server: SimInferenceServer
    annotations: dict[str, str]
    gpu: int | None
    restarts: int = 0


def _decode_state(configmap: Mapping[str, Any]) -> dict[str, Any]:
    raw = base64.b64decode((configmap.get("binaryData") or {})["state"])
    return dict(json.loads(zlib.decompress(raw)))


class Cluster:
    """The emulated cluster, its simulated servers, and the operator processes of one test."""

    def __init__(
        self, kube: KubeEnv, servers: SimServers, clock: ShiftedClock, log_dir: Path
    ) -> None:
        self.kube = kube
        self.sim = kube.sim
        self.rest: RestClient = kube.new_rest(user_agent=TEST_AGENT)
        self.servers = servers
        self.clock = clock
        self.log_dir = log_dir
        self.exporters: dict[str, SimDcgmExporter] = {}
        self.pods: dict[tuple[str, str], PodEntry] = {}
        # deleted pods: what they served up to their last scrape still counts
        self.gone: list[PodEntry] = []
        self.operators: list[OperatorProcess] = []
        self._power_on_mj: dict[tuple[str, int], int] = {}
        self._gained_mj: dict[tuple[str, int], int] = {}
        for ns in (PROFILE_NS, "gpu-operator"):
            self.sim.create_namespace(ns)

    # -- operator processes -------------------------------------------------------------------

    def operator(
        self, name: str = "operator", *, kubeconfig: str | None = None, **options: Any
    ) -> OperatorProcess:
        options.setdefault("clock_offset", self.clock.offset_seconds)
        op = OperatorProcess(name, kubeconfig or self.sim.kubeconfig, self.log_dir, **options)
        self.operators.append(op)
        return op

    def close(self) -> None:
        for op in self.operators:
            op.close()

    def all_logs(self) -> str:
        return "\n".join(op.logs() for op in self.operators)

    # -- building -----------------------------------------------------------------------------

    def node(
        self, name: str, *, gpus: int = 2, labels: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        return self.rest.create(
            NODES, make_node(name, gpus=gpus, labels=dict(labels or {}), boot_id=f"boot-{name}-0")
        )

    def reboot_node(self, name: str, generation: int) -> None:
        """A new ``status.nodeInfo.bootID`` (the kubelet reports it after a reboot)."""
        self.rest.merge_patch(
            NODES,
            name,
            {"status": {"nodeInfo": {"bootID": f"boot-{name}-{generation}"}}},
            subresource="status",
        )

    def exporter(self, node: str, *, gpus: int = 2) -> SimDcgmExporter:
        """A DCGM exporter for ``node``; its GPUs draw nothing until :meth:`power`."""
        exporter = self.servers.dcgm(gpus=gpus, node=node, clock=self.clock)
        for gpu in exporter.gpus:
            exporter.set_power(gpu.index, 0.0)
        self._create_pod(make_dcgm_exporter_pod(node, exporter.host))
        self.exporters[node] = exporter
        return exporter

    def inference_pod(
        self,
        name: str,
        namespace: str,
        node: str,
        *,
        backend: str = "vllm",
        models: tuple[str, ...] = ("meta-llama/Llama-3.1-8B-Instruct",),
        gpu: int | None = None,
        started_at: float | None = None,
        annotations: Mapping[str, str] | None = None,
        server: SimInferenceServer | None = None,
    ) -> SimInferenceServer:
        """A Running inference pod served by a simulated server (``server`` to reuse one).

        ``gpu`` is the index of the node's GPU the pod holds (DCGM pod mapping and a
        ``nvidia.com/gpu`` limit); ``started_at`` its ``status.startTime`` (default: an hour
        ago, so it is older than any coverage and only sets watermarks when first seen).
        """
        if server is None:
            server = self.servers.inference(backend, models=list(models), clock=self.clock)
        self.sim.create_namespace(namespace)
        notes = {"infercost.ai/backend": backend, **(annotations or {})}
        start = self.clock() - 3600 if started_at is None else started_at
        pod = make_pod(
            name,
            namespace=namespace,
            ip=server.host,
            node=node,
            annotations=notes,
            gpus=1 if gpu is not None else 0,
            start_time=self.clock.rfc3339(start),
        )
        self._create_pod(pod)
        if gpu is not None:
            self.exporters[node].assign(gpu, namespace, name)
        self.pods[(namespace, name)] = PodEntry(namespace, name, node, server, notes, gpu)
        return server

    def remove_node(self, name: str) -> None:
        """The Node object goes, and with it the pods bound to it (the exporter's too)."""
        for (ns, pod), entry in list(self.pods.items()):
            if entry.node == name:
                self.delete_pod(ns, pod)
        self.rest.delete(PODS, f"nvidia-dcgm-exporter-{name}", "gpu-operator")
        self.rest.delete(NODES, name)

    def delete_pod(self, namespace: str, name: str) -> PodEntry:
        self.rest.delete(PODS, name, namespace)
        entry = self.pods.pop((namespace, name))
        self.gone.append(entry)
        if entry.gpu is not None:
            self.exporters[entry.node].release(entry.gpu)
        return entry

    def recreate_pod(self, entry: PodEntry) -> None:
        """The same pod name again (a new UID, started now), served by a restarted server."""
        entry.server.reset()
        self.inference_pod(
            entry.name,
            entry.namespace,
            entry.node,
            backend=entry.annotations["infercost.ai/backend"],
            gpu=entry.gpu,
            started_at=self.clock(),
            server=entry.server,
        )

    def restart_container(self, namespace: str, name: str) -> None:
        """The serving container restarts: counters back to 0, ``restartCount`` + 1."""
        entry = self.pods[(namespace, name)]
        entry.server.reset()
        entry.restarts += 1
        self.rest.merge_patch(
            PODS,
            name,
            {"status": {"containerStatuses": [{"name": "server", "restartCount": entry.restarts}]}},
            namespace,
            "status",
        )

    def _create_pod(self, pod: dict[str, Any]) -> None:
        ns = pod["metadata"]["namespace"]
        self.sim.create_namespace(ns)
        self.rest.create(PODS, pod, ns)
        self.rest.merge_patch(
            PODS, pod["metadata"]["name"], {"status": pod["status"]}, ns, "status"
        )

    def profile(
        self,
        name: str,
        selector: Mapping[str, str],
        *,
        gpu_count: int = 2,
        namespace: str = PROFILE_NS,
    ) -> None:
        self.rest.create(
            COSTPROFILES,
            {
                "apiVersion": "finops.infercost.ai/v1alpha1",
                "kind": "CostProfile",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "hardware": {
                        "gpuModel": "H100",
                        "gpuCount": gpu_count,
                        "purchasePriceUSD": PRICE_PER_GPU * gpu_count,
                    },
                    "electricity": {"ratePerKWh": RATE, "pueFactor": PUE},
                    "nodeSelector": dict(selector),
                },
            },
            namespace,
        )

    def report(
        self, name: str, profile: str, *, namespace: str = PROFILE_NS, schedule: str = "daily"
    ) -> None:
        self.rest.create(
            USAGEREPORTS,
            {
                "apiVersion": "finops.infercost.ai/v1alpha1",
                "kind": "UsageReport",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"costProfileRef": profile, "schedule": schedule},
            },
            namespace,
        )

    # -- power --------------------------------------------------------------------------------

    def power(self, watts: float) -> float:
        """Every GPU of every exporter draws ``watts`` from now; returns now (the shared
        clock). The counters at the first switch-on are remembered for :meth:`energy_kwh`."""
        for node, exporter in self.exporters.items():
            for gpu in exporter.gpus:
                exporter.set_power(gpu.index, watts)
                self._power_on_mj.setdefault((node, gpu.index), gpu.energy_mj)
        return self.clock()

    def power_node(self, node: str, watts: float) -> float:
        """Like :meth:`power`, for one node's GPUs."""
        exporter = self.exporters[node]
        for gpu in exporter.gpus:
            exporter.set_power(gpu.index, watts)
            self._power_on_mj.setdefault((node, gpu.index), gpu.energy_mj)
        return self.clock()

    def reset_energy(self, node: str) -> None:
        """The node's energy counters restart from 0 (a reboot); what they gained is kept."""
        exporter = self.exporters[node]
        with exporter._lock:  # nothing accrues between the last reading and the reset
            exporter.advance()
            for gpu in exporter.gpus:
                key = (node, gpu.index)
                if key in self._power_on_mj:
                    gained = gpu.energy_mj - self._power_on_mj[key]
                    self._gained_mj[key] = self._gained_mj.get(key, 0) + gained
                    self._power_on_mj[key] = 0
            exporter.reset_energy()

    def energy_kwh(self, nodes: Iterable[str] | None = None) -> float:
        """Energy the GPUs drew since :meth:`power` first switched them on: the integer
        millijoules the exporters' counters gained (across counter resets)."""
        wanted = set(self.exporters if nodes is None else nodes)
        total = 0
        for (node, index), start in self._power_on_mj.items():
            if node in wanted:
                exporter = self.exporters[node]
                exporter.advance()
                total += next(g for g in exporter.gpus if g.index == index).energy_mj - start
                total += self._gained_mj.get((node, index), 0)
        return total / MJ_PER_KWH

    # -- ground truth -------------------------------------------------------------------------

    def truth(self, namespaces: Iterable[str] | None = None) -> dict[str, int]:
        """Tokens served by the pods' servers, per role (``input``, ``cached``, ``output``);
        a deleted pod's count too (tests stop its traffic before it goes)."""
        wanted = None if namespaces is None else set(namespaces)
        out = {"input": 0, "cached": 0, "output": 0}
        seen: set[int] = set()
        for entry in [*self.pods.values(), *self.gone]:
            if (wanted is not None and entry.namespace not in wanted) or id(entry.server) in seen:
                continue
            seen.add(id(entry.server))
            for (_, role), value in entry.server.truth().items():
                out[role] += value
        return out

    # -- reading what the operator wrote ------------------------------------------------------

    def report_status(self, name: str, namespace: str = PROFILE_NS) -> dict[str, Any]:
        return dict(self.rest.get(USAGEREPORTS, name, namespace).get("status") or {})

    def profile_status(self, name: str, namespace: str = PROFILE_NS) -> dict[str, Any]:
        return dict(self.rest.get(COSTPROFILES, name, namespace).get("status") or {})

    def condition(self, status: Mapping[str, Any], type_: str) -> dict[str, Any]:
        for cond in status.get("conditions") or ():
            if cond.get("type") == type_:
                return dict(cond)
        return {}

    def checkpoint(self) -> list[dict[str, Any]]:
        """The decoded hot shards of the ledger checkpoint."""
        listed = self.rest.list(CONFIGMAPS, OPERATOR_NS, label_selector="infercost.ai/ledger=true")
        return [
            _decode_state(cm)
            for cm in listed.get("items") or ()
            if _HOT_SHARD.match(cm["metadata"]["name"])
        ]

    def booked_time(self) -> float | None:
        """The time of the last sample the checkpoint holds (the newest shard's)."""
        times = [s["time"] for s in self.checkpoint() if s.get("time") is not None]
        return max(times) if times else None

    def first_sample(self) -> float:
        firsts = [s["first"] for s in self.checkpoint() if s.get("first") is not None]
        assert firsts, "the ledger checkpoint has no first sample"
        return float(min(firsts))

    def covered_nodes(self) -> dict[str, list[Any]]:
        """Node → [profile, t0, coverage start, GPUs, bootID, GPU ids] from the checkpoint."""
        out: dict[str, list[Any]] = {}
        for shard in self.checkpoint():
            out.update(shard["nodes"])
        return out

    def wait_booked(self, after: float | None = None, timeout: float = 60.0) -> float:
        """Wait until the checkpoint holds a sample later than ``after`` (any, when None)."""

        def booked() -> float | None:
            t = self.booked_time()
            return t if t is not None and (after is None or t > after) else None

        return float(eventually(booked, timeout=timeout, interval=0.1, what="a booked sample"))

    def wait_report(
        self,
        name: str,
        predicate: Callable[[dict[str, Any]], bool],
        what: str,
        *,
        namespace: str = PROFILE_NS,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def check() -> dict[str, Any] | None:
            nonlocal last
            last = self.report_status(name, namespace)
            return last if last and predicate(last) else None

        try:
            return dict(eventually(check, timeout=timeout, interval=0.2, what=what))
        except BaseException:
            print(f"last status of {namespace}/{name}: {json.dumps(last, indent=1)}")
            raise

    def wait_tokens(
        self, name: str, namespaces: Iterable[str] | None = None, *, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Wait until the report's token totals equal the ground truth."""
        truth = self.truth(namespaces)
        return self.wait_report(
            name,
            lambda s: (
                (s.get("inputTokens"), s.get("outputTokens")) == (truth["input"], truth["output"])
            ),
            f"report {name} at the ground truth {truth}",
            timeout=timeout,
        )

    def retire_profile(self, name: str, namespace: str = PROFILE_NS) -> float:
        """Delete a CostProfile and wait until the ledger stopped covering its nodes; the time
        of the sample that ended the coverage (the end of the figures the report keeps)."""
        key = f"{namespace}/{name}"
        self.rest.delete(COSTPROFILES, name, namespace)

        def gone() -> bool:
            shards = self.checkpoint()
            return not any(n[0] == key for s in shards for n in s["nodes"].values())

        eventually(gone, timeout=60, interval=0.1, what=f"the ledger stopped covering {key}")
        end = self.booked_time()
        assert end is not None
        return end

    def exists(self, resource: Any, name: str, namespace: str | None = None) -> bool:
        try:
            self.rest.get(resource, name, namespace)
        except NotFoundError:
            return False
        return True


def expected_amortization_usd(gpus: float, start: float, end: float) -> float:
    """``gpus`` at $1 per GPU-hour over ``(start, end]`` (unix seconds)."""
    return gpus * USD_PER_GPU_HOUR * (end - start) / 3600.0


def expected_electricity_usd(kwh: float) -> float:
    return kwh * RATE * PUE
