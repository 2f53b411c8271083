"""Request signatures, checked the way OSS checks them, for the four forms oss2 sends.

- v1 header: ``Authorization: OSS <id>:<b64 HMAC-SHA1>`` over
  ``VERB\\nContent-MD5\\nContent-Type\\nDate\\n`` + sorted ``x-oss-*:v\\n`` + ``/bucket/key[?subresources]``.
- v1 query (``bucket.sign_url`` with ``oss2.Auth``): ``OSSAccessKeyId``, ``Expires``, ``Signature``;
  the same string with ``Expires`` in the Date position.
- v4 header (``oss2.AuthV4`` with ``region=``): ``OSS4-HMAC-SHA256 Credential=<id>/<date>/<region>/oss/
  aliyun_v4_request, Signature=<hex>[, AdditionalHeaders=a;b]``.
- v4 query (``sign_url`` with ``oss2.AuthV4``): ``x-oss-signature-version``, ``x-oss-credential``,
  ``x-oss-date``, ``x-oss-expires``, ``x-oss-signature``.

The canonical strings follow ``oss2/auth.py`` (2.19.1) exactly; the v1 subresource whitelist is
imported from oss2 so it cannot drift from what the SDK signs.

Header values are signed as the text the client meant (:func:`wire.header_text`): oss2 signs the
UTF-8 string of a non-ASCII ``x-oss-meta-*`` value and sends its UTF-8 bytes. A v4 scope must
name the account's region, as the cloud requires the bucket's. A request dated more than 15
minutes from the server's clock is refused (``RequestTimeTooSkewed``). Differences from the
cloud: STS security tokens are not accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from calendar import timegm
from email.utils import parsedate_tz
from urllib.parse import quote

from oss2.auth import ProviderAuth

from localcloud.core.account import Account
from localcloud.core.http import Request
from localcloud.oss.errors import OssError
from localcloud.oss.wire import header_text

SUBRESOURCES = ProviderAuth._subresource_key_set

#: OSS refuses requests whose Date is further than this from its clock (RequestTimeTooSkewed).
MAX_SKEW_SECONDS = 15 * 60

_V4_ALGORITHM = "OSS4-HMAC-SHA256"
_V4_SIGNED_HEADERS = ("content-type", "content-md5")


def verify_request(
    request: Request, query: list[tuple[str, str]], bucket: str, key: str, account: Account
) -> None:
    """Raise :class:`OssError` unless the request is signed with the account's key pair."""
    params = dict(query)
    authorization = request.headers.get("authorization", "")
    if authorization.startswith("OSS "):
        _verify_v1_header(request, params, bucket, key, account, authorization)
    elif authorization.startswith(_V4_ALGORITHM):
        _verify_v4_header(request, params, bucket, key, account, authorization)
    elif authorization:
        raise OssError(
            400,
            "InvalidArgument",
            "Authorization header is invalid: expected 'OSS <AccessKeyId>:<Signature>' or "
            "'OSS4-HMAC-SHA256 Credential=...'.",
            ArgumentName="Authorization",
            ArgumentValue=authorization.split(" ")[0],
        )
    elif "OSSAccessKeyId" in params:
        _verify_v1_query(request, params, bucket, key, account)
    elif params.get("x-oss-signature-version") == _V4_ALGORITHM:
        _verify_v4_query(request, params, bucket, key, account)
    else:
        target = "bucket" if bucket else "service"
        message = (
            f"You have no right to access this {'object' if key else target} because of bucket acl."
            if bucket
            else "Anonymous access is forbidden for this operation."
        )
        raise OssError(403, "AccessDenied", message)


def _check_key_id(key_id: str, account: Account) -> None:
    if key_id != account.access_key_id:
        raise OssError(
            403,
            "InvalidAccessKeyId",
            "The OSS Access Key Id you provided does not exist in our records.",
            OSSAccessKeyId=key_id,
        )


