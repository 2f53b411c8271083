"""Request signatures of the Alibaba Cloud RPC gateway, checked against the local account's key.

Two forms (docs/imm.md#wire-protocol), as ``alibabacloud_tea_openapi`` computes them:

* ACS3-HMAC-SHA256 (the SDK's default; :mod:`localcloud.core.acs3`): ``Authorization: ACS3-HMAC-SHA256 Credential=<id>,
  SignedHeaders=<names>,Signature=<hex>`` over the canonical request (method, ``/``, the sorted
  query with RFC 3986 encoding of the decoded values, the signed headers, SHA-256 of the body).
  The signed ``host`` is the header as sent, i.e. the endpoint string the client was configured with.
* RPC v1 (``signature_algorithm='v2'``): ``Signature`` = Base64(HMAC-SHA1(secret + "&",
  ``POST&%2F&`` + encode(sorted query and form parameters without ``Signature``))).

A security token (``x-acs-security-token`` / ``SecurityToken``) is accepted and not checked: the
local cloud has no STS, and FC hands functions the account's own keys with a token.

As the gateway does (docs/signatures.md): a request dated more than 15 minutes from the server's
clock either way (``x-acs-date`` / ``Timestamp``) is refused ``InvalidTimeStamp.Expired``, and a
nonce (``x-acs-signature-nonce`` / ``SignatureNonce``) is good for one request
(``SignatureNonceUsed``; :class:`~localcloud.core.nonces.NonceLedger`). An ACS3 signature must
cover ``host``, ``x-acs-date``, ``x-acs-signature-nonce`` and every other ``x-acs-*`` header sent,
else a replay could change them (``IncompleteSignature``). A nonce is spent only by a request whose
signature is good, so nobody without the key can spend the SDK's nonces.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from urllib.parse import quote, quote_plus

from localcloud.core import acs3
from localcloud.core.account import Account
from localcloud.core.http import Request
from localcloud.core.nonces import SIGNATURE_WINDOW_SECONDS, NonceLedger
from localcloud.imm.errors import ImmError

#: Headers an ACS3 signature must cover besides every ``x-acs-*`` header sent.
ACS3_REQUIRED_SIGNED = ("host", "x-acs-date", "x-acs-signature-nonce")


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


class SignatureChecker:
    """Checks each request's signature, date and nonce against the account's key."""

    def __init__(self, account: Account, nonces: NonceLedger, clock: Callable[[], float] = time.time) -> None:
        self._account = account
        self._nonces = nonces
        self._clock = clock

    def check(self, request: Request, query: Mapping[str, str], form: Mapping[str, str]) -> None:
        """Raise the gateway's error for a request that is not signed with the account's key, is
        out of the time window, or replays a nonce."""
        fields = acs3.parse_authorization(request.headers.get("authorization", ""))
        if fields is not None:
            self._check_acs3(request, query, fields)
        elif "Signature" in query:
            self._check_v1(request, query, form)
        else:
            raise ImmError(
                400,
                "MissingAuthorization",
                "The request is not signed: send an ACS3-HMAC-SHA256 Authorization header or the RPC "
                "Signature parameters (the official SDKs do both).",
            )

    def _check_acs3(self, request: Request, query: Mapping[str, str], fields: acs3.Authorization) -> None:
        if fields.key_id != self._account.access_key_id:
            raise _unknown_key(fields.key_id)
        signed_at = self._signed_at(request.headers.get("x-acs-date"), "x-acs-date")
        nonce = _required(request.headers.get("x-acs-signature-nonce"), "x-acs-signature-nonce")
        unsigned = [
            name
            for name in sorted(
                {*ACS3_REQUIRED_SIGNED, *(h for h in request.headers if h.startswith("x-acs-"))}
            )
            if name not in fields.signed_headers
        ]
        if unsigned:
            raise ImmError(
                400,
                "IncompleteSignature",
                f"The request signature does not conform to Aliyun standards: SignedHeaders must include "
                f"{', '.join(unsigned)}.",
            )
        if not acs3.signature_matches(request, query, fields, self._account.access_key_secret):
            raise _mismatch("ACS3-HMAC-SHA256")
        self._spend(nonce, signed_at)

    def _check_v1(self, request: Request, query: Mapping[str, str], form: Mapping[str, str]) -> None:
        key_id = query.get("AccessKeyId", "")
        if key_id != self._account.access_key_id:
            raise _unknown_key(key_id)
        params = {**form, **query}
        signed_at = self._signed_at(params.get("Timestamp"), "Timestamp")
        nonce = _required(params.get("SignatureNonce"), "SignatureNonce")
        expected = v1_signature(params, self._account.access_key_secret, request.method)
        if not hmac.compare_digest(expected, query["Signature"]):
            raise _mismatch("HMAC-SHA1")
        self._spend(nonce, signed_at)

    def _signed_at(self, value: str | None, name: str) -> float:
        text = _required(value, name)
        moment = _utc(text)
        if moment is None:
            raise ImmError(
                400,
                "InvalidTimeStamp.Format",
                f"Specified time stamp or date value is not well formatted: {name} {text!r} must be UTC like "
                "2018-01-01T12:00:00Z.",
            )
        signed_at = moment.timestamp()
        skew = signed_at - self._clock()
        if abs(skew) > SIGNATURE_WINDOW_SECONDS:
            raise ImmError(
                400,
                "InvalidTimeStamp.Expired",
                f"Specified time stamp or date value is expired: {name} {text} is {abs(skew) / 60:.0f} minutes "
                f"{'behind' if skew < 0 else 'ahead of'} the server's clock (at most 15 are accepted); fix the "
                "client's clock.",
            )
        return signed_at

    def _spend(self, nonce: str, signed_at: float) -> None:
        if not self._nonces.use(nonce, signed_at):
            raise ImmError(
                400,
                "SignatureNonceUsed",
                "Specified signature nonce was used already: every request needs a new nonce (the official "
                "SDKs make one per request, retries included).",
            )


def _utc(text: str) -> datetime | None:
    """``2018-01-01T12:00:00Z`` (what the SDKs send), also with milliseconds."""
    for layout in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def _required(value: str | None, name: str) -> str:
    if not value:
        raise ImmError(
            400,
            "MissingParameter",
            f"The input parameter {name} that is mandatory for signing is not supplied.",
        )
    return value
