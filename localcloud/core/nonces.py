"""Signature nonces used once within the signature window, remembered across restarts.

The Alibaba Cloud API gateway refuses a request whose nonce (``x-acs-signature-nonce`` of an
ACS3 signature, ``SignatureNonce`` of an RPC v1 one) it has seen before, and a request dated more
than 15 minutes from its clock (docs/signatures.md). Together they make a captured request
useless: within the window its nonce is spent, after it its date is stale. So a nonce needs to be
remembered only until the date it was signed with leaves the window, and then it is pruned.

The nonces live in SQLite in the state folder, so restarting the local cloud inside the window
does not reopen a replay. The file is written with ``synchronous=NORMAL``: a commit survives the
process being killed (the WAL is in the operating system's cache) but not a power cut, which
also stops every client that could replay; an fsync per API call would cost more than it buys.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from localcloud.core.acs3 import MAX_SKEW_SECONDS
from localcloud.core.sqlite import Database

#: How far a request's date may be from the server's clock, either way (docs/signatures.md).
SIGNATURE_WINDOW_SECONDS = MAX_SKEW_SECONDS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nonces (
    nonce TEXT PRIMARY KEY,
    forget_after REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS nonces_forget_after ON nonces(forget_after);
"""


class NonceLedger:
    """``use(nonce, signed_at)`` is True the first time a nonce is seen within the window."""

    def __init__(
        self,
        path: Path,
        *,
        window_seconds: float = SIGNATURE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = Database(path, _SCHEMA, synchronous="NORMAL")
        self._window = window_seconds
        self._clock = clock

    def use(self, nonce: str, signed_at: float) -> bool:
        """Record ``nonce`` for a request signed at ``signed_at`` (epoch seconds, already checked
        to be inside the window); False when it was recorded before and is still remembered."""
        now = self._clock()
        with self._db.transaction() as db:
            db.execute("DELETE FROM nonces WHERE forget_after < ?", (now,))
            inserted = db.execute(
                "INSERT OR IGNORE INTO nonces VALUES (?, ?)", (nonce, signed_at + self._window)
            )
            return inserted.rowcount == 1

    def close(self) -> None:
        self._db.close()
