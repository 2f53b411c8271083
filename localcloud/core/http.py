"""A small threaded HTTP/1.1 server that every local service runs on.

Each service implements :class:`Service` (one ``handle`` method from :class:`Request` to
:class:`Response`); this module deals with sockets, keep-alive, chunked request bodies and
logging. ``TCP_NODELAY`` is set on every connection: without it the SDKs' keep-alive
connections stall about 40 ms per request on Nagle plus delayed ACK.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import unquote

log = logging.getLogger("localcloud.http")


class _TokenBlanked(logging.Filter):
    """Request paths are logged with the admin token blanked: the MNS push route carries it as
    ``?token=`` (localcloud/core/admin.py)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Imported here: localcloud.core.admin, which redact imports, imports this module.
        from localcloud.core.redact import redact_url

        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(a) if isinstance(a, str) else a for a in record.args)
        return True


log.addFilter(_TokenBlanked())


@dataclass
class Request:
    method: str
    #: The path exactly as sent (still percent-encoded); ``path`` is the decoded form.
    raw_path: str
    #: The query string exactly as sent, without the ``?``.
    raw_query: str
    #: Header names in lower case.
    headers: dict[str, str]
    body: bytes
    client: str = ""

    @property
    def path(self) -> str:
        return unquote(self.raw_path)

    @property
    def target(self) -> str:
        """The request target as sent (path plus ``?query``), as some signatures need it."""
        return self.raw_path + ("?" + self.raw_query if self.raw_query else "")

    def query_items(self, *, plus_is_space: bool = True) -> list[tuple[str, str]]:
        """Decoded ``(name, value)`` pairs in order; a name without ``=`` gets ``""``."""
        items: list[tuple[str, str]] = []
        for part in self.raw_query.split("&"):
            if not part:
                continue
            name, _, value = part.partition("=")
            if plus_is_space:
                name, value = name.replace("+", " "), value.replace("+", " ")
            items.append((unquote(name), unquote(value)))
        return items

    def query(self, *, plus_is_space: bool = True) -> dict[str, str]:
        return dict(self.query_items(plus_is_space=plus_is_space))


@dataclass
class Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Iterable[bytes] = b""
    #: For a streamed body, its length; ``None`` for ``bytes`` bodies (computed).
    length: int | None = None


class Service(Protocol):
    name: str

    def handle(self, request: Request) -> Response: ...


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request is logged in _dispatch instead

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline().strip()
                size = int(size_line.split(b";")[0] or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        if self.headers.get("Expect", "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
        raw_path, _, raw_query = self.path.partition("?")
        request = Request(
            method=self.command,
            raw_path=raw_path,
            raw_query=raw_query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
            client=self.client_address[0],
        )
        service = self.server.service
        try:
            response = service.handle(request)
        except Exception:
            log.exception("%s: unhandled error on %s %s", service.name, self.command, self.path)
            response = Response(500, {"Content-Type": "text/plain"}, b"internal error in the local cloud")
        body = response.body
        length = len(body) if isinstance(body, bytes) else response.length
        # HTTP forbids a body on 1xx, 204 and 304 answers and on any answer to HEAD (RFC 9110
        # 6.4.1): a client does not read one, so bytes sent anyway would be taken as the start
        # of the next answer on the keep-alive connection. 204 and 304 also carry no
        # Content-Length of a body; HEAD keeps the one the GET would have had.
        bodiless_status = response.status < 200 or response.status in (204, 304)
        if bodiless_status or self.command == "HEAD":
            if not isinstance(body, bytes):
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            body = b""
            if bodiless_status:
                length = None
                response.headers = {
                    k: v
                    for k, v in response.headers.items()
                    if k.lower() not in ("content-length", "content-type", "transfer-encoding")
                }
        # send_response would add its own Server and Date even when the service sets them
        # (OSS answers "Server: AliyunOSS"), giving duplicate headers.
        self.send_response_only(response.status)
        sent = {k.lower() for k in response.headers}
        if "server" not in sent:
            self.send_header("Server", self.version_string())
        if "date" not in sent:
            self.send_header("Date", self.date_time_string())
        for name, value in response.headers.items():
            self.send_header(name, value)
        if "content-length" not in sent and length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if isinstance(body, bytes):
            self.wfile.write(body)
        else:
            for chunk in body:
                self.wfile.write(chunk)
        log.debug("%s %s %s -> %s", service.name, self.command, self.path, response.status)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: Service) -> None:
        self.service = service
        super().__init__(address, _Handler)


class ServiceServer:
    """Runs one :class:`Service` on ``host:port`` in a background thread.

    ``port=0`` picks a free port (for tests); read it back from :attr:`port`.
    """

    def __init__(self, service: Service, host: str = "127.0.0.1", port: int = 0) -> None:
        self.service = service
        self._server = _Server((host, port), service)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServiceServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(0.05,),
            name=f"localcloud-{self.service.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
