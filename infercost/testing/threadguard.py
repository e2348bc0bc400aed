"""A pytest fixture that fails any test which leaves a thread running that it started.

A thread that outlives its test keeps polling, scraping or serving while later tests run: it
steals CPU on a loaded machine, writes into emulators that belong to someone else and turns a
clean failure into a flake three tests later. ``no_leaked_threads`` (autouse, registered through
``infercost.testing.fixtures``) snapshots ``threading.enumerate()`` before each test and, after
every other fixture of the test has been torn down, joins whatever is new. Joining is a positive
signal: a thread that finishes within the grace period costs nothing, one that does not fails
the test with its name. Daemon threads count too; being a daemon only means the interpreter may
exit under it.

Threads that belong to a longer-lived owner (a session-scoped emulator, for instance) are
allowed explicitly with :func:`allow_threads`; nothing else is excused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

__all__ = ["GRACE_SECONDS", "allow_threads", "no_leaked_threads"]

# Total real time the leftover threads of one test get to finish (stop signals have been sent
# by then; this only bounds how long a genuinely leaked thread delays the failure report).
GRACE_SECONDS = 5.0

_ALLOWED = pytest.StashKey[set[str]]()


def allow_threads(config: pytest.Config, owner: str) -> None:
    """Let the threads named ``owner`` or ``owner-...`` outlive the tests of this session.

    For owners that outlive a test on purpose, e.g. a session-scoped emulator (its serving
    thread and the threads that serve its connections: ``KubeSim.thread_name``).
    """
    config.stash.setdefault(_ALLOWED, set()).add(owner)


def _allowed(config: pytest.Config, thread: threading.Thread) -> bool:
    return any(
        thread.name == owner or thread.name.startswith(f"{owner}-")
        for owner in config.stash.get(_ALLOWED, set())
    )


def _describe(thread: threading.Thread) -> str:
    kind = "daemon" if thread.daemon else "non-daemon"
    target = getattr(thread, "_target", None)
    where = f", target {getattr(target, '__qualname__', target)!s}" if target is not None else ""
    return f"{thread.name!r} ({kind}{where})"


@pytest.fixture(autouse=True)
def no_leaked_threads(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if a thread it started is still alive after its fixtures are torn down."""
    before = set(threading.enumerate())
    yield
    config = request.config
    started = [
        t
        for t in threading.enumerate()
        if t not in before and t is not threading.current_thread() and not _allowed(config, t)
    ]
    deadline = time.monotonic() + GRACE_SECONDS
    for thread in started:
        thread.join(max(0.0, deadline - time.monotonic()))
    leaked = [t for t in started if t.is_alive()]
    if leaked:
        names = ", ".join(_describe(t) for t in leaked)
        pytest.fail(
            f"{len(leaked)} thread(s) started by this test still running "
            f"{GRACE_SECONDS:g}s after it ended: {names}",
            pytrace=False,
        )
