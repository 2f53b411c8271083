"""CreateOfficeConversionTask with LibreOffice and poppler: page counts with pypdf, images with Pillow."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import docx
import pptx
import pytest
from alibabacloud_imm20200930 import models
from alibabacloud_imm20200930.client import Client
from immflow.events.imm import ImmTaskResult
from PIL import Image
from pypdf import PdfReader

from tests.support.cloud import Cloud
from tests.support.imm import PROJECT, Inbox, MakeImm, wait_task

pytestmark = pytest.mark.media


def _docx(pages: int) -> bytes:
    document = docx.Document()
    for page in range(1, pages + 1):
        document.add_paragraph(f"Page {page} of the immflow test document.")
        if page < pages:
            document.add_page_break()  # type: ignore[no-untyped-call]  # python-docx leaves it unannotated
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _pptx(slides: int) -> bytes:
    presentation = pptx.Presentation()
    for number in range(1, slides + 1):
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = f"Slide {number}"
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


def _convert(imm: Client, inbox: Inbox, notify: models.Notification, **options: Any) -> ImmTaskResult:
    request = models.CreateOfficeConversionTaskRequest(project_name=PROJECT, notification=notify, **options)
    return inbox.wait(imm.create_office_conversion_task(request).body.task_id, timeout=120).content


def _pages(cloud: Cloud, key: str) -> int:
    return len(PdfReader(io.BytesIO(cloud.bucket.get_object(key).read())).pages)


def test_docx_to_pdf_and_text_with_a_page_range(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification
) -> None:
    cloud.bucket.put_object("docs/report.docx", _docx(3))
    whole = _convert(
        imm,
        inbox,
        notify,
        source_uri=cloud.uri("docs/report.docx"),
        target_type="pdf",
        target_uri="oss://{bucket}/pdf/{dirname}/{barename}.{autoext}",
    )
    assert whole.Status == "Succeeded", whole.Message
    assert _pages(cloud, "pdf/docs/report.pdf") == 3
    assert (
        whole.SourceURI == cloud.uri("docs/report.docx")
        and whole.TargetURI == "oss://{bucket}/pdf/{dirname}/{barename}.{autoext}"
    )
    part = _convert(
        imm,
        inbox,
        notify,
        source_uri=cloud.uri("docs/report.docx"),
        target_type="pdf",
        target_uri="oss://{bucket}/pdf/part.pdf",
        start_page=2,
    )
    assert part.Status == "Succeeded" and _pages(cloud, "pdf/part.pdf") == 2
    text = _convert(
        imm,
        inbox,
        notify,
        source_uri=cloud.uri("docs/report.docx"),
        target_type="txt",
        target_uri="oss://{bucket}/txt/{barename}.txt",
        end_page=2,
    )
    assert text.Status == "Succeeded"
    body = cloud.bucket.get_object("txt/report.txt").read().decode()
    assert "Page 1 of the immflow" in body and "Page 2" in body and "Page 3" not in body


def test_pptx_to_one_image_per_page(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification
) -> None:
    cloud.bucket.put_object("docs/deck.pptx", _pptx(3))
    result = _convert(
        imm,
        inbox,
        notify,
        source_uri=cloud.uri("docs/deck.pptx"),
        target_type="png",
        target_uri="oss://{bucket}/png/{barename}/{index}.{autoext}",
        pages="1,3",
    )
    assert result.Status == "Succeeded", result.Message
    assert sorted(o.key for o in cloud.bucket.list_objects("png/deck/").object_list) == [
        "png/deck/1.png",
        "png/deck/3.png",
    ]
    first = Image.open(io.BytesIO(cloud.bucket.get_object("png/deck/1.png").read()))
    assert first.format == "PNG" and first.width > first.height > 100
    prefixed = _convert(
        imm,
        inbox,
        notify,
        source_uri=cloud.uri("docs/deck.pptx"),
        target_type="jpg",
        target_uriprefix=f"oss://{cloud.bucket.bucket_name}/jpg/deck/",
        image_dpi=48,
    )
    assert prefixed.Status == "Succeeded"
    assert sorted(o.key for o in cloud.bucket.list_objects("jpg/deck/").object_list) == [
        f"jpg/deck/{n}.jpg" for n in (1, 2, 3)
    ]


def test_xlsx_to_pdf(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification, tmp_path: Path
) -> None:
    csv = tmp_path / "table.csv"
    csv.write_text("name,value\nalpha,1\nbeta,2\n")
    subprocess.run(
        [
            "soffice",
            f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}",
            "--headless",
            "--norestore",
            "--convert-to",
            "xlsx",
            "--outdir",
            str(tmp_path),
            str(csv),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    cloud.bucket.put_object_from_file("docs/table.xlsx", str(tmp_path / "table.xlsx"))
    result = _convert(
        imm,
        inbox,
        notify,
        source_uri=cloud.uri("docs/table.xlsx"),
        target_type="txt",
        target_uri="oss://{bucket}/txt/{barename}.{autoext}",
    )
    assert result.Status == "Succeeded", result.Message
    text = cloud.bucket.get_object("txt/table.txt").read().decode()
    assert "alpha" in text and "beta" in text


def test_a_document_libreoffice_cannot_read_fails(
    cloud: Cloud, imm: Client, inbox: Inbox, notify: models.Notification
) -> None:
    cloud.bucket.put_object("docs/broken.pdf", b"%PDF-1.4 not really a pdf")
    result = _convert(
        imm,
        inbox,
        notify,
        source_uri=cloud.uri("docs/broken.pdf"),
        target_type="png",
        target_uri="oss://{bucket}/png/broken-{index}.png",
    )
    assert (result.Status, result.Code) == ("Failed", "InvalidArgument")
    assert "not a readable PDF" in result.Message


def test_a_conversion_over_the_timeout_is_killed(cloud: Cloud, make_imm: MakeImm) -> None:
    client = make_imm(office_timeout=0.3).client
    cloud.bucket.put_object("docs/slow.docx", _docx(1))
    request = models.CreateOfficeConversionTaskRequest(
        project_name=PROJECT,
        source_uri=cloud.uri("docs/slow.docx"),
        target_type="pdf",
        target_uri=cloud.uri("pdf/slow.pdf"),
    )
    task_id = client.create_office_conversion_task(request).body.task_id
    result = wait_task(client, "OfficeConversion", task_id, timeout=60)
    assert (result.status, result.code) == ("Failed", "InternalError")
    assert "did not finish converting the document within 0.3 s" in result.message
    assert not cloud.bucket.object_exists("pdf/slow.pdf")
