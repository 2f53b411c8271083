"""An HTTP endpoint that records the OSS events a local OSS posts to it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import alibabacloud_oss_v2 as oss

from localcloud.core.account import Account


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


def v2_config(account: Account, endpoint: str) -> oss.config.Config:
    """alibabacloud-oss-v2's configuration for the local OSS (path-style: the local OSS has no DNS
    for bucket host names)."""
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        account.access_key_id, account.access_key_secret
    )
    cfg.region = account.region
    cfg.endpoint = endpoint
    cfg.use_path_style = True
    return cfg
