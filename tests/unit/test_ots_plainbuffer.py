"""The local Tablestore's PlainBuffer codec against the SDK's own writer and reader."""

from __future__ import annotations

import pytest
from tablestore import INF_MAX, INF_MIN
from tablestore.plainbuffer.plain_buffer_builder import PlainBufferBuilder
from tablestore.plainbuffer.plain_buffer_coded_stream import PlainBufferCodedInputStream
from tablestore.plainbuffer.plain_buffer_stream import PlainBufferInputStream

from localcloud.ots import plainbuffer
from localcloud.ots.errors import OtsError
from localcloud.ots.plainbuffer import Cell, CellOp


def test_reads_what_the_sdk_writes_for_a_put() -> None:
    data = bytes(
        PlainBufferBuilder.serialize_for_put_row(
            [("id", "héllo"), ("n", -7), ("b", bytearray(b"\x00\x01"))],
            [
                ("s", "x"),
                ("i", 2**62),
                ("d", -0.5),
                ("t", True),
                ("blob", bytearray(b"\xff")),
                ("ts", 1, 1234),
            ],
        )
    )

    row = plainbuffer.read_row(data)

    assert row.primary_key == [("id", "héllo"), ("n", -7), ("b", b"\x00\x01")]
    assert [(c.name, c.value, c.timestamp, c.op) for c in row.cells] == [
        ("s", "x", None, CellOp.PUT),
        ("i", 2**62, None, CellOp.PUT),
        ("d", -0.5, None, CellOp.PUT),
        ("t", True, None, CellOp.PUT),
        ("blob", b"\xff", None, CellOp.PUT),
        ("ts", 1, 1234, CellOp.PUT),
    ]
    assert not row.delete_marker


def test_reads_the_cell_types_of_an_update() -> None:
    data = bytes(
        PlainBufferBuilder.serialize_for_update_row(
            [("id", "a")],
            {"PUT": [("p", 1)], "DELETE": [("d", None, 99)], "DELETE_ALL": ["gone"], "INCREMENT": [("c", 5)]},
        )
    )

    cells = plainbuffer.read_row(data).cells

    assert [(c.name, c.value, c.timestamp, c.op) for c in cells] == [
        ("p", 1, None, CellOp.PUT),
        ("d", None, 99, CellOp.DELETE_ONE_VERSION),
        ("gone", None, None, CellOp.DELETE_ALL_VERSIONS),
        ("c", 5, None, CellOp.INCREMENT),
    ]


def test_reads_a_delete_marker_and_infinite_bounds() -> None:
    assert plainbuffer.read_row(
        bytes(PlainBufferBuilder.serialize_for_delete_row([("id", "a")]))
    ).delete_marker
    bounds = plainbuffer.read_row(
        bytes(PlainBufferBuilder.serialize_primary_key([("a", INF_MIN), ("b", INF_MAX)]))
    )
    assert bounds.primary_key == [("a", plainbuffer.INF_MIN), ("b", plainbuffer.INF_MAX)]


def test_the_sdk_reads_what_the_local_service_writes() -> None:
    rows = plainbuffer.write_rows(
        [
            ([("id", "a"), ("n", 1)], [Cell("s", "é", 5), Cell("d", 1.25, 6), Cell("b", b"\x00", 7)]),
            ([("id", "b"), ("n", -1)], []),
        ]
    )

    parsed = PlainBufferCodedInputStream(PlainBufferInputStream(rows)).read_rows()

    assert [(r.primary_key, r.attribute_columns) for r in parsed] == [
        ([("id", "a"), ("n", 1)], [("s", "é", 5), ("d", 1.25, 6), ("b", bytearray(b"\x00"), 7)]),
        ([("id", "b"), ("n", -1)], []),
    ]


def test_a_column_value_of_a_condition_reads_back() -> None:
    for value in ("x", 3, 2.5, False, bytearray(b"\x01")):
        read = plainbuffer.read_variant(bytes(PlainBufferBuilder.serialize_column_value(value)))
        assert read == (bytes(value) if isinstance(value, bytearray) else value)


@pytest.mark.parametrize("corrupt_at", [-1, -3, 9])
def test_a_damaged_row_is_a_parameter_error(corrupt_at: int) -> None:
    data = bytearray(PlainBufferBuilder.serialize_for_put_row([("id", "abc")], [("v", 1)]))
    data[corrupt_at] ^= 0x55

    with pytest.raises(OtsError) as caught:
        plainbuffer.read_row(bytes(data))

    assert caught.value.code == "OTSParameterInvalid"


def test_truncated_and_empty_rows_are_parameter_errors() -> None:
    data = bytes(PlainBufferBuilder.serialize_for_put_row([("id", "abc")], [("v", 1)]))
    for broken in (b"", data[:3], data[:-1], data + b"\x00"):
        with pytest.raises(OtsError):
            plainbuffer.read_row(broken)
