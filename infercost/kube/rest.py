"""A thin, path-based REST layer over ``kubernetes.client.ApiClient`` that speaks raw JSON.

Why not the generated API classes: their model objects are slow to build for thousands of pods,
their custom-object list results are dicts while core ones are models (which is what breaks
``kubernetes.informer`` on CRs), and v37's strict response maps turn a 200 on create into
``None``. Every call here goes through the ApiClient's own serialisation of auth headers and its
urllib3 pool (so kubeconfig certificates, tokens and proxies apply), with
``preload_content=False`` semantics: the body is read and parsed once with :mod:`json`, or
streamed line by line for watches.

Errors become :class:`ApiError` subclasses carrying the HTTP status and the apiserver's
``Status`` reason and message; connection failures become :class:`TransportError`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import urllib3

import infercost

__all__ = [
    "CONFIGMAPS",
    "CRDS",
    "EVENTS",
    "LEASES",
    "NODES",
    "PODS",
    "ApiError",
    "ConflictError",
    "ForbiddenError",
    "GoneError",
    "NotFoundError",
    "NotLeaderError",
    "Resource",
    "RestClient",
    "TooManyRequestsError",
    "TransportError",
    "UnauthorizedError",
    "WatchStream",
]

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


@attrs.frozen
class Resource:
    """A REST resource: where its objects live and whether they are namespaced."""

    group: str  # "" for the core API
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def display(self) -> str:
        """``plural`` or ``plural.group``, as kubectl and RBAC name resources."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str = ""
    ) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        elif not self.namespaced and namespace:
            raise ValueError(f"{self.display} is cluster-scoped; no namespace expected")
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        elif subresource:
            raise ValueError("a subresource needs an object name")
        return base


PODS = Resource("", "v1", "pods", "Pod", True)
NODES = Resource("", "v1", "nodes", "Node", False)
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", True)
EVENTS = Resource("", "v1", "events", "Event", True)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", True)
CRDS = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False
)


