"""Reading InferCost objects from a cluster for the people-facing commands (``status``,
``compare``, ``demo``), and the one-line errors they end with.

Connection and namespaces follow kubectl: ``--kubeconfig``, else in a pod the service account,
else ``$KUBECONFIG`` / ``~/.kube/config`` (the order of :func:`infercost.kube.client.
load_api_client`), ``--context``, ``-n`` defaulting to the context's namespace, ``-A`` for all
namespaces. Every failure a user can meet — the API
unreachable, credentials rejected, the CRDs not installed, RBAC denying a list, an unknown
object — becomes a :class:`CommandError` whose message names what failed and what to do; the
commands print it as ``infercost <command>: error: <message>`` and exit 1. Nothing here writes
to the cluster.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
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
    "CommandError",
    "Connection",
    "add_connection_arguments",
    "connect",
    "custom_resource",
]


class CommandError(Exception):
    """A command cannot do its job; the message is the one line shown to the user."""

    def __str__(self) -> str:
        return " ".join(super().__str__().split())


def custom_resource(kind: str) -> Resource:
    """The REST resource of CostProfile, UsageReport or TokenBudget."""
    from infercost.controllers.operator import CUSTOM_RESOURCES

    return CUSTOM_RESOURCES[kind]


def add_connection_arguments(parser: argparse.ArgumentParser, *, all_namespaces: bool) -> None:
    """``--kubeconfig``, ``--context``, ``-n/--namespace`` and (when listing) ``-A``."""
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig file (default: in a pod its service account, else $KUBECONFIG, else "
        "~/.kube/config)",
    )
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context to use")
    parser.add_argument(
        "-n",
        "--namespace",
        metavar="NS",
        help="namespace of the objects (default: the context's namespace, as kubectl)",
    )
    if all_namespaces:
        parser.add_argument(
            "-A",
            "--all-namespaces",
            action="store_true",
            help="list the objects of every namespace",
        )


@attrs.frozen
class Connection:
    """A REST client on the cluster and the namespace to read (``None``: all namespaces)."""

    rest: RestClient
    namespace: str | None

    @property
    def host(self) -> str:
        return str(self.rest.api_client.configuration.host)

    def where(self) -> str:
        return f"namespace {self.namespace}" if self.namespace else "any namespace"

    @contextmanager
    def translated(self, verb: str, resource: Resource, namespace: str | None) -> Iterator[None]:
        """Turn the API's answers into one-line :class:`CommandError`\\ s."""
        scope = f" in namespace {namespace}" if namespace else " in all namespaces"
        try:
            yield
        except TransportError as exc:
            raise CommandError(
                f"cannot reach the Kubernetes API at {self.host}: {exc.message or exc.reason}"
            ) from exc
        except UnauthorizedError as exc:
            raise CommandError(
                f"the Kubernetes API at {self.host} rejected the credentials (401)"
            ) from exc
        except ForbiddenError as exc:
            raise CommandError(
                f"access denied: cannot {verb} {resource.display}{scope} "
                f"({exc.message or exc.reason or 'HTTP 403'}); ask for the infercost view role "
                "(docs/security.md)"
            ) from exc
        except NotFoundError:
            raise
        except ApiError as exc:
            raise CommandError(f"cannot {verb} {resource.display}{scope}: {exc}") from exc

    def objects(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every object of ``kind`` in ``namespace`` (``None``: the connection's), name order."""
        resource = custom_resource(kind)
        ns = self.namespace if namespace is None else namespace
        with self.translated("list", resource, ns):
            try:
                items = self._list_all(resource, ns)
            except NotFoundError as exc:
                self.require_crds()
                raise CommandError(f"the API does not serve {resource.display}: {exc}") from exc
        return sorted(items, key=_namespaced_name)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        """One object, or ``None`` when it does not exist."""
        resource = custom_resource(kind)
        with self.translated("get", resource, namespace):
            try:
                return self.rest.get(resource, name, namespace)
            except NotFoundError:
                self.require_crds()
                return None

    def require_crds(self) -> None:
        """Raise the CRDs-missing error when the API does not serve InferCost's kinds."""
        from infercost.controllers.operator import CUSTOM_RESOURCES
        from infercost.kube.client import StartupError, check_crds

        try:
            check_crds(self.rest, CUSTOM_RESOURCES.values())
        except StartupError as exc:
            raise CommandError(str(exc)) from exc

    def _list_all(self, resource: Resource, namespace: str | None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            page = self.rest.list(resource, namespace, limit=500, continue_token=token)
            items.extend(page.get("items") or ())
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items


def connect(args: argparse.Namespace) -> Connection:
    """A :class:`Connection` from the connection flags; :class:`CommandError` when the
    configuration is missing or unusable."""
    from infercost.kube.client import StartupError, kubeconfig_namespace, load_api_client

    try:
        if getattr(args, "all_namespaces", False):
            namespace: str | None = None
        elif args.namespace:
            namespace = args.namespace
        else:
            namespace = kubeconfig_namespace(args.kubeconfig, context=args.context)
        api_client = load_api_client(args.kubeconfig, context=args.context)
    except StartupError as exc:
        raise CommandError(str(exc)) from exc
    return Connection(RestClient(api_client, connect_timeout=5.0, request_timeout=30.0), namespace)


def _namespaced_name(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
