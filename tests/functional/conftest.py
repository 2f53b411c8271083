"""Fixtures shared by every functional test folder: a local Tablestore (``ots_server``).

``ots_server`` runs :class:`localcloud.ots.OtsService` on a free port with its state in the
test's ``tmp_path``; ``ots_server.client()`` is an official ``tablestore.OTSClient`` for it (the
ledger's contract tests and tests/functional/ots/ use it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from localcloud.core.account import Account
from localcloud.core.http import ServiceServer

if TYPE_CHECKING:
    from localcloud.ots import OtsService


@dataclass
class LocalOts:
    service: OtsService
    server: ServiceServer
    account: Account
    state_dir: Path
    #: The instance the local Tablestore has from the start (endpoints.json's ``ots_instance``).
    instance: str

    @property
    def url(self) -> str:
        return self.server.url

    def client(
        self,
        *,
        instance: str | None = None,
        key_id: str | None = None,
        secret: str | None = None,
        retry: bool = True,
        **kwargs: Any,
    ) -> Any:
        """An ``OTSClient`` with the account's keys; ``retry=False`` gives it NoRetryPolicy."""
        import tablestore

        if not retry:
            kwargs["retry_policy"] = tablestore.NoRetryPolicy()
        return tablestore.OTSClient(
            self.url,
            key_id or self.account.access_key_id,
            secret or self.account.access_key_secret,
            instance or self.instance,
            **kwargs,
        )


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
