"""``infercost validate``: exit codes and the one-line-per-problem output pipelines read."""

from __future__ import annotations

import argparse
import io
import re
import shutil
from pathlib import Path

import pytest

from infercost.cli import validate

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "manifests" / "samples"
DATA = REPO / "test" / "data" / "crs"

# file:doc Kind/name: field.path: message (quoted map keys in the path may contain spaces)
LINE = re.compile(
    r"^(?P<file>[^:]+):(?P<doc>\d+) (?P<kind>\w+)/(?P<name>\S+): "
    r'(?P<field>(?:[^\s:"]|"[^"]*")+): .+$'
)


def run(
    capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None
) -> tuple[int, list[str]]:
    parser = argparse.ArgumentParser(prog="infercost validate")
    validate.add_arguments(parser)
    args = parser.parse_args(list(argv))
    if stdin is not None:
        import sys

        old = sys.stdin
        sys.stdin = io.StringIO(stdin)
        try:
            code = validate.run(args)
        finally:
            sys.stdin = old
    else:
        code = validate.run(args)
    captured = capsys.readouterr()
    return code, captured.out.splitlines()


def test_samples_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run(capsys, str(SAMPLES))
    assert code == 0
    assert lines == ["11 documents checked, 0 invalid"]


def test_valid_fixtures_and_mixed_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run(capsys, str(DATA / "valid"))
    # minimal (3) + with-status (3) + the TokenBudget inside a v1 List; the ConfigMap, the
    # foreign CostProfile and the empty document are ignored.
    assert (code, lines) == (0, ["7 documents checked, 0 invalid"])


def test_every_invalid_variant_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    variants = sorted((DATA / "invalid").glob("*.yaml"))
    code, lines = run(capsys, str(DATA / "invalid"))
    assert code == 1
    assert lines[-1] == f"{len(variants)} documents checked, {len(variants)} invalid"
    problems = lines[:-1]
    for line in problems:
        assert LINE.match(line), line
    reported = {LINE.match(line).group("file") for line in problems}  # type: ignore[union-attr]
    assert reported == {str(p) for p in variants}


def test_problem_line_format(capsys: pytest.CaptureFixture[str]) -> None:
    path = DATA / "invalid" / "tb-threshold-duplicate-percent.yaml"
    code, lines = run(capsys, str(path))
    assert code == 1
    assert lines == [
        f"{path}:0 TokenBudget/team-a: spec.alertThresholds[1].percent: duplicate entry "
        "percent=80: already used by spec.alertThresholds[0]",
        "1 document checked, 1 invalid",
    ]


def test_document_index_counts_every_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = (SAMPLES / "usagereport.yaml").read_text()
    bad = (DATA / "invalid" / "ur-schedule-hourly.yaml").read_text()
    other = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n"
    manifest = tmp_path / "all.yml"
    manifest.write_text("---\n".join([other, good, bad]))
    code, lines = run(capsys, str(manifest))
    assert code == 1
    assert lines == [
        f'{manifest}:2 UsageReport/daily: spec.schedule: must be one of "daily", "weekly", '
        '"monthly", got string "hourly"',
        "2 documents checked, 1 invalid",
    ]


def test_unquoted_dates_are_strings_as_for_kubectl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (SAMPLES / "costprofile.yaml").read_text().replace('"2025-03-01"', "2025-03-01")
    assert "purchaseDate: 2025-03-01\n" in text
    (tmp_path / "profile.yaml").write_text(text)
    assert run(capsys, str(tmp_path)) == (0, ["1 document checked, 0 invalid"])


def test_yaml_syntax_error_is_reported_with_its_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        (SAMPLES / "tokenbudget.yaml").read_text() + "---\nkind: TokenBudget\nspec: [unclosed\n"
    )
    code, lines = run(capsys, str(broken))
    assert code == 1
    assert lines[0].startswith(f"{broken}:1 YAML syntax error at line ")
    assert lines[-1] == "1 document checked, 1 invalid"


def test_duplicate_keys_are_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(
        (SAMPLES / "tokenbudget.yaml")
        .read_text()
        .replace("monthlyLimitUSD: 5000\n", "monthlyLimitUSD: 5000\n  monthlyLimitUSD: 50\n")
    )
    code, lines = run(capsys, str(path))
    assert code == 1
    assert "found duplicate key 'monthlyLimitUSD'" in lines[0]


def test_kustomization_and_hidden_directories_are_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(SAMPLES, tmp_path / "samples")
    (tmp_path / "samples" / "kustomization.yaml").write_text("resources: [: broken\n")
    hidden = tmp_path / "samples" / ".git"
    hidden.mkdir()
    shutil.copy(DATA / "invalid" / "tb-limit-zero.yaml", hidden / "old.yaml")
    (tmp_path / "samples" / "README.txt").write_text("kind: TokenBudget\n")
    assert run(capsys, str(tmp_path)) == (0, ["11 documents checked, 0 invalid"])


def test_missing_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    code, lines = run(capsys, str(SAMPLES / "l4.yaml"), str(missing))
    assert code == 1
    assert lines == [
        f"{SAMPLES / 'l4.yaml'}: no such file or directory",
        f"{missing}: no such file or directory",
        "0 documents checked, 0 invalid, 2 files unreadable",
    ]


def test_stdin(capsys: pytest.CaptureFixture[str]) -> None:
    text = (DATA / "invalid" / "cp-pue-below-one.yaml").read_text()
    code, lines = run(capsys, "-", stdin=text)
    assert code == 1
    assert lines[0] == (
        "<stdin>:0 CostProfile/pool: spec.electricity.pueFactor: must be a number >= 1 and "
        "<= 3, got 0.9"
    )


def test_quiet_prints_problems_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "-q", str(SAMPLES)) == (0, [])
    code, lines = run(capsys, "--quiet", str(DATA / "invalid" / "tb-limit-zero.yaml"))
    assert code == 1 and len(lines) == 1


def test_wrong_version_of_our_group_is_checked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(
        "apiVersion: finops.infercost.ai/v1beta1\nkind: TokenBudget\nmetadata: {name: b}\n"
        "spec: {scope: {namespace: a}, monthlyLimitUSD: 1}\n"
    )
    code, lines = run(capsys, str(path))
    assert code == 1
    assert lines[0] == (
        f"{path}:0 TokenBudget/b: apiVersion: must be 'finops.infercost.ai/v1alpha1', "
        'got string "finops.infercost.ai/v1beta1"'
    )
