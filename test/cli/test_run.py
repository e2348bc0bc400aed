"""``infercost run`` as a real process against the emulator: readiness, metrics, SIGTERM,
and one-line startup errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from infercost.controllers.operator import CUSTOM_RESOURCES
from infercost.kube.rest import LEASES, NODES, PODS
from infercost.testing.kubefixtures import KubeEnv, crd_dirs, eventually
from infercost.testing.kubesim import KubeSim
from infercost.testing.simservers.httpserver import Fault, PageServer
from infercost.testing.simservers.objects import make_node, make_pod
from infercost.testing.simservers.servers import LoopbackPool, bind

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("INFERCOST_")}
    full_env.pop("KUBECONFIG", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "infercost", "run", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("infercost run: error: ")
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def test_ready_metrics_and_sigterm_releases_the_lease(kube: KubeEnv) -> None:
    health, metrics = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERCOST_")}
    env.pop("KUBECONFIG", None)
    env.update(
        {
            "INFERCOST_KUBECONFIG": kube.sim.kubeconfig,
            "INFERCOST_HEALTH_BIND": f"127.0.0.1:{health}",
            "INFERCOST_LOG_LEVEL": "debug",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "infercost", "run", "--metrics-bind", f"127.0.0.1:{metrics}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        eventually(lambda: http_get(health, "/readyz")[0] == 200, timeout=30, what="/readyz")
        assert http_get(health, "/healthz")[0] == 200
        eventually(
            lambda: kube.rest.get(LEASES, "infercost-leader", "infercost-system")["spec"].get(
                "holderIdentity"
            ),
            timeout=10,
            what="the Lease taken",
        )
        status, body = http_get(metrics, "/metrics")
        assert status == 200
        for series in (
            "infercost_leader 1.0",
            "# TYPE infercost_reconcile_total counter",
            "# TYPE infercost_reconcile_duration_seconds histogram",
            "# TYPE infercost_workqueue_depth gauge",
            "# TYPE infercost_watch_restarts_total counter",
            "# TYPE infercost_object_last_updated_timestamp_seconds gauge",
            "# TYPE infercost_scrape_duration_seconds histogram",
            "# TYPE infercost_scrape_errors_total counter",
            "process_resident_memory_bytes",
        ):
            assert series in body, series
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    lease = kube.rest.get(LEASES, "infercost-leader", "infercost-system")["spec"]
    assert lease["holderIdentity"] == "", "SIGTERM releases the Lease"
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert all("event" in line and "level" in line and "timestamp" in line for line in lines)
    assert any(line["event"] == "leader lease released" for line in lines)
    assert lines[-1]["event"] == "stopped", "an orderly exit, not the shutdown watchdog"


@pytest.fixture
def dead_target(loopback_pool: LoopbackPool) -> Iterator[PageServer]:
    """A loopback server that accepts the connection, reads the request and never answers."""
    server = bind(loopback_pool, lambda ip: PageServer(ip, 8000, lambda: b""))
    server.fault = Fault("slow", delay_seconds=3600.0)
    try:
        yield server
    finally:
        server.stop()
        loopback_pool.release(server.host)


COSTPROFILES = CUSTOM_RESOURCES["CostProfile"]


def _gpu_node_and_profile(kube: KubeEnv) -> None:
    kube.rest.create(NODES, make_node("gpu-1", gpus=1, labels={"pool": "a"}))
    profile = {
        "apiVersion": "finops.infercost.ai/v1alpha1",
        "kind": "CostProfile",
        "metadata": {"name": "pool-a", "namespace": "default"},
        "spec": {
            "hardware": {"gpuModel": "NVIDIA L4", "gpuCount": 1, "purchasePriceUSD": 3000.0},
            "electricity": {"ratePerKWh": 0.1},
            "nodeSelector": {"pool": "a"},
        },
    }
    kube.rest.create(COSTPROFILES, profile, "default")


def _dead_inference_pod(kube: KubeEnv, dead: PageServer) -> None:
    pod = make_pod(
        "vllm-0",
        ip=dead.host,
        node="gpu-1",
        annotations={"infercost.ai/backend": "vllm", "infercost.ai/metrics-port": str(dead.port)},
        gpus=1,
    )
    kube.rest.create(PODS, pod, "default")
    kube.rest.merge_patch(PODS, "vllm-0", {"status": pod["status"]}, "default", "status")


def test_sigterm_mid_cycle_abandons_the_scrapes_and_publishes_nothing_after_it(
    kube: KubeEnv, dead_target: PageServer
) -> None:
    """SPEC §7: SIGTERM stops sampling and abandons scrapes in flight (no sample is published
    after it), checkpoints, releases the Lease and exits, even when a target never answers."""
    _gpu_node_and_profile(kube)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERCOST_")}
    env.pop("KUBECONFIG", None)
    env.update(
        {
            "INFERCOST_KUBECONFIG": kube.sim.kubeconfig,
            "INFERCOST_HEALTH_BIND": f"127.0.0.1:{free_port()}",
            "INFERCOST_METRICS_BIND": f"127.0.0.1:{free_port()}",
            "INFERCOST_LOG_LEVEL": "debug",
            # a scrape that would outlive the whole shutdown budget if it were waited for
            "INFERCOST_SCRAPE_INTERVAL": "60s",
            "INFERCOST_SCRAPE_TIMEOUT": "45s",
        }
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "infercost",
            "run",
            "--dcgm-selector",
            "app in (nvidia-dcgm-exporter, dcgm-exporter)",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        eventually(
            lambda: kube.rest.get(COSTPROFILES, "pool-a", "default").get("status"),
            timeout=30,
            what="a first sample written to the profile's status",
        )
        _dead_inference_pod(kube, dead_target)
        # a node label change wakes the sampler at once; its cycle hangs on the dead pod
        kube.rest.merge_patch(NODES, "gpu-1", {"metadata": {"labels": {"rack": "r1"}}})
        eventually(lambda: dead_target.request_paths, timeout=30, what="a scrape in flight")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in out + err
    events = [json.loads(line)["event"] for line in out.splitlines() if line.strip()]
    after = events[events.index("signal received; shutting down") :]
    assert "sampling stopped; scrapes in flight abandoned" in after
    assert "sample taken" not in after, "no sample may be published after SIGTERM"
    assert "component did not stop in time" not in after
    assert after.index("sampling stopped; scrapes in flight abandoned") < after.index(
        "leader lease released"
    )
    assert after[-1] == "stopped"

    requests = kube.sim.requests()
    lease_writes = [
        i for i, r in enumerate(requests) if r.resource.startswith("leases") and r.verb == "update"
    ]
    assert (
        kube.rest.get(LEASES, "infercost-leader", "infercost-system")["spec"]["holderIdentity"]
        == ""
    ), "the last Lease write released it"
    status_writes = [
        i
        for i, r in enumerate(requests)
        if r.resource.startswith("costprofiles") and r.subresource == "status"
    ]
    assert status_writes and status_writes[-1] < lease_writes[-1], (
        "status is written while leading, never after the Lease is released"
    )


def test_missing_kubeconfig(tmp_path: Path) -> None:
    result = run_cli("--kubeconfig", str(tmp_path / "nope.yaml"))
    assert_one_line_error(result, f"kubeconfig {tmp_path / 'nope.yaml'} (from --kubeconfig)")


def test_garbage_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("clusters: [ {unclosed")
    assert_one_line_error(run_cli("--kubeconfig", str(path)), "is not readable YAML")
    path.write_text("apiVersion: v1\nkind: Config\n")
    assert_one_line_error(run_cli("--kubeconfig", str(path)), "defines no clusters")


def test_no_configuration_at_all(tmp_path: Path) -> None:
    result = run_cli(env={"HOME": str(tmp_path)})
    assert_one_line_error(result, "no Kubernetes configuration found")


def test_unreachable_api(tmp_path: Path) -> None:
    port = free_port()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(config))
    result = run_cli(env={"KUBECONFIG": str(path)})
    assert_one_line_error(result, f"cannot reach the Kubernetes API at http://127.0.0.1:{port}")


def test_missing_operator_namespace() -> None:
    with KubeSim(crd_dirs=crd_dirs()) as sim:  # no infercost-system namespace
        result = run_cli("--kubeconfig", sim.kubeconfig, timeout=60)
    assert_one_line_error(result, "the operator namespace infercost-system does not exist")
    assert result.returncode == 1


def test_missing_crds() -> None:
    with KubeSim(namespaces=("infercost-system",)) as sim:
        result = run_cli("--kubeconfig", sim.kubeconfig)
    assert_one_line_error(result, "are not installed")
    assert "costprofiles.finops.infercost.ai" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["--scrape-interval", "30x"], {}, "--scrape-interval: '30x' is not a duration"),
        ([], {"INFERCOST_STATUS_INTERVAL": "1 minute"}, "INFERCOST_STATUS_INTERVAL:"),
        (["--rule-labels", "release"], {}, "--rule-labels: 'release' is not key=value"),
        (["--scrape-timeout", "1m"], {}, "--scrape-timeout (60s) must be positive and shorter"),
        (
            ["--dcgm-url", "https://10.0.0.1:9400/metrics"],
            {},
            "--dcgm-url 'https://10.0.0.1:9400/metrics': only http:// URLs are supported",
        ),
        (["--dcgm-selector", "app in (x,y"], {}, "--dcgm-selector: label selector 'app in (x,y'"),
        ([], {"INFERCOST_DCGM_NAMESPACES": "GPU"}, "INFERCOST_DCGM_NAMESPACES: 'GPU' is not a"),
    ],
)
def test_bad_flags_and_env(args: list[str], env: dict[str, str], fragment: str) -> None:
    result = run_cli(*args, env=env)
    assert result.returncode == 2
    assert_one_line_error(result, fragment)


class _ForbidPods(BaseHTTPRequestHandler):
    """A proxy in front of the emulator that denies listing pods, as RBAC would (the
    emulator does not implement RBAC)."""

    upstream = ""

    def do_GET(self) -> None:
        if self.path.startswith("/api/v1/pods"):
            body = json.dumps(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "code": 403,
                    "reason": "Forbidden",
                    "message": 'pods is forbidden: User "system:serviceaccount:infercost-system:'
                    'infercost" cannot list resource "pods" in API group "" at the '
                    "cluster scope",
                }
            ).encode()
            self._reply(403, body)
            return
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = urllib.request.Request(
            self.upstream + self.path,
            data=self.rfile.read(length) if length else None,
            method=self.command,
            headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                self._reply(r.status, r.read())
        except urllib.error.HTTPError as e:
            self._reply(e.code, e.read())

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        return None


@pytest.fixture
def forbidding_proxy(kube: KubeEnv, tmp_path: Path) -> Iterator[Path]:
    handler = type("Handler", (_ForbidPods,), {"upstream": kube.sim.url})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = yaml.safe_load(Path(kube.sim.kubeconfig).read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"http://127.0.0.1:{server.server_address[1]}"
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(config))
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()


def test_rbac_denial(forbidding_proxy: Path) -> None:
    result = run_cli("--kubeconfig", str(forbidding_proxy))
    assert_one_line_error(result, "RBAC denies list pods (needed to find inference pods")
    assert result.returncode == 1


def test_help_has_one_line_per_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infercost", "run", "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    for flag in (
        "--kubeconfig",
        "--clock-offset",
        "--no-leader-elect",
        "--dcgm-url",
        "INFERCOST_SCRAPE_INTERVAL",
    ):
        assert flag in result.stdout
