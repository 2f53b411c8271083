"""The FC 2.0 request signature (docs/fc-api.md), checked against the local account's key.

``Authorization: FC <id>:base64(HMAC-SHA256(secret, StringToSign))`` where StringToSign is
``METHOD\\ncontent-md5\\ncontent-type\\ndate\\n`` + every ``x-fc-*`` header, lower-cased and
sorted, as ``name:value\\n`` + the *unescaped* path (``fc2/auth.py`` 2.5.2). Invocation paths
carry no query, so the ``proxy``-style query lines are not needed here.

The ``Date`` must be within 15 minutes of the local clock, as in the cloud (403
``RequestTimeTooSkewed``, see :func:`localcloud.fc.errors.request_time_too_skewed`).

Difference from the cloud: an ``x-fc-security-token`` is accepted and not checked (the local
cloud has no STS).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from localcloud.core import acs3
from localcloud.core.account import Account
from localcloud.core.http import Request
from localcloud.fc.errors import FcApiError, missing_header, request_time_too_skewed

SIGNATURE_NOT_MATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your access key and signing method"
)


def string_to_sign(request: Request) -> str:
    headers = request.headers
    fc_headers = "".join(f"{k}:{headers[k]}\n" for k in sorted(headers) if k.startswith("x-fc-"))
    return (
        f"{request.method.upper()}\n{headers.get('content-md5', '')}\n{headers.get('content-type', '')}\n"
        f"{headers.get('date', '')}\n{fc_headers}{request.path}"
    )


def sign(secret: str, text: str) -> str:
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def check(request: Request, account: Account) -> None:
    """Raise the FC error the cloud would answer for a request that is not properly signed."""
    authorization = request.headers.get("authorization")
    if not authorization:
        raise missing_header("Authorization")
    if "date" not in request.headers:
        raise missing_header("Date")
    scheme, _, credential = authorization.partition(" ")
    key_id, _, signature = credential.strip().rpartition(":")
    if scheme != "FC" or not key_id or not signature:
        raise FcApiError(
            403, "SignatureNotMatch", f"{SIGNATURE_NOT_MATCH} (Authorization is not 'FC <id>:<signature>')"
        )
    if key_id != account.access_key_id:
        raise FcApiError(
            403,
            "InvalidAccessKeyID",
            f"invalid access key ID '{key_id}' (the local cloud's key is in endpoints.json)",
        )
    expected = sign(account.access_key_secret, string_to_sign(request))
    if not hmac.compare_digest(expected, signature):
        raise FcApiError(403, "SignatureNotMatch", SIGNATURE_NOT_MATCH)
    problem = acs3.request_age_problem(request.headers["date"])
    if problem:
        raise request_time_too_skewed(problem)
