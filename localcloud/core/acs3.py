"""The ACS3-HMAC-SHA256 request signature, as ``alibabacloud_tea_openapi`` computes it.

Shared by every local service whose SDK signs with the Tea/darabonba stack (IMM's RPC actions,
FC 3.0's ROA actions; see ``docs/fc-api.md``): ``Authorization: ACS3-HMAC-SHA256
Credential=<id>,SignedHeaders=<names>,Signature=<hex>`` over the canonical request (method, the
path as sent, the sorted query with RFC 3986 encoding of the decoded values, the signed headers,
SHA-256 of the body). The signed ``host`` is the header as sent, i.e. the endpoint string the
client was configured with.

Also here: the 15-minute window around ``x-acs-date`` (:func:`request_age_problem`), which the
cloud enforces with single-use ``x-acs-signature-nonce`` values (kept on disk by
:class:`localcloud.core.nonces.NonceLedger`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote

from localcloud.core.http import Request

ALGORITHM = "ACS3-HMAC-SHA256"
#: How far a request's date may be from the server's clock, either way (the cloud's 15 minutes).
MAX_SKEW_SECONDS = 15 * 60


@dataclass(frozen=True)
class Authorization:
    key_id: str
    signed_headers: list[str]
    signature: str


def parse_authorization(header: str) -> Authorization | None:
    """The fields of an ACS3 ``Authorization`` header, or None when it is another scheme."""
    if not header.startswith(ALGORITHM + " "):
        return None
    fields = dict(
        part.strip().partition("=")[::2] for part in header[len(ALGORITHM) + 1 :].split(",") if part.strip()
    )
    return Authorization(
        key_id=fields.get("Credential", ""),
        signed_headers=[name for name in fields.get("SignedHeaders", "").split(";") if name],
        signature=fields.get("Signature", ""),
    )


def signature(request: Request, query: Mapping[str, str], signed_headers: list[str], secret: str) -> str:
    canonical_query = "&".join(f"{key}={quote(query[key], safe='~')}" for key in sorted(query))
    canonical_headers = "".join(
        f"{name}:{request.headers.get(name, '').strip()}\n" for name in signed_headers
    )
    canonical_request = "\n".join(
        [
            request.method,
            request.raw_path or "/",
            canonical_query,
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(request.body).hexdigest(),
        ]
    )
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def signature_matches(
    request: Request, query: Mapping[str, str], authorization: Authorization, secret: str
) -> bool:
    expected = signature(request, query, authorization.signed_headers, secret)
    return hmac.compare_digest(expected, authorization.signature)


def parse_request_time(text: str) -> float | None:
    """Epoch seconds of an ISO 8601 UTC time (``x-acs-date``) or an HTTP date (``Date``)."""
    text = text.strip()
    try:
        if text.endswith("Z") and "T" in text:
            return datetime.fromisoformat(text[:-1] + "+00:00").timestamp()
        return parsedate_to_datetime(text).timestamp()
    except (ValueError, TypeError, IndexError):
        return None


def request_age_problem(text: str, now: float | None = None) -> str | None:
    """Why a request dated ``text`` is refused (unreadable, or more than 15 minutes off), or None."""
    when = parse_request_time(text)
    if when is None:
        return f"the request time {text!r} is not a valid date"
    now = time.time() if now is None else now
    if abs(now - when) > MAX_SKEW_SECONDS:
        server = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now))
        return (
            f"the difference between the request time {text!r} and the current time {server!r} is too "
            f"large (more than {MAX_SKEW_SECONDS // 60} minutes): sync the clock of the machine that signs"
        )
    return None
