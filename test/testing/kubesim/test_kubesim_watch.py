"""Watch semantics through kubernetes.watch and raw streaming HTTP."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from infercost.testing.kubefixtures import eventually
from infercost.testing.kubesim import KubeSim

DATA = Path(__file__).resolve().parent / "data"


def cm(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": data}


def stream_events(sim: KubeSim, path: str, **params: Any) -> list[dict[str, Any]]:
    """Read a whole (finite) watch response as raw JSON lines."""
    params["watch"] = "true"
    with requests.get(f"{sim.url}{path}", params=params, stream=True, timeout=10) as resp:
        assert resp.status_code == 200
        assert resp.headers["Transfer-Encoding"] == "chunked"
        return [json.loads(line) for line in resp.iter_lines() if line]


def watch_opened(sim: KubeSim) -> None:
    """Wait until a watch is open: the emulator logs one once its watcher is registered."""
    eventually(lambda: any(r.verb == "watch" for r in sim.requests()), what="an open watch")


def test_watch_without_resource_version_starts_with_current_state(
    sim: KubeSim, core: client.CoreV1Api
) -> None:
    core.create_namespaced_config_map("default", cm("b"))
    core.create_namespaced_config_map("default", cm("a"))
    events = stream_events(sim, "/api/v1/namespaces/default/configmaps", timeoutSeconds=1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]
    zero = stream_events(
        sim, "/api/v1/namespaces/default/configmaps", timeoutSeconds=1, resourceVersion="0"
    )
    assert len(zero) == 2


def test_watch_from_resource_version_replays_only_later_events(
    sim: KubeSim, core: client.CoreV1Api
) -> None:
    a = core.create_namespaced_config_map("default", cm("a"))
    rv = a.metadata.resource_version
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    core.create_namespaced_config_map("default", cm("b"))
    core.delete_namespaced_config_map("a", "default")
    w = watch.Watch()
    events = [
        (e["type"], e["object"].metadata.name, e["object"].metadata.resource_version)
        for e in w.stream(
            core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1
        )
    ]
    assert [e[:2] for e in events] == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    rvs = [int(e[2]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)
    assert w.resource_version == events[-1][2]


def test_live_events_arrive_while_streaming(sim: KubeSim, core: client.CoreV1Api) -> None:
    w = watch.Watch()
    seen: list[tuple[str, str]] = []

    def consume() -> None:
        for e in w.stream(core.list_namespaced_config_map, "default", timeout_seconds=60):
            seen.append((e["type"], e["object"].metadata.name))
            if e["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=consume)
    t.start()
    watch_opened(sim)
    core.create_namespaced_config_map("default", cm("x"))
    core.patch_namespaced_config_map("x", "default", {"data": {"a": "b"}})
    core.delete_namespaced_config_map("x", "default")
    t.join(10)
    assert seen == [("ADDED", "x"), ("MODIFIED", "x"), ("DELETED", "x")]


def test_timeout_seconds_ends_stream_cleanly() -> None:
    """The stream runs on the emulator's monotonic clock and ends once timeoutSeconds pass."""
    now = [0.0]
    readings: list[float] = []

    def monotonic() -> float:
        readings.append(now[0])
        return now[0]

    with (
        KubeSim(crd_dirs=[DATA], monotonic=monotonic) as sim,
        requests.get(
            f"{sim.url}/api/v1/namespaces/default/configmaps",
            params={"watch": "true", "timeoutSeconds": "5"},
            stream=True,
            timeout=30,
        ) as resp,
    ):
        assert resp.status_code == 200
        # The stream has read its clock again after starting and found 5 s not yet passed.
        eventually(lambda: len(readings) >= 3, what="the stream to check its deadline")
        now[0] = 5.0
        events = [json.loads(line) for line in resp.iter_lines() if line]
    assert events == [], "a quiet watch ends with the final chunk, not an error event"


