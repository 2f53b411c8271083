"""Nothing acknowledged is lost when the Tablestore process is killed with SIGKILL and restarted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tablestore
from tablestore import INF_MAX, INF_MIN, Condition, Direction, Row, RowExistenceExpectation

from localcloud.core.ports import free_port
from tests.support.ots import create_table

ROOT = Path(__file__).resolve().parents[3]


class OtsProcess:
    def __init__(self, state_dir: Path, port: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "localcloud.ots", "--state-dir", str(state_dir), "--port", str(port)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("ots listening on "), line
        self.url = line.split()[-1]
        keys = json.loads((state_dir / "account.json").read_text())
        self.keys = (keys["access_key_id"], keys["access_key_secret"])

    def client(self) -> Any:
        return tablestore.OTSClient(self.url, *self.keys, "immflow", retry_policy=tablestore.NoRetryPolicy())

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def processes() -> Iterator[list[OtsProcess]]:
    started: list[OtsProcess] = []
    yield started
    for process in started:
        process.stop()


def test_kill_9_loses_no_acknowledged_write(tmp_path: Path, processes: list[OtsProcess]) -> None:
    port = free_port()
    first = OtsProcess(tmp_path, port)
    processes.append(first)
    client = first.client()
    create_table(client, "claims", [("key", "STRING"), ("n", "INTEGER")])
    for n in range(50):
        client.put_row(
            "claims", Row([("key", "k"), ("n", n)], [("owner", f"w{n}")]),
            Condition(RowExistenceExpectation.EXPECT_NOT_EXIST),
        )  # fmt: skip
    client.update_row(
        "claims", Row([("key", "k"), ("n", 7)], {"PUT": [("owner", "taken")]}), Condition("IGNORE")
    )
    client.delete_row("claims", Row([("key", "k"), ("n", 8)]), Condition("IGNORE"))
    first.kill()

    second = OtsProcess(tmp_path, port)
    processes.append(second)
    client = second.client()

    _, _, rows, _ = client.get_range(
        "claims", Direction.FORWARD, [("key", INF_MIN), ("n", INF_MIN)], [("key", INF_MAX), ("n", INF_MAX)],
        max_version=1,
    )  # fmt: skip
    owners = {row.primary_key[1][1]: row.attribute_columns[0][1] for row in rows}
    assert owners == {n: "taken" if n == 7 else f"w{n}" for n in range(50) if n != 8}
    assert client.list_table() == ("claims",)
