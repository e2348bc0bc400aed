"""``infercost validate``: check CR manifests before they reach a cluster.

Meant for GitOps pipelines (before Argo CD or Flux syncs): every CostProfile, UsageReport and
TokenBudget document in the given files and directories is parsed with the same models the
operator uses, so a manifest that passes here passes admission and the operator's own checks.
Documents of other kinds are ignored. One line per problem::

    path/to/file.yaml:2 TokenBudget/team-a: spec.alertThresholds[1].percent: duplicate ...

The number after the colon is the document's 0-based index in the file (``---`` separated).
Exit status: 0 when everything checked is valid, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

import attrs
import yaml

from infercost.api import GROUP, KINDS, ValidationError, parse_resource

YAML_SUFFIXES = (".yaml", ".yml")
KUSTOMIZATION_FILES = {"kustomization.yaml", "kustomization.yml", "Kustomization"}
STDIN = "-"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="FILE_OR_DIR",
        help=(
            "YAML files (multi-document) or directories, searched recursively for *.yaml and "
            "*.yml (kustomization files skipped); '-' reads standard input"
        ),
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print problems only, no summary line"
    )


class _ManifestLoader(yaml.SafeLoader):
    """YAML as the Kubernetes tooling reads it.

    Timestamps stay strings (``purchaseDate: 2025-03-01`` reaches the API server as the string
    "2025-03-01"), and a key repeated in one mapping is an error, as ``kubectl`` treats it.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_documents(stream: TextIO | str) -> Iterator[Any]:
    """The documents of a YAML stream, read as ``kubectl`` would read them."""
    return iter(yaml.load_all(stream, Loader=_ManifestLoader))


@attrs.define
class Summary:
    checked: int = 0
    invalid: int = 0
    unreadable: int = 0

    def line(self) -> str:
        parts = [
            f"{self.checked} document{'s' if self.checked != 1 else ''} checked",
            f"{self.invalid} invalid",
        ]
        if self.unreadable:
            parts.append(f"{self.unreadable} file{'s' if self.unreadable != 1 else ''} unreadable")
        return ", ".join(parts)

    @property
    def ok(self) -> bool:
        return self.invalid == 0 and self.unreadable == 0


def expand_paths(paths: list[str]) -> Iterator[tuple[str, Path | None]]:
    """``(display name, path)`` of every file to read; ``None`` path means standard input.

    Directories are walked recursively in sorted order, skipping hidden directories and
    kustomization files. Missing paths are yielded as is so the reader reports them.
    """
    for raw in paths:
        if raw == STDIN:
            yield "<stdin>", None
            continue
        path = Path(raw)
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                relative = found.relative_to(path)
                if any(part.startswith(".") for part in relative.parts):
                    continue
                if (
                    found.is_file()
                    and found.suffix in YAML_SUFFIXES
                    and found.name not in KUSTOMIZATION_FILES
                ):
                    yield str(found), found
        else:
            yield raw, path


def is_checked_document(doc: object) -> bool:
    """Whether ``doc`` is one of our kinds (or claims our API group)."""
    if not isinstance(doc, Mapping):
        return False
    api_version = doc.get("apiVersion")
    kind = doc.get("kind")
    group = api_version.split("/")[0] if isinstance(api_version, str) else None
    if group == GROUP:
        return True
    return api_version is None and isinstance(kind, str) and kind in KINDS


def _label(doc: Mapping[str, Any]) -> str:
    kind = doc.get("kind") if isinstance(doc.get("kind"), str) else "<no kind>"
    metadata = doc.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return f"{kind}/{name if isinstance(name, str) and name else '<unnamed>'}"


def check_document(doc: Mapping[str, Any], where: str, out: TextIO, summary: Summary) -> None:
    summary.checked += 1
    try:
        parse_resource(doc)
    except ValidationError as error:
        summary.invalid += 1
        label = _label(doc)
        for problem in error.errors:
            print(f"{where} {label}: {problem}", file=out)


def check_stream(name: str, stream: TextIO, out: TextIO, summary: Summary) -> None:
    index = -1
    try:
        for index, doc in enumerate(load_documents(stream)):
            _check_any(doc, f"{name}:{index}", out, summary)
    except yaml.YAMLError as error:
        summary.invalid += 1
        print(f"{name}:{index + 1} {_yaml_error(error)}", file=out)


def _check_any(doc: object, where: str, out: TextIO, summary: Summary) -> None:
    if not isinstance(doc, Mapping):
        return
    if doc.get("kind") == "List" and doc.get("apiVersion") == "v1":
        items = doc.get("items")
        if isinstance(items, list):
            for i, item in enumerate(items):
                _check_any(item, f"{where}.items[{i}]", out, summary)
        return
    if is_checked_document(doc):
        check_document(doc, where, out, summary)


def _yaml_error(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "invalid YAML"
        if error.context and error.problem:
            problem = f"{error.problem} ({error.context})"
        if mark is not None:
            return f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {problem}"
        return f"YAML syntax error: {problem}"
    return f"YAML syntax error: {error}"


def validate_paths(paths: list[str], out: TextIO, stdin: TextIO | None = None) -> Summary:
    """Check every file under ``paths``, printing one line per problem to ``out``."""
    summary = Summary()
    for name, path in expand_paths(paths):
        if path is None:
            check_stream(name, stdin if stdin is not None else sys.stdin, out, summary)
            continue
        try:
            with path.open(encoding="utf-8") as stream:
                check_stream(name, stream, out, summary)
        except FileNotFoundError:
            summary.unreadable += 1
            print(f"{name}: no such file or directory", file=out)
        except (OSError, UnicodeDecodeError) as error:
            summary.unreadable += 1
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            print(f"{name}: cannot read: {reason}", file=out)
    return summary


def run(args: argparse.Namespace) -> int:
    summary = validate_paths(list(args.paths), sys.stdout)
    if not args.quiet:
        print(summary.line())
    return 0 if summary.ok else 1
