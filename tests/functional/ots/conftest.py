"""A client of the local Tablestore that never retries (so error tests fail fast), and a table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from tablestore import CapacityUnit, ReservedThroughput, TableMeta, TableOptions

if TYPE_CHECKING:
    from tests.functional.conftest import LocalOts


@pytest.fixture
def client(ots_server: LocalOts) -> Any:
    return ots_server.client(retry=False)


def create_table(client: Any, name: str, primary_key: list[tuple[str, str]]) -> None:
    client.create_table(TableMeta(name, primary_key), TableOptions(), ReservedThroughput(CapacityUnit(0, 0)))


@pytest.fixture
def table(client: Any) -> str:
    """``items``: primary key (``id`` STRING, ``n`` INTEGER)."""
    create_table(client, "items", [("id", "STRING"), ("n", "INTEGER")])
    return "items"
