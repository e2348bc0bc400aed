"""Connecting and the start-up checks: merged kubeconfigs, a missing operator namespace, and
transient API errors that are retried with backoff instead of ending the process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from infercost.kube.client import (
    AccessCheck,
    StartupError,
    StartupRetry,
    check_access,
    check_namespace,
    load_api_client,
)
from infercost.kube.rest import CONFIGMAPS, LEASES, PODS
from infercost.testing.kubefixtures import KubeEnv


def _kubeconfig(path: Path, **doc: Any) -> Path:
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", **doc}))
    return path


def _cluster(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "cluster": {"server": f"http://127.0.0.1:{port}"}}


def _context(name: str, cluster: str, user: str) -> dict[str, Any]:
    return {"name": name, "context": {"cluster": cluster, "user": user}}


def _user(name: str) -> dict[str, Any]:
    return {"name": name, "user": {"token": f"token-of-{name}"}}


def _host(kubeconfig_env: str) -> str:
    client = load_api_client(environ={"KUBECONFIG": kubeconfig_env, "HOME": "/nonexistent"})
    return str(client.configuration.host)


def test_several_kubeconfig_paths_are_merged_as_kubectl_does(tmp_path: Path) -> None:
    first = _kubeconfig(
        tmp_path / "first",
        clusters=[_cluster("shared", 1111)],
        users=[_user("me")],
        contexts=[_context("work", "shared", "me")],
    )
    second = _kubeconfig(
        tmp_path / "second",
        clusters=[_cluster("shared", 2222), _cluster("lab", 3333)],
        users=[_user("me"), _user("lab-admin")],
        contexts=[_context("work", "lab", "lab-admin"), _context("lab", "lab", "lab-admin")],
        **{"current-context": "work"},
    )
    # current-context comes from the only file that sets it; "work" and "shared" from the first
    # file that defines them
    assert _host(f"{first}{os.pathsep}{second}") == "http://127.0.0.1:1111"
    # a path that does not exist is skipped, as kubectl skips it
    assert _host(f"{tmp_path / 'gone'}{os.pathsep}{second}") == "http://127.0.0.1:3333"


def test_the_first_file_that_sets_current_context_wins(tmp_path: Path) -> None:
    first = _kubeconfig(
        tmp_path / "first",
        clusters=[_cluster("a", 1111)],
        users=[_user("me")],
        contexts=[_context("a", "a", "me")],
        **{"current-context": "a"},
    )
    second = _kubeconfig(
        tmp_path / "second",
        clusters=[_cluster("b", 2222)],
        users=[_user("me")],
        contexts=[_context("b", "b", "me")],
        **{"current-context": "b"},
    )
    assert _host(f"{first}{os.pathsep}{second}") == "http://127.0.0.1:1111"
    assert _host(f"{second}{os.pathsep}{first}") == "http://127.0.0.1:2222"


def test_kubeconfig_paths_that_all_do_not_exist(tmp_path: Path) -> None:
    paths = f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}"
    with pytest.raises(StartupError, match=r"none of the files in \$KUBECONFIG exists"):
        load_api_client(environ={"KUBECONFIG": paths, "HOME": str(tmp_path)})


class Sleeps:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def test_a_transient_429_or_503_is_retried_after_the_servers_retry_after(kube: KubeEnv) -> None:
    sleeps = Sleeps()
    retry = StartupRetry(sleep=sleeps)
    kube.sim.faults.respond(verb="list", resource="pods", code=429, count=1)
    check_access(kube.rest, [AccessCheck("list", PODS, why="find pods")], retry=retry)
    kube.sim.faults.respond(verb="get", resource="leases", code=503, count=2)
    lease = AccessCheck("get", LEASES, "infercost-system", "infercost-leader", why="lead")
    check_access(kube.rest, [lease], retry=retry)  # then 404: no Lease yet, which is fine
    assert sleeps.seconds == [1.0, 1.0, 1.0], "the emulator asks for Retry-After: 1"


def test_backoff_doubles_and_gives_up_after_a_bounded_number_of_tries(kube: KubeEnv) -> None:
    sleeps = Sleeps()
    retry = StartupRetry(attempts=6, first_delay_seconds=2.0, max_delay_seconds=10.0, sleep=sleeps)
    kube.sim.faults.respond(verb="list", resource="pods", code=500, count=100)
    with pytest.raises(StartupError) as info:
        check_access(kube.rest, [AccessCheck("list", PODS, why="find pods")], retry=retry)
    assert sleeps.seconds == [2.0, 4.0, 8.0, 10.0, 10.0]
    message = str(info.value)
    assert message.startswith("cannot list pods: ") and "HTTP 500" in message
    assert "(gave up after 6 attempts)" in message
    assert "\n" not in message


def test_errors_that_retrying_cannot_fix_end_the_start_at_once(kube: KubeEnv) -> None:
    sleeps = Sleeps()
    with pytest.raises(StartupError, match="does not exist"):
        check_namespace(kube.rest, "not-there", retry=StartupRetry(sleep=sleeps))
    assert sleeps.seconds == []


def test_the_operator_namespace_must_exist(kube: KubeEnv) -> None:
    check_namespace(kube.rest, "infercost-system")
    with pytest.raises(StartupError) as info:
        check_namespace(kube.rest, "infercost-sytem")
    assert str(info.value) == (
        "the operator namespace infercost-sytem does not exist: create it, or set --namespace "
        "to the namespace the operator runs in"
    )
    dry_runs = [r for r in kube.sim.requests() if r.resource == "configmaps"]
    assert [(r.verb, "dryRun" in r.query) for r in dry_runs] == [("create", True)] * 2
    assert kube.rest.list(CONFIGMAPS, "infercost-system")["items"] == [], "a dry run only"
