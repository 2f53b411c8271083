"""A small threaded HTTP/1.1 server that every local service runs on.

Each service implements :class:`Service` (one ``handle`` method from :class:`Request` to
:class:`Response`); this module deals with sockets, keep-alive, chunked request bodies and
logging. A request body is read as the service asks for it: :attr:`Request.body` reads it whole
(services whose bodies are small documents), :attr:`Request.stream` in bounded pieces (the local
OSS writes object bodies to disk as they arrive, so memory stays flat for a 2 GiB upload).
Whatever the service left unread is read and dropped before the answer, so the keep-alive
connection stays in step; when more than :data:`DRAIN_LIMIT` is left (an upload refused before
its body was read), the answer goes first with ``Connection: close`` and the rest is read and
dropped for up to :data:`LINGER_SECONDS` before the connection closes, so that the client, still
sending, gets the answer rather than a reset connection. ``TCP_NODELAY`` is set on every connection: without it the SDKs' keep-alive
connections stall about 40 ms per request on Nagle plus delayed ACK.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
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


#: Up to this much of a body the service left unread is read and dropped to keep the connection.
DRAIN_LIMIT = 64 << 20
#: How long the rest of a larger unread body is read and dropped after the answer, before closing.
LINGER_SECONDS = 10.0
#: The longest chunk-size or trailer line of a chunked body.
_MAX_LINE = 8192


class IncompleteBody(Exception):
    """The body ended before the length the client announced, or its chunked framing is broken."""


class _Source(Protocol):
    def read(self, size: int, /) -> bytes: ...

    def readline(self, size: int, /) -> bytes: ...


class BodyReader:
    """A request body read from the connection as it arrives, in pieces of at most the size asked.

    ``length`` is the ``Content-Length``, or ``None`` for ``Transfer-Encoding: chunked`` (RFC 9112
    7.1: size lines in hex, optional extensions after ``;``, a zero-size chunk, then trailers).
    """

    def __init__(self, source: _Source, length: int | None) -> None:
        self._source = source
        self.length = length
        self._chunked = length is None
        #: Bytes left in the body (Content-Length) or in the current chunk (chunked).
        self._left = length or 0
        self.finished = length == 0
        #: Bytes of payload read so far.
        self.received = 0

    @classmethod
    def of(cls, data: bytes) -> BodyReader:
        return cls(io.BytesIO(data), len(data))

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes of the payload; ``b""`` once it is all read."""
        if self.finished:
            return b""
        if self._chunked and self._left == 0:
            self._left = self._chunk_size()
            if self._left == 0:
                self._skip_trailers()
                self.finished = True
                return b""
        data = self._source.read(min(size, self._left))
        if not data:
            raise IncompleteBody(
                f"the connection ended after {self.received} bytes of the body"
                + (f" of the {self.length} that Content-Length announced" if self.length is not None else "")
            )
        self._left -= len(data)
        self.received += len(data)
        if self._left == 0:
            if self._chunked:
                if self._source.readline(_MAX_LINE).strip():
                    raise IncompleteBody("a chunk of the chunked body is longer than its size line says")
            else:
                self.finished = True
        return data

    def read_all(self) -> bytes:
        return b"".join(iter(lambda: self.read(1 << 20), b""))

    def drain(self) -> None:
        """Read and drop what is left (memory stays flat, however much that is)."""
        while self.read(1 << 20):
            pass

    def _chunk_size(self) -> int:
        line = self._source.readline(_MAX_LINE)
        if not line.endswith(b"\n"):
            raise IncompleteBody("the chunked body ends inside a chunk-size line")
        try:
            return int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise IncompleteBody(f"{line[:40]!r} is not a chunk-size line (hex size)") from None

    def _skip_trailers(self) -> None:
        while True:
            line = self._source.readline(_MAX_LINE)
            if not line:
                raise IncompleteBody("the chunked body ends inside its trailers")
            if not line.strip():
                return


class Request:
    """One request. ``body`` may be given as bytes (tests) or as a :class:`BodyReader`."""

    def __init__(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: dict[str, str],
        body: bytes | BodyReader = b"",
        client: str = "",
    ) -> None:
        self.method = method
        #: The path exactly as sent (still percent-encoded); ``path`` is the decoded form.
        self.raw_path = raw_path
        #: The query string exactly as sent, without the ``?``.
        self.raw_query = raw_query
        #: Header names in lower case.
        self.headers = headers
        self.client = client
        #: The body as it arrives; read it in pieces for bodies that may be large.
        self.stream = body if isinstance(body, BodyReader) else BodyReader.of(body)
        self._body: bytes | None = None

    @property
    def body(self) -> bytes:
        """The whole body, read into memory at first use (what is left of it, after ``stream`` reads)."""
        if self._body is None:
            self._body = self.stream.read_all()
        return self._body

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

    def _body_reader(self) -> BodyReader:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return BodyReader(self.rfile, None)
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit():
            raise IncompleteBody(f"Content-Length {length!r} is not a number of bytes")
        return BodyReader(self.rfile, int(length))

    def _drain(self, stream: BodyReader) -> bool:
        """Drop what the service left of the body, when that is little; ``False`` if the
        connection must close instead (too much left, or the body broke off)."""
        if stream.finished:
            return True
        if stream.length is None or stream.length - stream.received > DRAIN_LIMIT:
            return False
        try:
            stream.drain()
        except IncompleteBody:
            return False
        return True

    def _linger(self, stream: BodyReader) -> None:
        """Read and drop what the client still sends, for a while, before the connection closes:
        closing with unread bytes would reset it and could lose the answer on the client's side."""
        deadline = time.monotonic() + LINGER_SECONDS
        self.connection.settimeout(LINGER_SECONDS)
        try:
            while time.monotonic() < deadline and stream.read(1 << 20):
                pass
        except (IncompleteBody, OSError):
            pass

    def _dispatch(self) -> None:
        if self.headers.get("Expect", "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
        raw_path, _, raw_query = self.path.partition("?")
        service = self.server.service
        try:
            stream = self._body_reader()
        except IncompleteBody as exc:
            self.send_error(400, f"Bad request body: {exc}")
            return
        request = Request(
            method=self.command,
            raw_path=raw_path,
            raw_query=raw_query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=stream,
            client=self.client_address[0],
        )
        try:
            response = service.handle(request)
        except IncompleteBody as exc:
            log.info("%s: %s %s: %s", service.name, self.command, self.path, exc)
            response = Response(400, {"Content-Type": "text/plain"}, f"Bad request body: {exc}".encode())
        except Exception:
            log.exception("%s: unhandled error on %s %s", service.name, self.command, self.path)
            response = Response(500, {"Content-Type": "text/plain"}, b"internal error in the local cloud")
        keep_alive = self._drain(request.stream)
        if not keep_alive:
            response.headers["Connection"] = "close"
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
        if not keep_alive:
            self.wfile.flush()
            self._linger(request.stream)
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
