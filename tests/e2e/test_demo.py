"""The whole chain, as a new user runs it: ``immflow demo --json`` from an empty state folder, then one
more upload with plain oss2. Every output is fetched from the local OSS and probed for real content."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import oss2
import pytest
from immflow.cli.local import functions_runtime
from immflow.ledger import RunRecord, local_ledger, run_id_for
from PIL import Image
from pypdf import PdfReader

from localcloud.fc.runtimes import RUNTIME_PYTHON, find_python
from tests.support.e2e import CLI, REPO
from tests.support.wait import wait_until

pytestmark = pytest.mark.e2e


def _bucket(endpoints: dict[str, str], name: str) -> oss2.Bucket:
    return oss2.Bucket(
        oss2.Auth(endpoints["access_key_id"], endpoints["access_key_secret"]), endpoints["oss"], name
    )


def _fetch(endpoints: dict[str, str], uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("oss://").partition("/")
    return bytes(_bucket(endpoints, bucket).get_object(key).read())


def _probe_media(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "probe.mp4"
    path.write_bytes(data)
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    )
    return result.stderr  # ffmpeg without an output describes the input's streams and exits 1


def _check_output(endpoints: dict[str, str], uri: str, source: str, tmp_path: Path) -> None:
    data = _fetch(endpoints, uri)
    assert data, uri
    if uri.endswith(".mp4"):
        streams = _probe_media(data, tmp_path)
        video = re.search(r"Video: (\w+).*?, (\d+)x(\d+)", streams)
        assert video and video.group(1) == "h264", streams
        width, height = int(video.group(2)), int(video.group(3))
        assert width <= 1280 and height <= 720 and abs(width / height - 16 / 9) < 0.05, (width, height)
        assert "Audio: aac" in streams, streams
    elif uri.endswith(".pdf"):
        pages = len(PdfReader(io.BytesIO(data)).pages)
        expected = {"report.docx": 3, "slides.pptx": 4}.get(source.rsplit("/", 1)[-1], 1)
        assert pages == expected, (uri, pages)
    elif uri.endswith((".jpg", ".jpeg", ".png")):
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            assert image.width > 0 and image.height > 0
            if uri.endswith("preview.jpg"):
                assert image.width == 640, (uri, image.size)


def test_demo_outputs_exist_with_real_content(demo: dict[str, Any], tmp_path: Path) -> None:
    assert demo["ok"] and demo["problems"] == []
    sources = {u["source"].rsplit("/", 1)[-1] for u in demo["uploads"]}
    assert {"clip.mp4", "report.docx", "slides.pptx", "sunrise.jpg", "sea.png", "holiday.zip"} <= sources
    for upload in demo["uploads"]:
        for task in upload["tasks"]:
            assert task["status"] == "Succeeded", task
            for output in task["outputs"]:
                assert output["size"] > 0
                _check_output(demo["endpoints"], output["uri"], upload["source"], tmp_path)


def test_every_task_reached_its_final_state_once_and_follow_ups_ran(demo: dict[str, Any]) -> None:
    ledger = local_ledger(demo["state_path"])
    for upload in demo["uploads"]:
        tasks = ledger.tasks_of_run(upload["run_id"])
        assert tasks and all(t.status == "Succeeded" for t in tasks)
        ids = [t.task_id for t in tasks]
        assert len(ids) == len(set(ids)), ids
        steps = [(t.rule, t.task_name, t.parent_task_id, tuple(t.sources)) for t in tasks]
        assert len(steps) == len(set(steps)), "a step was started twice"
        if upload["rule"] in ("videos", "documents", "archives"):
            assert any(t.depth == 2 and t.parent_task_id in ids for t in tasks), (
                f"no follow-up for {upload['source']}"
            )


def test_every_run_wrote_its_manifest(demo: dict[str, Any]) -> None:
    for upload in demo["uploads"]:
        manifest = json.loads(_fetch(demo["endpoints"], upload["manifest"]["uri"]))
        assert manifest["run"] == upload["run_id"] and manifest["succeeded"] is True
        assert manifest["source"]["uri"] == upload["source"]
        assert len(manifest["tasks"]) == len(upload["tasks"])


def test_a_new_upload_with_plain_oss2_goes_through_the_pipeline(demo: dict[str, Any], tmp_path: Path) -> None:
    endpoints = demo["endpoints"]
    image = io.BytesIO()
    Image.new("RGB", (1200, 900), (30, 120, 200)).save(image, format="JPEG")
    upload = next(u for u in demo["uploads"] if u["rule"] == "images")
    bucket_name, _, demo_key = upload["source"].removeprefix("oss://").partition("/")
    key = demo_key.rsplit("/", 2)[0] + "/e2e-extra/photo.jpg"
    result = _bucket(endpoints, bucket_name).put_object(
        key, image.getvalue(), headers={"Content-Type": "image/jpeg"}
    )
    run_id = run_id_for(bucket_name, key, result.etag.strip('"').upper(), 1)

    ledger = local_ledger(demo["state_path"])

    def finished() -> RunRecord | None:
        run = ledger.get_run(run_id)
        return run if run is not None and run.status == "Done" and run.manifest_uri else None

    run = wait_until(finished, 180, f"run {run_id} for oss://{bucket_name}/{key} finished")
    assert run.manifest_uri is not None

    tasks = ledger.tasks_of_run(run_id)
    assert {t.task_name for t in tasks} == {t["task"] for t in upload["tasks"]}
    for task in tasks:
        assert task.status == "Succeeded" and task.outputs
        for uri in task.outputs:
            _check_output(endpoints, uri, key, tmp_path)
    assert json.loads(_fetch(endpoints, run.manifest_uri))["succeeded"] is True


def test_the_functions_ran_on_their_runtimes_python(demo: dict[str, Any]) -> None:
    """s.yaml names python3.10: with a Python 3.10 on the machine, the demo's functions ran on it."""
    runtime = functions_runtime(REPO / "s.yaml")
    assert runtime in RUNTIME_PYTHON
    major, minor = RUNTIME_PYTHON[runtime]
    status = subprocess.run(
        [*CLI, "local", "status", "--json", "--state-dir", str(demo["state_path"])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    [python] = json.loads(status.stdout)["pythons"]
    if find_python(major, minor) is None and sys.version_info[:2] != (major, minor):
        assert f"no Python {major}.{minor} on this machine" in python, python
        pytest.skip(f"no Python {major}.{minor} here: the functions ran on {sys.version.split()[0]}")
    assert python.startswith(f"{runtime}: Python {major}.{minor}."), python
