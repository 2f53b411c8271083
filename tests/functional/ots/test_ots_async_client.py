"""The SDK's other client, ``AsyncOTSClient`` (aiohttp), against the same local Tablestore."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tablestore import (
    INF_MAX,
    INF_MIN,
    AsyncOTSClient,
    CapacityUnit,
    Condition,
    Direction,
    OTSServiceError,
    ReservedThroughput,
    Row,
    RowExistenceExpectation,
    TableMeta,
    TableOptions,
)

if TYPE_CHECKING:
    from tests.support.ots import LocalOts


def test_async_client_writes_reads_and_sees_condition_failures(ots_server: LocalOts) -> None:
    async def scenario() -> tuple[list[tuple[str, object]], str, list[object]]:
        client = AsyncOTSClient(
            ots_server.url,
            ots_server.account.access_key_id,
            ots_server.account.access_key_secret,
            ots_server.instance,
        )
        try:
            await client.create_table(
                TableMeta("t", [("k", "STRING")]), TableOptions(), ReservedThroughput(CapacityUnit(0, 0))
            )
            await client.put_row("t", Row([("k", "a")], [("v", 1)]))
            try:
                await client.put_row(
                    "t", Row([("k", "a")], [("v", 2)]), Condition(RowExistenceExpectation.EXPECT_NOT_EXIST)
                )
                code = "none"
            except OTSServiceError as error:
                code = error.get_error_code()
            _, row, _ = await client.get_row("t", [("k", "a")], max_version=1)
            _, _, rows, _ = await client.get_range(
                "t", Direction.FORWARD, [("k", INF_MIN)], [("k", INF_MAX)], max_version=1
            )
            return [(n, v) for n, v, _ in row.attribute_columns], code, [r.primary_key for r in rows]
        finally:
            await client.close()

    columns, code, keys = asyncio.run(scenario())

    assert columns == [("v", 1)]
    assert code == "OTSConditionCheckFail"
    assert keys == [[("k", "a")]]
