"""The request-time window and nonce memory shared by the services that check ACS3 signatures."""

from __future__ import annotations

from localcloud.core import acs3
from localcloud.core.http import Request

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def test_both_date_forms_are_read() -> None:
    assert acs3.parse_request_time("2027-01-15T08:00:00Z") == NOW
    assert acs3.parse_request_time("Fri, 15 Jan 2027 08:00:00 GMT") == NOW
    assert acs3.parse_request_time("yesterday") is None


def test_the_window_is_fifteen_minutes_either_way() -> None:
    assert acs3.request_age_problem("2027-01-15T07:45:01Z", NOW) is None
    assert acs3.request_age_problem("2027-01-15T08:14:59Z", NOW) is None
    late = acs3.request_age_problem("2027-01-15T07:44:59Z", NOW)
    assert late is not None and "too large" in late
    assert acs3.request_age_problem("2027-01-15T08:15:01Z", NOW) is not None
    unreadable = acs3.request_age_problem("soon", NOW)
    assert unreadable is not None and "not a valid date" in unreadable


def test_authorization_fields_and_signature() -> None:
    parsed = acs3.parse_authorization(
        "ACS3-HMAC-SHA256 Credential=id,SignedHeaders=host;x-acs-date,Signature=ab"
    )
    assert parsed == acs3.Authorization("id", ["host", "x-acs-date"], "ab")
    assert acs3.parse_authorization("FC id:sig") is None
    request = Request("GET", "/2023-03-30/functions", "", {"host": "h", "x-acs-date": "d"}, b"")
    signed = acs3.signature(request, {"limit": "2"}, ["host", "x-acs-date"], "secret")
    good = acs3.Authorization("id", ["host", "x-acs-date"], signed)
    assert acs3.signature_matches(request, {"limit": "2"}, good, "secret")
    assert not acs3.signature_matches(request, {"limit": "3"}, good, "secret")
