"""The error types a user of immflow can meet. Each message says what was wrong, where, and how to fix it."""

from __future__ import annotations


class ImmflowError(Exception):
    """Base class of every error immflow raises on purpose."""


class PayloadError(ImmflowError, ValueError):
    """A payload from the cloud (an event, a message, a notification) is not in the documented shape.

    ``kind`` names the payload ("OSS trigger event", "IMM notification", ...) and ``field`` the
    dotted path of the bad field ("events.0.oss.object.key"), or "" when the whole payload is bad.
    """

    def __init__(self, kind: str, field: str, problem: str) -> None:
        self.kind = kind
        self.field = field
        self.problem = problem
        where = f" at {field}" if field else ""
        super().__init__(f"malformed {kind}{where}: {problem}")
