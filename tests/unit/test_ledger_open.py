"""``Ledger(url)`` opens the backend the URL names, and loads nothing the URL does not need."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from immflow.ledger import Ledger, LedgerError
from immflow.ledger.sql import SqlBackend
from immflow.ledger.tablestore import TablestoreBackend


def test_the_url_picks_the_backend(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMMFLOW_OTS_ENDPOINT", raising=False)
    monkeypatch.setenv("IMMFLOW_REGION", "cn-shanghai")
    tablestore = Ledger("tablestore://immflow").backend
    assert isinstance(tablestore, TablestoreBackend)
    assert tablestore.endpoint == "https://immflow.cn-shanghai.ots.aliyuncs.com"
    monkeypatch.setenv("IMMFLOW_OTS_ENDPOINT", "http://127.0.0.1:9414")
    assert _endpoint(Ledger("tablestore://immflow")) == "http://127.0.0.1:9414"
    assert _endpoint(Ledger("tablestore://immflow", endpoint="http://x:1")) == "http://x:1"
    assert isinstance(Ledger(f"sqlite:///{tmp_path}/l.sqlite3").backend, SqlBackend)


def _endpoint(ledger: Ledger) -> str:
    assert isinstance(ledger.backend, TablestoreBackend)
    return ledger.backend.endpoint


@pytest.mark.parametrize("url", ["tablestore://", "tablestore://a/b"])
def test_a_tablestore_url_names_one_instance(url: str) -> None:
    with pytest.raises(LedgerError, match="tablestore://<instance name>"):
        Ledger(url).list_runs()


def test_a_tablestore_ledger_without_keys_says_where_keys_come_from(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    ledger = Ledger("tablestore://immflow", endpoint="http://127.0.0.1:1").backend
    assert isinstance(ledger, TablestoreBackend)
    with pytest.raises(LedgerError, match=r"ALIBABA_CLOUD_ACCESS_KEY_ID .* RAM role"):
        ledger.credentials()


@pytest.mark.parametrize(
    ("statement", "absent"),
    [
        ("import immflow.ledger", ("sqlalchemy", "tablestore")),
        ("from immflow.ledger import Ledger; Ledger('sqlite:///:memory:').list_runs()", ("tablestore",)),
        (
            "from immflow.ledger import Ledger; Ledger('sqlite:///:memory:').list_runs()",
            ("sqlalchemy.dialects.mysql", "sqlalchemy.dialects.postgresql"),
        ),
        ("from immflow.ledger import Ledger; Ledger('tablestore://immflow').backend", ("sqlalchemy",)),
        # Opening a ledger loads its backend only when it is first used.
        ("from immflow.ledger import Ledger; Ledger('tablestore://immflow')", ("tablestore",)),
    ],
)
def test_a_backend_loads_only_what_its_url_needs(statement: str, absent: tuple[str, ...]) -> None:
    check = f"{statement}; import sys; print([m for m in {list(absent)!r} if m in sys.modules])"
    printed = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout
    assert printed.strip() == "[]"


def test_a_fresh_sqlite_ledger_opened_while_another_process_creates_it_waits(tmp_path: Path) -> None:
    """Switching a new file to WAL takes an exclusive lock without SQLite's busy wait; opening the
    ledger while another connection is writing the fresh file must wait, not fail "database is locked"."""
    path = tmp_path / "fresh.sqlite3"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE held (a)")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        assert Ledger(f"sqlite:///{path}").list_runs() == []
    finally:
        release.join()
        other.close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)
