"""CreateTable, DescribeTable, ListTable and DeleteTable through the official SDK."""

from __future__ import annotations

from typing import Any

import pytest
from tablestore import (
    CapacityUnit,
    OTSServiceError,
    ReservedThroughput,
    Row,
    TableMeta,
    TableOptions,
)

from tests.support.ots import create_table


def _error(call: Any, *args: Any) -> tuple[str, int]:
    with pytest.raises(OTSServiceError) as caught:
        call(*args)
    return caught.value.get_error_code(), caught.value.get_http_status()


def test_create_describe_list_delete(client: Any) -> None:
    meta = TableMeta("runs", [("run_id", "STRING"), ("seq", "INTEGER")], [("state", "STRING")])
    client.create_table(meta, TableOptions(-1, 1, 86400), ReservedThroughput(CapacityUnit(2, 3)))
    create_table(client, "claims", [("key", "BINARY")])

    described = client.describe_table("runs")

    assert described.table_meta.table_name == "runs"
    assert described.table_meta.schema_of_primary_key == [("run_id", "STRING"), ("seq", "INTEGER")]
    assert described.table_meta.defined_columns == [("state", "STRING")]
    assert (described.table_options.time_to_live, described.table_options.max_version) == (-1, 1)
    capacity = described.reserved_throughput_details.capacity_unit
    assert (capacity.read, capacity.write) == (2, 3)
    assert client.list_table() == ("claims", "runs")

    client.delete_table("runs")

    assert client.list_table() == ("claims",)
    assert _error(client.describe_table, "runs") == ("OTSObjectNotExist", 404)


def test_creating_an_existing_table_is_refused(client: Any) -> None:
    create_table(client, "t", [("k", "STRING")])

    assert _error(create_table, client, "t", [("k", "STRING")]) == ("OTSObjectAlreadyExist", 409)


def test_deleting_a_table_deletes_its_rows(client: Any) -> None:
    create_table(client, "t", [("k", "STRING")])
    client.put_row("t", Row([("k", "a")], [("v", 1)]))
    client.delete_table("t")
    create_table(client, "t", [("k", "STRING")])

    _, row, _ = client.get_row("t", [("k", "a")], max_version=1)

    assert row is None
    assert _error(client.delete_table, "nothing") == ("OTSObjectNotExist", 404)


@pytest.mark.parametrize(
    "primary_key",
    [
        [],
        [("a", "STRING"), ("b", "STRING"), ("c", "STRING"), ("d", "STRING"), ("e", "STRING")],
        [("a", "STRING"), ("a", "INTEGER")],
        [("1a", "STRING")],
    ],
)
def test_invalid_primary_key_schemas_are_refused(client: Any, primary_key: list[tuple[str, str]]) -> None:
    assert _error(create_table, client, "t", primary_key) == ("OTSParameterInvalid", 400)


def test_invalid_table_names_are_refused(client: Any) -> None:
    assert _error(create_table, client, "bad-name", [("k", "STRING")]) == ("OTSParameterInvalid", 400)


def test_auto_increment_keys_are_refused(client: Any) -> None:
    from tablestore import PK_AUTO_INCR

    assert _error(create_table, client, "t", [("k", "STRING"), ("seq", "INTEGER", PK_AUTO_INCR)]) == (
        "OTSParameterInvalid",
        400,
    )


def test_actions_the_local_tablestore_does_not_serve_answer_unsupported(client: Any) -> None:
    create_table(client, "t", [("k", "STRING")])

    assert _error(client.list_search_index, "t") == ("OTSUnsupportOperation", 501)
    assert _error(client.update_table, "t", TableOptions(-1, 2)) == ("OTSUnsupportOperation", 501)
