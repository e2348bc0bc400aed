"""Calendar periods in UTC (SPEC §2.2, §4): days, ISO weeks and months, and the split of an
interval at UTC midnight.

Labels are the ones users read in ``status.period``: ``2026-11-27``, ``2026-W48`` (ISO
week-numbering year, ``%G-W%V``: 2027-01-01 lies in ``2026-W53``) and ``2026-11``. Every period
is half-open, ``[start, end)``. A ledger day is identified by its label ``YYYY-MM-DD``, which
sorts in time order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import attrs

DAILY = "daily"
WEEKLY = "weekly"
MONTHLY = "monthly"
SCHEDULES = (DAILY, WEEKLY, MONTHLY)
SECONDS_PER_DAY = 86_400.0


@attrs.frozen
class Period:
    schedule: str
    label: str
    start: dt.datetime
    end: dt.datetime
    """Exclusive."""

    def days(self) -> Iterator[str]:
        """The day labels inside the period, in order."""
        day = self.start.date()
        while _midnight(day) < self.end:
            yield day.isoformat()
            day += dt.timedelta(days=1)

    def contains_day(self, day: str) -> bool:
        start = _midnight(dt.date.fromisoformat(day))
        return self.start <= start < self.end

    def previous(self) -> Period:
        return period_of(self.start - dt.timedelta(seconds=1), self.schedule)

    def next(self) -> Period:
        return period_of(self.end, self.schedule)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def utc(at: dt.datetime) -> dt.datetime:
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at.isoformat()}: pass an aware (UTC) time")
    return at.astimezone(dt.UTC)


def period_of(at: dt.datetime, schedule: str) -> Period:
    """The period of ``schedule`` that contains the instant ``at``."""
    day = utc(at).date()
    if schedule == DAILY:
        start = _midnight(day)
        return Period(DAILY, day.isoformat(), start, start + dt.timedelta(days=1))
    if schedule == WEEKLY:
        monday = day - dt.timedelta(days=day.weekday())
        year, week, _ = monday.isocalendar()
        start = _midnight(monday)
        return Period(WEEKLY, f"{year}-W{week:02d}", start, start + dt.timedelta(days=7))
    if schedule == MONTHLY:
        first = day.replace(day=1)
        following = (first + dt.timedelta(days=32)).replace(day=1)
        return Period(MONTHLY, f"{first:%Y-%m}", _midnight(first), _midnight(following))
    raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")


def parse_period(label: str) -> Period:
    """A period from its label (``2026-11-27``, ``2026-W48``, ``2026-11``); ``ValueError``
    naming the expected forms otherwise."""
    try:
        if "-W" in label:
            year, week = label.split("-W")
            monday = dt.date.fromisocalendar(int(year), int(week), 1)
            return period_of(_midnight(monday), WEEKLY)
        if len(label) == 7:
            return period_of(_midnight(dt.date.fromisoformat(label + "-01")), MONTHLY)
        return period_of(_midnight(dt.date.fromisoformat(label)), DAILY)
    except ValueError:
        raise ValueError(
            f"period {label!r} is not a day (2026-11-27), an ISO week (2026-W48) "
            "or a month (2026-11)"
        ) from None


def day_label(at: dt.datetime) -> str:
    return utc(at).date().isoformat()


def day_start(day: str) -> dt.datetime:
    return _midnight(dt.date.fromisoformat(day))


def day_end(day: str) -> dt.datetime:
    return day_start(day) + dt.timedelta(days=1)


@attrs.frozen
class Piece:
    """The part of an interval that falls in one UTC day."""

    day: str
    start: dt.datetime
    end: dt.datetime
    fraction: float
    """Share of the interval's duration."""
    cumulative: float
    """Elapsed fraction of the interval at the end of this piece (``c_k``; 1 for the last)."""


def split_at_midnight(start: dt.datetime, end: dt.datetime) -> tuple[Piece, ...]:
    """Cut ``(start, end]`` at every UTC midnight inside it, in proportion to time.

    A zero-length or backwards interval has no pieces: wall time that steps back books nothing.
    """
    start, end = utc(start), utc(end)
    total = (end - start).total_seconds()
    if total <= 0:
        return ()
    pieces = []
    cursor = start
    elapsed = 0.0
    while cursor < end:
        boundary = min(end, _midnight(cursor.date()) + dt.timedelta(days=1))
        seconds = (boundary - cursor).total_seconds()
        elapsed += seconds
        last = boundary >= end
        pieces.append(
            Piece(
                day=cursor.date().isoformat(),
                start=cursor,
                end=boundary,
                fraction=seconds / total,
                cumulative=1.0 if last else elapsed / total,
            )
        )
        cursor = boundary
    return tuple(pieces)


def split_whole(total: int, pieces: tuple[Piece, ...]) -> list[int]:
    """Split a whole-token delta over pieces as ``⌊T·c_k⌋ − ⌊T·c_{k−1}⌋`` (SPEC §4): the parts
    are integers and sum to ``total`` exactly."""
    out = []
    before = 0
    for piece in pieces:
        upto = total if piece.cumulative >= 1.0 else _floor(total * piece.cumulative)
        out.append(upto - before)
        before = upto
    return out


def _floor(value: float) -> int:
    whole = int(value)
    return whole - 1 if whole > value else whole


def previous_day(day: str) -> str:
    return (dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()
