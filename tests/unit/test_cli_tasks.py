"""`immflow tasks list` and `immflow runs list|show`: an empty ledger said in words; URIs whole at 80 columns."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from immflow.cli import main
from immflow.ledger import Ledger, NewRun, NewTask, utcnow


def _sql_ledger(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    """A SQL ledger the CLI reads (IMMFLOW_LEDGER_URL), with its tables."""
    url = f"sqlite:///{state_dir / 'ledger.sqlite3'}"
    monkeypatch.setenv("IMMFLOW_LEDGER_URL", url)
    return Ledger(url)


def test_empty_ledger_is_said_in_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _sql_ledger(tmp_path, monkeypatch).list_runs() == []  # the tables, no rows
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


def test_uris_print_whole_on_their_own_line_in_an_80_column_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    ledger = _sql_ledger(tmp_path, monkeypatch)
    now = utcnow()
    source_key = "uploads/videos/" + "a-rather-long-folder-name/" * 3 + "clip.mp4"
    output = f"oss://media/processed/{source_key.removesuffix('.mp4')}/web.mp4"
    ledger.ensure_run(NewRun("run-1", "media", source_key, "E", "ObjectCreated:PutObject", now), now=now)
    new = NewTask(
        "c1", "run-1", "videos", "web", "MediaConvert", "CreateMediaConvertTask", None, 1, [], {}, "{}", {}
    )
    ledger.claim_task(new, now=now, expires_at=now + timedelta(minutes=5))
    ledger.mark_created("c1", task_id="MediaConvert-" + "0" * 36, now=now)
    ledger.record_result(
        "MediaConvert-" + "0" * 36,
        status="Succeeded",
        code="",
        message="",
        started_at=now,
        ended_at=now,
        outputs=[output],
        now=now,
    )
    runner = CliRunner()
    shown = runner.invoke(main, ["runs", "show", "run-1", "--state-dir", str(tmp_path)])
    listed = runner.invoke(main, ["runs", "list", "--state-dir", str(tmp_path)])
    tasks = runner.invoke(main, ["tasks", "list", "--state-dir", str(tmp_path)])
    assert shown.exit_code == listed.exit_code == tasks.exit_code == 0
    lines = [line.strip() for line in shown.output.splitlines()]
    assert f"oss://media/{source_key}" in lines and output in lines
    assert f"oss://media/{source_key}" in [line.strip() for line in listed.output.splitlines()]
    assert any(line.startswith("MediaConvert-" + "0" * 36) for line in tasks.output.splitlines())


def test_runs_list_shows_and_filters_superseded_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = _sql_ledger(tmp_path, monkeypatch)
    now = utcnow()
    first = ledger.start_run(
        NewRun("", "media", "in/a.png", "A", "ObjectCreated:PutObject", now, request_id="r1"), now=now
    ).run
    second = ledger.start_run(
        NewRun(
            "",
            "media",
            "in/a.png",
            "B",
            "ObjectCreated:PutObject",
            now + timedelta(seconds=1),
            request_id="r2",
        ),
        now=now + timedelta(seconds=1),
    ).run
    assert first is not None and second is not None
    ledger.finish_run(first.run_id, manifest_uri="oss://media/m/1.json", now=now)
    ledger.supersede_run(first.run_id, by=second.run_id, now=now)
    runner = CliRunner()
    listed = runner.invoke(main, ["runs", "list", "--status", "Superseded", "--state-dir", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    assert f"{first.run_id}  Superseded  by {second.run_id}  run #1 of its key" in listed.output
    assert second.run_id not in listed.output.replace(f"by {second.run_id}", "")
    as_json = runner.invoke(main, ["runs", "list", "--json", "--state-dir", str(tmp_path)])
    runs = {run["run_id"]: run for run in json.loads(as_json.output)}
    assert (
        runs[first.run_id]["status"] == "Superseded" and runs[first.run_id]["superseded_by"] == second.run_id
    )
    assert runs[second.run_id]["sequence"] == 2
