"""Request signatures of the Alibaba Cloud RPC gateway, checked against the local account's key.

Two forms (imm-api.md §6.3, §6.4), as ``alibabacloud_tea_openapi`` computes them:

* ACS3-HMAC-SHA256 (the SDK's default; :mod:`localcloud.core.acs3`): ``Authorization: ACS3-HMAC-SHA256 Credential=<id>,
  SignedHeaders=<names>,Signature=<hex>`` over the canonical request (method, ``/``, the sorted
  query with RFC 3986 encoding of the decoded values, the signed headers, SHA-256 of the body).
  The signed ``host`` is the header as sent, i.e. the endpoint string the client was configured with.
* RPC v1 (``signature_algorithm='v2'``): ``Signature`` = Base64(HMAC-SHA1(secret + "&",
  ``POST&%2F&`` + encode(sorted query and form parameters without ``Signature``))).

A security token (``x-acs-security-token`` / ``SecurityToken``) is accepted and not checked: the
local cloud has no STS, and FC hands functions the account's own keys with a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote, quote_plus

from localcloud.core import acs3
from localcloud.core.account import Account
from localcloud.core.http import Request
from localcloud.imm.errors import ImmError


def _mismatch(detail: str) -> ImmError:
    return ImmError(
        400,
        "SignatureDoesNotMatch",
        f"Specified signature is not matched with our calculation ({detail}). Check the AccessKeySecret "
        "and that the client signs for the same endpoint it sends to.",
    )


def _unknown_key(key_id: str) -> ImmError:
    return ImmError(
        404,
        "InvalidAccessKeyId.NotFound",
        f"Specified access key is not found: {key_id!r}. Use the access key in the local cloud's endpoints.json.",
    )


def v1_signature(params: Mapping[str, str], secret: str, method: str = "POST") -> str:
    canonical = "&".join(
        f"{quote(key, safe='~')}={quote(params[key], safe='~')}"
        for key in sorted(params)
        if key != "Signature"
    )
    to_sign = f"{method}&%2F&{quote_plus(canonical, safe='~')}"
    digest = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def check(request: Request, query: Mapping[str, str], form: Mapping[str, str], account: Account) -> None:
    """Raise the gateway's error for a request that is not signed with the account's key."""
    authorization = request.headers.get("authorization", "")
    fields = acs3.parse_authorization(authorization)
    if fields is not None:
        if fields.key_id != account.access_key_id:
            raise _unknown_key(fields.key_id)
        if not acs3.signature_matches(request, query, fields, account.access_key_secret):
            raise _mismatch("ACS3-HMAC-SHA256")
        return
    if "Signature" in query:
        key_id = query.get("AccessKeyId", "")
        if key_id != account.access_key_id:
            raise _unknown_key(key_id)
        expected = v1_signature({**form, **query}, account.access_key_secret, request.method)
        if not hmac.compare_digest(expected, query["Signature"]):
            raise _mismatch("HMAC-SHA1")
        return
    raise ImmError(
        400,
        "MissingAuthorization",
        "The request is not signed: send an ACS3-HMAC-SHA256 Authorization header or the RPC Signature "
        "parameters (the official SDKs do both).",
    )