def _check_skew(request_time: float, sent: str) -> None:
    if abs(time.time() - request_time) > MAX_SKEW_SECONDS:
        raise OssError(
            403,
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
            RequestTime=sent,
            ServerTime=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        )


def _check_expiry(expires_at: float) -> None:
    if time.time() > expires_at:
        raise OssError(
            403,
            "AccessDenied",
            "Request has expired.",
            Expires=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(expires_at)),
            ServerTime=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        )


def _mismatch(provided: str, string_to_sign: bytes, key_id: str, **extra: str) -> OssError:
    return OssError(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        StringToSign=string_to_sign.decode("utf-8", "replace"),
        SignatureProvided=provided,
        OSSAccessKeyId=key_id,
        **extra,
    )


# --- v1 ---------------------------------------------------------------------------------------


def _v1_string_to_sign(request: Request, params: dict[str, str], bucket: str, key: str, date: str) -> bytes:
    headers = request.headers
    oss_headers = sorted((k, v) for k, v in headers.items() if k.startswith("x-oss-"))
    canonical_headers = "".join(f"{k}:{header_text(v)}\n" for k, v in oss_headers)
    subresources = sorted((k, v) for k, v in params.items() if k in SUBRESOURCES)
    resource = f"/{bucket}/{key}" if bucket else "/"
    if subresources:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subresources)
    return "\n".join(
        [
            request.method,
            headers.get("content-md5", ""),
            headers.get("content-type", ""),
            date,
            canonical_headers + resource,
        ]
    ).encode("utf-8")


def _v1_signature(secret: str, string_to_sign: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), string_to_sign, hashlib.sha1).digest()).decode()


def _verify_v1_header(
    request: Request, params: dict[str, str], bucket: str, key: str, account: Account, authorization: str
) -> None:
    key_id, sep, provided = authorization[4:].strip().rpartition(":")
    if not sep:
        raise OssError(
            400, "InvalidArgument", "Authorization header is invalid: expected 'OSS id:signature'."
        )
    _check_key_id(key_id, account)
    date = request.headers.get("x-oss-date") or request.headers.get("date", "")
    parsed = parsedate_tz(date)
    if parsed is None:
        raise OssError(403, "AccessDenied", "The Date header is missing or is not an RFC 1123 date.")
    _check_skew(timegm(parsed[:9]) - (parsed[9] or 0), date)
    string_to_sign = _v1_string_to_sign(request, params, bucket, key, date)
    if not hmac.compare_digest(_v1_signature(account.access_key_secret, string_to_sign), provided):
        raise _mismatch(provided, string_to_sign, key_id)


def _verify_v1_query(
    request: Request, params: dict[str, str], bucket: str, key: str, account: Account
) -> None:
    key_id = params["OSSAccessKeyId"]
    _check_key_id(key_id, account)
    expires = params.get("Expires", "")
    if not expires.isdigit():
        raise OssError(403, "AccessDenied", "Expires must be an integer number of seconds since the epoch.")
    _check_expiry(int(expires))
    provided = params.get("Signature", "")
    string_to_sign = _v1_string_to_sign(request, params, bucket, key, expires)
    if not hmac.compare_digest(_v1_signature(account.access_key_secret, string_to_sign), provided):
        raise _mismatch(provided, string_to_sign, key_id)


# --- v4 ---------------------------------------------------------------------------------------


def _v4_encode(text: str, keep_slash: bool) -> str:
    return quote(text, safe="/~" if keep_slash else "~")