def test_bookmarks_carry_current_resource_version(sim: KubeSim, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", cm("a"))
    rv = sim.resource_version
    w = watch.Watch()
    got: list[dict[str, Any]] = []
    for e in w.stream(
        core.list_namespaced_config_map,
        "default",
        resource_version=str(rv),
        allow_watch_bookmarks=True,
        timeout_seconds=1,
    ):
        got.append(e)
    bookmarks = [e for e in got if e["type"] == "BOOKMARK"]
    assert bookmarks, "expected at least one bookmark with a 0.2 s interval"
    obj = bookmarks[0]["object"]
    assert obj["kind"] == "ConfigMap" and obj["apiVersion"] == "v1"
    assert obj["metadata"]["resourceVersion"] == str(rv)
    assert w.resource_version == str(rv)


def test_send_initial_events_ends_with_annotated_bookmark(
    sim: KubeSim, core: client.CoreV1Api
) -> None:
    core.create_namespaced_config_map("default", cm("a"))
    events = stream_events(
        sim,
        "/api/v1/namespaces/default/configmaps",
        sendInitialEvents="true",
        resourceVersionMatch="NotOlderThan",
        allowWatchBookmarks="true",
        timeoutSeconds=1,
    )
    assert events[0]["type"] == "ADDED"
    assert events[1]["type"] == "BOOKMARK"
    annotations = events[1]["object"]["metadata"]["annotations"]
    assert annotations == {"k8s.io/initial-events-end": "true"}


def test_selectors_filter_watch_and_leaving_objects_are_deleted(
    sim: KubeSim, core: client.CoreV1Api
) -> None:
    start = str(sim.resource_version)
    core.create_namespaced_config_map("default", cm("a", {"team": "x"}))
    core.create_namespaced_config_map("default", cm("b", {"team": "y"}))
    core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"team": "y"}}})
    core.patch_namespaced_config_map("b", "default", {"metadata": {"labels": {"team": "x"}}})
    events = stream_events(
        sim,
        "/api/v1/namespaces/default/configmaps",
        resourceVersion=start,
        labelSelector="team=x",
        timeoutSeconds=1,
    )
    summary = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert summary == [("ADDED", "a"), ("DELETED", "a"), ("ADDED", "b")]
    # The DELETED event carries the last matching state with the event's resourceVersion.
    deleted = events[1]["object"]
    assert deleted["metadata"]["labels"] == {"team": "x"}
    assert int(deleted["metadata"]["resourceVersion"]) > int(
        events[0]["object"]["metadata"]["resourceVersion"]
    )
    by_field = stream_events(
        sim,
        "/api/v1/namespaces/default/configmaps",
        resourceVersion=start,
        fieldSelector="metadata.name=b",
        timeoutSeconds=1,
    )
    assert [e["type"] for e in by_field] == ["ADDED", "MODIFIED"]


def test_watch_from_compacted_history_gets_410(sim: KubeSim, core: client.CoreV1Api) -> None:
    first = core.create_namespaced_config_map("default", cm("a"))
    rv = first.metadata.resource_version
    for i in range(70):  # the fixture keeps 64 events per resource
        core.patch_namespaced_config_map("a", "default", {"data": {"i": str(i)}})
    events = stream_events(sim, "/api/v1/namespaces/default/configmaps", resourceVersion=rv)
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert status["kind"] == "Status" and status["code"] == 410
    assert status["reason"] == "Expired"
    assert status["message"].startswith(f"too old resource version: {rv} (")
    with pytest.raises(ApiException) as exc:
        list(
            watch.Watch().stream(
                core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1
            )
        )
    assert exc.value.status == 410
    # Other resources keep their own history.
    core.create_namespaced_secret("default", {"metadata": {"name": "s"}})
    assert (
        stream_events(
            sim, "/api/v1/namespaces/default/secrets", resourceVersion=rv, timeoutSeconds=1
        )[0]["type"]
        == "ADDED"
    )


def test_expire_resource_versions_forces_410_on_rewatch(
    sim: KubeSim, core: client.CoreV1Api
) -> None:
    rv = core.create_namespaced_config_map("default", cm("a")).metadata.resource_version
    sim.faults.expire_resource_versions()
    events = stream_events(sim, "/api/v1/namespaces/default/configmaps", resourceVersion=rv)
    assert events[0]["object"]["code"] == 410
    fresh = core.list_namespaced_config_map("default").metadata.resource_version
    assert int(fresh) > int(rv)
    ok = stream_events(
        sim, "/api/v1/namespaces/default/configmaps", resourceVersion=fresh, timeoutSeconds=1
    )
    assert ok == []


def test_watch_of_custom_resources_yields_dicts(sim: KubeSim, co: client.CustomObjectsApi) -> None:
    g, v = "example.kubesim.io", "v1"
    start = str(sim.resource_version)
    co.create_namespaced_custom_object(
        g,
        v,
        "default",
        "widgets",
        {
            "apiVersion": f"{g}/{v}",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 1},
        },
    )
    co.patch_namespaced_custom_object_status(
        g, v, "default", "widgets", "w", {"status": {"phase": "Ready"}}
    )
    events = list(
        watch.Watch().stream(
            co.list_namespaced_custom_object,
            g,
            v,
            "default",
            "widgets",
            resource_version=start,
            timeout_seconds=1,
        )
    )
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED"]
    assert events[1]["object"]["status"] == {"phase": "Ready"}


def test_concurrent_watches_each_receive_every_event_in_order(
    sim: KubeSim, core: client.CoreV1Api
) -> None:
    watchers = 20
    writes = 100
    start = str(sim.resource_version)
    results: list[list[int]] = [[] for _ in range(watchers)]
    connected = threading.Barrier(watchers + 1)

    def consume(i: int) -> None:
        with requests.get(
            f"{sim.url}/api/v1/namespaces/default/configmaps",
            # Each consumer returns at the DELETED event; the timeout only bounds a failure.
            params={"watch": "true", "resourceVersion": start, "timeoutSeconds": "300"},
            stream=True,
            timeout=300,
        ) as resp:
            connected.wait()
            for line in resp.iter_lines():
                if not line:
                    continue
                event = json.loads(line)
                results[i].append(int(event["object"]["metadata"]["resourceVersion"]))
                if event["type"] == "DELETED":
                    return

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(watchers)]
    for t in threads:
        t.start()
    connected.wait()
    core.create_namespaced_config_map("default", cm("c"))
    for i in range(writes - 2):
        core.patch_namespaced_config_map("c", "default", {"data": {"i": str(i)}})
    core.delete_namespaced_config_map("c", "default")
    for t in threads:
        t.join(300)
    expected = results[0]
    assert len(expected) == writes
    assert expected == sorted(expected)
    assert all(r == expected for r in results)


