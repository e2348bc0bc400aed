"""HTTP/1.1 front end: routing, fault injection, the request log and watch streaming.

Maps apiserver URL paths (kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris)
to :class:`~.apiserver.Target` s and Kubernetes verbs, applies injected faults, records every
request, writes JSON responses with Content-Length (keep-alive) and watch responses with chunked
transfer encoding, and serves the ``/_kubesim/`` control endpoints. Any unexpected exception is
logged and answered with a 500 Status, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs
import structlog
import yaml

from . import protobuf
from .apiserver import ApiServer, Result, Target, WatchStream
from .faults import Faults, RequestLog, RequestRecord
from .resources import Registry
from .status import ApiError, method_not_allowed
from .watching import error_line

log = structlog.get_logger("infercost.testing.kubesim")

SERVER_VERSION = {
    "major": "1",
    "minor": "34",
    "gitVersion": "v1.34.0-kubesim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_NOT_FOUND = ApiError(404, "the server could not find the requested resource", "NotFound", {})

# An extra GET document (e.g. "/openapi/v2"): (path, query, accept) -> (content type, body);
# may raise ApiError.
DocumentFn = Callable[[str, dict[str, str], str | None], tuple[str, bytes]]


@attrs.frozen
class Backend:
    """Everything the HTTP front end serves from, wired in by the emulator that owns it."""

    api: ApiServer
    registry: Registry
    faults: Faults
    request_log: RequestLog
    documents: Mapping[str, DocumentFn] = attrs.field(factory=dict)
    """Extra GET documents by path prefix."""
    monotonic: Callable[[], float] = time.monotonic
    """The clock of watch deadlines (``timeoutSeconds``) and bookmarks."""

    def document_for(self, path: str) -> DocumentFn | None:
        for prefix, fn in self.documents.items():
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return fn
        return None


class Route:
    """A parsed request path."""

    __slots__ = ("document", "target", "verb_hint")

    def __init__(
        self,
        document: dict[str, Any] | None = None,
        target: Target | None = None,
        verb_hint: str = "",
    ) -> None:
        self.document = document
        self.target = target
        self.verb_hint = verb_hint


class SimHTTPServer(ThreadingHTTPServer):
    """One thread per connection, named ``kubesim-<port>-conn`` and joined on close."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        self.backend = backend
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self._handlers: list[threading.Thread] = []
        super().__init__(address, Handler)
        self.thread_name = f"kubesim-{self.server_address[1]}"

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host!s}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        # Named after the server, so that the threads of an emulator that outlives a test (a
        # session fixture) can be told apart from threads a test leaked.
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"{self.thread_name}-conn",
            daemon=True,
        )
        with self.connections_lock:
            self._handlers = [t for t in self._handlers if t.is_alive()]
            self._handlers.append(thread)
        thread.start()

    def server_close(self) -> None:
        """Stop listening and wait for the connection threads (close the connections first)."""
        super().server_close()
        with self.connections_lock:
            handlers, self._handlers = self._handlers, []
        for thread in handlers:
            thread.join()

    def close_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SimHTTPServer
    server_version = "kubesim"
    sys_version = ""

    def version_string(self) -> str:
        return "kubesim"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    # -------------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                raise ApiError(400, f"invalid Content-Length {length!r}") from None
            return self.rfile.read(n) if n > 0 else b""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        return b""

    def _handle(self) -> None:
        backend = self.server.backend
        started = time.time()
        split = urlsplit(self.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        body = b""
        verb = ""
        target: Target | None = None
        code = 500
        logged = False

        def log_it() -> None:
            # Recorded before the response goes out: a client that has its answer must find
            # its request in the log.
            nonlocal logged
            if logged:
                return
            logged = True
            self._record(
                verb,
                path=path,
                query=split.query,
                target=target,
                code=code,
                body=body,
                started=started,
            )

        try:
            body = self._read_body()
            if path.startswith("/_kubesim/"):
                self._control(path, body)
                return
            backend.faults.delay()
            document = backend.document_for(path)
            if document is not None:
                verb = "get"
                if self.command not in ("GET", "HEAD"):
                    raise method_not_allowed()
                content_type, payload = document(path, query, self.headers.get("Accept"))
                code = 200
                log_it()
                self._send(Result(200, payload, content_type))
                return
            route = self._route(path)
            if route.document is not None:
                verb = "get"
                if self.command not in ("GET", "HEAD"):
                    raise method_not_allowed()
                result = Result(200, json.dumps(route.document, separators=(",", ":")).encode())
                code = result.code
                log_it()
                self._send(result)
                return
            target = route.target
            assert target is not None
            verb = self._verb(target, query, route.verb_hint)
            fault = backend.faults.take_response(
                verb, target.resource.plural, target.resource.group, target.subresource
            )
            if fault is not None:
                raise fault
            if verb == "watch":
                code = 200
                stream = backend.api.watch(target, query, self.headers.get("Accept"))
                # A watch is logged when it opens, so tests can wait for it.
                log_it()
                self._watch(stream)
                return
            result = self._dispatch(verb, target, query, body)
            code = result.code
            log_it()
            self._send(result)
        except ApiError as exc:
            code = exc.code
            if not path.startswith("/_kubesim/"):
                log_it()
            self._send_error(exc)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:
            log.exception(
                "kubesim request failed", method=self.command, path=self.path, error=str(exc)
            )
            code = 500
            if not path.startswith("/_kubesim/"):
                log_it()
            self._send_error(ApiError(500, f"Internal error occurred: {exc}", "InternalError", {}))
        finally:
            if not path.startswith("/_kubesim/"):
                log_it()

    def _record(
        self,
        verb: str,
        *,
        path: str,
        query: str,
        target: Target | None,
        code: int,
        body: bytes,
        started: float,
    ) -> None:
        r = target.resource if target is not None else None
        self.server.backend.request_log.add(
            RequestRecord(
                verb=verb or self.command.lower(),
                method=self.command,
                path=path,
                query=query,
                user_agent=self.headers.get("User-Agent", ""),
                status=code,
                body_size=len(body),
                content_type=self.headers.get("Content-Type", ""),
                resource=r.qualified if r is not None else "",
                namespace=(target.namespace or "") if target is not None else "",
                name=(target.name or "") if target is not None else "",
                subresource=(target.subresource or "") if target is not None else "",
                timestamp=started,
            )
        )

    def _verb(self, t: Target, query: dict[str, str], hint: str) -> str:
        method = self.command
        watch = hint == "watch" or query.get("watch", "").lower() in ("true", "1")
        if method in ("GET", "HEAD"):
            if watch:
                verb = "watch"
            else:
                verb = "get" if t.name is not None else "list"
        elif method == "POST":
            if t.name is not None:
                raise method_not_allowed()
            verb = "create"
        elif method == "PUT":
            if t.name is None:
                raise method_not_allowed()
            verb = "update"
        elif method == "PATCH":
            if t.name is None:
                raise method_not_allowed()
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if t.name is not None else "deletecollection"
        else:
            raise method_not_allowed()
        if t.resource.namespaced and t.namespace is None and verb in ("create", "deletecollection"):
            # Namespaced collections take writes only under /namespaces/<ns>/.
            raise method_not_allowed()
        if t.subresource:
            if verb not in ("get", "update", "patch"):
                raise method_not_allowed()
        elif verb not in t.resource.verbs:
            raise method_not_allowed()
        return verb

    def _dispatch(self, verb: str, t: Target, query: dict[str, str], body: bytes) -> Result:
        api = self.server.backend.api
        if verb == "get":
            return api.get(t, self.headers.get("Accept"), query)
        if verb == "list":
            return api.list_objects(t, query, self.headers.get("Accept"))
        if verb in ("create", "update"):
            body = self._json_body(body)
            if verb == "create":
                return api.create(t, body, query)
            return api.update(t, body, query)
        if verb == "patch":
            return api.patch(t, body, self.headers.get("Content-Type", ""), query)
        if verb == "delete":
            return api.delete(t, body, query)
        return api.delete_collection(t, body, query)

    def _json_body(self, body: bytes) -> bytes:
        """The request body as JSON; YAML and (for a few kinds) protobuf are accepted too."""
        media = (self.headers.get("Content-Type") or "application/json").split(";", 1)[0]
        media = media.strip().lower()
        if media in ("application/json", ""):
            return body
        if media == protobuf.MEDIA_TYPE:
            try:
                return json.dumps(protobuf.decode_object(body)).encode()
            except protobuf.ProtobufError as exc:
                raise ApiError(415, str(exc), "UnsupportedMediaType", {}) from None
        if media == "application/yaml":
            try:
                doc = yaml.safe_load(body.decode())
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise ApiError(400, f"error decoding YAML body: {exc}", "BadRequest") from None
            return json.dumps(doc).encode()
        raise ApiError(
            415,
            f"the body of the request was in an unknown format - accepted media types include: "
            f'application/json, application/yaml (got "{media}")',
            "UnsupportedMediaType",
            {},
        )

    def _route(self, path: str) -> Route:
        registry = self.server.backend.registry
        parts = [p for p in path.split("/") if p]
        if not parts:
            paths = ["/api", "/api/v1", "/apis", "/version"]
            paths += [f"/apis/{g}" for g in registry.groups()]
            paths += [f"/apis/{g}/{v}" for g, vs in registry.groups().items() for v in vs]
            return Route(document={"paths": sorted(paths)})
        if parts == ["version"]:
            return Route(document=SERVER_VERSION)
        if parts in (["healthz"], ["readyz"], ["livez"]):
            # `?verbose` lists the checks the way the apiserver does; cluster tooling such as
            # pytest-kubernetes looks for the closing "<name> check passed" line.
            if "verbose" in (self.path.partition("?")[2] or ""):
                checks = b"[+]ping ok\n[+]log ok\n[+]etcd ok\n"
                raise _PlainResponse(200, checks + f"{parts[0]} check passed\n".encode())
            raise _PlainResponse(200, b"ok")
        if parts[0] == "api":
            if len(parts) == 1:
                return Route(
                    document={
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [
                            {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server.address}
                        ],
                    }
                )
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis":
            if len(parts) == 1:
                return Route(document=registry.api_group_list())
            if len(parts) == 2:
                doc = registry.api_group(parts[1])
                if doc is None:
                    raise _NOT_FOUND
                return Route(document=dict(doc, kind="APIGroup", apiVersion="v1"))
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise _NOT_FOUND
        if not rest:
            doc = registry.resource_list(group, version)
            if doc is None:
                raise _NOT_FOUND
            return Route(document=doc)
        hint = ""
        if rest[0] == "watch":
            hint = "watch"
            rest = rest[1:]
            if not rest:
                raise _NOT_FOUND
        namespace: str | None = None
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and registry.lookup(group, version, rest[2]) is not None
        ):
            namespace = rest[1]
            rest = rest[2:]
        if len(rest) > 3:
            raise _NOT_FOUND
        resource = registry.lookup(group, version, rest[0])
        if resource is None:
            raise _NOT_FOUND
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if namespace is not None and not resource.namespaced:
            raise _NOT_FOUND
        if resource.namespaced and namespace is None and name is not None:
            raise _NOT_FOUND
        if sub is not None and not (sub == "status" and resource.status_subresource):
            raise _NOT_FOUND
        return Route(target=Target(resource, namespace, name, sub), verb_hint=hint)

    # Responses --------------------------------------------------------------------------

    def _send(self, result: Result) -> None:
        self.send_response(result.code)
        self.send_header("Content-Type", result.content_type)
        self.send_header("Content-Length", str(len(result.body)))
        self.send_header("Cache-Control", "no-cache, private")
        for name, value in result.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(result.body)

    def _send_error(self, exc: ApiError) -> None:
        if isinstance(exc, _PlainResponse):
            self.send_response(exc.code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(exc.payload)))
            self.end_headers()
            self.wfile.write(exc.payload)
            return
        body = exc.body()
        try:
            self.send_response(exc.code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache, private")
            for name, value in exc.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            self.close_connection = True

    def _watch(self, stream: WatchStream) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()
        write = self.wfile.write

        def chunk(line: bytes) -> None:
            write(b"%x\r\n%s\r\n" % (len(line), line))

        try:
            try:
                for line in stream.lines(self.server.backend.monotonic, self._client_gone):
                    chunk(line)
            except ApiError as exc:
                # Headers are gone already: report the failure in the stream, as the apiserver
                # does, then end it.
                chunk(error_line(exc.status()))
            except OSError:
                raise
            except Exception as exc:
                log.exception("kubesim watch failed", path=self.path, error=str(exc))
                status = ApiError(500, f"Internal error occurred: {exc}", "InternalError", {})
                chunk(error_line(status.status()))
            if stream.aborted:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    def _client_gone(self) -> bool:
        """True when the client closed its end (readable socket with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    # /_kubesim/ --------------------------------------------------------------------------

    def _control(self, path: str, body: bytes) -> None:
        backend = self.server.backend
        try:
            if path == "/_kubesim/faults" and self.command == "POST":
                try:
                    doc = json.loads(body or b"null")
                    backend.faults.apply_json(doc)
                except (ValueError, TypeError) as exc:
                    raise ApiError(400, f"invalid fault: {exc}", "BadRequest") from None
                self._send(Result(200, b'{"status":"ok"}'))
            elif path == "/_kubesim/faults" and self.command == "DELETE":
                backend.faults.clear()
                self._send(Result(200, b'{"status":"ok"}'))
            elif path == "/_kubesim/requests" and self.command == "GET":
                records = [r.as_dict() for r in backend.request_log.records()]
                self._send(Result(200, json.dumps(records).encode()))
            elif path == "/_kubesim/requests" and self.command == "DELETE":
                backend.request_log.clear()
                self._send(Result(200, b'{"status":"ok"}'))
            elif path in ("/_kubesim/faults", "/_kubesim/requests"):
                raise method_not_allowed()
            else:
                raise ApiError(404, f"unknown kubesim endpoint {path}", "NotFound", {})
        except ApiError as exc:
            self._send_error(exc)


class _PlainResponse(ApiError):  # noqa: N818 - a response, not an error
    """A non-Status plain-text response (health endpoints)."""

    def __init__(self, code: int, payload: bytes) -> None:
        super().__init__(code, payload.decode())
        self.payload = payload