class ApiError(Exception):
    """The apiserver answered with an error status (or, for status 0, did not answer)."""

    def __init__(
        self,
        status: int,
        reason: str = "",
        message: str = "",
        *,
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.method = method
        self.path = path
        self.retry_after = retry_after
        self.body = dict(body) if body else {}
        where = f"{method} {path}: " if method else ""
        detail = message or reason or "no message"
        super().__init__(f"{where}HTTP {status} {reason}: {detail}".replace(" : ", ": "))


class TransportError(ApiError):
    """No HTTP answer: connection refused, DNS failure, TLS failure, read timeout."""


class UnauthorizedError(ApiError):
    pass


class ForbiddenError(ApiError):
    pass


class NotFoundError(ApiError):
    pass


class ConflictError(ApiError):
    pass


class NotLeaderError(ConflictError):
    """A write refused before it was sent: this replica does not hold the leader Lease.

    A conflict like any 409, so every writer's conflict handling applies (the ledger fences
    itself, a status write is retried later)."""


class GoneError(ApiError):
    """410: the resourceVersion asked for is older than the server's history."""


class UnprocessableError(ApiError):
    pass


class TooManyRequestsError(ApiError):
    pass


_BY_STATUS: dict[int, type[ApiError]] = {
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    422: UnprocessableError,
    429: TooManyRequestsError,
}


def error_for(
    status: int,
    body: bytes | Mapping[str, Any] | None,
    *,
    method: str = "",
    path: str = "",
    retry_after: str | None = None,
) -> ApiError:
    """Build the ApiError subclass for ``status`` from a ``Status`` body (raw or parsed)."""
    parsed: Mapping[str, Any] = {}
    if isinstance(body, Mapping):
        parsed = body
    elif body:
        try:
            loaded = json.loads(body)
            if isinstance(loaded, dict):
                parsed = loaded
        except (ValueError, UnicodeDecodeError):
            parsed = {"message": body[:200].decode("utf-8", "replace")}
    after: float | None = None
    if retry_after:
        try:
            after = float(retry_after)
        except ValueError:
            after = None
    cls = _BY_STATUS.get(status, ApiError)
    return cls(
        status,
        str(parsed.get("reason", "")),
        str(parsed.get("message", "")),
        method=method,
        path=path,
        retry_after=after,
        body=parsed,
    )


class WatchStream:
    """One open watch: iterate to get event dicts; :meth:`close` from any thread ends it."""

    def __init__(self, response: urllib3.BaseHTTPResponse, method: str, path: str) -> None:
        self._response = response
        self._closed = False
        self._where = f"{method} {path}"

    def __iter__(self) -> Iterator[dict[str, Any]]:
        buffer = b""
        try:
            for chunk in self._chunks():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield self._decode(line)
            if buffer.strip() and not self._closed:
                yield self._decode(buffer)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if self._closed:
                return
            raise TransportError(
                0, type(exc).__name__, str(exc), method="WATCH", path=self._where
            ) from exc
        finally:
            self.close()

    def _chunks(self) -> Iterator[bytes]:
        response = self._response
        if response.chunked and getattr(response, "supports_chunked_reads", lambda: False)():
            yield from response.read_chunked(decode_content=True)
            return
        while True:
            data = response.read1(65536)
            if not data:
                return
            yield data

    def _decode(self, line: bytes) -> dict[str, Any]:
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise TransportError(
                0, "BadWatchEvent", f"undecodable watch line: {line[:120]!r}", path=self._where
            ) from exc
        if not isinstance(event, dict) or "type" not in event:
            raise TransportError(
                0, "BadWatchEvent", f"watch line is not an event: {line[:120]!r}", path=self._where
            )
        return event

    def close(self) -> None:
        """Unblock a reader stuck in a socket read and release the connection."""
        if self._closed:
            return
        self._closed = True
        response = self._response
        shutdown = getattr(response, "shutdown", None)
        if shutdown is not None:
            # Raises RuntimeError once the connection went back to the pool (stream ended), and
            # ValueError once urllib3 closed the response itself (a read that failed when the
            # server cut the stream): nothing is left to unblock then.
            with contextlib.suppress(
                OSError, RuntimeError, ValueError, urllib3.exceptions.HTTPError
            ):
                shutdown()
        with contextlib.suppress(OSError, urllib3.exceptions.HTTPError, AttributeError):
            response.close()
        with contextlib.suppress(OSError, urllib3.exceptions.HTTPError, AttributeError):
            response.release_conn()


class RestClient:
    """Raw JSON requests through an ``ApiClient``'s configuration and connection pool.

    ``may_write``, when given, is asked before every request that is not a GET; when it says
    no, the request is not sent and :class:`NotLeaderError` is raised (the operator's writers
    go through a client fenced by leadership)."""

    def __init__(
        self,
        api_client: Any,
        *,
        user_agent: str | None = None,
        connect_timeout: float = 5.0,
        request_timeout: float = 30.0,
        may_write: Callable[[], bool] | None = None,
    ) -> None:
        self.api_client = api_client
        self.user_agent = user_agent or f"infercost/{infercost.__version__}"
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.may_write = may_write

    # -- plumbing ---------------------------------------------------------------------------

    def _open(
        self,
        method: str,
        *,
        path: str,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str,
        timeout: tuple[float, float] | None,
    ) -> urllib3.BaseHTTPResponse:
        headers = {"Accept": JSON, "User-Agent": self.user_agent}
        if body is not None:
            headers["Content-Type"] = content_type
        query_list = [
            (k, ("true" if v else "false") if isinstance(v, bool) else str(v))
            for k, v in (query or {}).items()
            if v is not None and v != ""
        ]
        _, url, headers, _, _ = self.api_client.param_serialize(
            method,
            path,
            query_params=query_list,
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        headers["User-Agent"] = self.user_agent
        payload = None if body is None else json.dumps(body, separators=(",", ":"))
        pool = self.api_client.rest_client.pool_manager
        connect, read = timeout or (self.connect_timeout, self.request_timeout)
        try:
            return pool.request(
                method,
                url,
                body=payload,
                headers=headers,
                timeout=urllib3.Timeout(connect=connect, read=read),
                preload_content=False,
                retries=False,
            )
        except (urllib3.exceptions.HTTPError, OSError, TimeoutError) as exc:
            reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
            raise TransportError(
                0, type(reason).__name__, str(reason), method=method, path=path
            ) from exc

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = JSON,
        timeout: tuple[float, float] | None = None,
    ) -> dict[str, Any]:
        """One request; returns the parsed JSON object or raises :class:`ApiError`."""
        if method != "GET" and self.may_write is not None and not self.may_write():
            raise NotLeaderError(
                409,
                "NotLeader",
                "not sent: this replica does not hold the leader Lease",
                method=method,
                path=path,
            )
        response = self._open(
            method, path=path, query=query, body=body, content_type=content_type, timeout=timeout
        )
        try:
            data = response.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransportError(0, type(exc).__name__, str(exc), method=method, path=path) from exc
        finally:
            response.release_conn()
        if not 200 <= response.status < 300:
            raise error_for(
                response.status,
                data,
                method=method,
                path=path,
                retry_after=response.headers.get("Retry-After"),
            )
        if not data:
            return {}
        try:
            parsed = json.loads(data)
        except ValueError as exc:
            raise ApiError(
                response.status,
                "BadResponse",
                f"response is not JSON: {data[:120]!r}",
                method=method,
                path=path,
            ) from exc
        if not isinstance(parsed, dict):
            raise ApiError(
                response.status,
                "BadResponse",
                "response is not a JSON object",
                method=method,
                path=path,
            )
        return parsed

    def watch(
        self,
        path: str,
        *,
        query: Mapping[str, Any],
        timeout: tuple[float, float],
    ) -> WatchStream:
        """Open a watch (``query`` must include ``watch=true``); errors raise at once."""
        response = self._open(
            "GET", path=path, query=query, body=None, content_type=JSON, timeout=timeout
        )
        if not 200 <= response.status < 300:
            try:
                data = response.read()
            finally:
                response.release_conn()
            raise error_for(
                response.status,
                data,
                method="GET",
                path=path,
                retry_after=response.headers.get("Retry-After"),
            )
        return WatchStream(response, "GET", path)

    # -- conveniences -----------------------------------------------------------------------

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        return self.request("GET", resource.path(namespace, name))

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int | None = None,
        continue_token: str = "",
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        query: dict[str, Any] = {
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "limit": limit,
            "continue": continue_token,
        }
        if resource_version is not None:
            query["resourceVersion"] = resource_version
        return self.request("GET", resource.path(namespace), query=query)

    def create(
        self, resource: Resource, body: Mapping[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        return self.request("POST", resource.path(namespace), body=dict(body))

    def replace(
        self,
        resource: Resource,
        body: Mapping[str, Any],
        namespace: str | None = None,
        subresource: str = "",
    ) -> dict[str, Any]:
        name = body["metadata"]["name"]
        return self.request("PUT", resource.path(namespace, name, subresource), body=dict(body))

    def merge_patch(
        self,
        resource: Resource,
        name: str,
        patch: Mapping[str, Any],
        namespace: str | None = None,
        subresource: str = "",
    ) -> dict[str, Any]:
        return self.request(
            "PATCH",
            resource.path(namespace, name, subresource),
            body=dict(patch),
            content_type=MERGE_PATCH,
        )

    def delete(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        return self.request("DELETE", resource.path(namespace, name))
