"""From inference-pod scrapes to token pages and per-pod scrape states (SPEC §3.1).

Pure glue between :mod:`scraping`, :mod:`backends` and :mod:`discovery`: every pod's result
becomes one :class:`PodScrape` — ``ok`` with its token readings, ``starting`` (refused before
its first success: the model is loading) or ``failed`` with a :class:`ScrapeError`.
:func:`token_reader` reads each page in the scrape worker that fetched it, so that only the
token readings outlive the fetch.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import attrs

from infercost.collect.backends import TokenPage, read_tokens
from infercost.collect.discovery import InferenceTarget
from infercost.collect.errors import ScrapeError
from infercost.collect.scraping import Reader, ScrapeResult, ScrapeTarget, pod_scrape_state


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


def token_reader(targets: Sequence[InferenceTarget]) -> Reader:
    """The :data:`~infercost.collect.scraping.Reader` of the pages of ``targets``: each page
    read as its pod's backend (:func:`read_tokens`) into a :class:`TokenPage`."""
    backends: dict[Hashable, str] = {t.scrape_target().key: t.backend for t in targets}

    def read(target: ScrapeTarget, body: bytes) -> TokenPage:
        return read_tokens(backends[target.key], body)

    return read


def read_pods(
    targets: Sequence[InferenceTarget],
    results: Sequence[ScrapeResult],
    ever_succeeded: Callable[[str], bool] = lambda uid: False,
) -> list[PodScrape]:
    """Every pod's scrape state and token page (``results[i]`` belongs to ``targets[i]``):
    the page a :func:`token_reader` already read, else the body read here.

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
            if isinstance(result.page, TokenPage):
                page = result.page
            else:
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
