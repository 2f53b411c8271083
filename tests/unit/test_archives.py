"""Reading a zip's central directory with ranged reads: counts, declared sizes, zip64, data before the
zip, limits that stop early, and never the file data."""

from __future__ import annotations

import io
import os
import struct
import zipfile
from collections.abc import Iterator

import pytest
from immflow.archives import (
    IMM_MAX_ENTRIES,
    IMM_MAX_ZIP_BYTES,
    ArchiveLimits,
    NotAZipError,
    ZipDirectory,
    over_limits,
    read_zip_directory,
)
from pydantic import ByteSize, ValidationError


class Reader:
    """Serves ranged reads of `data` in 64 KiB chunks, counting the bytes it hands out."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.served = 0

    def __call__(self, first: int, last: int) -> Iterator[bytes]:
        assert 0 <= first <= last < len(self.data), (first, last, len(self.data))
        for start in range(first, last + 1, 65536):
            chunk = self.data[start : min(last + 1, start + 65536)]
            self.served += len(chunk)
            yield chunk


def _zip(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _limits(**fields: object) -> ArchiveLimits:
    """Limits as a pipeline file gives them (sizes as text, such as "8MB")."""
    return ArchiveLimits.model_validate(fields)


def _read(data: bytes, limits: ArchiveLimits | None = None) -> tuple[ZipDirectory, Reader]:
    reader = Reader(data)
    return read_zip_directory(reader, len(data), limits), reader


def test_entries_and_declared_sizes_read_from_the_directory_only() -> None:
    data = _zip({"a/": b"", "a/1.bin": os.urandom(3_000_000), "b.txt": b"x" * 10}, zipfile.ZIP_STORED)
    directory, reader = _read(data)
    assert directory == ZipDirectory(3, 3_000_010)
    assert reader.served < 70_000  # the tail and the directory, not the 3 MB of data


def test_a_bomb_is_over_its_limit_and_counting_stops_at_the_first_size_past_it() -> None:
    bomb = _zip({f"{n}.bin": bytes(5_000_000) for n in range(3)})
    assert len(bomb) < 100_000
    limits = _limits(max_uncompressed_size="8MB")
    directory, _ = _read(bomb, limits)
    assert directory == ZipDirectory(3, 10_000_000, complete=False)
    problem = over_limits(directory, limits)
    assert problem is not None and "more than 10,000,000 bytes" in problem and "8,000,000" in problem
    assert over_limits(_read(bomb)[0], ArchiveLimits()) is None


def test_too_many_entries_is_known_from_the_end_record_alone() -> None:
    data = _zip({f"{n}.txt": b"" for n in range(5)})
    directory, reader = _read(data, ArchiveLimits(max_entries=3))
    assert directory.entries == 5 and not directory.complete
    assert reader.served == len(data)  # the whole (small) tail, and no second read of the directory
    assert "5 entries, more than the limit of 3 (max_entries)" in (
        over_limits(directory, ArchiveLimits(max_entries=3)) or ""
    )


def test_a_lying_entry_counts_as_what_it_declares() -> None:
    data = bytearray(_zip({"small.txt": b"tiny"}))
    header = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, header + 24, 0xFFFFFFF0)
    assert _read(bytes(data))[0] == ZipDirectory(1, 0xFFFFFFF0)


def test_zip64_and_data_before_the_zip() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for n in range(70_000):  # more than a classic end record counts: zip64
            archive.writestr(f"{n}", b"ab")
    data = buffer.getvalue()
    assert _read(data)[0] == ZipDirectory(70_000, 140_000)
    assert _read(b"#!self-extracting stub\n" * 100 + data)[0] == ZipDirectory(70_000, 140_000)
    assert _read(b"MZ" * 500 + _zip({"a": b"abc"}))[0] == ZipDirectory(1, 3)


@pytest.mark.parametrize("data", [b"", b"not a zip at all", b"PK\x05\x06short"])
def test_no_directory_is_not_a_zip(data: bytes) -> None:
    with pytest.raises(NotAZipError):
        _read(data)


def test_limits_default_to_imms_and_may_only_be_lowered() -> None:
    assert ArchiveLimits() == ArchiveLimits(
        max_entries=IMM_MAX_ENTRIES, max_uncompressed_size=ByteSize(IMM_MAX_ZIP_BYTES)
    )
    assert _limits(max_uncompressed_size="2GiB").max_uncompressed_size == 2 * 1024**3
    with pytest.raises(ValidationError, match="less than or equal to 80000"):
        ArchiveLimits(max_entries=80_001)
    with pytest.raises(ValidationError):
        _limits(max_uncompressed_size="201GB")
    with pytest.raises(ValidationError):
        ArchiveLimits.model_validate({"max_files": 3})
