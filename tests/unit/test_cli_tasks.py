"""`immflow tasks list` and `immflow runs list` on an empty ledger say so instead of printing an empty table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from immflow.cli import main
from immflow.ledger import Ledger


def test_empty_ledger_is_said_in_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMMFLOW_LEDGER_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    # A local cloud started with a SQL ledger names it in endpoints.json; the CLI reads that one.
    (tmp_path / "endpoints.json").write_text(json.dumps({"ledger": url}))
    assert Ledger(url).list_runs() == []  # the tables, no rows
    runner = CliRunner()
    every = runner.invoke(main, ["tasks", "list", "--state-dir", str(tmp_path)])
    failed = runner.invoke(main, ["tasks", "list", "--status", "Failed", "--state-dir", str(tmp_path)])
    runs = runner.invoke(main, ["runs", "list", "--state-dir", str(tmp_path)])
    assert (every.exit_code, every.output) == (0, "the ledger has no task yet\n")
    assert (failed.exit_code, failed.output) == (0, "no task matches\n")
    assert runs.exit_code == 0 and runs.output.startswith("the ledger has no run yet")


def test_without_a_local_cloud_the_cli_says_how_to_start_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IMMFLOW_LEDGER_URL", raising=False)
    found = CliRunner().invoke(main, ["tasks", "list", "--state-dir", str(tmp_path)])
    assert found.exit_code == 1
    assert "immflow local up --detach --state-dir" in found.output and "IMMFLOW_LEDGER_URL" in found.output
