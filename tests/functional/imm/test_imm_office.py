"""CreateOfficeConversionTask with LibreOffice and poppler: page counts with pypdf, images with Pillow."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
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

from localcloud.imm import office
from localcloud.imm.errors import Interrupted
from tests.support.cloud import Cloud
from tests.support.imm import PROJECT, Inbox, MakeImm, office_processes, wait_task, warm_office_pid
from tests.support.wait import wait_until

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


def _pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "text.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


def _start_pdf(client: Client, cloud: Cloud, key: str, target: str) -> str:
    request = models.CreateOfficeConversionTaskRequest(
        project_name=PROJECT, source_uri=cloud.uri(key), target_type="pdf", target_uri=cloud.uri(target)
    )
    return str(client.create_office_conversion_task(request).body.task_id)


def _to_pdf(client: Client, cloud: Cloud, key: str, target: str) -> models.GetTaskResponseBody:
    return wait_task(client, "OfficeConversion", _start_pdf(client, cloud, key, target))


def test_the_warm_libreoffice_gives_what_a_one_shot_one_gives(
    cloud: Cloud,
    make_imm: MakeImm,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cloud.bucket.put_object("same/report.docx", _docx(3))
    cloud.bucket.put_object("same/deck.pptx", _pptx(2))
    warm = make_imm(engine_concurrency=1)
    for key in ("same/report.docx", "same/deck.pptx"):
        result = _to_pdf(warm.client, cloud, key, f"warm/{key}.pdf")
        assert result.status == "Succeeded", result.message
    assert warm_office_pid(warm.state_dir)
    monkeypatch.setattr(office, "UNO_PYTHON", str(tmp_path / "no-python3"))
    monkeypatch.setattr(office.WarmOffice, "_said_unavailable", False)
    one_shot = make_imm(engine_concurrency=1)
    for key, pages in (("same/report.docx", 3), ("same/deck.pptx", 2)):
        result = _to_pdf(one_shot.client, cloud, key, f"one-shot/{key}.pdf")
        assert result.status == "Succeeded", result.message
        assert _pages(cloud, f"warm/{key}.pdf") == _pages(cloud, f"one-shot/{key}.pdf") == pages
        texts = [
            _pdf_text(cloud.bucket.get_object(f"{kind}/{key}.pdf").read(), tmp_path)
            for kind in ("warm", "one-shot")
        ]
        assert texts[0] == texts[1] and ("Page 3" in texts[0] or "Slide 2" in texts[0])
    assert not office_processes(one_shot.state_dir)
    said = [r.getMessage() for r in caplog.records if "no warm LibreOffice" in r.getMessage()]
    assert len(said) == 1 and "python3-uno" in said[0], said


def test_the_warm_libreoffice_is_reachable_only_by_its_user(cloud: Cloud, make_imm: MakeImm) -> None:
    imm = make_imm(engine_concurrency=1)
    cloud.bucket.put_object("private/a.docx", _docx(1))
    assert _to_pdf(imm.client, cloud, "private/a.docx", "private/a.pdf").status == "Succeeded"
    pid = warm_office_pid(imm.state_dir)
    command = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    assert not [arg for arg in command if "socket" in arg or "port=" in arg], command
    socket_inodes = {
        os.readlink(f"/proc/{pid}/fd/{fd}")[len("socket:[") : -1]
        for fd in os.listdir(f"/proc/{pid}/fd")
        if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")
    }
    for table in ("tcp", "tcp6", "udp", "udp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        assert not socket_inodes & {line.split()[9] for line in lines}, f"soffice.bin has a {table} socket"
    listening = [
        line.split()[-1]
        for line in Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]
        if line.split()[6] in socket_inodes and len(line.split()) == 8 and line.split()[5] == "01"
    ]
    uno = [path for path in listening if path.endswith("/uno")]
    assert len(uno) == 1, listening
    socket_path = Path(uno[0])
    for path in (socket_path.parent, socket_path):
        mode = path.lstat().st_mode
        assert path.lstat().st_uid == os.getuid() and stat.S_IMODE(mode) & 0o077 == 0, f"{path}: {oct(mode)}"
    if os.getuid() == 0 and shutil.which("runuser"):
        attempt = subprocess.run(
            ["runuser", "-u", "nobody", "--", office.UNO_PYTHON, "-c", _CONNECT, str(socket_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert attempt.stdout.strip() == "PermissionError", attempt.stdout + attempt.stderr


_CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""


def test_a_killed_libreoffice_is_started_again(cloud: Cloud, make_imm: MakeImm) -> None:
    imm = make_imm(engine_concurrency=1)
    cloud.bucket.put_object("killed/a.docx", _docx(2))
    assert _to_pdf(imm.client, cloud, "killed/a.docx", "killed/1.pdf").status == "Succeeded"
    first = warm_office_pid(imm.state_dir)
    os.kill(first, signal.SIGKILL)
    result = _to_pdf(imm.client, cloud, "killed/a.docx", "killed/2.pdf")
    assert result.status == "Succeeded", result.message
    assert _pages(cloud, "killed/2.pdf") == 2
    assert _to_pdf(imm.client, cloud, "killed/a.docx", "killed/3.pdf").status == "Succeeded"
    assert warm_office_pid(imm.state_dir) != first


def test_a_warm_libreoffice_is_replaced_after_its_document_limit(
    cloud: Cloud, make_imm: MakeImm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(office.WarmOffice, "MAX_DOCUMENTS", 2)
    imm = make_imm(engine_concurrency=1)
    cloud.bucket.put_object("limit/a.docx", _docx(1))
    pids = []
    for n in range(3):
        assert _to_pdf(imm.client, cloud, "limit/a.docx", f"limit/{n}.pdf").status == "Succeeded"
        pids.append(warm_office_pid(imm.state_dir))
    assert pids[0] == pids[1] != pids[2]


def _slow_docx() -> bytes:
    """3000 full pages: 6-10 s for LibreOffice to lay out."""
    document = docx.Document()
    for page in range(3000):
        document.add_paragraph(f"Page {page} " + "lorem ipsum dolor sit amet " * 40)
        document.add_page_break()  # type: ignore[no-untyped-call]  # python-docx leaves it unannotated
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _soffices(imm: Any) -> set[int]:
    return {pid for pid, command in office_processes(imm.state_dir).items() if "soffice.bin" in command}


def test_documents_share_a_running_libreoffice_and_a_long_one_does_not_hold_the_others(
    cloud: Cloud, make_imm: MakeImm
) -> None:
    imm = make_imm(engine_concurrency=2)
    cloud.bucket.put_object("pool/a.docx", _docx(1))
    cloud.bucket.put_object("pool/slow.docx", _slow_docx())
    assert _to_pdf(imm.client, cloud, "pool/a.docx", "pool/0.pdf").status == "Succeeded"
    [first] = _soffices(imm)
    # Two documents at once, one per worker: the second waits ~0.1 s for the running LibreOffice
    # rather than start another (~1 s).
    both = [_start_pdf(imm.client, cloud, "pool/a.docx", f"pool/{n}.pdf") for n in (1, 2)]
    for task_id in both:
        assert wait_task(imm.client, "OfficeConversion", task_id).status == "Succeeded"
    assert _soffices(imm) == {first}
    # A document behind a long one waits no longer than a start takes, then gets a LibreOffice of its own.
    slow = _start_pdf(imm.client, cloud, "pool/slow.docx", "pool/slow.pdf")
    time.sleep(0.5)
    quick = wait_task(
        imm.client, "OfficeConversion", _start_pdf(imm.client, cloud, "pool/a.docx", "pool/3.pdf")
    )
    assert quick.status == "Succeeded"
    assert len(_soffices(imm)) == 2
    assert (
        imm.client.get_task(
            models.GetTaskRequest(project_name=PROJECT, task_type="OfficeConversion", task_id=slow)
        ).body.status
        == "Running"
    )
    assert wait_task(imm.client, "OfficeConversion", slow).status == "Succeeded"


def test_a_conversion_cut_by_the_stop_is_interrupted_not_failed(tmp_path: Path) -> None:
    source = tmp_path / "slow.docx"
    source.write_bytes(_slow_docx())
    warm = office.WarmOffice(tmp_path / "profile")
    outcome: list[BaseException | bool] = []

    def convert() -> None:
        try:
            outcome.append(warm.convert(source, tmp_path / "slow.pdf", 120))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=convert)
    thread.start()
    time.sleep(3)  # started (~1-2 s with a new profile), and converting
    warm.close()
    thread.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], Interrupted), outcome
    assert not office_processes(tmp_path)


def test_a_conversion_over_the_timeout_fails_and_the_next_one_succeeds(
    cloud: Cloud, make_imm: MakeImm
) -> None:
    imm = make_imm(office_timeout=4, engine_concurrency=1)
    cloud.bucket.put_object("timeout/small.docx", _docx(1))
    cloud.bucket.put_object("timeout/big.docx", _slow_docx())
    assert _to_pdf(imm.client, cloud, "timeout/small.docx", "timeout/1.pdf").status == "Succeeded"
    first = warm_office_pid(imm.state_dir)
    slow = _to_pdf(imm.client, cloud, "timeout/big.docx", "timeout/big.pdf")
    assert (slow.status, slow.code) == ("Failed", "InternalError")
    assert "did not finish converting the document within 4 s" in slow.message
    assert not office_processes(imm.state_dir)
    assert _to_pdf(imm.client, cloud, "timeout/small.docx", "timeout/2.pdf").status == "Succeeded"
    assert warm_office_pid(imm.state_dir) != first


def _dead_pipes() -> set[Path]:
    """The warm LibreOffices' sockets and LibreOffice's single-instance ones, of this user in /tmp, that
    nobody listens on any more."""
    dead = set()
    prefix = f"OSL_PIPE_{os.getuid()}_"
    for pipe in [*Path("/tmp").glob(f"{prefix}immflow-*"), *Path("/tmp").glob(f"{prefix}SingleOfficeIPC_*")]:
        path = pipe / "uno" if pipe.is_dir() else pipe
        if path.is_socket():
            with socket.socket(socket.AF_UNIX) as probe:
                try:
                    probe.connect(str(path))
                except ConnectionRefusedError:
                    dead.add(pipe)
                except OSError:
                    pass
    return dead


def test_stopping_the_imm_stops_its_libreoffice_and_leaves_no_socket(cloud: Cloud, make_imm: MakeImm) -> None:
    imm = make_imm(engine_concurrency=1)
    cloud.bucket.put_object("stop/a.docx", _docx(1))
    assert _to_pdf(imm.client, cloud, "stop/a.docx", "stop/a.pdf").status == "Succeeded"
    assert len(office_processes(imm.state_dir)) == 2  # uno_client.py and soffice.bin
    pid = warm_office_pid(imm.state_dir)
    imm.service.close()
    assert not office_processes(imm.state_dir)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), 10, "soffice.bin reaped")
    # A killed LibreOffice leaves its single-instance socket (OSL_PIPE_<uid>_SingleOfficeIPC_<hash>).
    assert not _dead_pipes()


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
