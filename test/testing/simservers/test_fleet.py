"""The fleet runner: many simulated endpoints for scale tests and the demo, in one process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infercost.collect.backends import read_tokens
from infercost.collect.dcgm import read_dcgm
from infercost.collect.scraping import Scraper, ScrapeTarget
from infercost.testing.simservers.__main__ import build_parser, start_fleet
from infercost.testing.simservers.farm import ServerFarm


def test_fleet_places_pods_on_nodes_and_gpus_on_pods() -> None:
    args = build_parser().parse_args(
        ["--inference", "vllm:6", "--inference", "llamacpp:2", "--nodes", "3",
         "--gpus-per-node", "2", "--rate", "10:5", "--second-octet", "231"]
    )  # fmt: skip
    with ServerFarm() as farm:
        manifest = start_fleet(args, farm)
        inference = [e for e in manifest if e["kind"] == "inference"]
        dcgm = [e for e in manifest if e["kind"] == "dcgm"]
        assert len(inference) == 8 and len(dcgm) == 3
        assert len({e["ip"] for e in manifest}) == len(manifest)
        assert all(e["ip"].startswith("127.231.") for e in manifest)
        assert {e["node"] for e in inference} == {"sim-node-0", "sim-node-1", "sim-node-2"}
        # every GPU of a node with pods is held by one of them
        held = sorted(u for e in inference for u in e["gpus"])
        assert held == sorted(u for e in dcgm for u in e["gpus"])
        targets = [ScrapeTarget(i, e["ip"], e["port"], e["path"]) for i, e in enumerate(manifest)]
        with Scraper() as scraper:
            results = scraper.scrape(targets)
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        for entry, result in zip(manifest, results, strict=True):
            if entry["kind"] == "inference":
                assert read_tokens(entry["backend"], result.body).backend == entry["backend"]  # type: ignore[arg-type]
            else:
                gpus = read_dcgm(result.body).gpus  # type: ignore[arg-type]
                assert [g.uuid for g in gpus] == entry["gpus"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--inference", "ollama:3"], "unknown backend 'ollama'"),
        (["--inference", "vllm:x"], "is not a number"),
        (["--inference", "vllm:0"], "at least 1"),
        (["--rate", "fast"], "expected INPUT:OUTPUT"),
    ],
)
def test_bad_arguments_are_named(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_fleet_runs_as_a_process_and_stops_on_sigterm(tmp_path: Path) -> None:
    manifest = tmp_path / "fleet.json"
    with subprocess.Popen(
        [sys.executable, "-m", "infercost.testing.simservers", "--inference", "tgi:2",
         "--nodes", "1", "--manifest", str(manifest)],
        stdout=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "simservers ready: 3 endpoints"
            entries = json.loads(manifest.read_text())
            target = ScrapeTarget("t", entries[0]["ip"], entries[0]["port"])
            with Scraper() as scraper:
                [result] = scraper.scrape([target])
            assert result.ok
        finally:
            proc.terminate()
            assert proc.wait(timeout=60) == 0
