"""Fixtures shared by every functional test folder: a local Tablestore (``ots_server``).

``ots_server`` runs :class:`localcloud.ots.OtsService` on a free port with its state in the
test's ``tmp_path``; ``ots_server.client()`` is an official ``tablestore.OTSClient`` for it (the
ledger's contract tests and tests/functional/ots/ use it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer
from tests.support.ots import LocalOts


@pytest.fixture
def ots_server(tmp_path: Path) -> Iterator[LocalOts]:
    # Imported here: localcloud.ots imports tablestore (about 0.3 s), which most tests never need.
    from localcloud.ots import OtsService
    from localcloud.ots.store import DEFAULT_INSTANCE

    account = Account.new()
    service = OtsService(tmp_path, account)
    server = ServiceServer(service).start()
    yield LocalOts(service, server, account, tmp_path, DEFAULT_INSTANCE)
    server.stop()
    service.close()
