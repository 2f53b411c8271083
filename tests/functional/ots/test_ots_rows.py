"""PutRow, GetRow, UpdateRow and DeleteRow through the official tablestore SDK."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest
from tablestore import (
    ComparatorType,
    CompositeColumnCondition,
    Condition,
    LogicalOperator,
    OTSServiceError,
    ReturnType,
    Row,
    RowExistenceExpectation,
    SingleColumnCondition,
)

from tests.support.ots import create_table

if TYPE_CHECKING:
    from tests.support.ots import LocalOts

IGNORE = RowExistenceExpectation.IGNORE
EXPECT_EXIST = RowExistenceExpectation.EXPECT_EXIST
EXPECT_NOT_EXIST = RowExistenceExpectation.EXPECT_NOT_EXIST
KEY = [("id", "a"), ("n", 1)]


def _columns(
    client: Any, table: str, key: list[tuple[str, Any]] = KEY, **kwargs: Any
) -> dict[str, Any] | None:
    _, row, _ = client.get_row(table, key, max_version=1, **kwargs)
    if row is None:
        return None
    assert row.primary_key == key
    return {name: value for name, value, _ in row.attribute_columns}


def _fails(code: str, status: int, call: Any, *args: Any, **kwargs: Any) -> OTSServiceError:
    with pytest.raises(OTSServiceError) as caught:
        call(*args, **kwargs)
    assert (caught.value.get_error_code(), caught.value.get_http_status()) == (code, status), caught.value
    return caught.value


def test_put_then_get_round_trips_every_column_type(client: Any, table: str) -> None:
    columns = [
        ("s", "héllo"),
        ("i", -(2**63)),
        ("d", 2.5),
        ("t", True),
        ("f", False),
        ("b", bytearray(b"\x00\xff")),
    ]
    client.put_row(table, Row(KEY, columns))

    _, row, _ = client.get_row(table, KEY, max_version=1)

    assert row.primary_key == KEY
    assert [(n, v) for n, v, _ in row.attribute_columns] == sorted(columns)
    assert all(isinstance(ts, int) and ts > 0 for _, _, ts in row.attribute_columns)


def test_get_of_a_missing_row_is_none(client: Any, table: str) -> None:
    assert _columns(client, table) is None


def test_get_returns_only_the_columns_asked_for(client: Any, table: str) -> None:
    client.put_row(table, Row(KEY, [("a", 1), ("b", 2), ("c", 3)]))

    assert _columns(client, table, columns_to_get=["a", "c"]) == {"a": 1, "c": 3}
    assert _columns(client, table, columns_to_get=["nope"]) is None


def test_put_replaces_the_whole_row(client: Any, table: str) -> None:
    client.put_row(table, Row(KEY, [("a", 1), ("b", 2)]))
    client.put_row(table, Row(KEY, [("c", 3)]))

    assert _columns(client, table) == {"c": 3}


def test_put_with_an_explicit_timestamp_keeps_it(client: Any, table: str) -> None:
    client.put_row(table, Row(KEY, [("a", "v", 1_700_000_000_000)]))

    _, row, _ = client.get_row(table, KEY, max_version=1)

    assert row.attribute_columns == [("a", "v", 1_700_000_000_000)]


def test_expect_not_exist_lets_only_the_first_put_through(client: Any, table: str) -> None:
    client.put_row(table, Row(KEY, [("owner", "one")]), Condition(EXPECT_NOT_EXIST))

    _fails(
        "OTSConditionCheckFail",
        403,
        client.put_row,
        table,
        Row(KEY, [("owner", "two")]),
        Condition(EXPECT_NOT_EXIST),
    )
    assert _columns(client, table) == {"owner": "one"}


def test_expect_exist_refuses_a_missing_row(client: Any, table: str) -> None:
    _fails("OTSConditionCheckFail", 403, client.put_row, table, Row(KEY, [("a", 1)]), Condition(EXPECT_EXIST))
    _fails(
        "OTSConditionCheckFail", 403,
        client.update_row, table, Row(KEY, {"PUT": [("a", 1)]}), Condition(EXPECT_EXIST),
    )  # fmt: skip
    _fails("OTSConditionCheckFail", 403, client.delete_row, table, Row(KEY), Condition(EXPECT_EXIST))
    assert _columns(client, table) is None


@pytest.mark.parametrize(
    ("comparator", "value", "passes"),
    [
        (ComparatorType.EQUAL, 5, True),
        (ComparatorType.EQUAL, 6, False),
        (ComparatorType.NOT_EQUAL, 6, True),
        (ComparatorType.NOT_EQUAL, 5, False),
        (ComparatorType.GREATER_THAN, 4, True),
        (ComparatorType.GREATER_THAN, 5, False),
        (ComparatorType.GREATER_EQUAL, 5, True),
        (ComparatorType.GREATER_EQUAL, 6, False),
        (ComparatorType.LESS_THAN, 6, True),
        (ComparatorType.LESS_THAN, 5, False),
        (ComparatorType.LESS_EQUAL, 5, True),
        (ComparatorType.LESS_EQUAL, 4, False),
        # another type never equals and never orders
        (ComparatorType.EQUAL, "5", False),
        (ComparatorType.NOT_EQUAL, "5", True),
        (ComparatorType.LESS_THAN, "9", False),
    ],
)
def test_single_column_condition_compares_the_stored_value(
    client: Any, table: str, comparator: int, value: Any, passes: bool
) -> None:
    client.put_row(table, Row(KEY, [("version", 5)]))
    condition = Condition(EXPECT_EXIST, SingleColumnCondition("version", value, comparator))
    update = Row(KEY, {"PUT": [("version", 100)]})

    if passes:
        client.update_row(table, update, condition)
        assert _columns(client, table) == {"version": 100}
    else:
        _fails("OTSConditionCheckFail", 403, client.update_row, table, update, condition)
        assert _columns(client, table) == {"version": 5}


@pytest.mark.parametrize("pass_if_missing", [True, False])
def test_a_missing_column_passes_only_with_pass_if_missing(
    client: Any, table: str, pass_if_missing: bool
) -> None:
    client.put_row(table, Row(KEY, [("other", 1)]))
    condition = Condition(
        IGNORE, SingleColumnCondition("owner", "me", ComparatorType.EQUAL, pass_if_missing=pass_if_missing)
    )
    put = Row(KEY, [("owner", "me")])

    if pass_if_missing:
        client.put_row(table, put, condition)
        assert _columns(client, table) == {"owner": "me"}
    else:
        _fails("OTSConditionCheckFail", 403, client.put_row, table, put, condition)


def test_composite_conditions_and_or_not(client: Any, table: str) -> None:
    client.put_row(table, Row(KEY, [("owner", "w1"), ("version", 3)]))

    def both(owner: str, version: int, operator: int) -> CompositeColumnCondition:
        composite = CompositeColumnCondition(operator)
        composite.add_sub_condition(SingleColumnCondition("owner", owner, ComparatorType.EQUAL))
        composite.add_sub_condition(SingleColumnCondition("version", version, ComparatorType.EQUAL))
        return composite

    def attempt(condition: Any) -> bool:
        try:
            client.update_row(
                table, Row(KEY, {"PUT": [("touched", True)]}), Condition(EXPECT_EXIST, condition)
            )
        except OTSServiceError as error:
            assert error.get_error_code() == "OTSConditionCheckFail"
            return False
        return True

    negation = CompositeColumnCondition(LogicalOperator.NOT)
    negation.add_sub_condition(SingleColumnCondition("owner", "w1", ComparatorType.EQUAL))

    assert attempt(both("w1", 3, LogicalOperator.AND))
    assert not attempt(both("w1", 4, LogicalOperator.AND))
    assert attempt(both("w2", 3, LogicalOperator.OR))
    assert not attempt(both("w2", 4, LogicalOperator.OR))
    assert not attempt(negation)


def test_update_puts_deletes_and_deletes_all(client: Any, table: str) -> None:
    client.put_row(table, Row(KEY, [("a", 1), ("b", 2), ("c", 3, 1_700_000_000_000)]))

    client.update_row(
        table,
        Row(
            KEY,
            {
                "PUT": [("a", 10), ("d", "new")],
                "DELETE_ALL": ["b"],
                "DELETE": [("c", None, 1_700_000_000_000)],
            },
        ),
        Condition(IGNORE),
    )

    assert _columns(client, table) == {"a": 10, "d": "new"}


def test_delete_of_one_version_with_another_timestamp_keeps_the_column(client: Any, table: str) -> None:
    client.put_row(table, Row(KEY, [("c", 3, 1_700_000_000_000)]))

    client.update_row(table, Row(KEY, {"DELETE": [("c", None, 1_600_000_000_000)]}), Condition(IGNORE))

    assert _columns(client, table) == {"c": 3}


def test_update_of_a_missing_row_creates_it(client: Any, table: str) -> None:
    client.update_row(table, Row(KEY, {"PUT": [("a", 1)]}), Condition(IGNORE))

    assert _columns(client, table) == {"a": 1}


def test_increment_adds_to_the_stored_integer(client: Any, table: str) -> None:
    client.put_row(table, Row(KEY, [("count", 40)]))

    client.update_row(table, Row(KEY, {"INCREMENT": [("count", 2), ("fresh", 5)]}), Condition(IGNORE))

    assert _columns(client, table) == {"count": 42, "fresh": 5}


def test_return_type_pk_returns_the_primary_key(client: Any, table: str) -> None:
    _, row = client.put_row(table, Row(KEY, [("a", 1)]), return_type=ReturnType.RT_PK)

    assert row.primary_key == KEY


def test_delete_row_removes_it_under_its_condition(client: Any, table: str) -> None:
    client.put_row(table, Row(KEY, [("owner", "me")]))
    mine = Condition(EXPECT_EXIST, SingleColumnCondition("owner", "me", ComparatorType.EQUAL))
    theirs = Condition(EXPECT_EXIST, SingleColumnCondition("owner", "you", ComparatorType.EQUAL))

    _fails("OTSConditionCheckFail", 403, client.delete_row, table, Row(KEY), theirs)
    client.delete_row(table, Row(KEY), mine)

    assert _columns(client, table) is None
    _fails("OTSParameterInvalid", 400, client.delete_row, table, Row(KEY), Condition(EXPECT_NOT_EXIST))


def test_a_primary_key_that_does_not_match_the_schema_is_refused(client: Any, table: str) -> None:
    _fails("OTSParameterInvalid", 400, client.put_row, table, Row([("id", "a")], [("x", 1)]))
    _fails("OTSParameterInvalid", 400, client.put_row, table, Row([("n", 1), ("id", "a")], [("x", 1)]))
    _fails("OTSParameterInvalid", 400, client.put_row, table, Row([("id", 1), ("n", 1)], [("x", 1)]))
    _fails("OTSParameterInvalid", 400, client.get_row, table, [("id", "a"), ("n", "1")], max_version=1)


def test_rows_of_a_missing_table_are_refused(client: Any) -> None:
    _fails("OTSObjectNotExist", 404, client.put_row, "nothing", Row(KEY, [("a", 1)]))
    _fails("OTSObjectNotExist", 404, client.get_row, "nothing", KEY, max_version=1)


def test_binary_and_four_column_primary_keys(client: Any) -> None:
    create_table(client, "wide", [("a", "STRING"), ("b", "INTEGER"), ("c", "BINARY"), ("d", "INTEGER")])
    key = [("a", "x"), ("b", -5), ("c", bytearray(b"\x00\x01")), ("d", 7)]
    client.put_row("wide", Row(key, [("v", 1)]))

    assert _columns(client, "wide", key) == {"v": 1}
    assert _columns(client, "wide", [("a", "x"), ("b", -5), ("c", bytearray(b"\x00")), ("d", 7)]) is None


def test_a_condition_may_compare_a_primary_key_column(client: Any, table: str) -> None:
    client.put_row(table, Row(KEY, [("a", 1)]))

    client.update_row(
        table,
        Row(KEY, {"PUT": [("a", 2)]}),
        Condition(EXPECT_EXIST, SingleColumnCondition("n", 1, ComparatorType.EQUAL)),
    )
    _fails(
        "OTSConditionCheckFail", 403,
        client.update_row, table, Row(KEY, {"PUT": [("a", 3)]}),
        Condition(EXPECT_EXIST, SingleColumnCondition("id", "b", ComparatorType.EQUAL)),
    )  # fmt: skip
    assert _columns(client, table) == {"a": 2}


def test_more_than_ten_column_comparisons_are_refused(client: Any, table: str) -> None:
    many = CompositeColumnCondition(LogicalOperator.AND)
    for i in range(11):
        many.add_sub_condition(SingleColumnCondition(f"c{i}", i, ComparatorType.EQUAL))

    _fails("OTSParameterInvalid", 400, client.put_row, table, Row(KEY, [("a", 1)]), Condition(IGNORE, many))


def test_concurrent_expect_not_exist_puts_let_exactly_one_through(ots_server: LocalOts, table: str) -> None:
    """Claims rely on this: many writers race for one row, one wins, the others see the condition fail."""
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def claim(worker: int) -> None:
        client = ots_server.client(retry=False)
        barrier.wait()
        try:
            client.put_row(table, Row(KEY, [("owner", f"w{worker}")]), Condition(EXPECT_NOT_EXIST))
            outcomes.append(f"w{worker}")
        except OTSServiceError as error:
            outcomes.append(error.get_error_code())

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [o for o in outcomes if o.startswith("w")]
    assert len(winners) == 1
    assert sorted(set(outcomes) - set(winners)) == ["OTSConditionCheckFail"]
    assert _columns(ots_server.client(), table) == {"owner": winners[0]}


def test_tablestore_size_limits(client: Any, table: str) -> None:
    big_key = [("id", "k" * 1025), ("n", 1)]
    _fails("OTSParameterInvalid", 400, client.put_row, table, Row(big_key, [("a", 1)]))
    _fails("OTSParameterInvalid", 400, client.put_row, table, Row(KEY, [("a", "v" * (2 * 1024 * 1024 + 1))]))
    _fails(
        "OTSParameterInvalid", 400, client.get_row, table, KEY, [f"c{i}" for i in range(129)], max_version=1
    )
    near_limit = "v" * (2 * 1024 * 1024 - 16)
    _fails(
        "OTSRequestBodyTooLarge",
        413,
        client.put_row,
        table,
        Row(KEY, [("a", near_limit), ("b", near_limit), ("c", near_limit)]),
    )
    assert _columns(client, table) is None
