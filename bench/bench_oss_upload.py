"""Memory of the local OSS while it receives a big upload, against a 1 MiB upload as the baseline.

``python bench/bench_oss_upload.py [--size 1GiB] [--body generator|file]`` starts the local OSS
in a subprocess (``python -m localcloud.oss``), uploads with oss2 first 1 MiB (the baseline),
then ``--size`` bytes (default 1 GiB; ``--size 2GiB`` for the figure in the issue) as one
PutObject, and prints for each the server process's peak RSS growth over the upload (VmHWM,
reset before each upload through ``/proc/<pid>/clear_refs``, minus VmRSS before it), the ratio
of the big upload's peak RSS to the baseline's, and the upload's MB/s.

``--body generator`` (default) sends the bytes from a Python generator, which oss2 sends with
``Transfer-Encoding: chunked``; ``--body file`` writes them to a temporary file first and sends
it with ``Content-Length`` (``put_object_from_file``). oss2 checks the server's CRC-64 of the
body against its own (``enable_crc``), so a run also proves the streamed CRC right.

Target: memory flat, the big upload's growth within a few MiB of the baseline's (the body is
written to disk in 1 MiB pieces). Before bodies were streamed, a 2 GiB upload peaked at ~2.3 GiB.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import oss2

from localcloud.core import standalone
from localcloud.core.account import Account

PIECE = 1 << 20
_UNITS = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}


def _size(text: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([a-zA-Z]*)", text.strip())
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 1GiB, 512MiB or 1048576")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def _status_kib(pid: int, field: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of ``/proc/<pid>/status``, in KiB (psutil is not installed)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def _reset_peak(pid: int) -> None:
    """Set VmHWM back to the current RSS (Linux 4.0+: ``echo 5 > /proc/<pid>/clear_refs``)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _pieces(size: int) -> Iterator[bytes]:
    """``size`` bytes in 1 MiB pieces that differ from each other, without holding more than one."""
    block = bytearray(os.urandom(PIECE))
    sent = 0
    while sent < size:
        block[:8] = sent.to_bytes(8, "big")
        piece = bytes(block[: min(PIECE, size - sent)])
        sent += len(piece)
        yield piece


class Measured:
    def __init__(self, size: int, rss_before_kib: int, peak_kib: int, seconds: float) -> None:
        self.size = size
        self.rss_before_kib = rss_before_kib
        self.peak_kib = peak_kib
        self.seconds = seconds

    @property
    def growth_mib(self) -> float:
        return (self.peak_kib - self.rss_before_kib) / 1024

    @property
    def mb_per_s(self) -> float:
        return self.size / 1e6 / self.seconds


def _upload(bucket: oss2.Bucket, pid: int, key: str, size: int, body: str, tmp: Path) -> Measured:
    path = tmp / "body.bin"
    if body == "file":
        with open(path, "wb") as out:
            for piece in _pieces(size):
                out.write(piece)
    rss_before = _status_kib(pid, "VmRSS")
    _reset_peak(pid)
    start = time.perf_counter()
    if body == "file":
        result = bucket.put_object_from_file(key, str(path))
    else:
        result = bucket.put_object(key, _pieces(size))
    seconds = time.perf_counter() - start
    peak = _status_kib(pid, "VmHWM")
    path.unlink(missing_ok=True)
    if result.status != 200 or bucket.head_object(key).content_length != size:
        raise RuntimeError(f"the upload of {key} did not store {size} bytes")
    return Measured(size, rss_before, peak, seconds)


def _start_oss(state_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """The local OSS in its own process, and its URL."""
    return standalone.spawn("oss", state_dir, "--log-level", "WARNING")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=_size, default=1 << 30, help="bytes of the big upload (default 1GiB)")
    parser.add_argument("--body", choices=("generator", "file"), default="generator")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-oss-upload-") as tmp_name:
        tmp = Path(tmp_name)
        state_dir = tmp / "state"
        state_dir.mkdir()
        account = Account.load_or_create(state_dir)
        process, endpoint = _start_oss(state_dir)
        try:
            bucket = oss2.Bucket(
                oss2.Auth(account.access_key_id, account.access_key_secret), endpoint, "bench-upload"
            )
            bucket.create_bucket()
            _upload(bucket, process.pid, "warm-up", PIECE, args.body, tmp)  # imports, threads, caches
            baseline = _upload(bucket, process.pid, "baseline", PIECE, args.body, tmp)
            big = _upload(bucket, process.pid, "big", args.size, args.body, tmp)
        finally:
            process.terminate()
            process.wait(timeout=30)
    label = f"{args.size / (1 << 20):g} MiB"
    print(f"local OSS, PutObject with oss2 ({args.body} body), server peak RSS growth over the upload")
    print(
        f"  baseline  1 MiB upload  : {baseline.growth_mib:7.1f} MiB  (peak RSS {baseline.peak_kib / 1024:.1f} MiB)"
    )
    print(
        f"  big {label:>10} upload: {big.growth_mib:7.1f} MiB  (peak RSS {big.peak_kib / 1024:.1f} MiB), "
        f"{big.mb_per_s:.0f} MB/s"
    )
    print(
        f"  peak RSS ratio big/baseline: {big.peak_kib / baseline.peak_kib:.2f}; "
        f"growth difference: {big.growth_mib - baseline.growth_mib:+.1f} MiB "
        f"(target: within a few MiB; the body is {args.size / (1 << 20):g} MiB)"
    )


if __name__ == "__main__":
    main()
