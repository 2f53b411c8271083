"""A local MNS started for a test, SDK clients of it, and an HTTP endpoint that records its pushes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mns.account

from localcloud.core.account import Account
from localcloud.core.faults import FaultPlan
from localcloud.core.http import ServiceServer
from localcloud.mns import MnsService


@dataclass
class LocalMns:
    service: MnsService
    server: ServiceServer
    account: Account

    def client(self, *, key_id: str | None = None, secret: str | None = None) -> mns.account.Account:
        return mns.account.Account(
            self.server.url,
            key_id or self.account.access_key_id,
            secret or self.account.access_key_secret,
        )

    def queue_endpoint(self, queue: str) -> str:
        return f"acs:mns:{self.account.region}:{self.account.account_id}:queues/{queue}"


def start_mns(
    state_dir: Path, *, clock: Callable[[], float] = time.time, faults: FaultPlan | None = None
) -> Iterator[LocalMns]:
    account = Account.new()
    service = MnsService(state_dir, account, time_scale=0.001, clock=clock, faults=faults)
    server = ServiceServer(service).start()
    yield LocalMns(service, server, account)
    server.stop()
    service.close()


@dataclass
class Push:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP endpoint that records pushes; answers ``statuses`` in turn, then 204. While
    ``answering`` is clear, each push waits (a slow endpoint, for as long as the test says)."""

    url: str = ""
    pushes: list[Push] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    answering: threading.Event = field(default_factory=threading.Event)
    attempts: int = 0
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Push]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.pushes) >= count, timeout), (
                f"expected {count} pushes, got {len(self.pushes)}"
            )
            return list(self.pushes)


def serve_receiver(receiver: Receiver) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.answering.wait()
            with receiver.arrived:
                receiver.attempts += 1
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                if status < 300:
                    receiver.pushes.append(
                        Push(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                receiver.arrived.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    receiver.answering.set()
    yield receiver
    receiver.answering.set()  # let a held push end, so that the server can stop
    server.shutdown()
    server.server_close()
