"""What a tenant who can create pods or CostProfiles must not be able to do, and what must never
reach the logs.

- Annotations choose a port and a path, never the host: URL-like, host:port, bracketed IPv6 and
  header-smuggling values make the operator scrape nothing but the pod's own IP (a trap server
  on another loopback address sees no connection) and are named in ``MetricsScraped``.
- ``--profile-namespaces`` is honoured: a CostProfile elsewhere gets no status, books nothing
  and cannot take nodes from an honoured profile, even when it is older.
- A pod labelled like a DCGM exporter outside ``--dcgm-namespaces`` changes no figure.
- The kubeconfig's token and certificate data and Secret contents never appear in the logs.
"""

from __future__ import annotations

import base64
import random
from pathlib import Path

import pytest
import yaml
from cluster_rig import COSTPROFILES, OPERATOR_NS, PROFILE_NS, Cluster

from infercost.kube.rest import EVENTS, Resource
from infercost.testing.kubefixtures import eventually
from infercost.testing.simservers.objects import make_dcgm_exporter_pod
from infercost.testing.simservers.pages import GpuState

SECRETS = Resource("", "v1", "secrets", "Secret", True)


def _serve(cluster: Cluster, rng: random.Random) -> None:
    for entry in list(cluster.pods.values()):
        entry.server.serve(rng.randint(1, 2000), rng.randint(1, 300))


@pytest.mark.slow
def test_annotations_never_choose_the_host_and_profile_namespaces_are_honoured(
    cluster: Cluster,
) -> None:
    rng = random.Random(23)
    trap = cluster.servers.inference("vllm", clock=cluster.clock)  # another "host", port 8000
    elsewhere = cluster.servers.inference("vllm", port=9999, clock=cluster.clock)
    cluster.node("gpu-1", gpus=2, labels={"pool": "a"})
    cluster.exporter("gpu-1", gpus=2)
    legit = cluster.inference_pod("vllm-0", "team-a", "gpu-1", gpu=0)
    hostile = {
        "url-port": {"infercost.ai/metrics-port": f"http://{trap.host}:8000/metrics"},
        "host-port": {"infercost.ai/metrics-port": f"{trap.host}:8000"},
        "ipv6-port": {"infercost.ai/metrics-port": "[::1]:8000"},
        "prom-port": {"prometheus.io/port": f"{elsewhere.host}:9999"},
        "url-path": {"infercost.ai/metrics-path": f"http://{trap.host}:8000/metrics"},
        "at-path": {"infercost.ai/metrics-path": f"@{trap.host}:8000/metrics"},
        "crlf-path": {"infercost.ai/metrics-path": f"/metrics HTTP/1.1\r\nHost: {trap.host}"},
        # a path that looks like an authority is still only a path on the pod's own IP
        "authority-path": {"infercost.ai/metrics-path": f"//{trap.host}:8000/metrics"},
    }
    for name, notes in hostile.items():
        cluster.inference_pod(f"evil-{name}", "tenant", "gpu-1", annotations=notes, server=legit)
    # an older CostProfile in a namespace that is not honoured, claiming the same nodes
    cluster.sim.create_namespace("rogue")
    cluster.profile("pool-a", {"pool": "a"}, namespace="rogue")
    cluster.profile("pool-a", {"pool": "a"})
    cluster.report("daily", "pool-a")
    op = cluster.operator("op", extra=["--profile-namespaces", f"{PROFILE_NS},team-a"])
    booked = cluster.wait_booked()
    _serve(cluster, rng)
    scraped = legit.http.requests_served
    # positive signal: several samples with every hostile pod present
    for _ in range(3):
        booked = cluster.wait_booked(after=booked)
    cluster.wait_tokens("daily")
    assert legit.http.requests_served >= scraped + 3

    assert trap.http.connections_accepted == 0, "the operator connected to another host"
    assert elsewhere.http.connections_accepted == 0, "the operator connected to another host"
    # every hostile pod fails (the authority-looking path was asked of the pod itself, which
    # has no such page); the first one is named with its annotation
    failing = len(hostile)
    scraped_cond = eventually(
        lambda: (
            (c := cluster.condition(cluster.profile_status("pool-a"), "MetricsScraped"))
            .get("message", "")
            .startswith(f"{failing}/{failing + 1} inference pods failing")
            and c
        ),
        timeout=60,
        what="every hostile pod failing",
    )
    assert scraped_cond["status"] == "False"
    assert (
        "pod tenant/evil-at-path: annotation infercost.ai/metrics-path: " in scraped_cond["message"]
    ), scraped_cond["message"]
    status = cluster.profile_status("pool-a")
    # (Python's http.server folds the leading "//" of a request path into one "/")
    asked = {f"//{trap.host}:8000/metrics", f"/{trap.host}:8000/metrics"}
    paths = set(legit.http.request_paths)
    assert paths & asked
    assert paths <= {"/metrics", *asked}

    # the rogue profile: no status, no ledger state, no node taken
    rogue = cluster.rest.get(COSTPROFILES, "pool-a", "rogue")
    assert "status" not in rogue or not rogue["status"]
    assert status["matchedNodes"] == ["gpu-1"]
    assert cluster.condition(status, "Ready")["status"] == "True"
    for shard in cluster.checkpoint():
        assert not [k for k in shard["profiles"] if k.startswith("rogue/")]
        assert all(node[0] == f"{PROFILE_NS}/pool-a" for node in shard["nodes"].values())
    assert 'costprofile_namespace="rogue"' not in op.http(op.metrics_port, "/metrics")[1]
    assert op.alive()


