"""Fixtures for the local OSS driven through oss2: a server on a free port, buckets, an event sink."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import oss2
import pytest

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer
from localcloud.oss import OssService


# One server per test module (stopping one takes half a second); tests use their own buckets.
@pytest.fixture(scope="module")
def account() -> Account:
    return Account.new()


@pytest.fixture(scope="module")
def oss_service(tmp_path_factory: pytest.TempPathFactory, account: Account) -> Iterator[OssService]:
    # Fast retries so that a test can watch a failed delivery being retried.
    service = OssService(tmp_path_factory.mktemp("state"), account, retry_base=0.05, retry_cap=0.2)
    yield service
    service.close()


@pytest.fixture(scope="module")
def oss_server(oss_service: OssService) -> Iterator[ServiceServer]:
    server = ServiceServer(oss_service).start()
    yield server
    server.stop()


@pytest.fixture(params=["v1", "v4"])
def auth(request: pytest.FixtureRequest, account: Account) -> oss2.AuthBase:
    if request.param == "v1":
        return oss2.Auth(account.access_key_id, account.access_key_secret)
    return oss2.AuthV4(account.access_key_id, account.access_key_secret)


@pytest.fixture
def bucket(auth: oss2.AuthBase, oss_server: ServiceServer, account: Account) -> oss2.Bucket:
    b = oss2.Bucket(auth, oss_server.url, f"bkt-{secrets.token_hex(4)}", region=account.region)
    b.create_bucket()
    return b


class EventSink:
    """A tiny HTTP endpoint that records POSTed event bodies and can fail the first N."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.fail_next = 0
        self.cond = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink.cond:
                    if sink.fail_next:
                        sink.fail_next -= 1
                        status = 503
                    else:
                        status = 204
                        sink.bodies.append(body)
                        sink.headers.append({k.lower(): v for k, v in self.headers.items()})
                        sink.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        with self.cond:
            return [json.loads(b) for b in self.bodies]

    def records(self) -> list[dict[str, Any]]:
        return [record for event in self.events() for record in event["events"]]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.bodies) >= count, timeout)
        return self.records()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[EventSink]:
    s = EventSink()
    yield s
    s.close()
