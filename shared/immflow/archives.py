"""Archive limits for FileUncompression, checked before the task is created.

IMM extracts an archive by streaming it, and keeps the files already written when a task fails midway
(docs/imm.md "Limits"); a small zip that declares gigabytes would write them all. So before immflow
creates a FileUncompression task it reads the zip's **central directory** from OSS with ranged reads
(the end-of-central-directory record in the last 64 KiB, then the directory itself; never the file
data) and counts its entries and their declared uncompressed sizes. A task over its limits is
recorded ``Failed`` with `LIMIT_EXCEEDED` and a message naming the limit and how to raise it.

The defaults are IMM's documented limits (docs/imm.md "Limits"): 80,000 entries, and 200 GB for zip.
UNCONFIRMED: whether IMM's 200 GB bounds the archive or what it expands to; immflow applies it to
the declared uncompressed total, the stricter reading. The sizes checked are what the directory
declares: an entry whose data expands beyond its declared size is stopped by the extractor (the local
IMM writes at most the declared size and fails the task; what the cloud's IMM does is UNCONFIRMED).

Only zip has a directory to read: rar and 7z sources are not checked (logged), and a source that is
not a readable zip is left to IMM, which fails it with its own code.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from pydantic import BaseModel, ByteSize, ConfigDict, Field

from immflow.errors import ImmflowError

IMM_MAX_ENTRIES = 80_000
"""Entries IMM extracts or inspects in one archive (docs/imm.md "Limits")."""
IMM_MAX_ZIP_BYTES = 200 * 1000**3
"""200 GB, IMM's limit for a zip (docs/imm.md "Limits")."""
LIMIT_EXCEEDED = "ArchiveLimitExceeded"
"""The code a task over its archive limits is recorded ``Failed`` with (immflow's own, not IMM's)."""

_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_EOCD = b"PK\x06\x06"
_ZIP64_EOCD_SIZE = 56
_CENTRAL_HEADER = b"PK\x01\x02"
_CENTRAL_HEADER_SIZE = 46
_MAX_COMMENT = 0xFFFF
_ZIP64_EXTRA = 0x0001


class ArchiveLimits(BaseModel):
    """``limits:`` of a FileUncompression task in pipeline.yaml; each defaults to IMM's own limit and
    may only be lowered (IMM refuses more)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    max_entries: int = Field(default=IMM_MAX_ENTRIES, ge=1, le=IMM_MAX_ENTRIES)
    """Entries in the archive, files and folders."""
    max_uncompressed_size: ByteSize = Field(default=ByteSize(IMM_MAX_ZIP_BYTES), ge=1, le=IMM_MAX_ZIP_BYTES)
    """What the entries declare they expand to, in bytes or with a unit (``2GB``, ``500MiB``)."""


class NotAZipError(ImmflowError):
    """The object has no zip end-of-central-directory record: not a zip, or damaged."""


@dataclass(frozen=True)
class ZipDirectory:
    entries: int
    uncompressed_size: int
    """The sum of the entries' declared sizes; when the check stopped early, what it had counted."""
    complete: bool = True
    """False when counting stopped at the first size past the limit it was given."""


RangeReader = Callable[[int, int], Iterable[bytes]]
"""Reads bytes ``first..last`` (inclusive) of the object, in chunks."""


def _read(read_range: RangeReader, first: int, last: int) -> bytes:
    return b"".join(read_range(first, last))


