"""A keep-alive connection survives the answers that have no body (304, HEAD, 204).

HTTP forbids a body on a 304 or 204 answer and on any answer to HEAD; a client does not read one,
so bytes sent anyway are read as the start of the next answer on the same connection. Each test
sends the next request on the one connection and checks its answer.
"""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import alibabacloud_oss_v2 as oss
import oss2
import pytest
import requests
from alibabacloud_oss_v2.transport.requests_client import RequestsHttpClient

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer
from tests.support.oss import v2_config

BODY = b"hello keep-alive"


@pytest.fixture
def auth(account: Account) -> oss2.AuthBase:
    return oss2.Auth(account.access_key_id, account.access_key_secret)


@pytest.fixture
def etag(bucket: oss2.Bucket) -> str:
    return str(bucket.put_object("k.txt", BODY).etag)


def test_http_client_reads_the_next_answer_after_304_204_and_head(bucket: oss2.Bucket, etag: str) -> None:
    get_url = urlsplit(bucket.sign_url("GET", "k.txt", 600))
    head_url = urlsplit(bucket.sign_url("HEAD", "k.txt", 600))
    delete_url = urlsplit(bucket.sign_url("DELETE", "missing.txt", 600))
    connection = http.client.HTTPConnection(get_url.netloc, timeout=5)
    try:
        get_target = f"{get_url.path}?{get_url.query}"
        connection.request("GET", get_target, headers={"If-None-Match": f'"{etag}"'})
        not_modified = connection.getresponse()
        assert not_modified.status == 304 and not_modified.read() == b""
        assert not_modified.getheader("Content-Length") is None

        connection.request("HEAD", f"{head_url.path}?{head_url.query}")
        head = connection.getresponse()
        assert head.status == 200 and head.read() == b""
        assert head.getheader("Content-Length") == str(len(BODY))

        connection.request("DELETE", f"{delete_url.path}?{delete_url.query}")
        deleted = connection.getresponse()
        assert deleted.status == 204 and deleted.read() == b""

        connection.request("HEAD", f"{head_url.path.replace('k.txt', 'nope.txt')}?{head_url.query}")
        missing = connection.getresponse()  # an error answer to HEAD has no body either
        assert missing.status in (403, 404) and missing.read() == b""

        connection.request("GET", get_target)
        answer = connection.getresponse()
        assert answer.status == 200 and answer.read() == BODY
    finally:
        connection.close()


def _one_connection_session() -> tuple[oss2.Session, requests.adapters.HTTPAdapter]:
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
    return oss2.Session(adapter=adapter), adapter


def _local_ports(adapter: requests.adapters.HTTPAdapter) -> set[int]:
    """The client-side ports of the adapter's idle connections: a new port is a new connection."""
    pools = adapter.poolmanager.pools
    ports = set()
    for key in pools.keys():  # noqa: SIM118 (urllib3's pool container cannot be iterated)
        idle = pools[key].pool
        for connection in list(idle.queue if idle is not None else []):
            if connection is not None and connection.sock is not None:
                ports.add(connection.sock.getsockname()[1])
    return ports


def test_oss2_reuses_its_connection_after_304_and_head(
    auth: oss2.AuthBase, oss_server: ServiceServer, bucket: oss2.Bucket, etag: str
) -> None:
    session, adapter = _one_connection_session()
    client = oss2.Bucket(auth, oss_server.url, bucket.bucket_name, session=session)
    assert client.get_object("k.txt").read() == BODY
    ports = _local_ports(adapter)
    with pytest.raises(oss2.exceptions.NotModified):
        client.get_object("k.txt", headers={"If-None-Match": f'"{etag}"'})
    assert client.get_object("k.txt").read() == BODY
    assert client.head_object("k.txt").content_length == len(BODY)
    assert client.get_object("k.txt").read() == BODY
    # A body left after the 304 would either be read as the next status line or make urllib3
    # see the idle connection as readable ("dropped") and open another one. No wait is needed
    # for it: the server writes it before it reads the next request on this connection.
    assert _local_ports(adapter) == ports


def test_oss_v2_reuses_its_connection_after_304_and_head(
    account: Account, oss_server: ServiceServer, bucket: oss2.Bucket, etag: str
) -> None:
    cfg = v2_config(account, oss_server.url)
    cfg.retry_max_attempts = 1
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
    session.mount("http://", adapter)
    cfg.http_client = RequestsHttpClient(session=session)
    client = oss.Client(cfg)
    name = bucket.bucket_name
    assert client.get_object(oss.GetObjectRequest(bucket=name, key="k.txt")).body.read() == BODY
    ports = _local_ports(adapter)
    with pytest.raises(oss.exceptions.OperationError) as raised:
        client.get_object(oss.GetObjectRequest(bucket=name, key="k.txt", if_none_match=f'"{etag}"'))
    assert "304" in str(raised.value)
    assert client.get_object(oss.GetObjectRequest(bucket=name, key="k.txt")).body.read() == BODY
    assert client.head_object(oss.HeadObjectRequest(bucket=name, key="k.txt")).content_length == len(BODY)
    assert client.get_object(oss.GetObjectRequest(bucket=name, key="k.txt")).body.read() == BODY
    assert _local_ports(adapter) == ports
