"""``infercost export focus``: a FOCUS 1.2 CSV of a calendar period, for finance.

The rows come from the ledger's checkpoint (the ConfigMaps labelled ``infercost.ai/ledger=true``
in the operator namespace), never from UsageReports: reports overlap (a daily and a monthly
report count the same hour twice), the ledger's lines do not. Reading needs only ``list
configmaps`` in the operator namespace (and ``get`` on the pricing ConfigMap, for the
cloud-equivalent columns); nothing is written to the cluster.

Exit status: 0 with the CSV written (stdout unless ``-o``); 2 for a bad flag; 1 when the
cluster cannot be read, holds no checkpoint, or keeps no day of the period. Every problem is
one line on stderr starting ``infercost export: error:``; notes (a period only partly kept,
a pricing override that cannot be used) start ``infercost export: note:``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

PROG = "infercost export"
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class ExportError(Exception):
    """Why the export cannot be written; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(" ".join(message.split()))
        self.status = status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    formats = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    focus = formats.add_parser(
        "focus",
        help="FOCUS 1.2 CSV rows per day, CostProfile, namespace and model",
        description=(
            "Write the ledger's lines of a calendar period (UTC) as FOCUS 1.2 CSV: one row per "
            "day, CostProfile, namespace and model, read from the ledger checkpoint in the "
            "operator namespace."
        ),
    )
    focus.add_argument(
        "--period",
        required=True,
        metavar="PERIOD",
        help="a month (2026-11), an ISO week (2026-W48) or a day (2026-11-27), in UTC",
    )
    scope = focus.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", dest="workload_namespace", metavar="NS", help="only the rows of namespace NS"
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="rows of every namespace (default)"
    )
    focus.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    focus.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig file (default: in-cluster, else $KUBECONFIG, else ~/.kube/config)",
    )
    focus.add_argument(
        "--namespace",
        dest="operator_namespace",
        metavar="OPERATOR_NS",
        help="the operator's namespace, where the checkpoint lives "
        "[INFERCOST_NAMESPACE; default as for infercost run: infercost-system]",
    )
    focus.add_argument(
        "--cluster",
        default="cluster",
        metavar="NAME",
        help="cluster name used in BillingAccountId and InvoiceId "
        "(infercost-<NAME>-<yyyy-mm>) [default: cluster]",
    )


