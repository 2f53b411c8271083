"""Stale, future and replayed signatures, replayed at the local IMM and MNS as an attacker would
(issue 10 point 3; docs/signatures.md).

The requests are made by the official SDKs with their clock or nonce pinned (the SDKs read both
from one function each), so what is refused is exactly what a real client would send.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import mns.mns_client
import pytest
import requests
from alibabacloud_imm20200930 import models
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils import Utils
from mns.mns_exception import MNSServerException
from mns.queue import QueueMeta

from localcloud.core.http import ServiceServer
from localcloud.core.nonces import SIGNATURE_WINDOW_SECONDS, NonceLedger
from localcloud.imm import ImmService
from localcloud.launcher import LocalCloud
from tests.support.clients import imm_client, mns_account


def _imm_error(call: Callable[[], object]) -> ClientException:
    with pytest.raises(ClientException) as info:
        call()
    return info.value


def _acs3_date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def pinned_nonce(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    nonce = f"replayed-{time.time_ns()}"
    monkeypatch.setattr(Utils, "get_nonce", staticmethod(lambda: nonce))
    yield nonce


# IMM: the time window ------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["acs3", "rpc-v1"])
def test_a_request_dated_2020_is_refused(local: LocalCloud, monkeypatch: pytest.MonkeyPatch, algorithm: str | None) -> None:  # fmt: skip
    monkeypatch.setattr(Utils, "get_timestamp", staticmethod(lambda: "2020-01-01T00:00:00Z"))
    client = imm_client(local, signature_algorithm=algorithm)
    error = _imm_error(lambda: client.list_projects(models.ListProjectsRequest()))
    assert (error.status_code, error.code) == (400, "InvalidTimeStamp.Expired")
    assert "2020-01-01T00:00:00Z" in error.message


def test_a_request_dated_20_minutes_ahead_is_refused_and_14_minutes_is_accepted(
    local: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    ahead = [timedelta(minutes=20)]
    monkeypatch.setattr(
        Utils, "get_timestamp", staticmethod(lambda: _acs3_date(datetime.now(timezone.utc) + ahead[0]))
    )
    client = imm_client(local)
    assert (
        _imm_error(lambda: client.list_projects(models.ListProjectsRequest())).code
        == "InvalidTimeStamp.Expired"
    )
    ahead[0] = timedelta(minutes=14)
    client.list_projects(models.ListProjectsRequest())


def test_a_malformed_date_is_refused(local: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Utils, "get_timestamp", staticmethod(lambda: "yesterday"))
    error = _imm_error(lambda: imm_client(local).list_projects(models.ListProjectsRequest()))
    assert error.code == "InvalidTimeStamp.Format"


# IMM: nonces ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["acs3", "rpc-v1"])
def test_a_replayed_nonce_is_refused(local: LocalCloud, pinned_nonce: str, algorithm: str | None) -> None:
    client = imm_client(local, signature_algorithm=algorithm)
    client.list_projects(models.ListProjectsRequest())
    for _ in range(2):
        error = _imm_error(lambda: client.list_projects(models.ListProjectsRequest()))
        assert (error.status_code, error.code) == (400, "SignatureNonceUsed")


def test_a_wrongly_signed_request_does_not_spend_the_nonce(local: LocalCloud, pinned_nonce: str) -> None:
    forged = imm_client(local, access_key_secret="not-the-secret")
    error = _imm_error(lambda: forged.list_projects(models.ListProjectsRequest()))
    assert error.code == "SignatureDoesNotMatch"
    imm_client(local).list_projects(models.ListProjectsRequest())  # the owner's request still goes through


def test_a_replay_stays_refused_after_a_restart(local: LocalCloud, tmp_path: Path, pinned_nonce: str) -> None:
    def serve() -> tuple[ServiceServer, ImmService]:
        service = ImmService(
            tmp_path / "state",
            local.account,
            oss_endpoint=local.endpoints["oss"],
            mns_endpoint=local.endpoints["mns"],
        )
        return ServiceServer(service).start(), service

    server, service = serve()
    imm_client(local, endpoint=f"127.0.0.1:{server.port}").list_projects(models.ListProjectsRequest())
    server.stop()
    service.close()
    server, service = serve()
    try:
        client = imm_client(local, endpoint=f"127.0.0.1:{server.port}")
        assert (
            _imm_error(lambda: client.list_projects(models.ListProjectsRequest())).code
            == "SignatureNonceUsed"
        )
    finally:
        server.stop()
        service.close()


def _hand_signed(local: LocalCloud, signed: list[str], nonce: str) -> requests.Response:
    """A ListProjects request signed by hand (ACS3-HMAC-SHA256, as the V3 signature docs describe)."""
    host = local.endpoints["imm"]
    headers = {
        "host": host,
        "x-acs-action": "ListProjects",
        "x-acs-version": "2020-09-30",
        "x-acs-date": _acs3_date(datetime.now(timezone.utc)),
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(),
    }
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            "".join(f"{h}:{headers[h]}\n" for h in signed),
            ";".join(signed),
            headers["x-acs-content-sha256"],
        ]
    )
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    signature = hmac.new(
        local.account.access_key_secret.encode(), to_sign.encode(), hashlib.sha256
    ).hexdigest()
    headers["Authorization"] = (
        f"ACS3-HMAC-SHA256 Credential={local.account.access_key_id},SignedHeaders={';'.join(signed)},"
        f"Signature={signature}"
    )
    return requests.post(f"http://{host}/", headers=headers, timeout=10)


def test_a_nonce_left_out_of_the_signature_is_refused(local: LocalCloud) -> None:
    """Else a captured request could be replayed with a fresh nonce of the attacker's choosing."""
    everything = sorted(["host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"])  # fmt: skip
    assert _hand_signed(local, everything, f"hand-{time.time_ns()}").status_code == 200
    without_nonce = [h for h in everything if h != "x-acs-signature-nonce"]
    answer = _hand_signed(local, without_nonce, f"hand-{time.time_ns()}")
    assert answer.status_code == 400
    assert (
        answer.json()["Code"] == "IncompleteSignature" and "x-acs-signature-nonce" in answer.json()["Message"]
    )


