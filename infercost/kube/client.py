"""Connecting to the cluster, and the checks that turn a bad start into one clear sentence.

Configuration is found as kubectl and client-go find it: an explicit ``--kubeconfig`` file,
else the in-cluster service account, else ``$KUBECONFIG`` (several paths are merged the way
kubectl merges them), else ``~/.kube/config``.
The startup checks run before anything else starts, each raising :class:`StartupError` with a
message a user can act on: the API is unreachable or rejects the credentials, a CRD is not
installed, the operator's namespace does not exist, or RBAC forbids something the operator
needs. An API server that answers 429 or 5xx is asked again with backoff
(:class:`StartupRetry`): a rolling apiserver upgrade must not crash-loop the operator.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import structlog

from infercost.kube.rest import (
    CONFIGMAPS,
    ApiError,
    ForbiddenError,
    NotFoundError,
    Resource,
    RestClient,
    TransportError,
    UnauthorizedError,
)

__all__ = [
    "SERVICE_ACCOUNT_NAMESPACE_FILE",
    "AccessCheck",
    "StartupError",
    "StartupRetry",
    "check_access",
    "check_api",
    "check_crds",
    "check_namespace",
    "load_api_client",
    "pod_namespace",
]

log = structlog.get_logger("infercost.kube.client")
T = TypeVar("T")

_SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SERVICE_ACCOUNT_NAMESPACE_FILE = _SERVICE_ACCOUNT / "namespace"


class StartupError(Exception):
    """The operator cannot start; the message is the one line shown to the user."""

    def __str__(self) -> str:
        return " ".join(super().__str__().split())


def pod_namespace(path: Path = SERVICE_ACCOUNT_NAMESPACE_FILE) -> str | None:
    """The namespace of the pod this process runs in (the service account's ``namespace``
    file, as client-go's in-cluster config reads it); ``None`` outside a cluster."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return text or None


def load_api_client(
    kubeconfig: str | None = None,
    *,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Any:
    """A ``kubernetes.client.ApiClient`` configured from the first source that exists."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    env = os.environ if environ is None else environ
    if kubeconfig:
        return _from_file(Path(kubeconfig), context, "--kubeconfig")
    if env.get("KUBERNETES_SERVICE_HOST") and (_SERVICE_ACCOUNT / "token").exists():
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as exc:
            raise StartupError(f"in-cluster configuration is unusable: {exc}") from exc
        return client.ApiClient(configuration)
    if env.get("KUBECONFIG"):
        return _from_kubeconfig_paths(env["KUBECONFIG"], context)
    default = Path(env.get("HOME", str(Path.home()))) / ".kube" / "config"
    if default.exists():
        return _from_file(default, context, "~/.kube/config")
    raise StartupError(
        "no Kubernetes configuration found: not running in a cluster, $KUBECONFIG is unset "
        "and ~/.kube/config does not exist (use --kubeconfig)"
    )


def _read_kubeconfig(path: Path) -> dict[str, Any]:
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise StartupError(f"kubeconfig {path} cannot be read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or type(exc).__name__
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise StartupError(f"kubeconfig {path} is not readable YAML: {problem}{where}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise StartupError(f"kubeconfig {path} is not a kubeconfig (a YAML mapping)")
    return loaded


def _from_file(path: Path, context: str | None, source: str) -> Any:
    if not path.exists():
        raise StartupError(f"kubeconfig {path} (from {source}) does not exist")
    if not _read_kubeconfig(path).get("clusters"):
        raise StartupError(f"kubeconfig {path} defines no clusters")
    return _load([path], context, str(path))


def _from_kubeconfig_paths(value: str, context: str | None) -> Any:
    """``$KUBECONFIG`` as kubectl reads it: every existing file, merged. For clusters, users
    and contexts the first file that defines a name wins; ``current-context`` comes from the
    first file that sets it. Missing files are skipped."""
    paths = [Path(p).expanduser() for p in value.split(os.pathsep) if p]
    if len(paths) == 1:
        return _from_file(paths[0], context, "$KUBECONFIG")
    present = [p for p in paths if p.exists()]
    if not present:
        raise StartupError(
            f"none of the files in $KUBECONFIG exists ({', '.join(str(p) for p in paths)})"
        )
    loaded = [(p, _read_kubeconfig(p)) for p in present]
    used = [p for p, doc in loaded if doc]  # kubectl ignores empty files
    if not any(doc.get("clusters") for _, doc in loaded):
        raise StartupError(f"the kubeconfig files in $KUBECONFIG define no clusters ({value})")
    if context is None:
        context = next(
            (str(doc["current-context"]) for _, doc in loaded if doc.get("current-context")),
            None,
        )
    return _load(used, context, "$KUBECONFIG" if len(used) > 1 else str(used[0]))


def _load(paths: list[Path], context: str | None, what: str) -> Any:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    try:
        # The client's own merger keeps, per entry, the file it came from, so that relative
        # certificate paths resolve against that file; the context is chosen above.
        config.load_kube_config(
            config_file=os.pathsep.join(str(p) for p in paths),
            context=context,
            client_configuration=configuration,
        )
    except (ConfigException, ValueError, KeyError, TypeError) as exc:
        raise StartupError(f"kubeconfig {what} is unusable: {exc}") from exc
    return client.ApiClient(configuration)


@attrs.frozen
class StartupRetry:
    """How the start-up checks ride out an API server that is briefly overloaded (429) or
    failing (5xx): up to ``attempts`` tries, waiting ``first_delay_seconds`` doubled after each
    failure up to ``max_delay_seconds`` (longer when the server's ``Retry-After`` asks).
    With the defaults the checks give up after about 15 s."""

    attempts: int = 6
    first_delay_seconds: float = 0.5
    max_delay_seconds: float = 8.0
    sleep: Callable[[float], None] = time.sleep

    def call(self, what: str, request: Callable[[], T]) -> T:
        """``request()``, repeated while it fails with a retryable status."""
        delay = self.first_delay_seconds
        for attempt in range(1, self.attempts + 1):
            try:
                return request()
            except ApiError as exc:
                if not _retryable(exc):
                    raise
                if attempt == self.attempts:
                    exc.attempts = attempt  # type: ignore[attr-defined]
                    raise
                wait = min(self.max_delay_seconds, max(delay, exc.retry_after or 0.0))
                log.warning(
                    "the Kubernetes API is not answering normally during start-up; retrying",
                    check=what,
                    status=exc.status,
                    attempt=attempt,
                    retry_in_seconds=wait,
                )
                self.sleep(wait)
                delay = min(self.max_delay_seconds, delay * 2)
        raise AssertionError("unreachable: attempts must be at least 1")


# Too many requests, and the 5xx answers of an apiserver or a load balancer in front of it that
# is restarting or overloaded (501 Not Implemented and the like will not get better).
_RETRYABLE = frozenset({429, 500, 502, 503, 504})


def _retryable(exc: ApiError) -> bool:
    return exc.status in _RETRYABLE


def _gave_up(exc: ApiError) -> str:
    attempts = getattr(exc, "attempts", None)
    return f" (gave up after {attempts} attempts)" if attempts else ""


def check_api(rest: RestClient, retry: StartupRetry = StartupRetry()) -> str:
    """GET /version; returns the server's gitVersion."""
    host = rest.api_client.configuration.host
    try:
        version = retry.call(
            "GET /version", lambda: rest.request("GET", "/version", timeout=(5.0, 10.0))
        )
    except UnauthorizedError as exc:
        raise StartupError(f"the Kubernetes API at {host} rejected the credentials") from exc
    except TransportError as exc:
        raise StartupError(
            f"cannot reach the Kubernetes API at {host}: {exc.message or exc.reason}"
        ) from exc
    except ApiError as exc:
        raise StartupError(
            f"the Kubernetes API at {host} answered /version with {exc}{_gave_up(exc)}"
        ) from exc
    return str(version.get("gitVersion") or "unknown")


def check_crds(
    rest: RestClient, resources: Iterable[Resource], retry: StartupRetry = StartupRetry()
) -> None:
    """Every custom resource is served (API discovery, allowed to every authenticated user)."""
    by_group: dict[str, list[Resource]] = {}
    for res in resources:
        by_group.setdefault(f"{res.group}/{res.version}", []).append(res)
    for group_version, wanted in by_group.items():
        names = ", ".join(r.display for r in wanted)
        path = f"/apis/{group_version}"
        try:
            discovery = retry.call(f"GET {path}", functools.partial(rest.request, "GET", path))
        except NotFoundError as exc:
            raise StartupError(
                f"the CustomResourceDefinitions {names} are not installed "
                f"(API group {group_version} is not served); apply manifests/crd first"
            ) from exc
        except ApiError as exc:
            raise StartupError(
                f"cannot discover API group {group_version}: {exc}{_gave_up(exc)}"
            ) from exc
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


def check_namespace(rest: RestClient, namespace: str, retry: StartupRetry = StartupRetry()) -> None:
    """The operator's namespace exists (and the operator may write ConfigMaps there, as the
    ledger must).

    Checked with a server-side dry-run create of a ConfigMap: the namespace admission answers
    404 for a missing namespace exactly as it would for the ledger's first write, nothing is
    stored, and no permission beyond the ledger's own is needed (reading Namespace objects
    would need a cluster-wide grant)."""
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"generateName": "infercost-startup-check-", "namespace": namespace},
    }
    path = CONFIGMAPS.path(namespace)
    try:
        retry.call(
            f"POST {path}?dryRun=All",
            lambda: rest.request("POST", path, query={"dryRun": "All"}, body=body),
        )
    except NotFoundError as exc:
        raise StartupError(
            f"the operator namespace {namespace} does not exist: create it, or set --namespace "
            "to the namespace the operator runs in"
        ) from exc
    except ForbiddenError as exc:
        if "being terminated" in exc.message:
            raise StartupError(f"the operator namespace {namespace} is being deleted") from exc
        raise StartupError(
            f"RBAC denies create configmaps in namespace {namespace} (needed to checkpoint the "
            f"ledger): {exc.message or exc.reason}"
        ) from exc
    except TransportError as exc:
        raise StartupError(f"lost the Kubernetes API while checking {namespace}: {exc}") from exc
    except ApiError as exc:
        raise StartupError(
            f"cannot check the operator namespace {namespace}: {exc}{_gave_up(exc)}"
        ) from exc


def check_access(
    rest: RestClient, checks: Iterable[AccessCheck], retry: StartupRetry = StartupRetry()
) -> None:
    """Try each access cheaply (list with limit=1; get where a 404 is fine).

    The real call answers exactly what RBAC, admission and aggregation allow, which a
    SelfSubjectAccessReview can only predict."""
    for check in checks:
        scope = f" in namespace {check.namespace}" if check.namespace else ""
        try:
            if check.verb == "list":
                retry.call(
                    f"list {check.resource.display}{scope}",
                    functools.partial(rest.list, check.resource, check.namespace, limit=1),
                )
            elif check.verb == "get":
                retry.call(
                    f"get {check.resource.display}{scope}",
                    functools.partial(rest.get, check.resource, check.name, check.namespace),
                )
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
                f"cannot {check.verb} {check.resource.display}{scope}: {exc}{_gave_up(exc)}"
            ) from exc
