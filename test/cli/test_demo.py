"""``infercost demo``: its scenario format, the simulated cluster the real ledger books, and the
whole command as a process that stops cleanly (no child process, no listening port left)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from infercost.cli.main import main
from infercost.kube.clock import FakeClock
from infercost.kube.rest import NODES, PODS, RestClient
from infercost.testing.demoscenario import (
    ScenarioError,
    SimulatedCluster,
    load_scenario,
    parse_scenario,
)
from infercost.testing.ledgerrig import LedgerRig
from infercost.testing.simservers.servers import SimClock

ROOT = Path(__file__).resolve().parents[2]

NODE = {"name": "gpu-1", "gpus": 2}
POD = {
    "name": "vllm-0",
    "namespace": "team-a",
    "node": "gpu-1",
    "backend": "vllm",
    "gpus": 1,
    "models": [{"name": "m", "input": 10, "output": 5}],
}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"nodes": []}, "nodes: at least one GPU node is needed"),
        (
            {"nodes": [{**NODE, "gpus": "two"}]},
            "nodes[0].gpus: expected an integer >= 1, got 'two'",
        ),
        ({"nodes": [{**NODE, "gpu": 2}]}, "nodes[0].gpu: unknown field (expected one of name,"),
        (
            {"nodes": [NODE], "pods": [{**POD, "backend": "ollama"}]},
            "pods[0].backend: 'ollama' is not a simulated backend (expected one of llamacpp,",
        ),
        (
            {"nodes": [NODE], "pods": [{**POD, "node": "gpu-9"}]},
            "pods[0].node: no node 'gpu-9' (nodes: gpu-1)",
        ),
        (
            {"nodes": [NODE], "pods": [POD, {**POD, "name": "vllm-1", "gpus": 2}]},
            "pods[1].gpus: node gpu-1 has 2 GPUs; its pods ask for 3",
        ),
        (
            {"nodes": [NODE], "pods": [{**POD, "models": []}]},
            "pods[0].models: an inference pod needs at least one model",
        ),
        (
            {
                "nodes": [NODE],
                "pods": [{**POD, "models": [{"name": "m", "input": 1, "cachedInput": 2}]}],
            },
            "pods[0].models[0].cachedInput: 2 tokens/s is more than input (1); cached input",
        ),
        (
            {
                "nodes": [NODE],
                "pods": [{**POD, "backend": "llamacpp", "models": [{"name": "a"}, {"name": "b"}]}],
            },
            "pods[0].models: llamacpp serves exactly one model",
        ),
        (
            {"nodes": [NODE], "pods": [{"name": "train", "namespace": "ml", "node": "gpu-1"}]},
            "pods[0]: a pod without a backend must hold GPUs (gpus >= 1)",
        ),
        (
            {
                "nodes": [NODE],
                "objects": [
                    {
                        "apiVersion": "finops.infercost.ai/v1alpha1",
                        "kind": "TokenBudget",
                        "metadata": {"name": "b"},
                        "spec": {"scope": {"namespace": "team-a"}, "monthlyLimitUSD": -5},
                    }
                ],
            },
            "objects[0] (TokenBudget): spec.monthlyLimitUSD:",
        ),
        ({"nodes": [NODE], "objects": [{"kind": "Pod"}]}, "objects[0]: expected a CostProfile,"),
    ],
)
def test_scenario_errors_name_the_field(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(document, origin="my.yaml")
    assert str(info.value).startswith("my.yaml: ")
    assert message in str(info.value)


def test_bundled_scenario_uses_the_sample_crs() -> None:
    """The demo's profiles, first report and first budget are manifests/samples' (no drift)."""
    scenario = load_scenario()
    ours = {(o["kind"], o["metadata"]["name"]): o["spec"] for o in scenario.objects}
    for name in (
        "costprofile",
        "costprofile-l40s",
        "costprofile-rtx-4090",
        "usagereport",
        "tokenbudget",
    ):
        sample = yaml.safe_load((ROOT / "manifests" / "samples" / f"{name}.yaml").read_text())
        assert ours[(sample["kind"], sample["metadata"]["name"])] == sample["spec"], name
    assert {p.backend for p in scenario.pods} == {"vllm", "sglang", "llamacpp", None}
    assert len({p.namespace for p in scenario.pods if p.backend}) == 3


def test_demo_flag_errors_are_one_line_and_exit_2(capsys, tmp_path: Path) -> None:
    assert main(["demo", "--duration", "0s"]) == 2
    assert (
        capsys.readouterr().err == "infercost demo: error: --duration: must be positive, got '0s'\n"
    )
    assert main(["demo", "--duration", "soon"]) == 2
    assert "--duration: 'soon' is not a duration" in capsys.readouterr().err
    bad = tmp_path / "s.yaml"
    bad.write_text("nodes: [{name: n, gpus: 0}]\n")
    assert main(["demo", "--scenario", str(bad)]) == 2
    assert capsys.readouterr().err == (
        f"infercost demo: error: --scenario {bad}: nodes[0].gpus: expected an integer >= 1, got 0\n"
    )
    assert main(["demo", "--scenario", str(tmp_path / "none.yaml")]) == 2
    assert f"{tmp_path / 'none.yaml'}: no such file" in capsys.readouterr().err


def test_the_demo_needs_no_test_dependencies() -> None:
    """The wheel ships infercost.testing for the demo, but not pytest: nothing the demo loads
    may import it."""
    code = (
        "import sys; sys.modules['pytest'] = None; "
        "import infercost.cli.demo, infercost.testing.demoscenario as s; s.load_scenario()"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_without_the_testing_package_the_demo_says_so(tmp_path: Path) -> None:
    """The production image leaves infercost.testing out: one line, exit 1."""
    code = (
        "import sys; sys.modules['infercost.testing'] = None; "
        "from infercost.cli.main import main; sys.exit(main(['demo']))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "infercost demo: error: this installation of InferCost leaves out infercost.testing, "
        "which the demo runs on; install InferCost from its wheel or source "
        "(python3 -m pip install .)"
    ]


def test_a_busy_port_is_one_line_and_leaves_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["demo", "--port", str(port), "--duration", "5s"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"infercost demo: error: cannot start the emulated API on 127.0.0.1:{port}: "
        "Address already in use"
    ]
    assert list(tmp_path.glob("infercost-demo-*")) == []  # its working directory is gone


def test_the_ledger_books_the_simulated_cluster_as_the_scenario_says() -> None:
    """The bundled scenario booked by the real sampler and ledger: tokens equal what the
    simulated servers served, the training pod is booked as non-inference, and the shared
    RTX 4090 (no GPU limits) is split between its two pods by their tokens."""
    sim_clock = SimClock()
    scenario = load_scenario()
    with SimulatedCluster(scenario, clock=sim_clock) as cluster:
        rest = RestClient(cluster.sim.api_client())
        nodes = rest.list(NODES)["items"]
        assert len(nodes) == len(scenario.nodes)
        pods = rest.list(PODS)["items"]
        clock = FakeClock(dt.datetime.fromtimestamp(sim_clock(), dt.UTC))
        with LedgerRig(rest, clock, scrape_interval=30.0) as rig:
            rig.wait_cached(pods=len(pods), profiles=3)
            rig.sampler.sample_once()  # coverage starts: watermarks only
            assert cluster.harness is not None
            before = cluster.harness.truth()
            for _ in range(4):
                rig.sample(30.0, sim_clock)
            after = cluster.harness.truth()
            l40s = rig.report("infercost-system", "l40s-daily")
            rtx = rig.report("infercost-system", "rtx-4090-weekly")
            pool = rig.report("infercost-system", "inference-pool-monthly")

    def served(pods: list[str], role: str) -> int:
        return sum(
            roles.get(role, 0) - before.get(key, {}).get(role, 0)
            for key, roles in after.items()
            if f"{key[0]}/{key[1]}" in pods
        )

    l40s_pods = ["team-b/vllm-gpt-oss-20b-0", "team-c/vllm-llama-8b-0"]
    assert l40s["inputTokens"] == served(l40s_pods, "input") > 0
    assert l40s["outputTokens"] == served(l40s_pods, "output") > 0
    assert l40s["cachedInputTokens"] == served(l40s_pods, "cached") > 0

    shared = {e["namespace"]: e for e in rtx["byNamespace"]}
    tokens = {
        ns: served([f"{ns}/{name}"], "input") + served([f"{ns}/{name}"], "output")
        for ns, name in (("team-a", "llamacpp-llama-3b-0"), ("team-c", "llamacpp-qwen-7b-0"))
    }
    cost_share = shared["team-a"]["estimatedCostUSD"] / rtx["estimatedCostUSD"]
    assert cost_share == pytest.approx(tokens["team-a"] / sum(tokens.values()), rel=0.02)

    models = {(e["namespace"], e["model"]) for e in pool["byModel"]}
    assert ("ml-research", "(non-inference)") in models
    assert ("team-b", "Qwen/Qwen2.5-72B-Instruct") in models


def test_the_documented_example_scenario_runs() -> None:
    """docs/demo.md's example: it parses, and the operator's ledger books its vLLM pod."""
    text = (ROOT / "docs" / "demo.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    (example,) = [b for b in blocks if b.startswith("nodes:")]
    spec = parse_scenario(yaml.safe_load(example), origin="docs/demo.md")
    assert [p.name for p in spec.pods] == ["vllm-0", "train-0"]
    sim_clock = SimClock()
    with SimulatedCluster(spec, clock=sim_clock) as cluster:
        rest = RestClient(cluster.sim.api_client())
        clock = FakeClock(dt.datetime.fromtimestamp(sim_clock(), dt.UTC))
        with LedgerRig(rest, clock) as rig:
            rig.wait_cached(pods=3)  # two pods and the node's exporter
            rig.sampler.sample_once()
            rig.sample(30.0, sim_clock)
            status = rig.report("infercost-system", "demo-pool-daily")
    assert status["inputTokens"] == 2000 * 30
    assert status["outputTokens"] == 600 * 30
    assert {e["namespace"] for e in status["byNamespace"]} == {"team-a", "research"}


# -- the command as a process -------------------------------------------------------------------


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def _listening(pids: list[int]) -> set[tuple[str, int]]:
    """The IPv4 TCP addresses on which these processes listen."""
    inodes = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            fds = list(fd_dir.iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, state, inode = parts[1], parts[3], parts[9]
        if state == "0A" and inode in inodes:
            ip_hex, port_hex = local.split(":")
            ip = ".".join(str(int(ip_hex[i : i + 2], 16)) for i in (6, 4, 2, 0))
            found.add((ip, int(port_hex, 16)))
    return found


class DemoProcess:
    """``infercost demo`` in its own process group, as a terminal starts it."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFERCOST_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "infercost", "demo", "--output", "json", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
        )
        self.seen: list[str] = []
        self.listening: set[tuple[str, int]] = set()

    def wait_ready(self) -> None:
        """Read the view until the operator is ready; record where the group listens."""
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.seen.append(line)
            if line.startswith("Operator ready"):
                break
        else:
            pytest.fail("the demo ended before the operator was ready:\n" + "".join(self.seen))
        self.listening = _listening(_group_pids(self.proc.pid))

    def finish(self) -> tuple[dict[str, Any], str]:
        out, err = self.proc.communicate(timeout=300)
        assert self.proc.returncode == 0, "".join(self.seen) + err
        return json.loads(out), err

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def assert_nothing_left(self) -> None:
        assert len(self.listening) >= 1 + 4 + 6 + 2  # API, exporters, servers, operator
        assert _group_pids(self.proc.pid) == []
        for host, port in sorted(self.listening):
            with socket.socket() as s, pytest.raises(ConnectionRefusedError):
                s.settimeout(5)
                s.connect((host, port))


