"""Scrape failures as values: every way a target can fail has a reason code.

The reason codes are the values of the ``reason`` label of ``infercost_scrape_errors_total``
(SPEC §6.1) and appear in condition messages, so they are a contract: add codes, never rename.
"""

from __future__ import annotations

from typing import Final

TIMEOUT: Final = "timeout"
REFUSED: Final = "refused"
HTTP_STATUS: Final = "http_status"
NOT_PROMETHEUS_TEXT: Final = "not_prometheus_text"
TOO_LARGE: Final = "too_large"
MISSING_METRICS: Final = "missing_metrics"
OTHER: Final = "other"
UNTRUSTED_NAMESPACE: Final = "untrusted_namespace"
"""A pod labelled like a DCGM exporter outside ``--dcgm-namespaces``: ignored, never scraped."""

REASONS: Final = frozenset(
    {
        TIMEOUT,
        REFUSED,
        HTTP_STATUS,
        NOT_PROMETHEUS_TEXT,
        TOO_LARGE,
        MISSING_METRICS,
        OTHER,
        UNTRUSTED_NAMESPACE,
    }
)


class ScrapeError(Exception):
    """A target could not be read, or what it returned cannot be used.

    ``reason`` is one of the codes above; ``message`` is a sentence a user can act on (it never
    contains a traceback); ``status`` is the HTTP status code for ``http_status``.
    """

    reason: str = OTHER

    def __init__(self, message: str, *, reason: str | None = None, status: int | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        if self.reason not in REASONS:
            raise ValueError(f"unknown scrape error reason {self.reason!r}")
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r}, message={self.message!r})"


class NotPrometheusTextError(ScrapeError):
    """The body is not the Prometheus text exposition format (HTML, JSON, truncated, binary)."""

    reason = NOT_PROMETHEUS_TEXT


class MissingMetricsError(ScrapeError):
    """The body is valid text but carries none of the metrics the backend is known to serve."""

    reason = MISSING_METRICS