def run(args: argparse.Namespace, *, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    try:
        return _export_focus(args, env)
    except ExportError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.status


def _note(text: str) -> None:
    print(f"{PROG}: note: {' '.join(text.split())}", file=sys.stderr)


def _operator_setting(dest: str, given: str | None, env: Mapping[str, str]) -> Any:
    """A setting shared with ``infercost run``: the flag, else ``INFERCOST_<NAME>``, else
    ``run``'s default, parsed and checked as ``run`` does."""
    from infercost.controllers.config import FLAGS_BY_DEST

    flag = FLAGS_BY_DEST[dest]
    parse: Callable[[str], Any] = flag.parse or str
    if given is not None:
        raw, source = given, f"--{flag.name}"
    elif env.get(flag.env, "").strip():
        raw, source = env[flag.env], flag.env
    else:
        raw, source = flag.default or "", f"default of --{flag.name}"
    try:
        return parse(raw)
    except ValueError as exc:
        raise ExportError(f"{source}: {exc}", 2) from None


def _export_focus(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from infercost.engine.ledger import UNALLOCATED
    from infercost.engine.periods import parse_period
    from infercost.outputs.focus import check_cluster_name, focus_rows

    try:
        period = parse_period(args.period)
    except ValueError as exc:
        raise ExportError(f"--period: {exc}", 2) from None
    namespaces: tuple[str, ...] = ()
    if args.workload_namespace is not None:
        ns = args.workload_namespace
        if ns != UNALLOCATED and not _NAMESPACE.match(ns):
            raise ExportError(
                f"-n: {ns!r} is not a namespace name (lowercase letters, digits and '-', "
                f"at most 63) nor {UNALLOCATED}",
                2,
            )
        namespaces = (ns,)
    try:
        cluster = check_cluster_name(args.cluster)
    except ValueError as exc:
        raise ExportError(f"--cluster: {exc}", 2) from None
    operator_ns: str = _operator_setting("namespace", args.operator_namespace, env)

    rest = _connect(args.kubeconfig)
    ledger = _load_ledger(rest, operator_ns)
    kept = ledger.days()
    if not kept:
        raise ExportError(
            f"the ledger checkpoint in namespace {operator_ns} keeps no day yet "
            "(the operator books its first day after its first samples)"
        )
    wanted = [day for day in period.days() if day in set(kept)]
    if not wanted:
        raise ExportError(
            f"period {period.label} is outside the ledger, which keeps the days "
            f"{kept[0]} to {kept[-1]} (UTC)"
        )
    all_days = list(period.days())
    if len(wanted) < len(all_days):
        _note(
            f"the ledger keeps {wanted[0]} to {wanted[-1]} of {period.label} "
            f"({len(wanted)} of {len(all_days)} days); the export covers those days"
        )
    catalog = _catalog(rest, operator_ns, env)
    try:
        rows = focus_rows(
            ledger.lines_of(wanted), cluster=cluster, catalog=catalog, namespaces=namespaces
        )
    except ValueError as exc:
        raise ExportError(f"the ledger checkpoint in namespace {operator_ns}: {exc}") from None
    scope = f"namespace {namespaces[0]}" if namespaces else "all namespaces"
    if not rows:
        _note(f"the ledger has no cost for {scope} in {period.label}: only the header is written")
    if args.output:
        try:
            with open(args.output, "w", newline="", encoding="utf-8") as out:
                count = _write(rows, out)
        except OSError as exc:
            raise ExportError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        print(
            f"{PROG}: wrote {count} FOCUS rows of {period.label} ({scope}) to {args.output}",
            file=sys.stderr,
        )
    else:
        _write(rows, sys.stdout)
    return 0


def _write(rows: list[dict[str, str | None]], out: TextIO) -> int:
    from infercost.outputs.focus import write_csv

    return write_csv(rows, out)


def _connect(kubeconfig: str | None) -> Any:
    from infercost.kube.client import StartupError, load_api_client
    from infercost.kube.rest import RestClient

    try:
        return RestClient(load_api_client(kubeconfig))
    except StartupError as exc:
        raise ExportError(str(exc)) from None


def _api_problem(rest: Any, exc: BaseException, what: str, operator_ns: str) -> ExportError:
    """One sentence for a failed read: no access, bad credentials, unreachable, or other."""
    from infercost.kube.rest import ForbiddenError, TransportError, UnauthorizedError

    host = rest.api_client.configuration.host
    if isinstance(exc, ForbiddenError):
        return ExportError(
            f"no access: RBAC denies {what} in namespace {operator_ns} "
            f"(needed to read the ledger checkpoint): {exc.message or exc.reason}"
        )
    if isinstance(exc, UnauthorizedError):
        return ExportError(f"the Kubernetes API at {host} rejected the credentials")
    if isinstance(exc, TransportError):
        return ExportError(f"cannot reach the Kubernetes API at {host}: {exc.message or exc}")
    return ExportError(f"cannot {what} in namespace {operator_ns}: {exc}")


def _load_ledger(rest: Any, operator_ns: str) -> Any:
    from infercost.controllers.ledgerstore import LEDGER_LABELS, load_ledger
    from infercost.kube.objectstore import ObjectStore, ObjectStoreError

    store = ObjectStore(rest, operator_ns, LEDGER_LABELS)
    try:
        objects = store.list()
    except ObjectStoreError as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        raise _api_problem(rest, cause, "list configmaps", operator_ns) from None
    if not objects:
        selector = ",".join(f"{k}={v}" for k, v in sorted(LEDGER_LABELS.items()))
        raise ExportError(
            f"no ledger checkpoint in namespace {operator_ns}: no ConfigMap labelled "
            f"{selector} (is the operator running there? pass its namespace with --namespace)"
        )
    try:
        return load_ledger(objects.values(), shards=_shard_count(objects))
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(
            f"the ledger checkpoint in namespace {operator_ns} cannot be read: {exc}"
        ) from None


_SHARD_OBJECT = re.compile(r"^infercost-ledger-(\d+)(?:-\d{4}-\d{2})?$")


def _shard_count(objects: Mapping[str, Any]) -> int:
    """The checkpoint's shard count: one more than the highest shard number in its names."""
    numbers = [int(m.group(1)) for name in objects if (m := _SHARD_OBJECT.match(name))]
    return max(numbers, default=0) + 1


def _catalog(rest: Any, operator_ns: str, env: Mapping[str, str]) -> Any:
    """The price catalog the operator uses: its pricing ConfigMap when present and valid,
    else the bundled one (with a note saying why)."""
    from infercost.collect.pricing import bundled_catalog, parse_pricing_configmap
    from infercost.engine.catalog import CatalogError
    from infercost.kube.rest import CONFIGMAPS, ApiError, NotFoundError

    name: str = _operator_setting("pricing_configmap", None, env)
    try:
        found = rest.get(CONFIGMAPS, name, operator_ns)
    except NotFoundError:
        return bundled_catalog()
    except ApiError as exc:
        _note(
            f"cannot read ConfigMap {operator_ns}/{name} ({exc}); cloud-equivalent columns "
            "use the bundled price catalog"
        )
        return bundled_catalog()
    try:
        return parse_pricing_configmap(found.get("data"), name=name)
    except CatalogError as exc:
        _note(f"{exc}; cloud-equivalent columns use the bundled price catalog")
        return bundled_catalog()
