"""The thread-leak guard fails a test that leaves a thread running, and only such a test."""

from __future__ import annotations

import pytest

# Run in a pytest of its own (a subprocess), so the leaked thread dies with it.
INNER_SUITE = """
import threading

import pytest

from infercost.testing import threadguard
from infercost.testing.threadguard import allow_threads

pytest_plugins = ["infercost.testing.fixtures"]
threadguard.GRACE_SECONDS = 0.5  # the leak below never ends; do not wait long for it

stop_leaked = threading.Event()


def test_leaks_a_daemon_thread():
    threading.Thread(target=stop_leaked.wait, name="forgotten-poller", daemon=True).start()


def test_thread_that_finishes_after_the_test_body_passes():
    release = threading.Event()
    threading.Thread(target=release.wait, name="winding-down", daemon=True).start()
    release.set()


def test_stopped_thread_passes():
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, name="well-behaved")
    t.start()
    stop.set()
    t.join()


@pytest.fixture(scope="session")
def long_lived(pytestconfig):
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, name="session-owner-conn", daemon=True)
    allow_threads(pytestconfig, "session-owner")
    yield t
    stop.set()
    t.join()


def test_thread_of_an_allowed_owner_passes(long_lived):
    long_lived.start()
"""


def test_guard_fails_exactly_the_test_that_leaks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "addopts=")
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks_a_daemon_thread*",
            "*1 thread(s) started by this test still running 0.5s after it ended:"
            " 'forgotten-poller' (daemon*",
        ]
    )
