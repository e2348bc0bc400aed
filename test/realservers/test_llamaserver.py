"""The llama-server runner, driven by a stand-in executable (no llama.cpp build needed).

The stand-in is a small Python script that behaves like ``llama-server`` where the runner can
tell: ``--help`` lists options, ``/health`` answers 503 while "loading" and 200 after, and it
exits on SIGTERM — or ignores it, to check the SIGKILL fallback.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from infercost.testing import llamaserver

FAKE = textwrap.dedent(
    """\
    #!{python}
    import http.server, signal, sys, time
    args = sys.argv[1:]
    if "--help" in args:
        print("-m, --model FNAME    model path")
        print("--metrics            enable prometheus compatible metrics endpoint")
        print("--cache-prompt, --no-cache-prompt   whether to enable prompt caching")
        print("-fit, --fit [on|off] fit to device memory")
        sys.exit(0)
    mode = "{mode}"
    if mode == "crash":
        print("error: failed to load model", flush=True)
        sys.exit(3)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port = int(args[args.index("--port") + 1])
    started = time.monotonic()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            loading = mode == "never-ready" or time.monotonic() - started < 0.3
            status = 503 if loading else 200
            body = b'{{"status":"loading model"}}' if loading else b'{{"status":"ok"}}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    print("argv: " + " ".join(args), flush=True)
    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)


def fake_binary(tmp_path: Path, mode: str = "normal") -> Path:
    path = tmp_path / f"llama-server-{mode}"
    path.write_text(FAKE.format(python=sys.executable, mode=mode))
    path.chmod(0o755)
    return path


def make_server(tmp_path: Path, binary: Path, **options: Any) -> llamaserver.LlamaServer:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    return llamaserver.LlamaServer(
        model=model, log_path=tmp_path / "logs" / "server.log", binary=binary, **options
    )


def test_waits_for_health_then_stops_cleanly(tmp_path: Path) -> None:
    server = make_server(tmp_path, fake_binary(tmp_path))
    with server:
        assert server.port > 0
        assert server.request("GET", "/health").status == 200
        pid = server.pid
        assert pid is not None
    assert server.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    log = (tmp_path / "logs" / "server.log").read_text()
    # Only loopback, always --metrics, and the optional flags this "build" lists.
    assert "--host 127.0.0.1" in log
    assert "--metrics" in log
    assert "--cache-prompt" in log
    assert "--fit off" in log
    assert "--no-warmup" not in log


def test_a_server_that_exits_early_is_reported_with_its_log(tmp_path: Path) -> None:
    server = make_server(tmp_path, fake_binary(tmp_path, "crash"))
    with pytest.raises(llamaserver.LlamaServerError, match="exited with status 3") as info:
        server.start()
    assert "failed to load model" in str(info.value)
    assert server.pid is None


def test_a_server_that_never_gets_ready_times_out_and_is_stopped(tmp_path: Path) -> None:
    server = make_server(tmp_path, fake_binary(tmp_path, "never-ready"), startup_timeout_seconds=1)
    with pytest.raises(llamaserver.LlamaServerError, match="not ready after 1 s") as info:
        server.start()
    assert "loading model" in str(info.value)
    assert server.pid is None


def test_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    server = make_server(tmp_path, fake_binary(tmp_path, "stubborn"))
    server.start()
    code = server.stop(grace_seconds=0.5)
    assert code == -9


def test_binary_override_must_be_an_executable_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(llamaserver.ENV_BINARY, str(tmp_path / "missing"))
    with pytest.raises(llamaserver.LlamaServerNotFoundError, match="is not a file"):
        llamaserver.find_binary()
    plain = tmp_path / "plain"
    plain.write_text("")
    plain.chmod(0o644)
    monkeypatch.setenv(llamaserver.ENV_BINARY, str(plain))
    assert "is not executable" in (llamaserver.unavailable_reason() or "")
    fake = fake_binary(tmp_path)
    monkeypatch.setenv(llamaserver.ENV_BINARY, str(fake))
    assert llamaserver.find_binary() == fake
    assert llamaserver.unavailable_reason() is None


def test_something_that_is_not_llama_server_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_text("#!/bin/sh\necho 'usage: other [--verbose]'\n")
    other.chmod(0o755)
    with pytest.raises(llamaserver.LlamaServerError, match="without listing --metrics"):
        llamaserver.supported_flags(other)


def test_missing_model_is_named(tmp_path: Path) -> None:
    server = llamaserver.LlamaServer(
        model=tmp_path / "nope.gguf", log_path=tmp_path / "log", binary=fake_binary(tmp_path)
    )
    with pytest.raises(llamaserver.LlamaServerError, match=r"nope\.gguf does not exist"):
        server.start()
