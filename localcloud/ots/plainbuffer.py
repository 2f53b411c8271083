"""Tablestore's PlainBuffer row format: read the rows the SDK sends, write the rows it reads.

Rows inside the protobuf messages (PutRow's row, UpdateRow's row change, primary keys, GetRange
bounds, the rows of every response) are PlainBuffer bytes (docs/tablestore-local.md, "PlainBuffer"):
a little-endian header ``0x75``, then tagged sections (primary key cells, attribute cells, an
optional delete marker) with a CRC-8 per cell and per row. The SDK's own reader cannot read the
cell-type and infinite-bound tags a server receives, so the local server carries its own codec.

Values are Python values: ``int`` (INTEGER), ``float`` (DOUBLE), ``bool`` (BOOLEAN), ``str``
(STRING), ``bytes`` (BINARY); the bounds of a range are :data:`INF_MIN` and :data:`INF_MAX`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import Enum

from localcloud.ots.errors import parameter_invalid

HEADER = 0x75
TAG_ROW_PK = 0x01
TAG_ROW_DATA = 0x02
TAG_CELL = 0x03
TAG_CELL_NAME = 0x04
TAG_CELL_VALUE = 0x05
TAG_CELL_TYPE = 0x06
TAG_CELL_TIMESTAMP = 0x07
TAG_DELETE_ROW_MARKER = 0x08
TAG_ROW_CHECKSUM = 0x09
TAG_CELL_CHECKSUM = 0x0A

VT_INTEGER = 0x0
VT_DOUBLE = 0x1
VT_BOOLEAN = 0x2
VT_STRING = 0x3
VT_BLOB = 0x7
VT_INF_MIN = 0x9
VT_INF_MAX = 0xA
VT_AUTO_INCREMENT = 0xB


class CellOp(Enum):
    """What an UpdateRow cell asks for (the cell-type byte; absent means put)."""

    PUT = 0
    DELETE_ALL_VERSIONS = 0x1
    DELETE_ONE_VERSION = 0x3
    INCREMENT = 0x4


class Bound(Enum):
    INF_MIN = VT_INF_MIN
    INF_MAX = VT_INF_MAX
    AUTO_INCREMENT = VT_AUTO_INCREMENT


INF_MIN = Bound.INF_MIN
INF_MAX = Bound.INF_MAX

Value = int | float | bool | str | bytes
PkValue = int | str | bytes | Bound


@dataclass
class Cell:
    name: str
    value: Value | None
    timestamp: int | None = None
    op: CellOp = CellOp.PUT


@dataclass
class ParsedRow:
    primary_key: list[tuple[str, PkValue]]
    cells: list[Cell] = field(default_factory=list)
    delete_marker: bool = False


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return table


_CRC8 = _crc_table()


def _crc_bytes(crc: int, data: bytes) -> int:
    for byte in data:
        crc = _CRC8[(crc ^ byte) & 0xFF]
    return crc


def _crc_int8(crc: int, value: int) -> int:
    return _CRC8[(crc ^ value) & 0xFF]


def _crc_int32(crc: int, value: int) -> int:
    return _crc_bytes(crc, struct.pack("<I", value & 0xFFFFFFFF))


def _crc_int64(crc: int, value: int) -> int:
    return _crc_bytes(crc, struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF))


def _crc_value(crc: int, value: Value | Bound) -> int:
    if isinstance(value, Bound):
        return _crc_int8(crc, value.value)
    if isinstance(value, bool):
        return _crc_int8(_crc_int8(crc, VT_BOOLEAN), 1 if value else 0)
    if isinstance(value, int):
        return _crc_int64(_crc_int8(crc, VT_INTEGER), value)
    if isinstance(value, float):
        bits = struct.unpack("<q", struct.pack("<d", value))[0]
        return _crc_int64(_crc_int8(crc, VT_DOUBLE), bits)
    raw = value.encode() if isinstance(value, str) else value
    kind = VT_STRING if isinstance(value, str) else VT_BLOB
    return _crc_bytes(_crc_int32(_crc_int8(crc, kind), len(raw)), raw)


# --- reading ----------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what
        self.tag = -1

    def fail(self, problem: str) -> Exception:
        return parameter_invalid(f"The PlainBuffer {self.what} is malformed at byte {self.pos}: {problem}.")

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise self.fail("unexpected end of data")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def byte(self) -> int:
        return self.take(1)[0]

    def next_tag(self) -> int:
        self.tag = self.byte() if self.pos < len(self.data) else -1
        return self.tag

    def expect(self, tag: int, name: str) -> None:
        if self.tag != tag:
            raise self.fail(f"expected {name}, found tag {self.tag:#x}")

    def value(self) -> Value | Bound:
        """A cell value after TAG_CELL_VALUE: u32 length, type byte, payload."""
        length = self.u32()
        end = self.pos + length
        value = self.variant()
        if self.pos != end:
            raise self.fail("cell value length does not match its type")
        return value

    def variant(self) -> Value | Bound:
        kind = self.byte()
        if kind == VT_INTEGER:
            return int(struct.unpack("<q", self.take(8))[0])
        if kind == VT_DOUBLE:
            return float(struct.unpack("<d", self.take(8))[0])
        if kind == VT_BOOLEAN:
            return self.byte() != 0
        if kind in (VT_STRING, VT_BLOB):
            raw = self.take(self.u32())
            if kind == VT_BLOB:
                return raw
            try:
                return raw.decode()
            except UnicodeDecodeError:
                raise self.fail("a STRING value is not valid UTF-8") from None
        if kind in (VT_INF_MIN, VT_INF_MAX, VT_AUTO_INCREMENT):
            return Bound(kind)
        raise self.fail(f"unknown value type {kind:#x}")

    def cell(self) -> tuple[str, Value | Bound | None, int | None, CellOp, int]:
        """One cell, from TAG_CELL (current) up to its checksum; leaves the next tag current.

        Returns name, value, timestamp, operation and the cell's checksum.
        """
        self.next_tag()
        self.expect(TAG_CELL_NAME, "a cell name")
        try:
            name = self.take(self.u32()).decode()
        except UnicodeDecodeError:
            raise self.fail("a column name is not valid UTF-8") from None
        value: Value | Bound | None = None
        timestamp: int | None = None
        op = CellOp.PUT
        self.next_tag()
        if self.tag == TAG_CELL_VALUE:
            value = self.value()
            self.next_tag()
        if self.tag == TAG_CELL_TYPE:
            kind = self.byte()
            try:
                op = CellOp(kind)
            except ValueError:
                raise self.fail(f"unknown cell type {kind:#x} for column {name!r}") from None
            self.next_tag()
        if self.tag == TAG_CELL_TIMESTAMP:
            timestamp = int(struct.unpack("<q", self.take(8))[0])
            self.next_tag()
        self.expect(TAG_CELL_CHECKSUM, "a cell checksum")
        checksum = _cell_checksum(name, value, timestamp, op)
        if self.byte() != checksum:
            raise self.fail(f"checksum mismatch in cell {name!r}")
        self.next_tag()
        return name, value, timestamp, op, checksum

    def row(self) -> ParsedRow:
        """One row from TAG_ROW_PK (current) through its checksum."""
        self.expect(TAG_ROW_PK, "the primary key")
        self.next_tag()
        row = ParsedRow([])
        checksum = 0
        while self.tag == TAG_CELL:
            name, value, _, _, cell_checksum = self.cell()
            if value is None or isinstance(value, (bool, float)):
                raise self.fail(
                    f"primary key column {name!r} holds {_kind(value)}; primary keys are INTEGER, STRING or BINARY"
                )
            row.primary_key.append((name, value))
            checksum = _crc_int8(checksum, cell_checksum)
        if self.tag == TAG_ROW_DATA:
            self.next_tag()
            while self.tag == TAG_CELL:
                name, value, timestamp, op, cell_checksum = self.cell()
                if isinstance(value, Bound):
                    raise self.fail(f"column {name!r} holds {value.name}, which only a primary key may")
                row.cells.append(Cell(name, value, timestamp, op))
                checksum = _crc_int8(checksum, cell_checksum)
        if self.tag == TAG_DELETE_ROW_MARKER:
            row.delete_marker = True
            self.next_tag()
        checksum = _crc_int8(checksum, 1 if row.delete_marker else 0)
        self.expect(TAG_ROW_CHECKSUM, "the row checksum")
        if self.byte() != checksum:
            raise self.fail("row checksum mismatch")
        self.next_tag()
        return row


def _cell_checksum(name: str, value: Value | Bound | None, timestamp: int | None, op: CellOp) -> int:
    crc = _crc_bytes(0, name.encode())
    if value is not None:
        crc = _crc_value(crc, value)
    if timestamp is not None:
        crc = _crc_int64(crc, timestamp)
    if op is not CellOp.PUT:
        crc = _crc_int8(crc, op.value)
    return crc


def _kind(value: Value | Bound | None) -> str:
    if value is None:
        return "no value"
    return "a BOOLEAN" if isinstance(value, bool) else "a DOUBLE"


def read_row(data: bytes, what: str = "row") -> ParsedRow:
    """One PlainBuffer row (header included), checked cell by cell."""
    reader = _Reader(data, what)
    if len(data) < 4 or reader.u32() != HEADER:
        raise reader.fail("missing the PlainBuffer header 0x75")
    reader.next_tag()
    row = reader.row()
    if reader.tag != -1:
        raise reader.fail("trailing bytes after the row")
    return row


def read_rows(data: bytes, what: str = "rows") -> list[ParsedRow]:
    reader = _Reader(data, what)
    if not data:
        return []
    if len(data) < 4 or reader.u32() != HEADER:
        raise reader.fail("missing the PlainBuffer header 0x75")
    rows = []
    reader.next_tag()
    while reader.tag != -1:
        rows.append(reader.row())
    return rows


def read_variant(data: bytes, what: str = "column value") -> Value:
    """A bare value (type byte and payload), as a column condition carries it."""
    reader = _Reader(data, what)
    value = reader.variant()
    if isinstance(value, Bound) or reader.pos != len(data):
        raise reader.fail("not a single column value")
    return value


# --- writing ----------------------------------------------------------------------------------


def _value_bytes(value: Value | Bound) -> bytes:
    if isinstance(value, Bound):
        return bytes([value.value])
    if isinstance(value, bool):
        return bytes([VT_BOOLEAN, 1 if value else 0])
    if isinstance(value, int):
        return bytes([VT_INTEGER]) + struct.pack("<q", value)
    if isinstance(value, float):
        return bytes([VT_DOUBLE]) + struct.pack("<d", value)
    raw = value.encode() if isinstance(value, str) else value
    kind = VT_STRING if isinstance(value, str) else VT_BLOB
    return bytes([kind]) + struct.pack("<I", len(raw)) + raw


def _write_cell(out: bytearray, name: str, value: Value | Bound | None, timestamp: int | None) -> int:
    raw_name = name.encode()
    out += bytes([TAG_CELL, TAG_CELL_NAME]) + struct.pack("<I", len(raw_name)) + raw_name
    if value is not None:
        payload = _value_bytes(value)
        out += bytes([TAG_CELL_VALUE]) + struct.pack("<I", len(payload)) + payload
    if timestamp is not None:
        out += bytes([TAG_CELL_TIMESTAMP]) + struct.pack("<q", timestamp)
    checksum = _cell_checksum(name, value, timestamp, CellOp.PUT)
    out += bytes([TAG_CELL_CHECKSUM, checksum])
    return checksum


def _write_row(out: bytearray, primary_key: list[tuple[str, PkValue]], cells: list[Cell]) -> None:
    checksum = 0
    out.append(TAG_ROW_PK)
    for name, value in primary_key:
        checksum = _crc_int8(checksum, _write_cell(out, name, value, None))
    if cells:
        out.append(TAG_ROW_DATA)
        for cell in cells:
            checksum = _crc_int8(checksum, _write_cell(out, cell.name, cell.value, cell.timestamp))
    out += bytes([TAG_ROW_CHECKSUM, _crc_int8(checksum, 0)])


def write_row(primary_key: list[tuple[str, PkValue]], cells: list[Cell] | None = None) -> bytes:
    out = bytearray(struct.pack("<I", HEADER))
    _write_row(out, primary_key, cells or [])
    return bytes(out)


def write_rows(rows: list[tuple[list[tuple[str, PkValue]], list[Cell]]]) -> bytes:
    """Rows one after another behind one header, as GetRange answers them (empty for none)."""
    if not rows:
        return b""
    out = bytearray(struct.pack("<I", HEADER))
    for primary_key, cells in rows:
        _write_row(out, primary_key, cells)
    return bytes(out)
