"""A clock a test moves by hand, for services that take one (``clock=``)."""

from __future__ import annotations

import time


class ManualClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
