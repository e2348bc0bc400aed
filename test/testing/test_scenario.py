"""The scenario harness keeps the ground truth that token accounting is checked against."""

from __future__ import annotations

from infercost.kube.clock import FakeClock
from infercost.kube.rest import PODS
from infercost.testing.scenario import Scenario


def test_ground_truth_survives_restarts_and_pods_recreated_under_the_same_name(
    scenario: Scenario, fake_clock: FakeClock
) -> None:
    scenario.node("gpu-1")
    first = scenario.inference("chat-0", node="gpu-1", namespace="team-a", models=["llama"])
    first.serve(100, 20, cached=30)
    first.server.set_rate(10.0, 2.0)
    scenario.advance(60)  # the servers read the scenario's clock: 600 input, 120 output
    scenario.restart(first)
    pod = scenario.rest.get(PODS, "chat-0", "team-a")
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 1

    scenario.delete(PODS, "chat-0", "team-a")
    second = scenario.inference("chat-0", node="gpu-1", namespace="team-a", models=["llama"])
    assert second.uid != first.uid
    second.serve(5, 5)
    assert scenario.truth() == {
        ("team-a", "chat-0", "llama"): {"input": 705, "cached": 30, "output": 145}
    }
    assert fake_clock.time() == first.server.clock()
