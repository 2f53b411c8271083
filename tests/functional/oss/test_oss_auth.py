"""Signatures as OSS checks them: bad keys, anonymous requests, presigned URLs (v1 and v4)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from types import SimpleNamespace

import oss2
import pytest
import requests

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer


@pytest.mark.parametrize("make_auth", [oss2.Auth, oss2.AuthV4])
def test_wrong_secret_is_signature_does_not_match(
    make_auth: type, oss_server: ServiceServer, account: Account, bucket: oss2.Bucket
) -> None:
    wrong = oss2.Bucket(
        make_auth(account.access_key_id, "not-the-secret"),
        oss_server.url,
        bucket.bucket_name,
        region=account.region,
    )
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch) as exc:
        wrong.put_object("k", b"x")
    assert exc.value.status == 403 and exc.value.details["StringToSign"]
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch):
        wrong.head_object("k")


@pytest.mark.parametrize("make_auth", [oss2.Auth, oss2.AuthV4])
def test_unknown_key_id(
    make_auth: type, oss_server: ServiceServer, account: Account, bucket: oss2.Bucket
) -> None:
    stranger = oss2.Bucket(
        make_auth("LTAIunknown", account.access_key_secret),
        oss_server.url,
        bucket.bucket_name,
        region=account.region,
    )
    with pytest.raises(oss2.exceptions.ServerError) as exc:
        stranger.get_bucket_info()
    assert (exc.value.status, exc.value.code) == (403, "InvalidAccessKeyId")


def test_anonymous_is_denied(oss_server: ServiceServer, account: Account, bucket: oss2.Bucket) -> None:
    bucket.put_object("k", b"x")
    anonymous = oss2.Bucket(oss2.AnonymousAuth(), oss_server.url, bucket.bucket_name, region=account.region)
    with pytest.raises(oss2.exceptions.AccessDenied):
        anonymous.get_object("k")
    with pytest.raises(oss2.exceptions.AccessDenied):
        oss2.Service(oss2.AnonymousAuth(), oss_server.url).list_buckets()


def test_tampered_request_fails(bucket: oss2.Bucket) -> None:
    bucket.put_object("k", b"x")
    url = bucket.sign_url("GET", "k", 60)
    assert requests.get(url.replace("/k?", "/other?")).status_code == 403


@pytest.mark.parametrize("key", ["plain.txt", "dir/with space+plus%.txt", "unicode/中文.txt"])
def test_presigned_put_then_get(bucket: oss2.Bucket, key: str) -> None:
    put_url = bucket.sign_url("PUT", key, 60, headers={"Content-Type": "text/plain"})
    response = requests.put(put_url, data=b"via presigned url", headers={"Content-Type": "text/plain"})
    assert response.status_code == 200, response.text
    assert response.headers["ETag"].startswith('"')
    get_url = bucket.sign_url("GET", key, 60)
    got = requests.get(get_url)
    assert got.status_code == 200 and got.content == b"via presigned url"
    assert got.headers["Content-Type"] == "text/plain"
    assert bucket.get_object(key).read() == b"via presigned url"


def test_presigned_url_with_unsigned_content_type_fails(bucket: oss2.Bucket) -> None:
    put_url = bucket.sign_url("PUT", "k", 60)
    response = requests.put(put_url, data=b"x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 403 and b"SignatureDoesNotMatch" in response.content


def test_expired_presigned_url(bucket: oss2.Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket.put_object("k", b"x")
    # Signed a minute ago for one second: the signer's clock (V1 reads time.time, V4 datetime.utcnow)
    # is moved back instead of the test waiting for the URL to expire.
    signed_at = time.time() - 60

    class SignedThen(datetime):
        @classmethod
        def utcnow(cls) -> datetime:  # type: ignore[override]  # oss2 V4 signs with a naive UTC time
            return datetime.fromtimestamp(signed_at, timezone.utc).replace(tzinfo=None)

    monkeypatch.setattr(oss2.auth, "time", SimpleNamespace(time=lambda: signed_at))
    monkeypatch.setattr(oss2.auth, "datetime", SignedThen)
    url = bucket.sign_url("GET", "k", 1)
    monkeypatch.undo()
    response = requests.get(url)
    assert response.status_code == 403
    assert b"<Code>AccessDenied</Code>" in response.content and b"Request has expired." in response.content
