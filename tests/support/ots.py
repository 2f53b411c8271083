"""A local Tablestore started for a test, official ``tablestore`` clients of it, and tables made with them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


def create_table(client: Any, name: str, primary_key: list[tuple[str, str]]) -> None:
    # Imported here, as in ``client``: most tests never need tablestore (about 0.3 s to import).
    from tablestore import CapacityUnit, ReservedThroughput, TableMeta, TableOptions

    client.create_table(TableMeta(name, primary_key), TableOptions(), ReservedThroughput(CapacityUnit(0, 0)))
