"""Signatures, error documents, and the account-level actions."""

from __future__ import annotations

import http.client
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import mns.account
import pytest
from mns.account import AccountMeta
from mns.mns_exception import MNSServerException
from mns.queue import QueueMeta

if TYPE_CHECKING:
    from tests.support.mns import LocalMns


NS = "{http://mns.aliyuncs.com/doc/v1/}"


def _error(call: Callable[..., object], *args: object) -> MNSServerException:
    with pytest.raises(MNSServerException) as info:
        call(*args)
    return info.value


def test_wrong_secret_and_unknown_key(local_mns: LocalMns) -> None:
    wrong_secret = local_mns.client(secret="not-the-secret").get_queue("q")
    error = _error(wrong_secret.create, QueueMeta())
    assert error.type == "SignatureDoesNotMatch" and error.req_id and error.host_id
    unknown_key = local_mns.client(key_id="LTAIunknown").get_queue("q")
    assert _error(unknown_key.create, QueueMeta()).type == "InvalidAccessKeyId"
    assert (
        _error(local_mns.client().get_queue("q").get_attributes).type == "QueueNotExist"
    )  # nothing was created


def _raw(local_mns: LocalMns, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    url = urlsplit(local_mns.server.url)
    connection = http.client.HTTPConnection(url.netloc, timeout=5)
    connection.request(method, path, body, headers)
    response = connection.getresponse()
    result = response.status, dict(response.getheaders()), response.read()
    connection.close()
    return result


def _signed_headers(local_mns: LocalMns, method: str, path: str, body: bytes) -> dict[str, str]:
    """Headers the SDK itself would send, made with its own signing code."""
    client = local_mns.client().mns_client
    request = mns.mns_http.RequestInternal(method, path, data=body)
    client.build_header(mns.mns_request.RequestBase(), request)
    headers: dict[str, str] = request.header
    return headers


def test_missing_authorization_header(local_mns: LocalMns) -> None:
    status, headers, body = _raw(local_mns, "GET", "/queues", {"x-mns-version": "2015-06-06"})
    assert status == 400 and "x-mns-request-id" in headers
    root = ET.fromstring(body)
    assert [child.tag.removeprefix(NS) for child in root] == ["Code", "Message", "RequestId", "HostId"]
    assert root.findtext(f"{NS}Code") == "MissingAuthorizationHeader"
    assert root.findtext(f"{NS}RequestId") == headers["x-mns-request-id"]


def test_malformed_xml_and_tampered_body(local_mns: LocalMns) -> None:
    body = b"<Queue><VisibilityTimeout>30</Visibility"
    headers = _signed_headers(local_mns, "PUT", "/queues/q", body)
    status, _, answer = _raw(local_mns, "PUT", "/queues/q", headers, body)
    assert status == 400 and ET.fromstring(answer).findtext(f"{NS}Code") == "MalformedXML"
    status, _, answer = _raw(local_mns, "PUT", "/queues/q", headers, body.replace(b"30", b"31"))
    assert status == 400 and ET.fromstring(answer).findtext(f"{NS}Code") == "InvalidDegist"


def test_account_attributes_and_unimplemented_actions(account: mns.account.Account) -> None:
    assert account.get_attributes().logging_bucket == ""
    account.set_attributes(AccountMeta("my-log-bucket"))
    assert account.get_attributes().logging_bucket == "my-log-bucket"
    error = _error(account.open_service)
    assert error.type == "NotImplemented" and "not implemented locally" in error.message
