"""From inference-pod scrapes to token pages and the ``MetricsScraped`` summary (SPEC §2.1, §3.1).

Pure glue between :mod:`scraping`, :mod:`backends` and :mod:`discovery`: every pod's result
becomes one :class:`PodScrape` — ``ok`` with its token readings, ``starting`` (refused before
its first success: the model is loading) or ``failed`` with a :class:`ScrapeError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from infercost.collect.backends import TokenPage, read_tokens
from infercost.collect.discovery import InferenceTarget
from infercost.collect.errors import ScrapeError
from infercost.collect.scraping import FAILED, OK, STARTING, ScrapeResult, pod_scrape_state


@attrs.frozen
class PodScrape:
    target: InferenceTarget
    state: str
    """``ok``, ``starting`` or ``failed``."""
    page: TokenPage | None
    error: ScrapeError | None
    duration_seconds: float

    def model_of(self, series_model: str | None) -> str:
        """The model a reading books to: its own label, else the pod's fallback name."""
        return series_model or self.target.model


def read_pods(
    targets: Sequence[InferenceTarget],
    results: Sequence[ScrapeResult],
    ever_succeeded: Callable[[str], bool] = lambda uid: False,
) -> list[PodScrape]:
    """Read every pod's page (``results[i]`` belongs to ``targets[i]``).

    ``ever_succeeded(pod_uid)`` tells whether the pod had a successful scrape before; the
    caller keeps that memory (it survives pod restarts only as long as the UID does).
    """
    if len(targets) != len(results):
        raise ValueError("one scrape result per inference target is needed")
    out = []
    for target, result in zip(targets, results, strict=True):
        error = result.error
        page = None
        if error is None:
            try:
                page = read_tokens(target.backend, result.body or b"")
            except ScrapeError as exc:
                error = exc
        if error is not None:
            error = ScrapeError(
                f"pod {target.pod}: {error}", reason=error.reason, status=error.status
            )
        state = pod_scrape_state(error, ever_succeeded(target.pod.uid))
        out.append(PodScrape(target, state, page, error, result.duration_seconds))
    return out


@attrs.frozen
class ScrapeSummary:
    """The ``MetricsScraped`` condition of a profile over its inference pods."""

    ok: bool
    message: str
    failing: int
    starting: int
    total: int


def summarize(scrapes: Sequence[PodScrape]) -> ScrapeSummary:
    """True, or False with ``k/n inference pods failing: <first error>`` (SPEC §2.1).

    Pods that are starting are not failures; the message mentions them.
    """
    failing = [s for s in scrapes if s.state == FAILED]
    starting = sum(1 for s in scrapes if s.state == STARTING)
    total = len(scrapes)
    note = f" ({starting} starting)" if starting else ""
    if failing:
        first = sorted(failing, key=lambda s: s.target.pod)[0]
        return ScrapeSummary(
            False,
            f"{len(failing)}/{total} inference pods failing: {first.error}{note}",
            len(failing),
            starting,
            total,
        )
    healthy = sum(1 for s in scrapes if s.state == OK)
    message = f"{healthy}/{total} inference pods scraped{note}" if total else "no inference pods"
    return ScrapeSummary(True, message, 0, starting, total)
