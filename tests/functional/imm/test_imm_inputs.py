"""Broken input fails its task instead of giving a Succeeded result made of garbage (localcloud.imm.inputs).

Each case was reported Succeeded (or InternalError) before the local IMM checked its input.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import docx
import pytest
from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client
from immflow.events.imm import ImmTaskResult

from localcloud.imm.ffmpeg import ffmpeg_exe
from tests.support.cloud import Cloud
from tests.support.imm import PROJECT, Inbox
from tests.support.media import make_video

pytestmark = pytest.mark.media


def _transcode(
    imm: Client, inbox: Inbox, notify: models.Notification, source: str, out: str
) -> ImmTaskResult:
    request = models.CreateMediaConvertTaskRequest(
        project_name=PROJECT,
        sources=[models.CreateMediaConvertTaskRequestSources(uri=source)],
        targets=[models.CreateMediaConvertTaskRequestTargets(container="mp4", uri=out)],
        notification=notify,
    )
    return inbox.wait(imm.create_media_convert_task(request).body.task_id, timeout=120).content


def _to_pdf(imm: Client, inbox: Inbox, notify: models.Notification, source: str, out: str) -> ImmTaskResult:
    request = models.CreateOfficeConversionTaskRequest(
        project_name=PROJECT, source_uri=source, target_type="pdf", target_uri=out, notification=notify
    )
    return inbox.wait(imm.create_office_conversion_task(request).body.task_id, timeout=120).content


def test_a_truncated_video_fails_instead_of_giving_a_shorter_one(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification, tmp_path: Path
) -> None:
    whole = make_video(tmp_path / "whole.mp4", seconds=1.0)
    # make_video's mp4 has its index (moov) after the media data: move it first, as uploads from
    # phones and most encoders have it, so that a cut-off file still opens.
    faststart = tmp_path / "faststart.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-i", whole, "-c", "copy", "-movflags", "+faststart", faststart],
        check=True,
    )
    data = faststart.read_bytes()
    cloud.bucket.put_object("in/cut/half.mp4", data[: len(data) // 2])
    cloud.bucket.put_object("in/cut/whole.mp4", data)

    half = _transcode(imm, inbox, notify, cloud.uri("in/cut/half.mp4"), "oss://{bucket}/out/cut/half.mp4")
    assert (half.Status, half.Code) == ("Failed", "InvalidArgument"), half.Message
    assert "truncated" in half.Message
    assert not cloud.bucket.object_exists("out/cut/half.mp4")

    ok = _transcode(imm, inbox, notify, cloud.uri("in/cut/whole.mp4"), "oss://{bucket}/out/cut/whole.mp4")
    assert ok.Status == "Succeeded", ok.Message


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.docx", b"", "empty file"),
        ("random.docx", os.urandom(4096), "is a zip"),
        ("wrong-zip.docx", None, "lacks word/document.xml"),
        ("random.doc", b"plain text pretending to be Word 97", "OLE2"),
        ("random.pdf", b"not a pdf" * 50, "%PDF-"),
    ],
)
def test_a_file_that_is_not_a_document_of_its_type_fails(
    cloud: Cloud,
    imm: Client,
    inbox: Inbox,
    notify: models.Notification,
    name: str,
    data: bytes | None,
    reason: str,
) -> None:
    if data is None:  # a real zip, but a spreadsheet's parts under a .docx name
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("[Content_Types].xml", "<Types/>")
            archive.writestr("xl/workbook.xml", "<workbook/>")
        data = buffer.getvalue()
    cloud.bucket.put_object(f"in/docs/{name}", data)
    result = _to_pdf(
        imm, inbox, notify, cloud.uri(f"in/docs/{name}"), f"oss://{{bucket}}/out/docs/{name}.pdf"
    )
    assert (result.Status, result.Code) == ("Failed", "InvalidArgument"), result.Message
    assert reason in result.Message


def test_a_real_docx_still_converts(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification
) -> None:
    document = docx.Document()
    document.add_paragraph("a real document")
    buffer = io.BytesIO()
    document.save(buffer)
    cloud.bucket.put_object("in/docs/real.docx", buffer.getvalue())
    result = _to_pdf(imm, inbox, notify, cloud.uri("in/docs/real.docx"), "oss://{bucket}/out/docs/real.pdf")
    assert result.Status == "Succeeded", result.Message


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that says it is width x height: Pillow reads this much before it decodes anything."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(("width", "height"), [(20_000, 20_000), (40_000, 10)])
def test_an_image_beyond_imms_pixel_limits_fails_as_invalid_argument(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification, width: int, height: int
) -> None:
    key = f"in/images/huge-{width}x{height}.png"
    cloud.bucket.put_object(key, _png_header_only(width, height))
    request = models.CreateImageToPDFTaskRequest(
        project_name=PROJECT,
        sources=[models.CreateImageToPDFTaskRequestSources(uri=cloud.uri(key))],
        target_uri="oss://{bucket}/out/images/huge.pdf",
        notification=notify,
    )
    result = inbox.wait(imm.create_image_to_pdftask(request).body.task_id, timeout=60).content
    assert (result.Status, result.Code) == ("Failed", "InvalidArgument"), result.Message
    assert f"{width}x{height} pixels" in result.Message