@pytest.mark.slow
def test_exporter_lookalikes_outside_dcgm_namespaces_change_no_figure(cluster: Cluster) -> None:
    cluster.node("gpu-1", gpus=2, labels={"pool": "a"})
    real = cluster.exporter("gpu-1", gpus=2)
    cluster.inference_pod("vllm-0", "team-a", "gpu-1", gpu=0)
    # a tenant's pod labelled like an exporter, on the same node, claiming two more GPUs
    # drawing 9 kW for the tenant's pod
    fake_gpus = [
        GpuState(index=i, uuid=f"GPU-fake-{i}", model_name="H100", energy_mj=10**9)
        for i in range(2)
    ]
    fake = cluster.servers.dcgm(gpus=fake_gpus, node="gpu-1", clock=cluster.clock)
    for gpu in fake.gpus:
        fake.set_power(gpu.index, 9000.0)
        fake.assign(gpu.index, "tenant", "vllm-0")
    cluster.sim.create_namespace("tenant")
    pod = make_dcgm_exporter_pod("gpu-1", fake.host, name="totally-dcgm", namespace="tenant")
    cluster.rest.create(Resource("", "v1", "pods", "Pod", True), pod, "tenant")
    cluster.rest.merge_patch(
        Resource("", "v1", "pods", "Pod", True),
        "totally-dcgm",
        {"status": pod["status"]},
        "tenant",
        "status",
    )
    cluster.profile("pool-a", {"pool": "a"})
    cluster.report("daily", "pool-a")
    op = cluster.operator("op")
    cluster.power(300.0)
    booked = cluster.wait_booked()
    booked = cluster.wait_booked(after=booked)
    cluster.wait_booked(after=booked)

    status = eventually(
        lambda: (
            (s := cluster.profile_status("pool-a")).get("currentPowerDrawWatts") is not None and s
        ),
        what="the profile's power",
    )
    assert status["currentPowerDrawWatts"] == pytest.approx(600.0)
    assert status["matchedGPUs"] == 2
    assert op.metric(
        "infercost_scrape_errors_total", target_kind="dcgm", reason="untrusted_namespace"
    )
    events = cluster.rest.list(EVENTS, PROFILE_NS)["items"]
    assert any("tenant/totally-dcgm" in (e.get("message") or "") for e in events)
    assert real.http.requests_served > 0


def _kubeconfig_with_credentials(cluster: Cluster, path: Path) -> dict[str, str]:
    token = "reliability-token-" + base64.b32encode(random.randbytes(20)).decode().lower()
    cert = base64.b64encode(random.randbytes(300)).decode()
    key = base64.b64encode(random.randbytes(200)).decode()
    pem_cert = f"-----BEGIN CERTIFICATE-----\n{cert}\n-----END CERTIFICATE-----\n"
    pem_key = f"-----BEGIN PRIVATE KEY-----\n{key}\n-----END PRIVATE KEY-----\n"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sim", "cluster": {"server": cluster.sim.url}}],
        "users": [
            {
                "name": "operator",
                "user": {
                    "token": token,
                    "client-certificate-data": base64.b64encode(pem_cert.encode()).decode(),
                    "client-key-data": base64.b64encode(pem_key.encode()).decode(),
                },
            }
        ],
        "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "operator"}}],
        "current-context": "sim",
    }
    path.write_text(yaml.safe_dump(config))
    return {"token": token, "certificate": cert, "key": key}


@pytest.mark.slow
def test_no_credential_or_secret_reaches_the_logs(cluster: Cluster, tmp_path: Path) -> None:
    rng = random.Random(29)
    kubeconfig = tmp_path / "operator.kubeconfig"
    secrets = _kubeconfig_with_credentials(cluster, kubeconfig)
    secret_value = "s3cr3t-" + base64.b32encode(random.randbytes(15)).decode().lower()
    for ns in (OPERATOR_NS, "team-a"):
        cluster.sim.create_namespace(ns)
        cluster.rest.create(
            SECRETS,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "api-keys", "namespace": ns},
                "data": {"key": base64.b64encode(secret_value.encode()).decode()},
            },
            ns,
        )
    cluster.node("gpu-1", gpus=2, labels={"pool": "a"})
    cluster.exporter("gpu-1", gpus=2)
    cluster.inference_pod("vllm-0", "team-a", "gpu-1", gpu=0)
    cluster.profile("pool-a", {"pool": "a"})
    cluster.report("daily", "pool-a")
    op = cluster.operator("op", kubeconfig=str(kubeconfig))
    booked = cluster.wait_booked()
    # error paths log too: failed writes, a failed relist
    cluster.sim.faults.respond(verb="update", resource="configmaps", code=500, count=2)
    cluster.sim.faults.respond(verb="patch", resource="usagereports/status", code=500, count=2)
    cluster.sim.faults.expire_resource_versions()
    cluster.sim.faults.drop_watches()
    _serve(cluster, rng)
    cluster.wait_booked(after=booked)
    cluster.wait_tokens("daily")
    # the operator authenticated with the kubeconfig's token
    sent = [r for r in cluster.sim.requests() if r.user_agent.startswith("infercost/")]
    assert sent
    assert op.terminate() == 0
    logs = op.logs()
    assert "ledger checkpoint failed" in logs and "reconcile failed" in logs
    for what, value in [*secrets.items(), ("secret", secret_value)]:
        assert value not in logs, f"the {what} is in the logs"
    encoded = base64.b64encode(secret_value.encode()).decode()
    assert encoded not in logs
    assert secrets["token"][:24] not in logs
    assert "Bearer" not in logs
