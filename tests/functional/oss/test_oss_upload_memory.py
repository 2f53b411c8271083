"""The local OSS in its own process: a 64 MiB upload grows its memory far less than the body, and
a kill -9 in the middle of an upload leaves nothing visible behind."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import oss2
import pytest

from localcloud.core import standalone
from localcloud.core.account import Account
from tests.support.wait import wait_until

MIB = 1 << 20
BODY = 64 * MIB
#: Far below the body: the old server held the whole body (and a chunked one twice) in memory.
MAX_GROWTH = 16 * MIB


def _status_bytes(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"/proc/{pid}/status has no {field}")


class LocalOss:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.process, self.url = standalone.spawn("oss", state_dir)
        account = Account.load_or_create(state_dir)
        self.auth = oss2.Auth(account.access_key_id, account.access_key_secret)

    def bucket(self, name: str) -> oss2.Bucket:
        return oss2.Bucket(self.auth, self.url, name)

    def peak_growth(self, upload: Callable[[], object]) -> int:
        """How far the server's peak RSS rose over its RSS before, while ``upload()`` ran."""
        pid = self.process.pid
        before = _status_bytes(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM back to the current RSS
        upload()
        return _status_bytes(pid, "VmHWM") - before

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def local_oss(tmp_path: Path) -> Iterator[LocalOss]:
    server = LocalOss(tmp_path)
    yield server
    if server.process.poll() is None:
        server.stop()


def _pieces(size: int, stop: threading.Event | None = None) -> Iterator[bytes]:
    block = hashlib.sha256(b"memory").digest() * (MIB // 32)
    for number in range(size // MIB):
        if stop is not None and number == size // MIB // 4:
            stop.wait(30)  # hold the upload open a quarter of the way in
        yield block


def test_a_64_mib_upload_grows_the_server_far_less_than_its_body(local_oss: LocalOss) -> None:
    bucket = local_oss.bucket("memory")
    bucket.create_bucket()
    bucket.put_object("warm-up", b"w" * MIB)
    body = b"".join(_pieces(BODY))
    sized = local_oss.peak_growth(lambda: bucket.put_object("sized.bin", body))
    chunked = local_oss.peak_growth(lambda: bucket.put_object("chunked.bin", _pieces(BODY)))
    upload_id = bucket.init_multipart_upload("parts.bin").upload_id
    part = local_oss.peak_growth(lambda: bucket.upload_part("parts.bin", upload_id, 1, _pieces(BODY)))
    assert bucket.head_object("chunked.bin").content_length == BODY
    assert max(sized, chunked, part) < MAX_GROWTH, (
        f"peak RSS growth: {sized / MIB:.1f} MiB (Content-Length), {chunked / MIB:.1f} MiB (chunked), "
        f"{part / MIB:.1f} MiB (UploadPart) for a {BODY // MIB} MiB body"
    )


def test_kill_9_in_the_middle_of_an_upload_leaves_nothing_visible(
    local_oss: LocalOss, tmp_path: Path
) -> None:
    bucket = local_oss.bucket("killed")
    bucket.create_bucket()
    hold = threading.Event()
    failure: list[BaseException] = []

    def upload() -> None:
        try:
            bucket.put_object("half.bin", _pieces(BODY, hold))
        except BaseException as exc:  # the server dies under it
            failure.append(exc)

    sender = threading.Thread(target=upload, daemon=True)
    sender.start()
    data_dir = tmp_path / "oss" / "data"
    wait_until(
        lambda: any(p.stat().st_size >= 8 * MIB for p in data_dir.glob(".tmp-*")),
        timeout=30,
        what="the body reaching the store's temporary file",
    )
    local_oss.process.kill()
    local_oss.process.wait(timeout=30)
    hold.set()
    sender.join(timeout=30)
    assert failure, "the upload cannot have succeeded against a killed server"

    restarted = LocalOss(tmp_path)
    try:
        bucket = restarted.bucket("killed")
        with pytest.raises(oss2.exceptions.NotFound):
            bucket.head_object("half.bin")
        assert [o.key for o in oss2.ObjectIterator(bucket)] == []
        assert list(data_dir.rglob(".tmp-*")) == []  # swept on start
    finally:
        restarted.stop()
