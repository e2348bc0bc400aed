"""``python -m infercost.testing.kubesim`` as a separate process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml
from kubernetes import client, config

DATA = Path(__file__).resolve().parent / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_standalone_serves_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "infercost.testing.kubesim",
            "--port",
            str(port),
            "--crds",
            str(DATA),
            "--kubeconfig",
            str(kubeconfig),
            "--watch-history",
            "100",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == f"kubesim ready on http://127.0.0.1:{port}"
        doc = yaml.safe_load(kubeconfig.read_text())
        assert doc["clusters"][0]["cluster"]["server"] == f"http://127.0.0.1:{port}"
        api = config.new_client_from_config(str(kubeconfig))
        resources = client.CustomObjectsApi(api).get_api_resources("example.kubesim.io", "v1")
        assert "widgets" in [r.name for r in resources.resources]
        names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
        assert "default" in names
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_kubesim/requests") as resp:
            assert json.load(resp)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_standalone_reports_bad_arguments(tmp_path: Path) -> None:
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "infercost.testing.kubesim",
            "--port",
            "0",
            "--crds",
            str(tmp_path / "nope"),
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 1
    assert "no such CRD file or directory" in missing.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "infercost.testing.kubesim", "--port", "0", "--watch-history", "0"],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "--watch-history" in bad.stderr