def test_nonces_are_forgotten_once_their_date_leaves_the_window(tmp_path: Path) -> None:
    now = [1_000_000.0]
    ledger = NonceLedger(tmp_path / "nonces.sqlite3", clock=lambda: now[0])
    assert ledger.use("a", signed_at=now[0]) and not ledger.use("a", signed_at=now[0])
    now[0] += SIGNATURE_WINDOW_SECONDS + 1
    assert ledger.use("b", signed_at=now[0])  # prunes "a", whose date can no longer pass the window
    ledger.close()
    with sqlite3.connect(tmp_path / "nonces.sqlite3") as db:
        assert [row[0] for row in db.execute("SELECT nonce FROM nonces")] == ["b"]


# MNS: the time window ------------------------------------------------------------------------------


@pytest.mark.parametrize("skew", [-20 * 60, 20 * 60], ids=["stale", "future"])
def test_mns_refuses_a_date_more_than_15_minutes_off(local: LocalCloud, monkeypatch: pytest.MonkeyPatch, skew: int) -> None:  # fmt: skip
    real_gmtime = time.gmtime
    # The MNS SDK dates each request with time.gmtime() (no argument); calls with an argument are
    # someone else's and keep the real clock.
    monkeypatch.setattr(
        mns.mns_client.time,
        "gmtime",
        lambda *args: real_gmtime(*args) if args else real_gmtime(time.time() + skew),
    )
    account = mns_account(local)
    queue = account.get_queue("stale-date")
    with pytest.raises(MNSServerException) as info:
        queue.create(QueueMeta())
    assert info.value.type == "TimeExpired"
    # The status is not kept by the SDK's exception: the same request, signed by the SDK, sent by hand.
    request = mns.mns_http.RequestInternal("PUT", "/queues/stale-date", data=b"")
    account.mns_client.build_header(mns.mns_request.RequestBase(), request)
    answer = requests.put(local.endpoints["mns"] + "/queues/stale-date", headers=request.header, timeout=10)
    assert answer.status_code == 408 and b"<Code>TimeExpired</Code>" in answer.content
    monkeypatch.undo()
    with pytest.raises(MNSServerException) as missing:
        queue.get_attributes()
    assert missing.value.type == "QueueNotExist"  # the stale requests created nothing
