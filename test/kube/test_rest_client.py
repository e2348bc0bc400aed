"""Raw REST client: paths, error mapping, connection setup and startup checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from infercost.api import GROUP, VERSION
from infercost.kube.client import (
    AccessCheck,
    StartupError,
    StartupRetry,
    check_access,
    check_api,
    check_crds,
    load_api_client,
)
from infercost.kube.rest import (
    CONFIGMAPS,
    LEASES,
    NODES,
    PODS,
    ApiError,
    ConflictError,
    GoneError,
    NotFoundError,
    Resource,
    RestClient,
    TooManyRequestsError,
    error_for,
)
from infercost.testing.kubefixtures import KubeEnv


def test_resource_paths() -> None:
    assert PODS.path() == "/api/v1/pods"
    assert PODS.path("ns") == "/api/v1/namespaces/ns/pods"
    assert PODS.path("ns", "p", "status") == "/api/v1/namespaces/ns/pods/p/status"
    assert NODES.path(name="n") == "/api/v1/nodes/n"
    assert LEASES.path("x", "l") == "/apis/coordination.k8s.io/v1/namespaces/x/leases/l"
    assert LEASES.display == "leases.coordination.k8s.io" and PODS.display == "pods"
    with pytest.raises(ValueError, match="cluster-scoped"):
        NODES.path("ns")
    with pytest.raises(ValueError, match="subresource"):
        PODS.path("ns", subresource="status")


def test_error_mapping() -> None:
    body = (
        b'{"kind":"Status","code":409,"reason":"Conflict","message":"the object has been modified"}'
    )
    err = error_for(409, body, method="PUT", path="/x")
    assert isinstance(err, ConflictError) and err.status == 409
    assert str(err) == "PUT /x: HTTP 409 Conflict: the object has been modified"
    assert isinstance(error_for(410, b""), GoneError)
    slow = error_for(429, b"{}", retry_after="2")
    assert isinstance(slow, TooManyRequestsError) and slow.retry_after == 2.0
    weird = error_for(502, b"<html>bad gateway</html>")
    assert type(weird) is ApiError and "bad gateway" in weird.message


def test_requests_against_the_emulator(kube: KubeEnv) -> None:
    rest = kube.rest
    created = rest.create(CONFIGMAPS, {"metadata": {"name": "c"}, "data": {"a": "1"}}, "default")
    assert created["metadata"]["resourceVersion"]
    assert rest.get(CONFIGMAPS, "c", "default")["data"] == {"a": "1"}
    with pytest.raises(NotFoundError):
        rest.get(CONFIGMAPS, "missing", "default")
    with pytest.raises(ConflictError):
        rest.create(CONFIGMAPS, {"metadata": {"name": "c"}}, "default")
    listed = rest.list(CONFIGMAPS, "default", label_selector="absent=true")
    assert listed["items"] == []
    agents = {r.user_agent for r in kube.sim.requests() if r.resource == "configmaps"}
    assert agents == {rest.user_agent} and rest.user_agent.startswith("infercost/")


def test_startup_checks(kube: KubeEnv) -> None:
    assert check_api(kube.rest).startswith("v1.")
    crs = [
        Resource(GROUP, VERSION, p, k, True)
        for p, k in (("costprofiles", "CostProfile"), ("usagereports", "UsageReport"))
    ]
    check_crds(kube.rest, crs)
    with pytest.raises(StartupError, match=r"widgets\.finops\.infercost\.ai are not installed"):
        check_crds(kube.rest, [*crs, Resource(GROUP, VERSION, "widgets", "Widget", True)])
    with pytest.raises(StartupError, match=r"API group example\.com/v1 is not served"):
        check_crds(kube.rest, [Resource("example.com", "v1", "things", "Thing", True)])
    check_access(
        kube.rest,
        [
            AccessCheck("list", PODS),
            AccessCheck("get", LEASES, "infercost-system", "absent-is-fine"),
        ],
    )
    kube.sim.faults.respond(verb="list", resource="pods", code=503, count=2)
    no_wait = StartupRetry(attempts=2, sleep=lambda _: None)
    with pytest.raises(StartupError, match=r"cannot list pods.*gave up after 2 attempts"):
        check_access(kube.rest, [AccessCheck("list", PODS)], retry=no_wait)


def test_unreachable_api_is_one_sentence() -> None:
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = "http://127.0.0.1:1"
    with pytest.raises(
        StartupError, match=r"^cannot reach the Kubernetes API at http://127\.0\.0\.1:1"
    ):
        check_api(RestClient(client.ApiClient(cfg)))


def write_config(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "secret"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def test_configuration_sources(tmp_path: Path) -> None:
    explicit = write_config(tmp_path / "explicit", "http://127.0.0.1:1001")
    env_cfg = write_config(tmp_path / "env", "http://127.0.0.1:1002")
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    write_config(home / ".kube" / "config", "http://127.0.0.1:1003")
    environ = {"KUBECONFIG": str(env_cfg), "HOME": str(home)}
    assert load_api_client(str(explicit), environ=environ).configuration.host.endswith(":1001")
    assert load_api_client(None, environ=environ).configuration.host.endswith(":1002")
    assert load_api_client(None, environ={"HOME": str(home)}).configuration.host.endswith(":1003")
    token = load_api_client(str(explicit), environ={}).configuration.api_key
    assert token == {"BearerToken": "Bearer secret"}
    with pytest.raises(StartupError, match="no Kubernetes configuration found"):
        load_api_client(None, environ={"HOME": str(tmp_path / "nobody")})
    with pytest.raises(StartupError, match=r"from \$KUBECONFIG\) does not exist"):
        load_api_client(None, environ={"KUBECONFIG": str(tmp_path / "gone")})
    broken = tmp_path / "broken"
    broken.write_text(yaml.safe_dump({"clusters": [{"name": "c"}], "current-context": "nope"}))
    with pytest.raises(StartupError, match="is unusable"):
        load_api_client(str(broken), environ={})


def test_bearer_token_and_user_agent_are_sent(tmp_path: Path) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            body = json.dumps({"kind": "ConfigMapList", "items": [], "metadata": {}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = write_config(tmp_path / "c", f"http://127.0.0.1:{server.server_address[1]}")
        rest = RestClient(load_api_client(str(cfg), environ={}), user_agent="infercost/test")
        rest.list(CONFIGMAPS, "default", label_selector="a=b,c in (d,e)")
    finally:
        server.shutdown()
        server.server_close()
    assert seen[0]["authorization"] == "Bearer secret"
    assert seen[0]["user-agent"] == "infercost/test"
    assert seen[0]["accept"] == "application/json"


def test_a_watch_whose_response_urllib3_already_closed_closes_quietly(kube: KubeEnv) -> None:
    """A server that cuts a watch makes urllib3 close the response inside the failed read; the
    informer's stop then closes the stream again, which must end it without an error."""
    stream = kube.rest.watch(
        "/api/v1/namespaces/default/configmaps",
        query={"watch": "true", "timeoutSeconds": 30},
        timeout=(5.0, 30.0),
    )
    response = stream._response
    response.close()  # what urllib3 does itself when a read fails
    with pytest.raises(ValueError):
        response.shutdown()  # type: ignore[attr-defined]
    stream.close()
    assert list(stream) == []
