"""``infercost export focus`` end to end: a ledger booked in memory is checkpointed through
LedgerStore into the emulator, the CLI reads it back and writes FOCUS CSV; every way it can go
wrong is one line on stderr with a non-zero exit status."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

import pytest
import yaml

from infercost.cli.main import main
from infercost.controllers.ledgerstore import LEDGER_LABELS, LedgerStore
from infercost.engine.ledger import Ledger
from infercost.engine.periods import parse_period
from infercost.engine.report import report_figures
from infercost.kube.objectstore import ObjectStore
from infercost.kube.rest import CONFIGMAPS
from infercost.testing.kubefixtures import KubeEnv
from infercost.testing.ledgers import DATACENTER, WORKSTATION, simulated_ledger

pytestmark = pytest.mark.slow

OPERATOR_NS = "infercost-system"
LLAMA_70B = "meta-llama/Llama-3.3-70B-Instruct"
_MONTH: list[Ledger] = []


def november() -> Ledger:
    """The simulated cluster from 2026-11-01 for 30 days: November closed, 2026-12-01 open."""
    if not _MONTH:
        _MONTH.append(simulated_ledger(dt.datetime(2026, 11, 1, tzinfo=dt.UTC), 30))
    return _MONTH[0]


def checkpoint(kube: KubeEnv, ledger: Ledger, namespace: str = OPERATOR_NS) -> None:
    """What the operator leaves in the cluster: every hot shard and every closed day."""
    store = LedgerStore(kube.rest, namespace, shards=ledger.shards)
    for shard in range(ledger.shards):
        store.write_shard(ledger, shard)
    for day in sorted(ledger.closed):
        store.write_closed(ledger, day)


@pytest.fixture(autouse=True)
def _no_operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("INFERCOST_NAMESPACE", "INFERCOST_PRICING_CONFIGMAP", "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)


def export(kube_or_config: KubeEnv | Path | str, *args: str) -> int:
    config = (
        kube_or_config.sim.kubeconfig if isinstance(kube_or_config, KubeEnv) else kube_or_config
    )
    return main(["export", "focus", "--kubeconfig", str(config), *args])


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("infercost export: error: "), lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert captured.out == ""
    return lines[0]


def test_month_export_sums_to_the_reports_of_the_checkpointed_ledger(
    kube: KubeEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = november()
    checkpoint(kube, ledger)
    out = tmp_path / "nov.csv"
    assert export(kube, "--period", "2026-11", "--cluster", "dc1", "-o", str(out)) == 0
    rows = read_csv(out.read_text(encoding="utf-8"))
    days = list(parse_period("2026-11").days())
    keys = {key[1:] for key, _ in ledger.lines_of(days)}
    assert len(rows) == len(keys)
    assert f"wrote {len(rows)} FOCUS rows of 2026-11 (all namespaces) to {out}" in (
        capsys.readouterr().err
    )
    assert {r["InvoiceId"] for r in rows} == {"infercost-dc1-2026-11"}
    assert {r["ChargePeriodStart"][:10] for r in rows} == set(days)
    for profile in (DATACENTER, WORKSTATION):
        mine = [r for r in rows if r["x_CostProfile"] == profile]
        for ns in sorted({r["x_Namespace"] for r in mine}):
            figures = report_figures(ledger.lines_of(days), profile, (ns,))
            billed = sum(float(r["BilledCost"]) for r in mine if r["x_Namespace"] == ns)
            assert billed == pytest.approx(figures.cost_usd, rel=1e-9, abs=0), (profile, ns)
            inputs = sum(int(r["x_InputTokens"]) for r in mine if r["x_Namespace"] == ns)
            assert inputs == figures.input_tokens
    # the bundled catalog prices the 70B model's tokens at a hosted llama-3.3-70b endpoint
    llama = [r for r in rows if r["x_Model"] == LLAMA_70B and int(r["x_InputTokens"]) > 0]
    assert llama and all(r["x_CloudEquivalentModel"] for r in llama)


def test_one_namespace_to_stdout_and_all_namespaces_by_default(
    kube: KubeEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint(kube, november())
    assert export(kube, "--period", "2026-11-27", "-n", "team-a") == 0
    captured = capsys.readouterr()
    team_a = read_csv(captured.out)
    assert team_a
    assert {r["x_Namespace"] for r in team_a} == {"team-a"}
    assert {r["ChargePeriodStart"] for r in team_a} == {"2026-11-27T00:00:00Z"}
    assert captured.err == ""
    assert export(kube, "--period", "2026-11-27") == 0
    default = read_csv(capsys.readouterr().out)
    assert export(kube, "--period", "2026-11-27", "-A") == 0
    explicit = read_csv(capsys.readouterr().out)
    assert default == explicit
    assert {r["x_Namespace"] for r in default} == {"team-a", "team-b", "team-c", "team-d"}
    assert [r for r in default if r["x_Namespace"] == "team-a"] == team_a


def test_a_week_across_two_months_has_two_invoices_and_says_which_days_it_covers(
    kube: KubeEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint(kube, november())
    # 2026-W49 runs from Monday 2026-11-30 to Sunday 2026-12-06; the ledger ends on 12-01
    assert export(kube, "--period", "2026-W49") == 0
    captured = capsys.readouterr()
    rows = read_csv(captured.out)
    assert {r["ChargePeriodStart"][:10] for r in rows} == {"2026-11-30", "2026-12-01"}
    by_day = {r["ChargePeriodStart"][:10]: r for r in rows}
    assert by_day["2026-11-30"]["InvoiceId"] == "infercost-cluster-2026-11"
    assert by_day["2026-12-01"]["InvoiceId"] == "infercost-cluster-2026-12"
    assert by_day["2026-12-01"]["BillingPeriodStart"] == "2026-12-01T00:00:00Z"
    assert captured.err.strip() == (
        "infercost export: note: the ledger keeps 2026-11-30 to 2026-12-01 of 2026-W49 "
        "(2 of 7 days); the export covers those days"
    )


def test_operator_namespace_comes_from_the_flag_or_the_environment_like_run(
    kube: KubeEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kube.sim.create_namespace("finops")
    checkpoint(kube, november(), namespace="finops")
    assert export(kube, "--period", "2026-11-03") == 1
    assert "no ledger checkpoint in namespace infercost-system" in one_line_error(capsys)
    assert export(kube, "--period", "2026-11-03", "--namespace", "finops") == 0
    assert read_csv(capsys.readouterr().out)
    monkeypatch.setenv("INFERCOST_NAMESPACE", "finops")
    assert export(kube, "--period", "2026-11-03") == 0
    assert read_csv(capsys.readouterr().out)
    monkeypatch.setenv("INFERCOST_NAMESPACE", "Not_A_Namespace")
    assert export(kube, "--period", "2026-11-03") == 2
    assert "INFERCOST_NAMESPACE: 'Not_A_Namespace' is not a valid namespace name" in (
        one_line_error(capsys)
    )


def test_the_operators_pricing_override_prices_the_cloud_equivalent(
    kube: KubeEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint(kube, november())
    bundled = resources.files("infercost.engine").joinpath("catalog.yaml").read_text("utf-8")
    document = yaml.safe_load(bundled)
    for entry in document["entries"]:
        if entry["provider"] == "bedrock" and entry.get("openWeight") == "llama-3.3-70b":
            entry["input"], entry["output"] = 0.01, 0.02
            entry.pop("cachedInput", None)
    pricing = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "infercost-pricing", "namespace": OPERATOR_NS},
        "data": {"pricing.yaml": yaml.safe_dump(document)},
    }
    kube.rest.create(CONFIGMAPS, pricing, OPERATOR_NS)
    assert export(kube, "--period", "2026-11-10", "-n", "team-a") == 0
    rows = [r for r in read_csv(capsys.readouterr().out) if r["x_Model"] == LLAMA_70B]
    assert rows
    assert {r["x_CloudEquivalentModel"] for r in rows} == {"bedrock/llama-3.3-70b-instruct"}
    # the override is the only price list: the same tokens at $0.01 and $0.02 per million
    for r in rows:
        expected = (int(r["x_InputTokens"]) * 0.01 + int(r["x_OutputTokens"]) * 0.02) / 1e6
        assert float(r["x_CloudEquivalentCostUSD"]) == pytest.approx(expected, rel=1e-12)

    pricing["data"] = {"pricing.yaml": "entries: [ {unclosed"}
    current = kube.rest.get(CONFIGMAPS, "infercost-pricing", OPERATOR_NS)
    pricing["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    kube.rest.replace(CONFIGMAPS, pricing, OPERATOR_NS)
    assert export(kube, "--period", "2026-11-10", "-n", "team-a") == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("infercost export: note: ConfigMap infercost-pricing")
    assert "cloud-equivalent columns use the bundled price catalog" in captured.err
    rows = [r for r in read_csv(captured.out) if r["x_Model"] == LLAMA_70B]
    assert "bedrock/llama-3.3-70b-instruct" not in {r["x_CloudEquivalentModel"] for r in rows}


# -- one-line errors ------------------------------------------------------------------------


def test_no_checkpoint(kube: KubeEnv, capsys: pytest.CaptureFixture[str]) -> None:
    assert export(kube, "--period", "2026-11") == 1
    message = one_line_error(capsys)
    assert "no ledger checkpoint in namespace infercost-system" in message
    assert "app.kubernetes.io/managed-by=infercost,infercost.ai/ledger=true" in message
    assert "--namespace" in message


def test_a_period_the_ledger_does_not_keep_names_the_days_it_keeps(
    kube: KubeEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint(kube, november())
    assert export(kube, "--period", "2026-09") == 1
    assert one_line_error(capsys).endswith(
        "period 2026-09 is outside the ledger, which keeps the days 2026-11-01 to 2026-12-01 (UTC)"
    )


def test_an_unreadable_checkpoint_names_its_configmap(
    kube: KubeEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ObjectStore(kube.rest, OPERATOR_NS, LEDGER_LABELS)
    store.put("infercost-ledger-0", {"state": b"\x00\xffnot zlib"}, resource_version=None)
    assert export(kube, "--period", "2026-11") == 1
    message = one_line_error(capsys)
    assert "the ledger checkpoint in namespace infercost-system cannot be read" in message
    assert "ConfigMap infercost-ledger-0: not a ledger checkpoint" in message


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["--period", "2026-13"],
            "--period: period '2026-13' is not a day (2026-11-27), an ISO week (2026-W48) "
            "or a month (2026-11)",
        ),
        (["--period", "November"], "--period: period 'November' is not a day"),
        (["--period", "2026-W60"], "--period: period '2026-W60' is not a day"),
        (["--period", "2026-11", "-n", "Team_A"], "-n: 'Team_A' is not a namespace name"),
        (["--period", "2026-11", "--cluster", "dc 1"], "--cluster: cluster name 'dc 1' must be"),
        (["--period", "2026-11", "--namespace", "Ops"], "--namespace: 'Ops' is not a valid"),
    ],
)
def test_bad_flags_exit_2_before_touching_the_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    # a kubeconfig that does not exist: the flags are checked first
    assert export(tmp_path / "absent", *args) == 2
    assert fragment in one_line_error(capsys)


def test_unusable_kubeconfig_and_unreachable_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert export(tmp_path / "absent", "--period", "2026-11") == 1
    assert f"kubeconfig {tmp_path / 'absent'} (from --kubeconfig) does not exist" in (
        one_line_error(capsys)
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "config"
    config.write_text(yaml.safe_dump(_kubeconfig(f"http://127.0.0.1:{port}")))
    assert export(config, "--period", "2026-11") == 1
    assert f"cannot reach the Kubernetes API at http://127.0.0.1:{port}" in one_line_error(capsys)


class _Forbidden(BaseHTTPRequestHandler):
    """An apiserver whose RBAC allows this user nothing."""

    def do_GET(self) -> None:
        body = json.dumps(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "code": 403,
                "reason": "Forbidden",
                "message": 'configmaps is forbidden: User "alice" cannot list resource '
                '"configmaps" in API group "" in the namespace "infercost-system"',
            }
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


def _kubeconfig(server: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "alice", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "alice"}}],
        "current-context": "x",
    }


@pytest.fixture
def forbidding_api(tmp_path: Path) -> Iterator[Path]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Forbidden)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = tmp_path / "forbidden-config"
    config.write_text(yaml.safe_dump(_kubeconfig(f"http://127.0.0.1:{server.server_address[1]}")))
    try:
        yield config
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_no_access_to_the_operator_namespace(
    forbidding_api: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert export(forbidding_api, "--period", "2026-11") == 1
    message = one_line_error(capsys)
    assert "no access: RBAC denies list configmaps in namespace infercost-system" in message
    assert 'User "alice" cannot list resource "configmaps"' in message