def test_drop_watches_ends_open_streams(sim: KubeSim, core: client.CoreV1Api) -> None:
    ended = threading.Event()

    def consume() -> None:
        with requests.get(
            f"{sim.url}/api/v1/namespaces/default/configmaps",
            params={"watch": "true", "timeoutSeconds": "30"},
            stream=True,
            timeout=30,
        ) as resp:
            for _ in resp.iter_lines():
                pass
        ended.set()

    t = threading.Thread(target=consume)
    t.start()
    watch_opened(sim)
    sim.faults.drop_watches()
    assert ended.wait(5)
    t.join(5)


def test_watch_table_for_kubectl_get_watch(sim: KubeSim, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", cm("a", k="v"))
    with requests.get(
        f"{sim.url}/api/v1/namespaces/default/configmaps",
        params={"watch": "true", "timeoutSeconds": "1"},
        headers={"Accept": "application/json;as=Table;g=meta.k8s.io;v=v1,application/json"},
        stream=True,
        timeout=10,
    ) as resp:
        events = [json.loads(line) for line in resp.iter_lines() if line]
    assert events[0]["type"] == "ADDED"
    assert events[0]["object"]["kind"] == "Table"
    assert events[0]["object"]["rows"][0]["cells"][0] == "a"


def test_legacy_watch_path_and_watch_errors(sim: KubeSim, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", cm("a"))
    events = stream_events(sim, "/api/v1/watch/namespaces/default/configmaps", timeoutSeconds=1)
    assert [e["object"]["metadata"]["name"] for e in events] == ["a"]
    bad = requests.get(
        f"{sim.url}/api/v1/namespaces/default/configmaps",
        params={
            "watch": "true",
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
        },
        timeout=5,
    )
    assert bad.status_code == 400 and "allowWatchBookmarks" in bad.json()["message"]
    missing = requests.get(f"{sim.url}/apis/example.kubesim.io/v1/things?watch=true", timeout=5)
    assert missing.status_code == 404


def test_abrupt_drop_cuts_the_connection(sim: KubeSim, core: client.CoreV1Api) -> None:
    failure: list[BaseException] = []

    def consume() -> None:
        try:
            with requests.get(
                f"{sim.url}/api/v1/namespaces/default/configmaps",
                params={"watch": "true", "timeoutSeconds": "30"},
                stream=True,
                timeout=30,
            ) as resp:
                for _ in resp.iter_lines():
                    pass
        except requests.exceptions.RequestException as exc:
            failure.append(exc)

    t = threading.Thread(target=consume)
    t.start()
    watch_opened(sim)
    sim.faults.drop_watches(abrupt=True)
    t.join(5)
    assert not t.is_alive()
    assert failure, "an abrupt drop must look like a broken connection, not a clean end"


def test_failure_inside_a_watch_stream_is_an_error_event(
    sim: KubeSim, core: client.CoreV1Api
) -> None:
    got: list[dict[str, Any]] = []

    def consume() -> None:
        with requests.get(
            f"{sim.url}/api/v1/namespaces/default/configmaps",
            params={"watch": "true", "timeoutSeconds": "10", "includeObject": "Everything"},
            headers={"Accept": "application/json;as=Table;g=meta.k8s.io;v=v1"},
            stream=True,
            timeout=15,
        ) as resp:
            got.extend(json.loads(line) for line in resp.iter_lines() if line)

    t = threading.Thread(target=consume)
    t.start()
    watch_opened(sim)
    core.create_namespaced_config_map("default", cm("a"))
    t.join(15)
    assert len(got) == 1 and got[0]["type"] == "ERROR"
    assert got[0]["object"]["code"] == 400
    assert "includeObject" in got[0]["object"]["message"]


def test_client_resumes_from_last_resource_version_after_drop(
    sim: KubeSim, core: client.CoreV1Api
) -> None:
    """kubernetes.watch reconnects with its last resourceVersion; nothing is lost or repeated."""
    w = watch.Watch()
    seen: list[str] = []

    def consume() -> None:
        for e in w.stream(core.list_namespaced_config_map, "default", _request_timeout=(5, 30)):
            seen.append(f"{e['type']} {e['object'].metadata.name}")
            if e["object"].metadata.name == "last":
                w.stop()

    t = threading.Thread(target=consume)
    t.start()
    core.create_namespaced_config_map("default", cm("first"))
    eventually(lambda: "ADDED first" in seen, what="the first event")
    sim.faults.drop_watches()
    core.create_namespaced_config_map("default", cm("during"))
    core.create_namespaced_config_map("default", cm("last"))
    t.join(10)
    assert seen == ["ADDED first", "ADDED during", "ADDED last"]
    assert len([r for r in sim.requests() if r.verb == "watch"]) >= 2
