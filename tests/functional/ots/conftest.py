"""A client of the local Tablestore that never retries (so error tests fail fast), and a table."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.ots import LocalOts, create_table


@pytest.fixture
def client(ots_server: LocalOts) -> Any:
    return ots_server.client(retry=False)


@pytest.fixture
def table(client: Any) -> str:
    """``items``: primary key (``id`` STRING, ``n`` INTEGER)."""
    create_table(client, "items", [("id", "STRING"), ("n", "INTEGER")])
    return "items"
