"""Signatures as the cloud checks them (non-ASCII metadata, the 15-minute window, the V4 region),
names checked before anything is stored, and endpoints a client can reach."""

from __future__ import annotations

import datetime
import os
import time
from email.utils import formatdate

import alibabacloud_oss_v2 as oss
import oss2
import pytest
import requests

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer
from localcloud.oss import OssService
from tests.support.oss import v2_config


def test_non_ascii_user_metadata_is_signed_as_sent(bucket: oss2.Bucket) -> None:
    # oss2 sends (and signs) the UTF-8 bytes of a value given as bytes.
    bucket.put_object("m.txt", b"x", headers={"x-oss-meta-name": "café 東京".encode()})
    echoed = bucket.head_object("m.txt").headers["x-oss-meta-name"]
    # requests reads header bytes as ISO-8859-1, against the cloud too: the bytes came back unchanged.
    assert echoed.encode("latin-1").decode("utf-8") == "café 東京"


def test_latin1_user_metadata_through_oss_v2(
    account: Account, oss_server: ServiceServer, bucket: oss2.Bucket
) -> None:
    cfg = v2_config(account, oss_server.url)
    client = oss.Client(cfg)
    client.put_object(
        oss.PutObjectRequest(bucket=bucket.bucket_name, key="v2.txt", body=b"x", metadata={"name": "café"})
    )
    head = client.head_object(oss.HeadObjectRequest(bucket=bucket.bucket_name, key="v2.txt"))
    assert head.metadata == {"name": "café"}


def test_a_request_dated_more_than_15_minutes_away_is_refused(
    bucket: oss2.Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    if isinstance(bucket.auth, oss2.AuthV4):

        class Skewed(datetime.datetime):
            @classmethod
            def utcnow(cls) -> Skewed:
                return cls.fromtimestamp(time.time() - 16 * 60, datetime.timezone.utc).replace(tzinfo=None)

        monkeypatch.setattr(oss2.auth, "datetime", Skewed)
    else:
        monkeypatch.setattr(
            oss2.utils, "http_date", lambda *_: formatdate(time.time() + 16 * 60, usegmt=True)
        )
    with pytest.raises(oss2.exceptions.ServerError) as refused:
        bucket.put_object("late.txt", b"x")
    assert (refused.value.status, refused.value.code) == (403, "RequestTimeTooSkewed")
    monkeypatch.undo()
    bucket.put_object("late.txt", b"x")  # 14 minutes would pass; now does


def test_a_v4_signature_for_another_region_is_refused(
    account: Account, oss_server: ServiceServer, bucket: oss2.Bucket
) -> None:
    auth = oss2.AuthV4(account.access_key_id, account.access_key_secret)
    elsewhere = oss2.Bucket(auth, oss_server.url, bucket.bucket_name, region="cn-beijing")
    with pytest.raises(oss2.exceptions.InvalidArgument) as refused:
        elsewhere.put_object("k", b"x")
    assert "cn-beijing" in refused.value.message and account.region in refused.value.message
    assert not bucket.object_exists("k")
    url = elsewhere.sign_url("GET", "k", 60)
    presigned = requests.get(url, timeout=5)
    assert presigned.status_code == 400 and b"Invalid signing region" in presigned.content


@pytest.mark.parametrize(
    "key",
    # A bare ".." is not here: HTTP clients resolve "/bucket/.." to "/" before sending it (oss2
    # percent-encodes "/" in keys, so the others reach the server as sent).
    ["../x", "a/../../../../etc/passwd", "./.", "..\\..\\windows", "C:\\x", "~/.ssh/id", "a//b"],
)
def test_keys_with_dot_segments_are_names_not_paths(
    bucket: oss2.Bucket, oss_service: OssService, key: str
) -> None:
    state = oss_service.store.root.parent
    before = set(state.parent.iterdir())
    body = os.urandom(64)
    bucket.put_object(key, body)
    assert bucket.get_object(key).read() == body
    assert key in [o.key for o in bucket.list_objects_v2(prefix=key[:1]).object_list]
    # Nothing was made beside the state folder, and inside it only id-named data files.
    assert set(state.parent.iterdir()) == before
    data = oss_service.store.data_dir
    for path in data.rglob("*"):
        assert path.relative_to(data).parts[0] != ".." and (path.is_dir() or path.name.isalnum())
    bucket.delete_object(key)


@pytest.mark.parametrize(
    "key, why",
    [
        ("/etc/passwd", "start with '/'"),
        ("\\windows", "start with '/' or '\\'"),
        ("nul\x00byte", "NUL"),
        ("k" * 1024, "Length of Object name"),
        ("é" * 512, "Length of Object name"),
    ],
)
def test_invalid_keys_are_refused_before_anything_is_stored(
    bucket: oss2.Bucket, oss_service: OssService, key: str, why: str
) -> None:
    files = sorted(oss_service.store.data_dir.rglob("*"))
    unchecked = oss2.Bucket(
        bucket.auth, bucket.endpoint, bucket.bucket_name, region=bucket.region, is_verify_object_strict=False
    )
    with pytest.raises(oss2.exceptions.InvalidObjectName) as refused:
        unchecked.put_object(key, b"x")
    assert why in refused.value.message
    assert sorted(oss_service.store.data_dir.rglob("*")) == files


@pytest.mark.parametrize(
    "name", ["..", "a..b/..", "UPPER", "ab", "a" * 64, "-dash", "under_score", "_localcloud"]
)
def test_invalid_bucket_names_are_refused(account: Account, oss_server: ServiceServer, name: str) -> None:
    auth = oss2.Auth(account.access_key_id, account.access_key_secret)
    with pytest.raises((oss2.exceptions.ServerError, oss2.exceptions.ClientError)) as refused:
        oss2.Bucket(auth, oss_server.url, name).create_bucket()
    if isinstance(refused.value, oss2.exceptions.ServerError):
        assert refused.value.code in ("InvalidBucketName", "MissingAdminToken")
    assert name not in [b.name for b in oss2.Service(auth, oss_server.url).list_buckets().buckets]


def test_list_buckets_names_the_endpoint_the_client_used(
    auth: oss2.AuthBase, oss_server: ServiceServer, bucket: oss2.Bucket
) -> None:
    host = f"127.0.0.1:{oss_server.port}"
    listed = oss2.Service(auth, oss_server.url, region=bucket.region).list_buckets()
    mine = next(b for b in listed.buckets if b.name == bucket.bucket_name)
    assert (mine.extranet_endpoint, mine.intranet_endpoint) == (host, host)
    info = bucket.get_bucket_info()
    assert (info.extranet_endpoint, info.intranet_endpoint) == (host, host)
    # A client that follows the endpoint it was given reaches this server.
    followed = oss2.Bucket(auth, "http://" + mine.extranet_endpoint, bucket.bucket_name, region=bucket.region)
    followed.put_object("followed.txt", b"here")
    assert bucket.get_object("followed.txt").read() == b"here"
