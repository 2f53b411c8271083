"""Frames between the local FC and a function's worker process, over a pair of pipes.

A frame is a 4-byte big-endian length, a JSON header of that length, then ``header["size"]``
bytes of payload. The worker's stdout and stderr are left to the function (FC passes them to
the log), so the frames travel on their own file descriptors.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

_LENGTH = struct.Struct(">I")


def write_frame(fd: int, header: dict[str, Any], payload: bytes = b"") -> None:
    head = json.dumps({**header, "size": len(payload)}).encode()
    data = _LENGTH.pack(len(head)) + head + payload
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exactly(fd: int, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError("the other end of the pipe closed")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> tuple[dict[str, Any], bytes]:
    (length,) = _LENGTH.unpack(_read_exactly(fd, _LENGTH.size))
    header: dict[str, Any] = json.loads(_read_exactly(fd, length))
    return header, _read_exactly(fd, int(header.get("size", 0)))
