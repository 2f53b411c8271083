"""One adapter per cloud service, over the official SDK, behind a narrow interface.

Each adapter builds its SDK client once, lazily (the SDKs take 0.3 to 0.6 s to import, which a handler
that has nothing to do for an event should not pay), from the credentials it was given; a changed key
pair (FC's STS keys rotate) makes it build a new one. Every adapter also accepts a ready-made client.
SDK errors come out as `ServiceError`, which says whether the call may be retried.
"""

from __future__ import annotations

from immflow.errors import ImmflowError


class ServiceError(ImmflowError):
    """A cloud call failed. `retryable` is True for throttling, 5xx answers and network errors."""

    def __init__(
        self,
        service: str,
        action: str,
        code: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        self.service = service
        self.action = action
        self.code = code
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        status_text = f" (HTTP {status})" if status else ""
        super().__init__(f"{service} {action} failed{status_text}: {code}: {message}")


def local_endpoint(host: str) -> bool:
    """True for a loopback endpoint (the local cloud), which speaks plain HTTP."""
    name = host.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    return name in {"localhost", "127.0.0.1", "::1", "[::1]"} or name.startswith("127.")
