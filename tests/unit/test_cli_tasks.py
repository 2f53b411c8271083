"""`immflow tasks list` and `immflow runs list` on an empty ledger say so instead of printing an empty table."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from immflow.cli import main
from immflow.ledger import Ledger


def test_empty_ledger_is_said_in_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMMFLOW_LEDGER_URL", raising=False)
    assert Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}").list_runs() == []  # the tables, no rows
    runner = CliRunner()
    every = runner.invoke(main, ["tasks", "list", "--state-dir", str(tmp_path)])
    failed = runner.invoke(main, ["tasks", "list", "--status", "Failed", "--state-dir", str(tmp_path)])
    runs = runner.invoke(main, ["runs", "list", "--state-dir", str(tmp_path)])
    assert (every.exit_code, every.output) == (0, "the ledger has no task yet\n")
    assert (failed.exit_code, failed.output) == (0, "no task matches\n")
    assert runs.exit_code == 0 and runs.output.startswith("the ledger has no run yet")