def _v4_signature(
    request: Request,
    params: dict[str, str],
    bucket: str,
    key: str,
    account: Account,
    credential: str,
    date_time: str,
    additional: list[str],
) -> tuple[str, bytes, bytes]:
    key_id, date, region, product, terminator = (credential.split("/") + [""] * 5)[:5]
    if terminator != "aliyun_v4_request" or date != date_time[:8]:
        raise OssError(
            400,
            "InvalidArgument",
            "Credential must be '<AccessKeyId>/<yyyymmdd of x-oss-date>/<region>/oss/aliyun_v4_request'.",
            ArgumentName="Credential",
            ArgumentValue=credential,
        )
    _check_key_id(key_id, account)
    if region != account.region:
        raise OssError(
            400,
            "InvalidArgument",
            f"Invalid signing region in Authorization header: the request is signed for {region!r}, "
            f"but this OSS serves {account.region!r}; sign with region={account.region!r}.",
            ArgumentName="Credential",
            ArgumentValue=credential,
        )
    uri = _v4_encode(f"/{bucket}/{key}" if bucket else "/", keep_slash=True)
    query = "&".join(
        f"{k}={v}" if v else k
        for k, v in sorted((_v4_encode(k, False), _v4_encode(v, False)) for k, v in params.items())
    )
    signed = sorted(
        (k, v)
        for k, v in request.headers.items()
        if k.startswith("x-oss-") or k in _V4_SIGNED_HEADERS or k in additional
    )
    canonical_request = "\n".join(
        [
            request.method,
            uri,
            query,
            "".join(f"{k}:{header_text(v)}\n" for k, v in signed),
            ";".join(sorted(additional)),
            request.headers.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD"),
        ]
    ).encode("utf-8")
    scope = f"{date}/{region}/{product}/aliyun_v4_request"
    string_to_sign = "\n".join(
        [_V4_ALGORITHM, date_time, scope, hashlib.sha256(canonical_request).hexdigest()]
    ).encode()
    signing_key = ("aliyun_v4" + account.access_key_secret).encode()
    for part in (date, region, product, "aliyun_v4_request"):
        signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(signing_key, string_to_sign, hashlib.sha256).hexdigest()
    return signature, string_to_sign, canonical_request


def _parse_v4_time(date_time: str) -> float:
    try:
        return float(timegm(time.strptime(date_time, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        raise OssError(
            403, "AccessDenied", "x-oss-date is missing or is not an ISO 8601 basic time (yyyymmddTHHMMSSZ)."
        ) from None


def _verify_v4_header(
    request: Request, params: dict[str, str], bucket: str, key: str, account: Account, authorization: str
) -> None:
    fields = {}
    for item in authorization[len(_V4_ALGORITHM) :].split(","):
        name, _, value = item.strip().partition("=")
        fields[name] = value
    credential = fields.get("Credential", "")
    provided = fields.get("Signature", "")
    additional = [h for h in fields.get("AdditionalHeaders", "").split(";") if h]
    date_time = request.headers.get("x-oss-date", "")
    _check_skew(_parse_v4_time(date_time), date_time)
    signature, string_to_sign, canonical = _v4_signature(
        request, params, bucket, key, account, credential, date_time, additional
    )
    if not hmac.compare_digest(signature, provided):
        raise _mismatch(
            provided,
            string_to_sign,
            credential.split("/")[0],
            CanonicalRequest=canonical.decode("utf-8", "replace"),
        )


def _verify_v4_query(
    request: Request, params: dict[str, str], bucket: str, key: str, account: Account
) -> None:
    date_time = params.get("x-oss-date", "")
    expires = params.get("x-oss-expires", "")
    if not expires.isdigit():
        raise OssError(403, "AccessDenied", "x-oss-expires must be a number of seconds.")
    _check_expiry(_parse_v4_time(date_time) + int(expires))
    provided = params.get("x-oss-signature", "")
    signed_params = {k: v for k, v in params.items() if k != "x-oss-signature"}
    additional = [h for h in params.get("x-oss-additional-headers", "").split(";") if h]
    signature, string_to_sign, canonical = _v4_signature(
        request,
        signed_params,
        bucket,
        key,
        account,
        params.get("x-oss-credential", ""),
        date_time,
        additional,
    )
    if not hmac.compare_digest(signature, provided):
        raise _mismatch(
            provided,
            string_to_sign,
            params.get("x-oss-credential", "").split("/")[0],
            CanonicalRequest=canonical.decode("utf-8", "replace"),
        )
