"""The MNS request signature (docs/mns.md), checked against the local account's key.

``Authorization: MNS <id>:base64(HMAC-SHA1(secret, StringToSign))`` where StringToSign is
``METHOD\\ncontent-md5\\ncontent-type\\ndate\\n`` + every ``x-mns-*`` header sorted as
``name:value\\n`` + the request URI exactly as sent. A ``security-token`` header is accepted and
not checked: the local cloud has no STS, and FC passes the account's own keys with a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from email.utils import parsedate_to_datetime

from localcloud.core.account import Account
from localcloud.core.http import Request
from localcloud.mns.errors import MnsError

#: MNS rejects a request whose Date is further than this from the server's clock.
MAX_CLOCK_SKEW_SECONDS = 15 * 60


def string_to_sign(request: Request) -> str:
    headers = request.headers
    mns_headers = "".join(f"{k}:{headers[k]}\n" for k in sorted(headers) if k.startswith("x-mns-"))
    return (
        f"{request.method}\n{headers.get('content-md5', '')}\n{headers.get('content-type', '')}\n"
        f"{headers.get('date', '')}\n{mns_headers}{request.target}"
    )


def sign(secret: str, text: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()).decode()


def check(request: Request, account: Account) -> None:
    """Raise the MNS error the cloud would answer for a request that is not properly signed."""
    authorization = request.headers.get("authorization")
    if authorization is None:
        raise MnsError(
            400,
            "MissingAuthorizationHeader",
            "The request has no Authorization header; sign it with your key.",
        )
    scheme, _, credential = authorization.partition(" ")
    key_id, _, signature = credential.partition(":")
    if scheme != "MNS" or not key_id or not signature:
        raise MnsError(
            400,
            "InvalidAuthorizationHeader",
            f"The Authorization header must be 'MNS <AccessKeyId>:<Signature>', got {authorization!r}.",
        )
    if "date" not in request.headers:
        raise MnsError(400, "MissingDateHeader", "The request has no Date header.")
    if "x-mns-version" not in request.headers:
        raise MnsError(400, "MissingVersionHeader", "The request has no x-mns-version header (2015-06-06).")
    try:
        sent_at = parsedate_to_datetime(request.headers["date"]).timestamp()
    except (TypeError, ValueError):
        raise MnsError(
            400, "InvalidDateHeader", f"The Date header {request.headers['date']!r} is not an RFC 1123 date."
        ) from None
    if abs(time.time() - sent_at) > MAX_CLOCK_SKEW_SECONDS:
        raise MnsError(
            408,
            "TimeExpired",
            "The Date header is more than 15 minutes from the server's clock; fix the clock.",
        )
    if not hmac.compare_digest(key_id, account.access_key_id):
        raise MnsError(
            403,
            "InvalidAccessKeyId",
            f"The AccessKeyId {key_id!r} is not the local cloud's; use the key in endpoints.json.",
        )
    expected = sign(account.access_key_secret, string_to_sign(request))
    if not hmac.compare_digest(signature, expected):
        raise MnsError(
            403,
            "SignatureDoesNotMatch",
            "The request signature does not match; check the AccessKeySecret (endpoints.json).",
        )
    _check_content_md5(request)


def _check_content_md5(request: Request) -> None:
    sent = request.headers.get("content-md5")
    if sent is None:
        return
    md5 = hashlib.md5(request.body)
    # The SDK sends base64 of the *hex* digest; the documented form is base64 of the raw digest.
    accepted = {
        base64.b64encode(md5.hexdigest().encode()).decode(),
        base64.b64encode(md5.digest()).decode(),
    }
    if sent not in accepted:
        raise MnsError(400, "InvalidDegist", "The Content-MD5 header does not match the request body.")
