"""Who may call the local cloud's own admin routes (``/_localcloud/...``).

The services' API routes are signed with the account's key pair, as in the cloud. The admin
routes (deploying a function, registering an OSS trigger, listing stored events, an MNS push to
a function) have no cloud counterpart to copy, and each of them lets a caller run code or read
events, so they take a per-state-folder token instead:

- ``DIR/admin-token`` holds it (mode 0600 in a 0700 folder, made once with ``secrets``); the
  launcher copies it into ``endpoints.json`` (also 0600) as ``admin_token`` for clients;
- a request sends it as ``X-Localcloud-Token``, or, for the one route a service that cannot set
  headers calls (the local MNS pushing to a function's topic trigger), as ``?token=``;
- a request with an ``Origin`` header is refused whatever it carries: browsers add ``Origin`` to
  cross-origin POSTs (including the form posts that need no CORS preflight), and no client of the
  admin routes is a web page;
- a ``Host`` that is not a loopback name is refused: a page on an attacker's domain that
  re-resolves to 127.0.0.1 (DNS rebinding) sends its own domain as the Host.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from localcloud.core.durable import atomic_write_bytes
from localcloud.core.http import Request

ADMIN_PREFIX = "/_localcloud/"
TOKEN_FILE = "admin-token"
TOKEN_HEADER = "X-Localcloud-Token"
TOKEN_QUERY = "token"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


def secure_state_dir(state_dir: Path) -> None:
    """Create the state folder readable by its owner only (it holds the key pair and the token)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)


def write_secret_file(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, mode 0600 from the start (never readable by others)."""
    atomic_write_bytes(path, data, mode=0o600)


def load_or_create_token(state_dir: Path) -> str:
    path = state_dir / TOKEN_FILE
    if path.exists():
        os.chmod(path, 0o600)  # a folder from before tokens were kept secret
        return path.read_text().strip()
    secure_state_dir(state_dir)
    token = secrets.token_urlsafe(32)
    write_secret_file(path, token.encode() + b"\n")
    return token


def admin_headers(token: str) -> dict[str, str]:
    """The headers a client of the admin routes sends."""
    return {TOKEN_HEADER: token}


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str


@dataclass(frozen=True)
class AdminGuard:
    #: Left out of repr, like the key secret (localcloud.core.account).
    token: str = field(repr=False)

    @classmethod
    def for_state_dir(cls, state_dir: Path) -> AdminGuard:
        return cls(load_or_create_token(state_dir))

    def refusal(self, request: Request, *, allow_query_token: bool = False) -> Refusal | None:
        """Why ``request`` may not use an admin route, or None when it may."""
        if "origin" in request.headers:
            return Refusal(
                403,
                "AccessDenied",
                "requests from web pages (with an Origin header) may not use the local cloud's admin routes",
            )
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name.lower() not in LOOPBACK_HOSTS:
            return Refusal(
                403,
                "AccessDenied",
                f"Host {host!r} is not a loopback address: the local cloud's admin routes answer only to "
                "127.0.0.1, localhost or [::1]",
            )
        sent = request.headers.get(TOKEN_HEADER.lower(), "")
        if not sent and allow_query_token:
            sent = request.query().get(TOKEN_QUERY, "")
        if not sent:
            return Refusal(
                401,
                "MissingAdminToken",
                f"the local cloud's admin routes need the {TOKEN_HEADER} header: the value is 'admin_token' "
                "in the state folder's endpoints.json (immflow's CLI sends it)",
            )
        if not hmac.compare_digest(sent.encode(), self.token.encode()):
            return Refusal(403, "InvalidAdminToken", f"the {TOKEN_HEADER} sent is not this local cloud's")
        return None
