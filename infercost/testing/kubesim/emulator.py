"""KubeSim: the Kubernetes API emulator as an object tests start, use and stop.

Owns the store, the registry of served resources, the HTTP server thread, the fault injector
and the request log, writes a kubeconfig pointing at itself and hands out configured
``kubernetes`` API clients. See docs/kubesim.md for what is and is not emulated.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from .apiserver import ApiServer, utc_now
from .faults import Faults, RequestLog, RequestRecord
from .publishing import Documents
from .resources import Registry, ResourceDef
from .serving import SERVER_VERSION, Backend, SimHTTPServer
from .store import Store

# Namespaces every cluster has.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.SafeLoader


def load_manifests(path: str | os.PathLike[str]) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every YAML/JSON document in a file or (non-recursively, sorted) a directory."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml", ".json"))
    elif p.is_file():
        files = [p]
    else:
        raise FileNotFoundError(f"no such CRD file or directory: {p}")
    for f in files:
        try:
            docs = list(yaml.load_all(f.read_text(), Loader=_Loader))
        except yaml.YAMLError as exc:
            raise ValueError(f"{f}: not valid YAML: {exc}") from None
        for doc in docs:
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise ValueError(f"{f}: expected a mapping per document, got {type(doc).__name__}")
            yield f, doc


class KubeSim:
    """An in-process Kubernetes API server emulator on a loopback port.

    ``with KubeSim(crd_dirs=[...]) as sim:`` starts it; ``sim.url``, ``sim.kubeconfig`` and
    ``sim.api_client()`` connect to it; ``sim.faults`` breaks it; ``sim.requests()`` shows what
    clients sent. ``clock`` gives the wall time of timestamps; ``monotonic`` the clock of
    watch timeouts and bookmarks (a test may drive both).
    """

    def __init__(
        self,
        crd_dirs: Iterable[str | os.PathLike[str]] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        watch_history: int = 4096,
        kubeconfig_path: str | os.PathLike[str] | None = None,
        bookmark_interval: float = 5.0,
        namespaces: Iterable[str] = (),
        clock: Callable[[], dt.datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if bookmark_interval <= 0:
            raise ValueError(f"bookmark_interval must be positive, got {bookmark_interval!r}")
        self.host = host
        self.port = port
        self.crd_dirs = [Path(d) for d in crd_dirs]
        self.registry = Registry()
        self.store = Store(history=watch_history)
        self.request_log = RequestLog()
        self.monotonic = monotonic
        self.faults = Faults(self._drop_watches, self._expire)
        self.api = ApiServer(
            self.registry, self.store, self.faults, bookmark_interval, now=clock or utc_now
        )
        self.documents = Documents(self.registry, SERVER_VERSION["gitVersion"])
        self._kubeconfig_path = Path(kubeconfig_path) if kubeconfig_path else None
        self._extra_namespaces = list(namespaces)
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._server: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._kubeconfig: Path | None = None
        for name in (*SYSTEM_NAMESPACES, *self._extra_namespaces):
            self.create_namespace(name)
        for d in self.crd_dirs:
            self.apply_crds(d)

    # Lifecycle ------------------------------------------------------------------------------

    def start(self) -> KubeSim:
        if self._server is not None:
            return self
        backend = Backend(
            api=self.api,
            registry=self.registry,
            faults=self.faults,
            request_log=self.request_log,
            documents=self.documents.routes(),
            monotonic=self.monotonic,
        )
        self._server = SimHTTPServer((self.host, self.port), backend)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        self._write_kubeconfig()
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._server = None
        self._drop_watches(False)
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> KubeSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Connection details -----------------------------------------------------------------------

    @property
    def thread_name(self) -> str:
        """The serving thread's name; the connection threads are named ``<thread_name>-conn``."""
        return f"kubesim-{self.port}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(
                "KubeSim is not running; use it as a context manager or call start()"
            )
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def kubeconfig(self) -> str:
        if self._kubeconfig is None:
            raise RuntimeError("KubeSim is not running; the kubeconfig is written by start()")
        return str(self._kubeconfig)

    def _write_kubeconfig(self) -> None:
        if self._kubeconfig_path is not None:
            path = self._kubeconfig_path
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="kubesim-")
            path = Path(self._tmpdir.name) / "kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kubesim", "cluster": {"server": self.url}}],
            "users": [{"name": "kubesim", "user": {}}],
            "contexts": [
                {
                    "name": "kubesim",
                    "context": {"cluster": "kubesim", "user": "kubesim", "namespace": "default"},
                }
            ],
            "current-context": "kubesim",
            "preferences": {},
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self._kubeconfig = path

    def configuration(self) -> Any:
        """A ``kubernetes.client.Configuration`` for this server."""
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.url
        return cfg

    def api_client(self) -> Any:
        """A new ``kubernetes.client.ApiClient`` talking to this server."""
        from kubernetes import client

        return client.ApiClient(self.configuration())

    # Content ------------------------------------------------------------------------------------

    def resource(self, group: str, version: str, plural: str) -> ResourceDef:
        r = self.registry.lookup(group, version, plural)
        if r is None:
            raise KeyError(f"resource {plural!r} is not served at {group or 'core'}/{version}")
        return r

    def create_namespace(self, name: str) -> None:
        ns = self.resource("", "v1", "namespaces")
        if self.store.get(ns.storage_key, ("", name)) is None:
            self.api.install(
                ns, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            )

    def apply_crds(self, path: str | os.PathLike[str]) -> list[str]:
        """Install (create or replace) every CRD in a file or directory; returns their names."""
        crd = self.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        names: list[str] = []
        for f, doc in load_manifests(path):
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            try:
                self.api.install(crd, doc)
            except Exception as exc:
                message = getattr(exc, "message", str(exc))
                raise ValueError(
                    f"{f}: CRD {doc.get('metadata', {}).get('name')!r}: {message}"
                ) from None
            names.append(doc["metadata"]["name"])
        return names

    def objects(self, group: str, version: str, plural: str) -> list[dict[str, Any]]:
        """Current objects of a resource as its version presents them (sorted by key)."""
        r = self.resource(group, version, plural)
        with self.store.lock:
            state = dict(self.store.objects(r.storage_key))
        return [
            self.api.view(r, state[k].obj) for k in sorted(state, key=lambda k: f"{k[0]}/{k[1]}")
        ]

    def requests(self) -> list[RequestRecord]:
        """Every API request served so far (verb, path, user_agent, status, body_size, ...)."""
        return self.request_log.records()

    @property
    def resource_version(self) -> int:
        return self.store.rv

    # Faults ---------------------------------------------------------------------------------------

    def _drop_watches(self, abrupt: bool) -> None:
        with self.store.lock:
            watchers = list(self.store.all_watchers())
        for watcher in watchers:
            watcher.close(abrupt)

    def _expire(self) -> None:
        with self.store.lock:
            self.store.expire_all()
