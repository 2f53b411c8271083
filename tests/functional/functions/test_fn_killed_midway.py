"""An on_task_done killed (kill -9, as the local cloud's fc.crash does) after recording a result and
before its follow-ups and the run's manifest: its result claim stays held until it expires, so FC's
retry of the same notification must finish the job instead of skipping it as "in progress"."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from immflow.flow import creation, results
from immflow.ledger import Ledger

from tests.support.handlers import FAN_OUT_PIPELINE, Harness, expire_open_claims
from tests.support.media import png


class Killed(BaseException):
    """The process died: nothing after this point ran, and no claim was released."""


def _kill_after_recording(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """The next on_task_done dies right after recording its result (as it starts the follow-ups),
    leaving its result claim held;
    returns what brings the process back to normal."""
    create_follow_ups, release = creation.create_all, Ledger.release_claim

    def die(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(Ledger, "release_claim", lambda self, key, *, now: None)  # never runs
        raise Killed

    def revive() -> None:
        monkeypatch.setattr(results, "create_all", create_follow_ups)
        monkeypatch.setattr(Ledger, "release_claim", release)

    monkeypatch.setattr(results, "create_all", die)
    return revive


def test_the_retry_of_a_killed_invocation_starts_the_follow_ups_and_finishes_the_run(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path(os.environ["IMMFLOW_PIPELINE"]).write_text(FAN_OUT_PIPELINE)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.png", png("navy"))
        archive.writestr("b.png", png("plum"))
    event = harness.put(harness.key("bundles", "killed.zip"), buffer.getvalue())
    [unzip_id] = harness.on_upload(event)["started"]
    unzip = harness.ledger.task_by_id(unzip_id)
    assert unzip is not None
    notification = harness.notification_for(unzip_id)

    revive = _kill_after_recording(monkeypatch)
    with pytest.raises(Killed):
        harness.on_task_done(notification)
    revive()
    recorded = harness.ledger.task_by_id(unzip_id)
    assert recorded is not None and recorded.status == "Succeeded"
    # Its follow-ups were claimed before its result was recorded: the run cannot look complete.
    follow_ups = [t for t in harness.ledger.tasks_of_run(unzip.run_id) if t.task_name == "pdf"]
    assert [t.status for t in follow_ups] == ["Creating", "Creating"]

    retried = harness.on_task_done(notification)  # FC's retry, while the dead one's claims are held
    assert (retried["outcome"], retried["follow_ups"]) == ("recorded", 0)
    run = harness.ledger.get_run(unzip.run_id)
    assert run is not None and run.status != "Done"
    expire_open_claims(harness, unzip.run_id)  # what time does to the dead invocation's claims
    assert harness.on_task_done(notification)["follow_ups"] == 2  # a later delivery (or reconcile)
    harness.run_to_end(unzip.run_id)
    run = harness.ledger.get_run(unzip.run_id)
    assert run is not None and run.status == "Done" and run.manifest_uri
