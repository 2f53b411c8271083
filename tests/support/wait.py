"""Waiting for a condition instead of sleeping for a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: How often a condition is checked again.
POLL_SECONDS = 0.05


def wait_until(condition: Callable[[], T | None], timeout: float = 60.0, what: str = "condition") -> T:
    """Check `condition` until it returns something truthy, and return that; fail the test after
    `timeout` seconds, saying `what` was waited for."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        time.sleep(POLL_SECONDS)
