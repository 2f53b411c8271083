"""Column conditions (row-write conditions) and column filters (reads), parsed and evaluated.

Both arrive as the serialized protobuf ``Filter`` of ``table_store_filter.proto``: a single
column comparison (``SingleColumnValueFilter``, its value a bare PlainBuffer value) or a
composite of others (``CompositeColumnValueFilter``: NOT of one, AND/OR of two or more).

A condition holds at most 10 column comparisons, and may compare primary key columns too, as
Tablestore documents (docs/tablestore-local.md, "Conditions"). Evaluation: a missing column
passes when ``pass_if_missing`` is true (the SDK sends ``filter_if_missing = not
pass_if_missing``) and fails otherwise; ``EXIST``/``NOT_EXIST`` test presence only. A value of
another type than the condition's compares as not equal: EQUAL fails, NOT_EQUAL passes, and the
ordering comparators fail (the cloud's behaviour here is not documented; this is the reading that
never lets a typo'd type satisfy a claim). Only the latest version exists locally, so
``latest_version_only`` changes nothing.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from tablestore.protobuf import table_store_filter_pb2 as filter_pb2

from localcloud.ots import plainbuffer
from localcloud.ots.errors import parameter_invalid
from localcloud.ots.plainbuffer import Value

_ORDERING: dict[int, Callable[[Any, Any], bool]] = {
    filter_pb2.CT_GREATER_THAN: operator.gt,
    filter_pb2.CT_GREATER_EQUAL: operator.ge,
    filter_pb2.CT_LESS_THAN: operator.lt,
    filter_pb2.CT_LESS_EQUAL: operator.le,
}


@dataclass(frozen=True)
class SingleColumn:
    column: str
    comparator: int
    value: Value
    pass_if_missing: bool

    def passes(self, columns: Mapping[str, Value]) -> bool:
        if self.comparator == filter_pb2.CT_EXIST:
            return self.column in columns
        if self.comparator == filter_pb2.CT_NOT_EXIST:
            return self.column not in columns
        if self.column not in columns:
            return self.pass_if_missing
        actual = columns[self.column]
        same_type = type(actual) is type(self.value)
        if self.comparator == filter_pb2.CT_EQUAL:
            return same_type and actual == self.value
        if self.comparator == filter_pb2.CT_NOT_EQUAL:
            return not same_type or actual != self.value
        return same_type and _ORDERING[self.comparator](actual, self.value)


@dataclass(frozen=True)
class Composite:
    combinator: int
    parts: tuple[SingleColumn | Composite, ...]

    def passes(self, columns: Mapping[str, Value]) -> bool:
        if self.combinator == filter_pb2.LO_NOT:
            return not self.parts[0].passes(columns)
        if self.combinator == filter_pb2.LO_AND:
            return all(p.passes(columns) for p in self.parts)
        return any(p.passes(columns) for p in self.parts)


ColumnCondition = SingleColumn | Composite


#: Tablestore's limit on the column comparisons in one condition or filter.
MAX_COMPARISONS = 10


def parse(data: bytes, what: str) -> ColumnCondition:
    """A serialized ``Filter``; ``what`` names it in errors (e.g. "the condition of PutRow")."""
    message = filter_pb2.Filter()
    try:
        message.ParseFromString(data)
    except DecodeError:
        raise parameter_invalid(f"{what} is not a valid Filter message.") from None
    condition = _parse_filter(message, what)
    if _comparisons(condition) > MAX_COMPARISONS:
        raise parameter_invalid(
            f"{what} holds {_comparisons(condition)} column comparisons; Tablestore takes at most {MAX_COMPARISONS}."
        )
    return condition


def _comparisons(condition: ColumnCondition) -> int:
    if isinstance(condition, SingleColumn):
        return 1
    return sum(_comparisons(part) for part in condition.parts)


def _parse_filter(message: Any, what: str) -> ColumnCondition:
    try:
        if message.type == filter_pb2.FT_SINGLE_COLUMN_VALUE:
            single = filter_pb2.SingleColumnValueFilter()
            single.ParseFromString(message.filter)
            if single.HasField("value_trans_rule"):
                raise parameter_invalid(
                    f"{what}: SingleColumnRegexCondition (a value_trans_rule) is not supported by the "
                    "local Tablestore; compare the column's value directly."
                )
            if single.comparator not in (filter_pb2.CT_EQUAL, filter_pb2.CT_NOT_EQUAL,
                                         filter_pb2.CT_EXIST, filter_pb2.CT_NOT_EXIST, *_ORDERING):  # fmt: skip
                raise parameter_invalid(f"{what}: unknown comparator {single.comparator}.")
            value = plainbuffer.read_variant(single.column_value, f"value of {what}")
            return SingleColumn(single.column_name, single.comparator, value, not single.filter_if_missing)
        if message.type == filter_pb2.FT_COMPOSITE_COLUMN_VALUE:
            composite = filter_pb2.CompositeColumnValueFilter()
            composite.ParseFromString(message.filter)
            parts = tuple(_parse_filter(sub, what) for sub in composite.sub_filters)
            if composite.combinator == filter_pb2.LO_NOT and len(parts) != 1:
                raise parameter_invalid(f"{what}: NOT takes exactly one sub-condition, got {len(parts)}.")
            if composite.combinator in (filter_pb2.LO_AND, filter_pb2.LO_OR) and len(parts) < 2:
                raise parameter_invalid(
                    f"{what}: AND and OR take two or more sub-conditions, got {len(parts)}."
                )
            if composite.combinator not in (filter_pb2.LO_NOT, filter_pb2.LO_AND, filter_pb2.LO_OR):
                raise parameter_invalid(f"{what}: unknown logical operator {composite.combinator}.")
            return Composite(composite.combinator, parts)
    except DecodeError:
        raise parameter_invalid(f"{what} holds a sub-filter that is not a valid message.") from None
    if message.type == filter_pb2.FT_COLUMN_PAGINATION:
        raise parameter_invalid(f"{what}: ColumnPaginationFilter is not supported by the local Tablestore.")
    raise parameter_invalid(f"{what}: unknown filter type {message.type}.")
