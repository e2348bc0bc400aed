"""manifests/ built with the real kubectl: what a cluster admin installs, checked for the
properties they rely on (pod security, probes, resources, least-privilege RBAC, scraping)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from manifest_files import MANIFESTS, REPO, build, one, relative, write_overlay

import infercost
from infercost.api import GROUP
from infercost.controllers.config import DEFAULT_DCGM_SELECTORS, FLAGS_BY_DEST, build_config
from infercost.controllers.operator import CUSTOM_RESOURCES
from infercost.kube.rest import CONFIGMAPS, EVENTS, LEASES, NODES, PODS

pytestmark = pytest.mark.kubectl

NAMESPACE = "infercost-system"
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
}


@pytest.fixture(scope="module")
def default() -> list[dict[str, Any]]:
    return build(MANIFESTS / "default")


def _deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment", "infercost-operator")


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = _deployment(docs)["spec"]["template"]["spec"]["containers"]
    return container


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# -- default/ --------------------------------------------------------------------------------


def test_default_installs_everything_into_infercost_system(default) -> None:
    kinds = sorted(d["kind"] for d in default)
    assert kinds == sorted(
        [
            "Namespace",
            *["CustomResourceDefinition"] * 3,
            "ServiceAccount",
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
            "ServiceMonitor",
            "PrometheusRule",
        ]
    )
    for doc in default:
        namespace = doc["metadata"].get("namespace")
        if doc["kind"] in CLUSTER_SCOPED:
            assert namespace is None, doc["metadata"]["name"]
        else:
            assert namespace == NAMESPACE, f"{doc['kind']} {doc['metadata']['name']}"
    ns = one(default, "Namespace")
    assert ns["metadata"]["name"] == NAMESPACE
    # The pod meets the restricted Pod Security Standard (next tests), so it is enforced.
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_operator_pod_is_non_root_read_only_and_without_capabilities(default) -> None:
    pod = _deployment(default)["spec"]["template"]["spec"]
    container = _container(default)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert all("hostPath" not in v for v in pod.get("volumes", []))
    # Writable scratch space is an emptyDir, never the image's filesystem.
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    assert all("emptyDir" in volumes[name] for name in mounts.values())


def test_probes_hit_the_health_port_and_metrics_port_is_named(default) -> None:
    container = _container(default)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    liveness = container["livenessProbe"]["httpGet"]
    readiness = container["readinessProbe"]["httpGet"]
    assert (liveness["path"], ports[liveness["port"]]) == ("/healthz", 8081)
    assert (readiness["path"], ports[readiness["port"]]) == ("/readyz", 8081)
    startup = container["startupProbe"]["httpGet"]
    assert (startup["path"], ports[startup["port"]]) == ("/healthz", 8081)


def _environ(container: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            assert item["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
            env[item["name"]] = NAMESPACE  # what the downward API gives in infercost-system
    return env


def test_operator_accepts_the_environment_the_deployment_sets(default) -> None:
    container = _container(default)
    env = _environ(container)
    config = build_config({}, env)  # the operator's own parser: raises on a bad value
    assert {e["name"] for e in container["env"] if "valueFrom" in e} == {"INFERCOST_NAMESPACE"}
    assert config.namespace == NAMESPACE
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert config.metrics_bind[1] == ports["metrics"]
    assert config.health_bind[1] == ports["health"]
    assert config.leader_elect is True
    assert container["args"] == ["run"]
    assert _deployment(default)["spec"]["replicas"] == 1


def test_leader_election_lease_is_the_one_rbac_allows(default) -> None:
    config = build_config({}, _environ(_container(default)))
    role = one(default, "Role", "infercost-operator")
    named = [r for r in role["rules"] if "leases" in r["resources"] and r.get("resourceNames")]
    assert named, "the Role should name the Lease it may read and renew"
    assert all(r["resourceNames"] == [config.lease_name] for r in named)


def test_requests_and_limits(default) -> None:
    resources = _container(default)["resources"]
    assert resources["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert resources["limits"] == {"cpu": "1", "memory": "512Mi"}


def test_terminating_leaves_time_for_the_checkpoint(default) -> None:
    pod = _deployment(default)["spec"]["template"]["spec"]
    shutdown_seconds = build_config({}, _environ(_container(default))).shutdown_timeout
    assert pod["terminationGracePeriodSeconds"] > shutdown_seconds


def test_image_is_the_release_of_this_package(default) -> None:
    image = _container(default)["image"]
    assert image.rsplit(":", 1)[1] == infercost.__version__


# -- scraping ----------------------------------------------------------------------------------


def test_service_monitor_scrapes_the_metrics_port_with_honor_labels(default) -> None:
    pod_labels = _deployment(default)["spec"]["template"]["metadata"]["labels"]
    container_ports = {p["name"] for p in _container(default)["ports"]}
    service = one(default, "Service", "infercost-metrics")
    assert _selects(service["spec"]["selector"], pod_labels)
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in container_ports and port["name"] == "metrics"
    monitor = one(default, "ServiceMonitor")
    assert _selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"]
    assert endpoint["honorLabels"] is True
    assert _job(endpoint) == "infercost-operator"
    # Without a namespaceSelector the monitor looks in its own namespace, wherever it is.
    assert "namespaceSelector" not in monitor["spec"]
    assert not [d for d in default if d["kind"] == "PodMonitor"], "would scrape twice"


def _job(endpoint: dict[str, Any]) -> str:
    (relabel,) = [r for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
    return str(relabel["replacement"])


def test_podmonitor_component_replaces_the_service_monitor(tmp_path: Path) -> None:
    overlay = write_overlay(
        tmp_path / "overlay",
        {
            "resources": [relative(MANIFESTS / "default", tmp_path / "overlay")],
            "components": [relative(MANIFESTS / "monitoring" / "podmonitor", tmp_path / "overlay")],
        },
    )
    docs = build(overlay)
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"]
    monitor = one(docs, "PodMonitor")
    assert monitor["metadata"]["namespace"] == NAMESPACE
    pod_labels = _deployment(docs)["spec"]["template"]["metadata"]["labels"]
    assert _selects(monitor["spec"]["selector"]["matchLabels"], pod_labels)
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in {p["name"] for p in _container(docs)["ports"]}
    assert endpoint["honorLabels"] is True
    assert _job(endpoint) == "infercost-operator"


# -- RBAC --------------------------------------------------------------------------------------


def _allows(
    rules: list[dict[str, Any]], verb: str, group: str, resource: str, name: str = ""
) -> bool:
    for rule in rules:
        if group not in rule.get("apiGroups", []) or resource not in rule.get("resources", []):
            continue
        if verb not in rule["verbs"]:
            continue
        if rule.get("resourceNames") and name not in rule["resourceNames"]:
            continue
        return True
    return False


def test_bindings_grant_the_roles_to_the_operator_service_account(default) -> None:
    account = one(default, "ServiceAccount")
    assert (
        _deployment(default)["spec"]["template"]["spec"]["serviceAccountName"]
        == (account["metadata"]["name"])
    )
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = one(default, kind)
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
        ]
        assert binding["roleRef"]["kind"] == role_kind
        one(default, role_kind, binding["roleRef"]["name"])


def test_operator_may_make_every_call_it_makes(default) -> None:
    config = build_config({}, _environ(_container(default)))
    cluster = one(default, "ClusterRole", "infercost-operator")["rules"]
    local = one(default, "Role", "infercost-operator")["rules"]
    # Cluster-wide: informers over pods, nodes and the three kinds; status patches; Events.
    for res in (PODS, NODES, *CUSTOM_RESOURCES.values()):
        for verb in ("list", "watch"):
            assert _allows(cluster, verb, res.group, res.plural), f"{verb} {res.display}"
    for res in CUSTOM_RESOURCES.values():
        assert _allows(cluster, "patch", res.group, f"{res.plural}/status"), res.display
    for verb in ("create", "patch"):
        assert _allows(cluster, verb, EVENTS.group, EVENTS.plural), f"{verb} events"
    # Budgets own PrometheusRules in their namespaces (whether the CRD exists comes from
    # discovery); a budget's scope namespace is read by name.
    for verb in ("get", "create", "update", "delete"):
        assert _allows(cluster, verb, "monitoring.coreos.com", "prometheusrules"), verb
    assert _allows(cluster, "get", "", "namespaces", "team-a")
    # In the operator namespace: the Lease and the ledger / pricing ConfigMaps.
    assert _allows(local, "create", LEASES.group, LEASES.plural)
    for verb in ("get", "update"):
        assert _allows(local, verb, LEASES.group, LEASES.plural, config.lease_name), verb
    for verb in ("get", "list", "watch", "create", "update", "delete"):
        assert _allows(local, verb, CONFIGMAPS.group, CONFIGMAPS.plural, "infercost-ledger-a"), verb


def test_operator_rbac_is_least_privilege(default) -> None:
    cluster = one(default, "ClusterRole", "infercost-operator")["rules"]
    local = one(default, "Role", "infercost-operator")["rules"]
    for rule in cluster + local:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
    # Nothing to read secrets, exec into or change pods, or rewrite what users own.
    for verb in ("get", "list", "watch"):
        assert not _allows(cluster + local, verb, "", "secrets")
    assert not _allows(cluster, "create", "", "pods/exec")
    for verb in ("create", "update", "patch", "delete"):
        assert not _allows(cluster, verb, "", "pods"), verb
        for res in CUSTOM_RESOURCES.values():
            assert not _allows(cluster, verb, res.group, res.plural), f"{verb} {res.display}"
    # ConfigMaps and Leases only in the operator namespace, never cluster-wide.
    for verb in ("get", "update", "create"):
        assert not _allows(cluster, verb, "", "configmaps")
        assert not _allows(cluster, verb, LEASES.group, LEASES.plural)
    # No CRD reads (discovery tells whether PrometheusRules exist), no namespace listing.
    assert not _allows(
        cluster, "get", "apiextensions.k8s.io", "customresourcedefinitions", f"costprofiles.{GROUP}"
    )
    assert not _allows(cluster, "list", "", "namespaces")
    for verb in ("list", "watch", "patch"):
        assert not _allows(cluster, verb, "monitoring.coreos.com", "prometheusrules"), verb


def test_user_roles_aggregate_into_view_edit_and_admin(default) -> None:
    view = one(default, "ClusterRole", "infercost-view")
    edit = one(default, "ClusterRole", "infercost-edit")
    agg = "rbac.authorization.k8s.io/aggregate-to-"
    assert view["metadata"]["labels"][agg + "view"] == "true"
    assert edit["metadata"]["labels"][agg + "edit"] == "true"
    assert edit["metadata"]["labels"][agg + "admin"] == "true"
    assert agg + "edit" not in view["metadata"]["labels"]
    for res in CUSTOM_RESOURCES.values():
        for verb in ("get", "list", "watch"):
            assert _allows(view["rules"], verb, res.group, res.plural)
            assert _allows(edit["rules"], verb, res.group, res.plural)
        for verb in ("create", "update", "patch", "delete"):
            assert not _allows(view["rules"], verb, res.group, res.plural)
            assert _allows(edit["rules"], verb, res.group, res.plural)
        # Only the operator writes status: nobody can forge a cost figure or a budget state.
        for verb in ("update", "patch"):
            assert not _allows(edit["rules"], verb, res.group, f"{res.plural}/status")


_RULE_START = re.compile(r"^(\s*)- (apiGroups|nonResourceURLs):")


@pytest.mark.parametrize("path", sorted((MANIFESTS / "rbac").glob("*.yaml")), ids=lambda p: p.name)
def test_every_rbac_rule_says_why(path: Path) -> None:
    text = path.read_text()
    rules = [
        rule
        for doc in yaml.safe_load_all(text)
        if doc and doc.get("kind") in ("Role", "ClusterRole")
        for rule in doc.get("rules", [])
    ]
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _RULE_START.match(line)]
    assert len(starts) == len(rules), "every rule should start with apiGroups"
    for i in starts:
        indent = _RULE_START.match(lines[i]).group(1)  # type: ignore[union-attr]
        comment = lines[i - 1]
        assert comment.startswith(indent + "# ") and len(comment.strip()) > 10, (
            f"{path.name}:{i + 1}: the rule has no comment saying why"
        )


# -- the overlays docs/deploy.md shows ------------------------------------------------------

_OVERLAY_BLOCK = re.compile(r"```yaml\n# overlay: ([\w-]+)\n(.*?)```", re.DOTALL)


def _documented_overlays() -> dict[str, str]:
    overlays: dict[str, str] = {}
    for page in ("deploy.md", "security.md"):
        overlays.update(_OVERLAY_BLOCK.findall((REPO / "docs" / page).read_text()))
    return overlays


def _build_documented(name: str, tmp_path: Path) -> list[dict[str, Any]]:
    root = tmp_path / name
    root.mkdir()
    text = _documented_overlays()[name].replace("../infercost/manifests", relative(MANIFESTS, root))
    (root / "kustomization.yaml").write_text(text)
    namespace = yaml.safe_load(text).get("namespace")
    if namespace:  # the overlays that list namespace.yaml ask the reader to write it
        (root / "namespace.yaml").write_text(
            yaml.safe_dump(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            )
        )
    return build(root)


def test_docs_show_the_overlays_tested_here() -> None:
    assert set(_documented_overlays()) == {
        "kube-prometheus-stack",
        "without-prometheus-operator",
        "another-namespace",
        "manual-edit-role",
    }


def test_documented_kube_prometheus_stack_overlay_labels_every_monitoring_object(
    tmp_path: Path,
) -> None:
    docs = _build_documented("kube-prometheus-stack", tmp_path)
    monitoring = [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {d["kind"] for d in monitoring} == {"ServiceMonitor", "PrometheusRule"}
    assert all(d["metadata"]["labels"]["release"] == "kube-prometheus-stack" for d in monitoring)
    # The budget rules the operator writes get the label through --rule-labels.
    config = build_config({}, _environ(_container(docs)))
    assert dict(config.rule_labels) == {"release": "kube-prometheus-stack"}


def test_documented_overlay_without_prometheus_operator(tmp_path: Path) -> None:
    docs = _build_documented("without-prometheus-operator", tmp_path)
    assert not [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert one(docs, "Namespace")["metadata"]["name"] == NAMESPACE
    assert one(docs, "ClusterRoleBinding")["subjects"][0]["namespace"] == NAMESPACE
    assert _container(docs)["readinessProbe"]


def test_documented_overlay_installs_into_another_namespace(tmp_path: Path) -> None:
    docs = _build_documented("another-namespace", tmp_path)
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        assert one(docs, kind)["subjects"][0]["namespace"] == "finops"
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == "finops", doc["kind"]
    # The operator finds its namespace from the downward API, so nothing else changes.
    env = {**_environ(_container(docs)), "INFERCOST_NAMESPACE": "finops"}
    assert build_config({}, env).namespace == "finops"


def test_documented_overlay_stops_aggregating_the_edit_role(tmp_path: Path) -> None:
    docs = _build_documented("manual-edit-role", tmp_path)
    labels = one(docs, "ClusterRole", "infercost-edit")["metadata"]["labels"]
    assert not [k for k in labels if k.startswith("rbac.authorization.k8s.io/aggregate-to-")]
    view = one(docs, "ClusterRole", "infercost-view")["metadata"]["labels"]
    assert view["rbac.authorization.k8s.io/aggregate-to-view"] == "true"


# -- network policy ----------------------------------------------------------------------------


def test_network_policy_lets_the_operator_reach_what_it_scrapes(default) -> None:
    (policy,) = build(MANIFESTS / "network-policy")
    assert policy["metadata"]["namespace"] == NAMESPACE
    pod_labels = _deployment(default)["spec"]["template"]["metadata"]["labels"]
    assert _selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels)
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    ports = {p["name"] for p in _container(default)["ports"]}
    ingress_ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ingress_ports == ports
    egress = policy["spec"]["egress"]
    # The API server.
    assert any(
        {p["port"] for p in rule.get("ports", [])} >= {443, 6443}
        and any("ipBlock" in peer for peer in rule["to"])
        for rule in egress
    )
    # Inference pods in any namespace, by the labels that make a pod an inference source.
    inference_keys = {
        expr["key"]
        for rule in egress
        for peer in rule["to"]
        if peer.get("namespaceSelector") == {}
        for expr in peer["podSelector"].get("matchExpressions", [])
        if expr["operator"] == "Exists"
    }
    assert inference_keys == {
        "infercost.ai/backend",
        "inference.llmkube.dev/runtime",
        "serving.kserve.io/inferenceservice",
    }
    # DCGM exporters: every default selector, on the default exporter port, trusted
    # namespaces only.
    dcgm_port = int(FLAGS_BY_DEST["dcgm_port"].default or 0)
    exporter_rules = [
        rule for rule in egress if {p["port"] for p in rule.get("ports", [])} == {dcgm_port}
    ]
    assert len(exporter_rules) == 1
    peers = exporter_rules[0]["to"]
    selected = {
        ",".join(f"{k}={v}" for k, v in peer["podSelector"]["matchLabels"].items())
        for peer in peers
    }
    assert selected == set(DEFAULT_DCGM_SELECTORS)
    for peer in peers:
        (expr,) = peer["namespaceSelector"]["matchExpressions"]
        assert expr["key"] == "kubernetes.io/metadata.name" and expr["operator"] == "In"
        assert set(expr["values"]) == {"gpu-operator", "nvidia-gpu-operator", "kube-system"}