@pytest.mark.slow
def test_demo_runs_for_its_duration_prints_the_crs_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    demo = DemoProcess(tmp_path, "--duration", "20s")
    try:
        demo.wait_ready()
        document, _ = demo.finish()
    finally:
        demo.kill()
    assert "kubectl --kubeconfig " in "".join(demo.seen)

    # the final CRs: costs and tokens in every report
    assert document["kind"] == "List"
    reports = [o for o in document["items"] if o["kind"] == "UsageReport"]
    assert len(reports) == 4
    for report in reports:
        status = report["status"]
        assert status["estimatedCostUSD"] > 0, report["metadata"]["name"]
        assert status["inputTokens"] > 0 and status["outputTokens"] > 0
    profiles = [o for o in document["items"] if o["kind"] == "CostProfile"]
    assert all(p["status"]["powerSource"] == "DCGM" for p in profiles)
    budgets = [o for o in document["items"] if o["kind"] == "TokenBudget"]
    assert len(budgets) == 3
    assert all(b["status"]["currentSpendUSD"] > 0 for b in budgets)

    # nothing left: no process of its group, nothing listening where it listened
    demo.assert_nothing_left()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "shown"),
    [("sigterm", "Stopping (SIGTERM)"), ("ctrl-c", "Stopping (SIGINT)")],
)
def test_a_signal_stops_the_demo_and_everything_it_started(
    tmp_path: Path, how: str, shown: str
) -> None:
    demo = DemoProcess(tmp_path)  # no --duration: runs until told to stop
    try:
        demo.wait_ready()
        if how == "sigterm":
            demo.proc.send_signal(signal.SIGTERM)
        else:  # a terminal's Ctrl-C reaches the whole foreground process group
            os.killpg(demo.proc.pid, signal.SIGINT)
        document, err = demo.finish()
    finally:
        demo.kill()
    assert shown in err
    assert {o["kind"] for o in document["items"]} == {"CostProfile", "UsageReport", "TokenBudget"}
    demo.assert_nothing_left()
