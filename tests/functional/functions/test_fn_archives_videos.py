"""Task types with other output layouts: a folder (FileUncompression), none (ArchiveFileInspection,
which takes no Tags), and MediaConvert's media file plus numbered snapshots."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests.support.handlers import Harness
from tests.support.media import make_video, png


def test_an_archive_is_extracted_and_inspected(harness: Harness) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.png", png("red"))
        archive.writestr("sub/b.txt", "hello")
    key = harness.key("archives", "bundle.zip")
    started = harness.on_upload(harness.put(key, buffer.getvalue()))["started"]
    assert len(started) == 2
    run_id = harness.task(started[0]).run_id
    harness.run_to_end(run_id)
    tasks = {t.task_name: t for t in harness.ledger.tasks_of_run(run_id)}
    folder = f"oss://fn-media/processed/uploads/archives/{harness.prefix}/bundle/"
    assert tasks["unzip"].status == "Succeeded"
    assert sorted(tasks["unzip"].outputs) == [f"{folder}a.png", f"{folder}sub/b.txt"]
    assert tasks["inspect"].status == "Succeeded" and tasks["inspect"].outputs == []
    # No Tags reach IMM for these types; the ledger keeps them, so they can still be searched.
    assert "Tags" not in tasks["unzip"].request
    assert not harness.get_task("FileUncompression", started[0]).tags
    assert tasks["unzip"].tags["pipeline"] == "archives"


@pytest.mark.media
def test_a_video_gets_its_web_version_and_posters(harness: Harness, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    make_video(clip, size="160x120", rate=10, audio=False)
    key = harness.key("videos", "clip.mp4")
    [task_id] = harness.on_upload(harness.put(key, clip.read_bytes()))["started"]
    run_id = harness.task(task_id).run_id
    harness.run_to_end(run_id)
    web = harness.ledger.task_by_id(task_id)
    assert web is not None and web.status == "Succeeded"
    # The request went out as templates (MediaConvert expands them itself) ...
    assert web.request["Targets"][0]["URI"] == "oss://{bucket}/processed/{dirname}/{barename}/web"
    # ... and the outputs were found by listing OSS with the templates' patterns.
    folder = f"oss://fn-media/processed/uploads/videos/{harness.prefix}/clip"
    assert sorted(web.outputs) == [f"{folder}/poster-1.jpg", f"{folder}/poster-2.jpg", f"{folder}/web.mp4"]


def test_an_archive_too_big_for_one_notification_completes_at_once(harness: Harness) -> None:
    # ~800 entries: the inspection's whole result would be more than MNS's 64 KB message limit.
    names = [f"a-folder-with-a-rather-long-name/entry-number-{index:04d}-padded.txt" for index in range(800)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, b"x")
    key = harness.key("archives", "many.zip")
    started = harness.on_upload(harness.put(key, buffer.getvalue()))["started"]
    run_id = harness.task(started[0]).run_id
    fed = harness.run_to_end(run_id, timeout=60)  # no wait for reconcile
    assert all(len(body.encode()) <= 65536 for body in fed)
    tasks = {t.task_name: t for t in harness.ledger.tasks_of_run(run_id)}
    assert (tasks["inspect"].status, tasks["unzip"].status) == ("Succeeded", "Succeeded")
    assert len(tasks["unzip"].outputs) == 800
