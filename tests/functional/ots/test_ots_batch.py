"""BatchGetRow and BatchWriteRow through the official SDK: per-row results and failures."""

from __future__ import annotations

from typing import Any

import pytest
from tablestore import (
    BatchGetRowRequest,
    BatchWriteRowRequest,
    ComparatorType,
    Condition,
    DeleteRowItem,
    OTSServiceError,
    PutRowItem,
    Row,
    RowExistenceExpectation,
    SingleColumnCondition,
    TableInBatchGetRowItem,
    TableInBatchWriteRowItem,
    UpdateRowItem,
)

from tests.support.ots import create_table

IGNORE = Condition(RowExistenceExpectation.IGNORE)
NEW = Condition(RowExistenceExpectation.EXPECT_NOT_EXIST)


def _key(ident: str, n: int = 0) -> list[tuple[str, Any]]:
    return [("id", ident), ("n", n)]


def _write(client: Any, *tables: tuple[str, list[Any]]) -> Any:
    request = BatchWriteRowRequest()
    for name, items in tables:
        request.add(TableInBatchWriteRowItem(name, items))
    return client.batch_write_row(request)


def test_batch_write_puts_updates_and_deletes_across_tables(client: Any, table: str) -> None:
    create_table(client, "other", [("k", "INTEGER")])
    client.put_row(table, Row(_key("old"), [("v", 1)]))
    client.put_row(table, Row(_key("gone"), [("v", 1)]))

    result = _write(
        client,
        (table, [
            PutRowItem(Row(_key("new"), [("v", 1)]), NEW),
            UpdateRowItem(Row(_key("old"), {"PUT": [("v", 2)]}), IGNORE),
            DeleteRowItem(Row(_key("gone")), IGNORE),
        ]),
        ("other", [PutRowItem(Row([("k", 7)], [("v", "x")]), IGNORE)]),
    )  # fmt: skip

    assert result.is_all_succeed()
    assert client.get_row(table, _key("new"), max_version=1)[1].attribute_columns[0][:2] == ("v", 1)
    assert client.get_row(table, _key("old"), max_version=1)[1].attribute_columns[0][:2] == ("v", 2)
    assert client.get_row(table, _key("gone"), max_version=1)[1] is None
    assert client.get_row("other", [("k", 7)], max_version=1)[1] is not None


def test_a_failed_condition_fails_only_its_row(client: Any, table: str) -> None:
    client.put_row(table, Row(_key("taken"), [("owner", "first")]))
    client.put_row(table, Row(_key("guarded"), [("owner", "first")]))
    mine = Condition(
        RowExistenceExpectation.EXPECT_EXIST, SingleColumnCondition("owner", "me", ComparatorType.EQUAL)
    )

    result = _write(
        client,
        (table, [
            PutRowItem(Row(_key("taken"), [("owner", "second")]), NEW),
            PutRowItem(Row(_key("free"), [("owner", "second")]), NEW),
            UpdateRowItem(Row(_key("guarded"), {"PUT": [("x", 1)]}), mine),
        ]),
    )  # fmt: skip

    puts = result.get_put_by_table(table)
    updates = result.get_update_by_table(table)
    assert [p.is_ok for p in puts] == [False, True]
    assert puts[0].error_code == "OTSConditionCheckFail"
    assert (updates[0].is_ok, updates[0].error_code) == (False, "OTSConditionCheckFail")
    taken = client.get_row(table, _key("taken"), max_version=1)[1]
    assert [(n, v) for n, v, _ in taken.attribute_columns] == [("owner", "first")]
    assert client.get_row(table, _key("free"), max_version=1)[1] is not None


def test_rows_of_a_missing_table_fail_with_object_not_exist(client: Any, table: str) -> None:
    result = _write(client, ("nothing", [PutRowItem(Row(_key("a"), [("v", 1)]), IGNORE)]))

    [failed] = result.get_failed_of_put()
    assert failed.error_code == "OTSObjectNotExist"


def test_the_same_row_twice_in_one_batch_is_refused(client: Any, table: str) -> None:
    with pytest.raises(OTSServiceError) as caught:
        _write(
            client,
            (table, [PutRowItem(Row(_key("a"), [("v", 1)]), IGNORE), DeleteRowItem(Row(_key("a")), IGNORE)]),
        )

    assert caught.value.get_error_code() == "OTSParameterInvalid"


def test_more_than_200_rows_are_refused(client: Any, table: str) -> None:
    items = [PutRowItem(Row(_key("a", i), [("v", i)]), IGNORE) for i in range(201)]

    with pytest.raises(OTSServiceError) as caught:
        _write(client, (table, items))

    assert caught.value.get_error_code() == "OTSParameterInvalid"
    assert client.get_row(table, _key("a", 0), max_version=1)[1] is None


def test_batch_get_returns_each_row_in_order(client: Any, table: str) -> None:
    for i in range(3):
        client.put_row(table, Row(_key("r", i), [("v", i), ("w", -i)]))
    request = BatchGetRowRequest()
    keys = [_key("r", 2), _key("missing"), _key("r", 0)]
    request.add(TableInBatchGetRowItem(table, keys, columns_to_get=["v"], max_version=1))
    request.add(TableInBatchGetRowItem("nothing", [_key("r", 0)], max_version=1))

    result = client.batch_get_row(request)

    rows = result.get_result_by_table(table)
    assert [r.is_ok for r in rows] == [True, True, True]
    assert [r.row and r.row.primary_key for r in rows] == [_key("r", 2), None, _key("r", 0)]
    assert [r.row and [c[:2] for c in r.row.attribute_columns] for r in rows] == [
        [("v", 2)],
        None,
        [("v", 0)],
    ]
    [failed] = result.get_result_by_table("nothing")
    assert (failed.is_ok, failed.error_code) == (False, "OTSObjectNotExist")


def test_batch_get_of_more_than_100_rows_is_refused(client: Any, table: str) -> None:
    request = BatchGetRowRequest()
    request.add(TableInBatchGetRowItem(table, [_key("a", i) for i in range(101)], max_version=1))

    with pytest.raises(OTSServiceError) as caught:
        client.batch_get_row(request)

    assert caught.value.get_error_code() == "OTSParameterInvalid"
