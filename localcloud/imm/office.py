"""CreateOfficeConversionTask with LibreOffice (headless) and poppler (docs/imm.md#tasks).

Every source is first turned into a PDF by ``soffice --headless --convert-to pdf`` (a PDF source
is used as it is); the PDF is then sliced (``pdf``), rasterised one page at a time with
``pdftoppm`` (``png``/``jpg``; LibreOffice's own image export only gives the first page) or turned
into text with ``pdftotext`` (``txt``). Each engine worker has its own LibreOffice profile, because
two soffice processes sharing one profile block each other; a conversion that takes longer than
the task type's timeout is killed and the task fails.

Pages: ``Pages`` ("1,2-4,7") wins over ``StartPage``/``EndPage`` (default 1 to the last page,
``-1`` = last) and applies to every target type. ``{index}`` is the page number in the PDF
rendering for every kind of document (for spreadsheets the cloud uses ``<sheet>_<n>``; locally a
sheet has no separate numbering). ``ImageDPI`` (default 96) and ``ScalePercentage`` set the
resolution, ``Quality`` the JPEG quality.

Names: ``TargetURI`` is a template (``{index}``, ``{autoext}``); for image output without
``{index}`` every page would go to one object, so only the last selected page is written, as in
the cloud. Under ``TargetURIPrefix`` images are ``<prefix><index>.<ext>`` and a pdf/txt output is
``<prefix><source barename>.<ext>``.

Refused at create time (``NotImplemented``): ``Password``, ``LongPicture``, ``Sources``
(images to PDF: use CreateImageToPDFTask), ``SheetIndex``/``SheetCount``, ``{sheetname}``.
Layout-only options (``PaperSize``, ``PaperHorizontal``, ``FitToWidth``, ``FitToHeight``,
``ShowComments``, ``TrimPolicy``, ``MaxSheetRow``, ``MaxSheetColumn``, ``HoldLineFeed``,
``LongText``, ``FirstPage``) are accepted and have no effect: LibreOffice's defaults are used.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from immflow import templates
from immflow.ossuri import OssUri
from pypdf import PdfReader, PdfWriter
from pypdf.errors import PdfReadError

from localcloud.imm import inputs
from localcloud.imm.context import TaskContext
from localcloud.imm.errors import TaskFailure, invalid_argument, not_available

ACTION = "CreateOfficeConversionTask"
TARGET_TYPES = frozenset({"pdf", "png", "jpg", "txt"})
#: The documented SourceType values; the value names the downloaded file, so nothing else may pass.
SOURCE_TYPES = frozenset(
    {
        "doc", "docx", "wps", "wpss", "docm", "dotm", "dot", "dotx",
        "pptx", "ppt", "pot", "potx", "pps", "ppsx", "dps", "dpt", "pptm", "potm", "ppsm", "dpss",
        "xls", "xlt", "et", "ett", "xlsx", "xltx", "csv", "xlsb", "xlsm", "xltm", "ets",
        "pdf",
    }
)  # fmt: skip
_PAGES = re.compile(r"^\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*$")


def check_supported(params: Mapping[str, Any]) -> None:
    for name, why in (
        ("Password", "Password-protected documents cannot be opened headless."),
        ("LongPicture", "LongPicture (all pages in one image) is not supported."),
        ("Sources", "Image sources are not supported here; use CreateImageToPDFTask."),
        ("SheetIndex", "Sheet selection is not supported; every sheet is converted."),
        ("SheetCount", "Sheet selection is not supported; every sheet is converted."),
    ):
        value = params.get(name)
        if value not in (None, "", "false", "False", False):
            raise not_available(ACTION, f"{name}: {why}")
    source_type = params.get("SourceType")
    if source_type and str(source_type).lower() not in SOURCE_TYPES:
        raise invalid_argument(
            f"The parameter SourceType must be a document extension such as docx, pptx, xlsx or pdf, "
            f"not {str(source_type)[:200]!r}."
        )
    target_type = str(params.get("TargetType") or "")
    if target_type not in TARGET_TYPES:
        raise invalid_argument(
            f"The parameter TargetType must be one of jpg, pdf, png, txt, not {target_type!r}."
        )
    template = params.get("TargetURI")
    if template and "sheetname" in templates.parse(str(template)).builtin_variables:
        raise not_available(ACTION, "{sheetname} in TargetURI is not supported.")
    if params.get("TargetURI") and params.get("TargetURIPrefix"):
        raise invalid_argument("Give either TargetURI or TargetURIPrefix, not both.")
    if not params.get("TargetURI") and not params.get("TargetURIPrefix"):
        raise invalid_argument("The parameter TargetURI (or TargetURIPrefix) is required but not provided.")
    pages = params.get("Pages")
    if pages and not _PAGES.match(str(pages)):
        raise invalid_argument(f"The parameter Pages must look like 1,2-4,7, not {pages!r}.")


def selected_pages(params: Mapping[str, Any], page_count: int) -> list[int]:
    pages = str(params.get("Pages") or "")
    if pages:
        chosen: list[int] = []
        for part in pages.split(","):
            low, _, high = part.strip().partition("-")
            chosen.extend(range(int(low), int(high or low) + 1))
        selection = [p for p in dict.fromkeys(chosen) if 1 <= p <= page_count]
        what = f"Pages {pages!r}"
    else:
        start = int(params.get("StartPage") or 1)
        end = int(params.get("EndPage") or -1)
        end = page_count if end in (-1, 0) else min(end, page_count)
        selection = list(range(max(start, 1), end + 1))
        what = f"StartPage {start} to EndPage {params.get('EndPage') or -1}"
    if not selection:
        raise TaskFailure("InvalidArgument", f"{what} selects no page of a {page_count}-page document.")
    return selection


def _to_pdf(ctx: TaskContext, source: Path) -> Path:
    profile = ctx.profile_root / f"worker-{ctx.worker}"
    profile.mkdir(parents=True, exist_ok=True)
    outdir = ctx.workdir / "pdf"
    outdir.mkdir()
    command = [
        shutil.which("soffice") or "soffice",
        f"-env:UserInstallation={profile.resolve().as_uri()}",
        "--headless",
        "--norestore",
        "--nologo",
        "--nodefault",
        "--nolockcheck",
        "--convert-to",
        "pdf",
        "--outdir",
        str(outdir),
        str(source),
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=ctx.office_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise TaskFailure(
            "InternalError",
            f"LibreOffice did not finish converting the document within {ctx.office_timeout:g} s and was stopped.",
        ) from None
    produced = list(outdir.glob("*.pdf"))
    if proc.returncode != 0 or not produced:
        detail = " | ".join(line for line in output.strip().splitlines()[-3:] if line.strip()) or "no output"
        raise TaskFailure(
            "InvalidArgument",
            f"LibreOffice could not convert the document (exit code {proc.returncode}): {detail}",
        )
    return produced[0]


def _page_count(pdf: Path) -> int:
    try:
        return len(PdfReader(pdf).pages)
    except (PdfReadError, OSError, ValueError) as exc:
        raise TaskFailure("InvalidArgument", f"The document is not a readable PDF: {exc}") from None


def _tool(name: str, args: list[str], timeout: float) -> None:
    exe = shutil.which(name)
    if exe is None:
        raise TaskFailure("InternalError", f"{name} (Debian package poppler-utils) is not installed.")
    proc = subprocess.run([exe, *args], capture_output=True, text=True, errors="replace", timeout=timeout)
    if proc.returncode != 0:
        raise TaskFailure("InvalidArgument", f"{name} failed: {proc.stderr.strip()[-300:]}")


def run(ctx: TaskContext) -> dict[str, Any]:
    request = ctx.request
    source_uri = OssUri.parse(request["SourceURI"], field="SourceURI")
    source_type = str(request.get("SourceType") or source_uri.ext or "docx").lower()
    source = ctx.fetch(source_uri, f"source.{source_type}")
    inputs.check_office_document(source, source_type)
    ctx.report_progress(0.1)
    pdf = source if source_type == "pdf" else _to_pdf(ctx, source)
    ctx.report_progress(0.6)
    pages = selected_pages(request, _page_count(pdf))
    target_type = str(request["TargetType"])
    outputs = ctx.workdir / "out"
    outputs.mkdir()
    if target_type in ("pdf", "txt"):
        out = outputs / f"result.{target_type}"
        if target_type == "pdf":
            writer = PdfWriter()
            reader = PdfReader(pdf)
            for page in pages:
                writer.add_page(reader.pages[page - 1])
            with open(out, "wb") as f:
                writer.write(f)
        else:
            parts = []
            for page in pages:
                page_txt = outputs / f"{page}.txt"
                _tool(
                    "pdftotext",
                    ["-layout", "-f", str(page), "-l", str(page), str(pdf), str(page_txt)],
                    ctx.office_timeout,
                )
                parts.append(page_txt.read_text(errors="replace"))
            out.write_text("".join(parts))
        uri = _name(ctx, request, source_uri, target_type, pages[0])
        ctx.oss.upload(uri, out)
    else:
        template = str(request.get("TargetURI") or "")
        if template and "{index}" not in template.replace("{{", ""):
            pages = pages[-1:]
        dpi = int(request.get("ImageDPI") or 96) * int(request.get("ScalePercentage") or 100) // 100
        for done, page in enumerate(pages, start=1):
            stem = outputs / f"page-{page}"
            args = ["-r", str(dpi), "-f", str(page), "-l", str(page), "-singlefile"]
            if target_type == "jpg":
                args += ["-jpeg", "-jpegopt", f"quality={int(request.get('Quality') or 80)}"]
            else:
                args += ["-png"]
            _tool("pdftoppm", [*args, str(pdf), str(stem)], ctx.office_timeout)
            produced = stem.with_suffix(".jpg" if target_type == "jpg" else ".png")
            ctx.oss.upload(_name(ctx, request, source_uri, target_type, page), produced)
            ctx.report_progress(0.6 + 0.4 * done / len(pages))
    result = {"SourceURI": request["SourceURI"]}
    for name in ("TargetURI", "TargetURIPrefix"):
        if request.get(name):
            result[name] = request[name]
    return result


def _name(ctx: TaskContext, request: Mapping[str, Any], source: OssUri, ext: str, page: int) -> OssUri:
    template = request.get("TargetURI")
    if template:
        return ctx.target(str(template), source, {"index": str(page), "autoext": ext})
    prefix = OssUri.parse(str(request["TargetURIPrefix"]), field="TargetURIPrefix", allow_prefix=True)
    name = str(page) if ext in ("png", "jpg") else source.barename
    return prefix.child(f"{prefix.key}{name}.{ext}")