def read_zip_directory(
    read_range: RangeReader, size: int, limits: ArchiveLimits | None = None
) -> ZipDirectory:
    """The entry count and declared uncompressed total of the zip of `size` bytes `read_range` reads.
    Reads the last 64 KiB, then the central directory, streamed. With `limits`, stops as soon as the
    archive is over them: before the directory when it has too many entries, else at the first size
    that takes the total past the limit. Raises `NotAZipError` when there is no directory to read."""
    tail_start = max(0, size - (_EOCD_SIZE + _MAX_COMMENT))
    tail = _read(read_range, tail_start, size - 1) if size else b""
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < _EOCD_SIZE:
        raise NotAZipError("no end-of-central-directory record")
    entries, directory_size, directory_offset = struct.unpack_from("<xxxxxxxxxxHII", tail, at)
    directory_end = tail_start + at
    if entries == 0xFFFF or directory_size == 0xFFFFFFFF or directory_offset == 0xFFFFFFFF:
        directory_end, entries, directory_size = _zip64_end(read_range, tail, tail_start, at)
    if limits is not None and entries > limits.max_entries:
        return ZipDirectory(entries, 0, complete=False)
    # The directory ends where the end record starts; counting back from there also finds it in a zip
    # with data before it (a self-extracting archive), whose stored offsets are off by that much.
    directory_start = directory_end - directory_size
    if directory_start < 0:
        raise NotAZipError("the central directory would start before the object")
    total = 0
    stream = _Stream(read_range(directory_start, directory_end - 1) if directory_size else ())
    for counted in range(entries):
        header = stream.take(_CENTRAL_HEADER_SIZE)
        if header[:4] != _CENTRAL_HEADER:
            raise NotAZipError(f"central directory entry {counted + 1} is damaged")
        declared, name_length, extra_length, comment_length = struct.unpack_from("<IHHH", header, 24)
        stream.take(name_length)
        extra = stream.take(extra_length)
        stream.take(comment_length)
        total += _zip64_size(extra) if declared == 0xFFFFFFFF else declared
        if limits is not None and total > limits.max_uncompressed_size:
            return ZipDirectory(entries, total, complete=False)
    return ZipDirectory(entries, total)


def _zip64_end(read_range: RangeReader, tail: bytes, tail_start: int, at: int) -> tuple[int, int, int]:
    """Where the zip64 end record starts, with its entry count and directory size."""
    locator_at = at - _ZIP64_LOCATOR_SIZE
    if locator_at < 0 or tail[locator_at : locator_at + 4] != _ZIP64_LOCATOR:
        raise NotAZipError("a zip64 archive without its zip64 locator")
    (stored_offset,) = struct.unpack_from("<Q", tail, locator_at + 8)
    # Where the locator says (no data before the zip), else right before the locator.
    for position in (stored_offset, tail_start + locator_at - _ZIP64_EOCD_SIZE):
        if position < 0:
            continue
        record = _read(read_range, position, position + _ZIP64_EOCD_SIZE - 1)
        if record[:4] == _ZIP64_EOCD and len(record) == _ZIP64_EOCD_SIZE:
            entries, directory_size = struct.unpack_from("<QQ", record, 32)
            return position, int(entries), int(directory_size)
    raise NotAZipError("the zip64 end-of-central-directory record is missing")


def _zip64_size(extra: bytes) -> int:
    position = 0
    while position + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, position)
        if kind == _ZIP64_EXTRA and length >= 8:
            (value,) = struct.unpack_from("<Q", extra, position + 4)
            return int(value)
        position += 4 + length
    raise NotAZipError("an entry declares a zip64 size without its zip64 extra field")


class _Stream:
    """Bytes from chunks, taken a piece at a time (the central directory, never held whole)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = bytearray()
        self._position = 0

    def take(self, count: int) -> bytes:
        while len(self._buffer) - self._position < count:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise NotAZipError("the central directory ends early")
            del self._buffer[: self._position]  # keep only what is not taken yet
            self._position = 0
            self._buffer += chunk
        piece = bytes(self._buffer[self._position : self._position + count])
        self._position += count
        return piece


def over_limits(directory: ZipDirectory, limits: ArchiveLimits) -> str | None:
    """What the archive exceeds, in words, or None."""
    if directory.entries > limits.max_entries:
        return f"it has {directory.entries:,} entries, more than the limit of {limits.max_entries:,} (max_entries)"
    if directory.uncompressed_size > limits.max_uncompressed_size:
        return (
            f"its entries declare {'more than ' if not directory.complete else ''}"
            f"{directory.uncompressed_size:,} bytes uncompressed, more than the limit of "
            f"{int(limits.max_uncompressed_size):,} bytes (max_uncompressed_size)"
        )
    return None
