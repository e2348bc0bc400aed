"""Argo CD health checks (manifests/argocd): the argocd-cm patch lands in a real kustomize
build of an Argo CD install, and every script, run by real Lua 5.1 with only the libraries
Argo CD opens, maps the Ready condition of sample objects to the expected health."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from manifest_files import DATA, MANIFESTS, build, kubectl, one, relative, run, tool, write_overlay

from infercost.api import GROUP, RESOURCE_TYPES

KINDS = tuple(rt.kind for rt in RESOURCE_TYPES)
KEY = "resource.customizations.health.{group}_{kind}"
ARGOCD_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
HARNESS = DATA / "argocd" / "harness.lua"


def _patch_scripts() -> dict[str, str]:
    patch = yaml.safe_load((MANIFESTS / "argocd" / "argocd-cm-patch.yaml").read_text())
    return {kind: patch["data"][KEY.format(group=GROUP, kind=kind)] for kind in KINDS}


# -- Lua --------------------------------------------------------------------------------------


def _lua_string(text: str) -> str:
    out = []
    for byte in text.encode("utf-8"):
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def lua_literal(value: Any) -> str:
    """A JSON-like value as a Lua table constructor, as Argo CD hands objects to Lua (JSON
    null is nil; lists are 1-based tables; YAML timestamps are the strings JSON would carry)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _lua_string(value)
    if isinstance(value, dt.date | dt.datetime):
        return _lua_string(value.isoformat())
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        items = (f"[{_lua_string(str(k))}] = {lua_literal(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"no Lua form for {type(value).__name__}")


def run_health(script: str, obj: Any, tmp_path: Path) -> tuple[str, str]:
    """Run a health script through the harness; (status, message)."""
    lua = tool("lua5.1", "apt-get install lua5.1")
    script_path = tmp_path / "health.lua"
    object_path = tmp_path / "object.lua"
    script_path.write_text(script)
    object_path.write_text("return " + lua_literal(obj) + "\n")
    result = run([lua, str(HARNESS), str(script_path), str(object_path)])
    assert result.returncode == 0, result.stderr
    status, _, message = result.stdout.partition("\n")
    return status, message


def _cases() -> list[Any]:
    cases = []
    for kind in KINDS:
        spec = yaml.safe_load((DATA / "argocd" / kind / "health_test.yaml").read_text())
        for test in spec["tests"]:
            path = DATA / "argocd" / kind / test["inputPath"]
            cases.append(pytest.param(kind, path, test["healthStatus"], id=f"{kind}-{path.stem}"))
    return cases


@pytest.mark.parametrize(("kind", "path", "expected"), _cases())
def test_health_follows_ready(kind: str, path: Path, expected: dict[str, str], tmp_path) -> None:
    obj = yaml.safe_load(path.read_text())
    assert obj["kind"] == kind
    status, message = run_health(_patch_scripts()[kind], obj, tmp_path)
    assert status in ARGOCD_STATUSES
    assert (status, message) == (expected["status"], expected["message"])


def test_every_kind_has_a_case_for_each_health(tmp_path) -> None:
    for kind in KINDS:
        spec = yaml.safe_load((DATA / "argocd" / kind / "health_test.yaml").read_text())
        assert {t["healthStatus"]["status"] for t in spec["tests"]} == {
            "Healthy",
            "Degraded",
            "Progressing",
        }, kind


def test_harness_denies_libraries_argo_cd_does_not_open(tmp_path) -> None:
    """A script calling string.* would fail in Argo CD; the harness must fail it too."""
    lua = tool("lua5.1", "apt-get install lua5.1")
    (tmp_path / "health.lua").write_text('return {status = string.upper("healthy")}\n')
    (tmp_path / "object.lua").write_text("return {}\n")
    result = run([lua, str(HARNESS), str(tmp_path / "health.lua"), str(tmp_path / "object.lua")])
    assert result.returncode != 0
    assert "string" in result.stderr


# -- shipping the scripts ----------------------------------------------------------------------


@pytest.mark.kubectl
@pytest.mark.parametrize("namespace", ["argocd", None])
def test_component_adds_the_checks_to_an_argocd_install(tmp_path, namespace) -> None:
    root = tmp_path / "argocd-install"
    install = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "labels": {"app.kubernetes.io/part-of": "argocd"}},
        "data": {"url": "https://argocd.example.com", "exec.enabled": "false"},
    }
    kustomization: dict[str, Any] = {
        "resources": ["argocd-cm.yaml"],
        "components": [relative(MANIFESTS / "argocd", root)],
    }
    if namespace:
        kustomization["namespace"] = namespace
    write_overlay(root, kustomization, {"argocd-cm.yaml": yaml.safe_dump(install)})
    configmap = one(build(root), "ConfigMap", "argocd-cm")
    data = configmap["data"]
    # The install's own settings stay; one health key per kind is added.
    assert data["url"] == "https://argocd.example.com" and data["exec.enabled"] == "false"
    assert {k for k in data if k.startswith("resource.customizations.health.")} == {
        KEY.format(group=GROUP, kind=kind) for kind in KINDS
    }
    assert configmap["metadata"].get("namespace") == namespace
    assert configmap["metadata"]["labels"] == {"app.kubernetes.io/part-of": "argocd"}


@pytest.mark.kubectl
def test_documented_kubectl_patch_merges_into_a_live_argocd_cm() -> None:
    from infercost.testing.kubesim import KubeSim

    with KubeSim(namespaces=("argocd",)) as sim:
        base = [kubectl(), "--kubeconfig", str(sim.kubeconfig), "-n", "argocd"]
        created = run([*base, "create", "configmap", "argocd-cm", "--from-literal=url=https://cd"])
        assert created.returncode == 0, created.stderr
        patch_file = MANIFESTS / "argocd" / "argocd-cm-patch.yaml"
        patched = run(
            [
                *base,
                "patch",
                "configmap",
                "argocd-cm",
                "--type",
                "merge",
                "--patch-file",
                patch_file,
            ]
        )
        assert patched.returncode == 0, patched.stderr
        got = run([*base, "get", "configmap", "argocd-cm", "-o", "json"])
        assert got.returncode == 0, got.stderr
    data = json.loads(got.stdout)["data"]
    assert data["url"] == "https://cd"
    for kind, script in _patch_scripts().items():
        assert data[KEY.format(group=GROUP, kind=kind)] == script


def test_example_application_deploys_manifests_default() -> None:
    app = yaml.safe_load((MANIFESTS / "argocd" / "application.yaml").read_text())
    assert app["kind"] == "Application"
    assert app["spec"]["source"]["path"] == "manifests/default"
    assert (MANIFESTS / app["spec"]["source"]["path"].removeprefix("manifests/")).is_dir()
    namespace = next(d for d in build(MANIFESTS / "default") if d["kind"] == "Namespace")
    assert app["spec"]["destination"]["namespace"] == namespace["metadata"]["name"]
