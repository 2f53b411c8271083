"""Keeping the key secret and the admin token out of log lines.

Two layers: the places that log a URL which may carry the admin token (an MNS subscription's
endpoint, a request path with ``?token=``) log it through :func:`redact_url`; and the launcher's
log handlers get a :class:`SecretsFilter` that blanks the secret and the token wherever they
would still appear, tracebacks included, so a message nobody thought about cannot leak them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from localcloud.core.admin import TOKEN_QUERY

REDACTED = "***"
_TOKEN_PARAMETER = re.compile(rf"([?&]{TOKEN_QUERY}=)[^&#\s]*")


def redact_url(url: str) -> str:
    """``url`` with the value of its ``token`` query parameter blanked."""
    return _TOKEN_PARAMETER.sub(rf"\g<1>{REDACTED}", url)


class SecretsFilter(logging.Filter):
    """Replaces each of ``secrets`` in a record's message and traceback with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def _blank(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        blanked = self._blank(message)
        if blanked != message:
            record.msg, record.args = blanked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._blank(record.exc_text)
        if record.stack_info:
            record.stack_info = self._blank(record.stack_info)
        return True


def install(secrets: Iterable[str], logger: logging.Logger | None = None) -> SecretsFilter:
    """Add a :class:`SecretsFilter` to every handler of ``logger`` (the root logger by default)."""
    secrets_filter = SecretsFilter(secrets)
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(secrets_filter)
    return secrets_filter
