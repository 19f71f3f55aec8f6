"""wait_until: poll a condition instead of sleeping a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable


async def wait_until(
    pilot, condition: Callable[[], object], timeout: float = 45.0, what: str = "the condition"
) -> None:
    """Let the app run until `condition()` is true; fail after `timeout` seconds.

    The default is generous on purpose: on a loaded 2-core machine (CI beside other work, or
    pytest-xdist's two workers) a Textual app with a fake engine took 27 s for what takes 1 s on a
    quiet one. A real hang still fails, here or at the test's own pytest timeout.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.01)


def wait_until_sync(
    condition: Callable[[], object], timeout: float = 30.0, what: str = "the condition", poll: float = 0.05
):
    """The same for tests that drive a real terminal (tmux): returns the condition's value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)
    return value
