"""Retries of cloud calls: exponential backoff with full jitter, inside the invocation's time budget.

Only `ServiceError`s marked retryable (throttling, 5xx, network) are retried. When the next wait would
not fit in what is left of the function's timeout, the error is raised, so the invocation fails and FC's
asynchronous retry takes over with a fresh budget; permanent errors are raised at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from immflow.adapters import ServiceError
from immflow.logging import logger

T = TypeVar("T")

BASE_DELAY_SECONDS = 0.2
MAX_DELAY_SECONDS = 8.0


def with_retries(
    call: Callable[[], T],
    *,
    remaining_seconds: Callable[[], float],
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> T:
    attempt = 0
    while True:
        try:
            return call()
        except ServiceError as exc:
            if not exc.retryable:
                raise
            delay = jitter() * min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2**attempt)
            if exc.retry_after:
                delay = max(delay, exc.retry_after)
            left = remaining_seconds()
            if delay >= left:
                logger.warning(
                    "giving up retrying within this invocation",
                    extra={
                        "service": exc.service,
                        "action": exc.action,
                        "code": exc.code,
                        "attempts": attempt + 1,
                    },
                )
                raise
            attempt += 1
            logger.info(
                "retrying",
                extra={
                    "service": exc.service,
                    "action": exc.action,
                    "code": exc.code,
                    "attempt": attempt,
                    "delay_s": round(delay, 3),
                },
            )
            sleep(delay)
