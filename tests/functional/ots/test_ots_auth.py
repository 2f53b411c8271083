"""Signatures: what the local Tablestore refuses, and the signed answers the SDK verifies.

The SDK checks every answer's MD5, date and ``Authorization`` signature before it decodes it, so
every test that gets a result through the SDK also proves the answers are signed right.
"""

from __future__ import annotations

import http.client
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
import tablestore.utils
from tablestore import OTSServiceError, Row
from tablestore.auth import RequestContext
from tablestore.protobuf import table_store_pb2 as pb

from tests.support.ots import create_table

if TYPE_CHECKING:
    from tests.support.ots import LocalOts


def _auth_error(client: Any) -> OTSServiceError:
    with pytest.raises(OTSServiceError) as caught:
        client.list_table()
    return caught.value


def _signed_request(ots: LocalOts, api: str, body_message: Any) -> tuple[dict[str, str], bytes]:
    """Headers and body exactly as the SDK makes them for ``api``."""
    client = ots.client()
    context = RequestContext(client.credentials_provider.get_credentials())
    _, headers, body = client.protocol.make_request(api, client._signer, context, *body_message)
    return headers, body


def _post(ots: LocalOts, api: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    address = urlsplit(ots.url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port)
    try:
        connection.request("POST", f"/{api}", body, headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def _error_of(body: bytes) -> tuple[str, str]:
    error = pb.Error()
    error.ParseFromString(body)
    return error.code, error.message


def test_a_wrong_secret_is_refused(ots_server: LocalOts) -> None:
    error = _auth_error(ots_server.client(secret="not-the-secret", retry=False))

    assert (error.get_error_code(), error.get_http_status()) == ("OTSAuthFailed", 403)
    assert error.get_error_message().startswith("Signature mismatch.")


def test_an_unknown_key_id_is_refused(ots_server: LocalOts) -> None:
    error = _auth_error(ots_server.client(key_id="LTAIunknown", retry=False))

    assert (error.get_error_code(), error.get_http_status()) == ("OTSAuthFailed", 403)


def test_an_unknown_instance_is_refused_as_the_cloud_does(ots_server: LocalOts) -> None:
    error = _auth_error(ots_server.client(instance="elsewhere", retry=False))

    assert (error.get_error_code(), error.get_http_status()) == ("OTSAuthFailed", 403)
    assert error.get_error_message().startswith("The instance is not found")


def test_v4_signatures_work_when_the_client_is_given_a_region(ots_server: LocalOts) -> None:
    client = ots_server.client(region="cn-hangzhou")
    create_table(client, "t", [("k", "STRING")])
    client.put_row("t", Row([("k", "a")], [("v", 1)]))

    assert client.get_row("t", [("k", "a")], max_version=1)[1].attribute_columns[0][:2] == ("v", 1)
    wrong = ots_server.client(region="cn-hangzhou", secret="not-the-secret", retry=False)
    assert _auth_error(wrong).get_error_code() == "OTSAuthFailed"


def test_a_stale_date_is_refused(ots_server: LocalOts, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=16)
    monkeypatch.setattr(tablestore.utils, "get_now_utc_datetime", lambda: stale)
    headers, body = _signed_request(ots_server, "ListTable", ())
    monkeypatch.undo()

    status, _, answer = _post(ots_server, "ListTable", headers, body)

    assert status == 403
    code, message = _error_of(answer)
    assert code == "OTSAuthFailed"
    assert message.startswith("Mismatch between system time and x-ots-date")


def test_a_body_that_does_not_match_its_md5_is_refused(ots_server: LocalOts) -> None:
    headers, body = _signed_request(ots_server, "DescribeTable", ("items",))

    status, _, answer = _post(ots_server, "DescribeTable", headers, body + b"\x00")

    assert (status, _error_of(answer)[0]) == (403, "OTSAuthFailed")
    assert "x-ots-contentmd5" in _error_of(answer)[1]


def test_missing_headers_are_refused(ots_server: LocalOts) -> None:
    headers, body = _signed_request(ots_server, "ListTable", ())

    status, _, answer = _post(ots_server, "ListTable", {"x-ots-date": headers["x-ots-date"]}, body)

    assert (status, _error_of(answer)[0]) == (400, "OTSParameterInvalid")


def test_a_request_signed_for_another_operation_is_refused(ots_server: LocalOts) -> None:
    headers, body = _signed_request(ots_server, "ListTable", ())

    status, _, answer = _post(ots_server, "DeleteTable", headers, body)

    assert (status, _error_of(answer)[0]) == (403, "OTSAuthFailed")


def test_an_unknown_operation_is_a_parameter_error(ots_server: LocalOts) -> None:
    client = ots_server.client()
    context = RequestContext(client.credentials_provider.get_credentials())
    headers = client.protocol._make_request_headers(b"", "/NoSuchApi", client._signer, context)

    status, answer_headers, answer = _post(ots_server, "NoSuchApi", headers, b"")

    assert (status, _error_of(answer)) == (
        400,
        ("OTSParameterInvalid", "Unsupported operation: 'NoSuchApi'."),
    )
    assert answer_headers["authorization"].startswith("OTS ")


def test_answers_carry_what_the_sdk_checks(ots_server: LocalOts) -> None:
    headers, body = _signed_request(ots_server, "ListTable", ())

    status, answer_headers, _ = _post(ots_server, "ListTable", headers, body)

    assert status == 200
    for name in ("x-ots-contentmd5", "x-ots-requestid", "x-ots-date", "x-ots-contenttype"):
        assert name in answer_headers
    assert answer_headers["authorization"].startswith(f"OTS {ots_server.account.access_key_id}:")
