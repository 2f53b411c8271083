"""What immflow needs from a Function Compute invocation, read from either runtime's context.

FC's Python context differs by runtime (docs/fc.md#the-python-runtime): python3.10 has ``credentials``
(``access_key_id``, ``access_key_secret``, ``security_token``: the function role's STS keys) and
python3.12 does not, the same keys being in the ``ALIBABA_CLOUD_*`` environment variables instead.
Both have ``request_id`` and ``function`` (``name``, ``timeout``). `Invocation.from_context` reads the
fields both share and the credentials wherever they are.

Powertools' ``inject_lambda_context`` would need a Lambda-shaped adapter; immflow does not use it (it
appends its correlation ids itself, `immflow.logging`), so there is no such adapter here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from immflow.errors import ImmflowError

#: Seconds kept back from the function's timeout for the last ledger write and the log lines.
SAFETY_MARGIN_SECONDS = 3.0
_DEFAULT_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    access_key_secret: str
    security_token: str | None = None

    def __repr__(self) -> str:
        # Never print a secret into a log line or a test failure.
        return f"Credentials(access_key_id={self.access_key_id!r}, security_token={'set' if self.security_token else None})"


def credentials_from_env(environ: Mapping[str, str]) -> Credentials | None:
    key_id = environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
    secret = environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    if not key_id or not secret:
        return None
    return Credentials(key_id, secret, environ.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None)


def credentials_for(context: object | None, environ: Mapping[str, str] | None = None) -> Credentials:
    """The keys to call IMM and OSS with: the python3.10 context's, else the ``ALIBABA_CLOUD_*`` variables.

    The context's keys win because FC refreshes them per invocation, while the environment is fixed
    when the instance starts. Raises `ImmflowError` naming the variables when neither has keys.
    """
    found = _context_credentials(context)
    if found is None:
        found = credentials_from_env(os.environ if environ is None else environ)
    if found is None:
        raise ImmflowError(
            "no Alibaba Cloud credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET "
            "(and ALIBABA_CLOUD_SECURITY_TOKEN for STS keys), or give the function a RAM role"
        )
    return found


def _context_credentials(context: object | None) -> Credentials | None:
    creds = getattr(context, "credentials", None)
    key_id = getattr(creds, "access_key_id", None) or getattr(creds, "accessKeyId", None)
    secret = getattr(creds, "access_key_secret", None) or getattr(creds, "accessKeySecret", None)
    if not key_id or not secret:
        return None
    token = getattr(creds, "security_token", None) or getattr(creds, "securityToken", None)
    return Credentials(str(key_id), str(secret), str(token) if token else None)


class Invocation(NamedTuple):
    """One invocation: its request id and its time budget."""

    request_id: str
    function_name: str
    timeout_seconds: float
    started_at: float
    """`clock()` when the handler started."""
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def from_context(cls, context: object | None, clock: Callable[[], float] = time.monotonic) -> Invocation:
        function = getattr(context, "function", None)
        timeout = getattr(function, "timeout", None)
        return cls(
            request_id=str(getattr(context, "request_id", "") or ""),
            function_name=str(getattr(function, "name", "") or os.environ.get("FC_FUNCTION_NAME", "")),
            timeout_seconds=float(timeout) if timeout else _DEFAULT_TIMEOUT_SECONDS,
            started_at=clock(),
            clock=clock,
        )

    def remaining_seconds(self) -> float:
        """Seconds left before FC stops the function, minus `SAFETY_MARGIN_SECONDS`; never negative."""
        elapsed = self.clock() - self.started_at
        return max(0.0, self.timeout_seconds - elapsed - SAFETY_MARGIN_SECONDS)
