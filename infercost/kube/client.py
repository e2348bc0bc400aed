"""Connecting to the cluster, and the checks that turn a bad start into one clear sentence.

Configuration is found as kubectl and client-go find it: an explicit ``--kubeconfig`` file,
else the in-cluster service account, else ``$KUBECONFIG``, else ``~/.kube/config``.
The startup checks run before anything else starts, each raising :class:`StartupError` with a
message a user can act on: the API is unreachable or rejects the credentials, a CRD is not
installed, or RBAC forbids something the operator needs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from infercost.kube.rest import (
    ApiError,
    ForbiddenError,
    NotFoundError,
    Resource,
    RestClient,
    TransportError,
    UnauthorizedError,
)

__all__ = [
    "AccessCheck",
    "StartupError",
    "check_access",
    "check_api",
    "check_crds",
    "kubeconfig_namespace",
    "load_api_client",
]

_SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class StartupError(Exception):
    """The operator cannot start; the message is the one line shown to the user."""

    def __str__(self) -> str:
        return " ".join(super().__str__().split())


def _locate(kubeconfig: str | None, env: Mapping[str, str]) -> tuple[Path | None, str]:
    """Where the configuration comes from: ``(file, how it was found)``, or ``(None,
    "in-cluster")`` for the service account. The order is kubectl's and client-go's."""
    if kubeconfig:
        return Path(kubeconfig), "--kubeconfig"
    if env.get("KUBERNETES_SERVICE_HOST") and (_SERVICE_ACCOUNT / "token").exists():
        return None, "in-cluster"
    if env.get("KUBECONFIG"):
        return Path(env["KUBECONFIG"].split(os.pathsep)[0]), "$KUBECONFIG"
    default = Path(env.get("HOME", str(Path.home()))) / ".kube" / "config"
    if default.exists():
        return default, "~/.kube/config"
    raise StartupError(
        "no Kubernetes configuration found: not running in a cluster, $KUBECONFIG is unset "
        "and ~/.kube/config does not exist (use --kubeconfig)"
    )


def load_api_client(
    kubeconfig: str | None = None,
    *,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Any:
    """A ``kubernetes.client.ApiClient`` configured from the first source that exists."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    path, source = _locate(kubeconfig, os.environ if environ is None else environ)
    if path is not None:
        return _from_file(path, context, source)
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except ConfigException as exc:
        raise StartupError(f"in-cluster configuration is unusable: {exc}") from exc
    return client.ApiClient(configuration)


def kubeconfig_namespace(
    kubeconfig: str | None = None,
    *,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The namespace kubectl uses when given no ``-n``: the context's ``namespace``, in a
    pod its service account's namespace, else ``default``."""
    path, source = _locate(kubeconfig, os.environ if environ is None else environ)
    if path is None:
        try:
            return (_SERVICE_ACCOUNT / "namespace").read_text().strip() or "default"
        except OSError:
            return "default"
    loaded = _read_kubeconfig(path, source)
    name = context or loaded.get("current-context") or ""
    contexts = [c for c in loaded.get("contexts") or () if isinstance(c, dict)]
    for entry in contexts:
        if entry.get("name") == name:
            namespace = (entry.get("context") or {}).get("namespace")
            return str(namespace) if namespace else "default"
    if context:
        known = ", ".join(str(c.get("name")) for c in contexts) or "none"
        raise StartupError(f"kubeconfig {path} has no context {context!r} (contexts: {known})")
    return "default"


def _read_kubeconfig(path: Path, source: str) -> dict[str, Any]:
    import yaml

    if not path.exists():
        raise StartupError(f"kubeconfig {path} (from {source}) does not exist")
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise StartupError(f"kubeconfig {path} cannot be read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or type(exc).__name__
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise StartupError(f"kubeconfig {path} is not readable YAML: {problem}{where}") from exc
    if not isinstance(loaded, dict) or not loaded.get("clusters"):
        raise StartupError(f"kubeconfig {path} defines no clusters")
    return loaded


def _from_file(path: Path, context: str | None, source: str) -> Any:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    _read_kubeconfig(path, source)
    configuration = client.Configuration()
    try:
        config.load_kube_config(
            config_file=str(path), context=context, client_configuration=configuration
        )
    except (ConfigException, ValueError, KeyError, TypeError) as exc:
        raise StartupError(f"kubeconfig {path} is unusable: {exc}") from exc
    return client.ApiClient(configuration)


def check_api(rest: RestClient) -> str:
    """GET /version; returns the server's gitVersion."""
    host = rest.api_client.configuration.host
    try:
        version = rest.request("GET", "/version", timeout=(5.0, 10.0))
    except UnauthorizedError as exc:
        raise StartupError(f"the Kubernetes API at {host} rejected the credentials") from exc
    except TransportError as exc:
        raise StartupError(
            f"cannot reach the Kubernetes API at {host}: {exc.message or exc.reason}"
        ) from exc
    except ApiError as exc:
        raise StartupError(f"the Kubernetes API at {host} answered /version with {exc}") from exc
    return str(version.get("gitVersion") or "unknown")


def check_crds(rest: RestClient, resources: Iterable[Resource]) -> None:
    """Every custom resource is served (API discovery, allowed to every authenticated user)."""
    by_group: dict[str, list[Resource]] = {}
    for res in resources:
        by_group.setdefault(f"{res.group}/{res.version}", []).append(res)
    for group_version, wanted in by_group.items():
        names = ", ".join(r.display for r in wanted)
        try:
            discovery = rest.request("GET", f"/apis/{group_version}")
        except NotFoundError as exc:
            raise StartupError(
                f"the CustomResourceDefinitions {names} are not installed "
                f"(API group {group_version} is not served); apply manifests/crd first"
            ) from exc
        except ApiError as exc:
            raise StartupError(f"cannot discover API group {group_version}: {exc}") from exc
        served = {str(r.get("name")) for r in discovery.get("resources") or ()}
        missing = [r.display for r in wanted if r.plural not in served]
        if missing:
            raise StartupError(
                f"the CustomResourceDefinition(s) {', '.join(missing)} are not installed; "
                "apply manifests/crd first"
            )


@attrs.frozen
class AccessCheck:
    """Something the operator must be allowed to do, with why (shown when it is not)."""

    verb: str  # "list" or "get"
    resource: Resource
    namespace: str | None = None
    name: str = ""
    why: str = ""


def check_access(rest: RestClient, checks: Iterable[AccessCheck]) -> None:
    """Try each access cheaply (list with limit=1; get where a 404 is fine).

    The real call answers exactly what RBAC, admission and aggregation allow, which a
    SelfSubjectAccessReview can only predict."""
    for check in checks:
        scope = f" in namespace {check.namespace}" if check.namespace else ""
        try:
            if check.verb == "list":
                rest.list(check.resource, check.namespace, limit=1)
            elif check.verb == "get":
                rest.get(check.resource, check.name, check.namespace)
            else:
                raise ValueError(f"unsupported access check verb {check.verb!r}")
        except NotFoundError:
            if check.verb == "list":
                raise StartupError(
                    f"the API does not serve {check.resource.display}{scope}"
                ) from None
        except ForbiddenError as exc:
            why = f" (needed to {check.why})" if check.why else ""
            raise StartupError(
                f"RBAC denies {check.verb} {check.resource.display}{scope}{why}: "
                f"{exc.message or exc.reason}"
            ) from exc
        except TransportError as exc:
            raise StartupError(f"lost the Kubernetes API while checking access: {exc}") from exc
        except ApiError as exc:
            raise StartupError(
                f"cannot {check.verb} {check.resource.display}{scope}: {exc}"
            ) from exc
