"""GetRange through the official SDK: order, bounds, directions, paging, columns and filters."""

from __future__ import annotations

from typing import Any

import pytest
from tablestore import (
    INF_MAX,
    INF_MIN,
    BatchWriteRowRequest,
    CapacityUnit,
    ComparatorType,
    CompositeColumnCondition,
    Condition,
    Direction,
    LogicalOperator,
    OTSServiceError,
    PutRowItem,
    Row,
    SingleColumnCondition,
    TableInBatchWriteRowItem,
)

from tests.support.ots import create_table

ALL = ([("id", INF_MIN), ("n", INF_MIN)], [("id", INF_MAX), ("n", INF_MAX)])


def _keys(rows: list[Any]) -> list[tuple[Any, ...]]:
    return [tuple(v for _, v in row.primary_key) for row in rows]


def _range(
    client: Any, table: str, start: Any, end: Any, direction: str = Direction.FORWARD, **kwargs: Any
) -> Any:
    _, next_start, rows, _ = client.get_range(table, direction, start, end, max_version=1, **kwargs)
    return next_start, rows


@pytest.fixture
def filled(client: Any, table: str) -> str:
    for ident in ("b", "a", "ab", "a\x00"):
        for n in (3, -1, 0, 2**40):
            client.put_row(table, Row([("id", ident), ("n", n)], [("v", n), ("tag", f"{ident}{n}")]))
    return table


ORDER = [(i, n) for i in ("a", "a\x00", "ab", "b") for n in (-1, 0, 3, 2**40)]


def test_forward_over_everything_is_in_tablestore_order(client: Any, filled: str) -> None:
    next_start, rows = _range(client, filled, *ALL)

    assert _keys(rows) == ORDER
    assert next_start is None


def test_backward_is_the_reverse_order(client: Any, filled: str) -> None:
    _, rows = _range(client, filled, ALL[1], ALL[0], Direction.BACKWARD)

    assert _keys(rows) == ORDER[::-1]


def test_start_is_inclusive_and_end_exclusive(client: Any, filled: str) -> None:
    _, rows = _range(client, filled, [("id", "a\x00"), ("n", 0)], [("id", "ab"), ("n", 0)])

    assert _keys(rows) == [("a\x00", 0), ("a\x00", 3), ("a\x00", 2**40), ("ab", -1)]


def test_infinite_bounds_on_a_later_column_cover_the_whole_prefix(client: Any, filled: str) -> None:
    _, rows = _range(client, filled, [("id", "ab"), ("n", INF_MIN)], [("id", "ab"), ("n", INF_MAX)])

    assert _keys(rows) == [("ab", -1), ("ab", 0), ("ab", 3), ("ab", 2**40)]


def test_limit_pages_with_next_start_primary_key(client: Any, filled: str) -> None:
    start, seen, pages = ALL[0], [], 0
    while start is not None:
        start, rows = _range(client, filled, start, ALL[1], limit=5)
        seen += _keys(rows)
        pages += 1

    assert seen == ORDER
    assert pages == 4


def test_backward_pages_too(client: Any, filled: str) -> None:
    start, seen = ALL[1], []
    while start is not None:
        start, rows = _range(client, filled, start, ALL[0], Direction.BACKWARD, limit=7)
        seen += _keys(rows)

    assert seen == ORDER[::-1]


def test_columns_to_get_and_a_single_column_filter(client: Any, filled: str) -> None:
    only_big = SingleColumnCondition("v", 3, ComparatorType.GREATER_EQUAL)

    _, rows = _range(client, filled, *ALL, columns_to_get=["tag"], column_filter=only_big)

    assert _keys(rows) == [k for k in ORDER if k[1] >= 3]
    assert {tuple(c[0] for c in r.attribute_columns) for r in rows} == {("tag",)}


def test_a_composite_filter_and_a_missing_column(client: Any, filled: str) -> None:
    client.put_row(filled, Row([("id", "c"), ("n", 0)], [("other", 1)]))
    either = CompositeColumnCondition(LogicalOperator.OR)
    either.add_sub_condition(SingleColumnCondition("tag", "a-1", ComparatorType.EQUAL, pass_if_missing=False))
    either.add_sub_condition(SingleColumnCondition("v", 2**40, ComparatorType.EQUAL, pass_if_missing=False))

    _, rows = _range(client, filled, *ALL, column_filter=either)

    assert _keys(rows) == [("a", -1), ("a", 2**40), ("a\x00", 2**40), ("ab", 2**40), ("b", 2**40)]


def test_binary_keys_order_by_their_bytes(client: Any) -> None:
    create_table(client, "blobs", [("k", "BINARY")])
    for raw in (b"\xff", b"\x00", b"\x00\x00", b"\x01", b""):
        client.put_row("blobs", Row([("k", bytearray(raw))], [("x", 1)]))

    _, rows = _range(client, "blobs", [("k", INF_MIN)], [("k", INF_MAX)])

    assert [bytes(r.primary_key[0][1]) for r in rows] == [b"", b"\x00", b"\x00\x00", b"\x01", b"\xff"]


def test_bounds_in_the_wrong_direction_are_refused(client: Any, filled: str) -> None:
    for start, end, direction in ((ALL[1], ALL[0], Direction.FORWARD), (ALL[0], ALL[1], Direction.BACKWARD)):
        with pytest.raises(OTSServiceError) as caught:
            _range(client, filled, start, end, direction)
        assert caught.value.get_error_code() == "OTSParameterInvalid"


def test_the_sdks_range_iterator_reads_past_the_5000_row_page(client: Any) -> None:
    create_table(client, "many", [("n", "INTEGER")])
    request_rows = [Row([("n", n)], [("v", n)]) for n in range(5003)]
    for start in range(0, len(request_rows), 200):
        batch = BatchWriteRowRequest()
        batch.add(
            TableInBatchWriteRowItem(
                "many", [PutRowItem(r, Condition("IGNORE")) for r in request_rows[start : start + 200]]
            )
        )
        assert client.batch_write_row(batch).is_all_succeed()

    next_start, first_page = _range(client, "many", [("n", INF_MIN)], [("n", INF_MAX)])
    everything = list(
        client.xget_range("many", Direction.FORWARD, [("n", INF_MIN)], [("n", INF_MAX)], CapacityUnit(0, 0))
    )

    assert len(first_page) == 5000
    assert next_start == [("n", 5000)]
    assert [row.primary_key[0][1] for row in everything] == list(range(5003))
