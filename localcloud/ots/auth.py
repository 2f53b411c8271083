"""Tablestore request signatures, checked against the local account's key, and response signing.

A request is ``POST /<ApiName>`` whose ``x-ots-*`` headers are signed (docs/tablestore-local.md,
"Signatures"). The canonical string is ``uri + "\\nPOST\\n" + sorted query + "\\n"`` followed by
the sorted ``name:value`` lines of the ``x-ots-*`` headers (the signature headers themselves
left out) and a newline.

- V2 (the SDK's default): ``x-ots-signature`` = base64(HMAC-SHA1(secret, canonical)).
- V4 (when the SDK is given a ``region``): ``x-ots-signaturev4`` = base64(HMAC-SHA256(key,
  canonical + "ots")), where ``key`` = base64 of an HMAC-SHA256 chain from ``"aliyun_v4" +
  secret`` over ``x-ots-signdate`` (``YYYYMMDD``), ``x-ots-signregion``, ``"ots"`` and
  ``"aliyun_v4_request"``.

Every answer to a request whose key is the account's is signed back: ``Authorization: OTS
<id>:base64(HMAC-SHA1(key, sorted x-ots-* response header lines + "\\n" + uri))`` with the same
key as the request (the secret for V2, the derived key for V4). An ``x-ots-ststoken`` is
accepted unchecked: the local cloud has no STS, and FC hands functions the account's own keys
with a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlencode

from localcloud.core.account import Account
from localcloud.core.http import Request
from localcloud.ots.errors import OtsError, auth_failed, parameter_invalid

#: Tablestore refuses a request whose x-ots-date is further than this from its clock.
MAX_CLOCK_SKEW_SECONDS = 15 * 60
REQUIRED_HEADERS = (
    "x-ots-date",
    "x-ots-apiversion",
    "x-ots-accesskeyid",
    "x-ots-instancename",
    "x-ots-contentmd5",
)
SIGNATURE_HEADERS = ("x-ots-signature", "x-ots-signaturev4")
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def headers_string(headers: dict[str, str]) -> str:
    lines = [
        f"{name.lower()}:{value.strip()}"
        for name, value in headers.items()
        if name.lower().startswith("x-ots-") and name.lower() not in SIGNATURE_HEADERS
    ]
    return "\n".join(sorted(lines))


def canonical_request(uri: str, raw_query: str, headers: dict[str, str]) -> str:
    query = urlencode(sorted(parse_qsl(raw_query)))
    return f"{uri}\nPOST\n{query}\n{headers_string(headers)}\n"


def _hmac(key: bytes, text: str, digest: str) -> bytes:
    return hmac.new(key, text.encode(), digest).digest()


def v4_signing_key(secret: str, sign_date: str, region: str) -> bytes:
    key = _hmac(("aliyun_v4" + secret).encode(), sign_date, "sha256")
    key = _hmac(key, region, "sha256")
    key = _hmac(key, "ots", "sha256")
    key = _hmac(key, "aliyun_v4_request", "sha256")
    return base64.b64encode(key)


def response_signature(key: bytes, headers: dict[str, str], uri: str) -> str:
    return base64.b64encode(_hmac(key, headers_string(headers) + "\n" + uri, "sha1")).decode()


def check(request: Request, account: Account) -> bytes:
    """Raise the error the cloud answers for a request that is not properly signed.

    Returns the key the response is signed with.
    """
    if request.method != "POST":
        raise OtsError(405, "OTSMethodNotAllowed", "Only POST method for requests is supported.")
    for name in REQUIRED_HEADERS:
        if name not in request.headers:
            raise parameter_invalid(f"Missing header: '{name}'. Sign requests with the tablestore SDK.")
    headers = request.headers
    sent_date = headers["x-ots-date"]
    try:
        sent_at = datetime.strptime(sent_date, DATE_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise parameter_invalid(f"Invalid date format: {sent_date}. Use YYYY-MM-DDTHH:MM:SS.000Z.") from None
    if abs(datetime.now(timezone.utc).timestamp() - sent_at.timestamp()) > MAX_CLOCK_SKEW_SECONDS:
        raise auth_failed(
            f"Mismatch between system time and x-ots-date: {sent_date}. The request is more than "
            "15 minutes from the server's clock; fix the client's clock."
        )
    if not hmac.compare_digest(headers["x-ots-accesskeyid"], account.access_key_id):
        raise auth_failed(
            f"The AccessKeyID does not exist: {headers['x-ots-accesskeyid']!r}. Use the key pair "
            "in the local cloud's endpoints.json."
        )
    canonical = canonical_request(request.raw_path, request.raw_query, headers)
    if "x-ots-signaturev4" in headers:
        sign_date = headers.get("x-ots-signdate", "")
        region = headers.get("x-ots-signregion", "")
        if not sign_date or not region:
            raise parameter_invalid("A V4 signature needs the x-ots-signdate and x-ots-signregion headers.")
        key = v4_signing_key(account.access_key_secret, sign_date, region)
        expected = base64.b64encode(_hmac(key, canonical + "ots", "sha256")).decode()
        sent = headers["x-ots-signaturev4"]
    elif "x-ots-signature" in headers:
        key = account.access_key_secret.encode()
        expected = base64.b64encode(_hmac(key, canonical, "sha1")).decode()
        sent = headers["x-ots-signature"]
    else:
        raise parameter_invalid("Missing header: 'x-ots-signature'. Sign requests with the tablestore SDK.")
    if not hmac.compare_digest(sent, expected):
        raise auth_failed("Signature mismatch. Check the AccessKeySecret (the local cloud's endpoints.json).")
    md5 = base64.b64encode(hashlib.md5(request.body).digest()).decode()
    if headers["x-ots-contentmd5"] != md5:
        raise auth_failed("Mismatch between MD5 value of request body and x-ots-contentmd5 in header.")
    return key
