"""CreateOfficeConversionTask with LibreOffice (headless) and poppler (docs/imm.md#tasks).

Every source is first turned into a PDF by LibreOffice (a PDF source is used as it is): by the
engine worker's warm LibreOffice (:class:`WarmOffice`), else by ``soffice --headless --convert-to
pdf``; the PDF is then sliced (``pdf``), rasterised one page at a time with
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

import contextlib
import json
import logging
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from immflow import templates
from immflow.ossuri import OssUri
from pypdf import PdfReader, PdfWriter
from pypdf.errors import PdfReadError

from localcloud.imm import inputs
from localcloud.imm.context import TaskContext
from localcloud.imm.errors import Interrupted, TaskFailure, invalid_argument, not_available

log = logging.getLogger("localcloud.imm")

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
UNO_PYTHON = "/usr/bin/python3"
"""The system's Python, for which the system's python3-uno (LibreOffice's Python bridge) is built."""
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
    outdir = ctx.workdir / "pdf"
    outdir.mkdir()
    target = outdir / f"{source.stem}.pdf"
    if ctx.office.convert(source, target, ctx.office_timeout):
        return target
    target.unlink(missing_ok=True)  # what a LibreOffice that died may have begun to write
    return one_shot_pdf(source, outdir, ctx.profile_root / f"worker-{ctx.worker}", ctx.office_timeout)


def one_shot_pdf(source: Path, outdir: Path, profile: Path, timeout: float) -> Path:
    """Convert with a LibreOffice of its own (1-1.3 s of start-up), when no warm one is available.
    ``profile`` must not be a running LibreOffice's: it would be handed the work and end at once."""
    profile.mkdir(parents=True, exist_ok=True)
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
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise _timed_out(timeout) from None
    produced = list(outdir.glob("*.pdf"))
    if proc.returncode != 0 or not produced:
        detail = " | ".join(line for line in output.strip().splitlines()[-3:] if line.strip()) or "no output"
        raise TaskFailure(
            "InvalidArgument",
            f"LibreOffice could not convert the document (exit code {proc.returncode}): {detail}",
        )
    return produced[0]


def _timed_out(timeout: float) -> TaskFailure:
    return TaskFailure(
        "InternalError",
        f"LibreOffice did not finish converting the document within {timeout:g} s and was stopped.",
    )


#: Longer than any warm start may take (uno_client.py gives up after 60 s): an empty socket folder
#: older than this belongs to no start in progress.
_STALE_SECONDS = 120.0


def _refused(path: Path) -> bool:
    """Whether nothing listens on the Unix socket at ``path`` any more (its process was killed)."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


def _ours(path: Path) -> bool:
    return not path.is_symlink() and path.lstat().st_uid == os.getuid()


def _remove_dead_pipes() -> None:
    """Remove what killed warm LibreOffices left in /tmp (nothing is left to remove it then): socket
    folders whose socket refuses connections, as LibreOffice itself treats a pipe nobody listens on,
    or that stayed empty past any start; and LibreOffice's own single-instance sockets
    (``OSL_PIPE_<uid>_SingleOfficeIPC_<hash of the profile>``), one per profile, which a LibreOffice
    killed rather than closed leaves behind. Only this user's, and only dead ones."""
    prefix = f"OSL_PIPE_{os.getuid()}_"
    for folder in Path("/tmp").glob(f"{prefix}immflow-*"):
        with contextlib.suppress(OSError):
            if not _ours(folder) or not folder.is_dir():
                continue
            uno = folder / "uno"
            if uno.is_socket():
                if _refused(uno):
                    shutil.rmtree(folder, ignore_errors=True)
            elif not any(folder.iterdir()) and time.time() - folder.lstat().st_mtime > _STALE_SECONDS:
                folder.rmdir()
    for pipe in Path("/tmp").glob(f"{prefix}SingleOfficeIPC_*"):
        with contextlib.suppress(OSError):
            if _ours(pipe) and pipe.is_socket() and _refused(pipe):
                pipe.unlink()


class WarmOffice:
    """One LibreOffice kept running (lent to the engine's workers by :class:`OfficePool`), reachable
    only by this process.

    A document then converts in ~0.05-0.15 s instead of the 1.1-1.3 s of a LibreOffice started
    for it. LibreOffice listens on a UNO pipe only (no TCP port), a Unix socket in a 0700 folder
    of ours, and is driven by ``uno_client.py`` run by the system's python3 with python3-uno
    (LibreOffice's Python bridge is built for that interpreter, not for the local cloud's), a
    child of this process that takes JSON lines on its stdin: no other user or process can send
    it work. It starts at the first document it is lent for, and its start counts against that
    task's timeout, as a LibreOffice of the task's own would. A conversion over the timeout kills
    it and fails the task; it starts again at the next task. If it died during a conversion, that
    document is converted again by a LibreOffice of its own. Without python3 and python3-uno every
    conversion is one-shot, said once in the log.

    The client and LibreOffice are one process group, killed when the engine stops (a task still
    converting then stays ``Running``, to run again at the next start); if this
    process is killed outright, the kernel kills the client (parent-death signal) and the client's
    LibreOffice with it.
    """

    _said_unavailable = False
    _swept = False
    #: Documents one LibreOffice converts before it is replaced at the next task: a warm soffice.bin
    #: grows (156 MiB after its first document, 225 MiB after 300), as LibreOffice servers do; JODConverter
    #: restarts after 200 by default (its maxTasksPerProcess) for the same reason.
    MAX_DOCUMENTS = 200

    def __init__(self, profile: Path) -> None:
        self._profile = profile
        self._client: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        self._unavailable = False
        self._closed = False
        self._converted = 0
        #: How long the last start took, until LibreOffice took calls (a guess before the first).
        self.start_seconds = 1.0
        self._lock = threading.Lock()

    def convert(self, source: Path, target: Path, timeout: float, *, begun: float | None = None) -> bool:
        """Write ``source`` as a PDF to ``target``; False when there is no warm LibreOffice to do it.
        ``timeout`` counts from ``begun`` (``time.monotonic()``; default now)."""
        deadline = (time.monotonic() if begun is None else begun) + timeout
        with self._lock:
            if self._closed:
                raise Interrupted
            if self._client is not None and self._converted >= self.MAX_DOCUMENTS:
                self._stop()
            if self._client is None and (self._unavailable or not self._start(deadline, timeout)):
                return False
            client = self._client
            assert client is not None and client.stdin is not None
            try:
                client.stdin.write(
                    json.dumps({"source": str(source), "target": str(target)}).encode() + b"\n"
                )
                client.stdin.flush()
            except OSError:
                self._stop()
                return False
        reply = self._read(client, deadline)
        with self._lock:
            if self._closed:
                raise Interrupted
            if reply is None:
                self._stop()
                raise _timed_out(timeout)
            if reply.get("ok"):
                self._converted += 1
                return True
            if "error" not in reply or not reply.get("office_alive", False):
                log.warning(
                    "imm: the warm LibreOffice stopped while converting %s; converting it on its own",
                    source.name,
                )
                self._stop()
                return False
        raise TaskFailure("InvalidArgument", f"LibreOffice could not convert the document: {reply['error']}")

    @property
    def running(self) -> bool:
        """Whether a LibreOffice is started (or starting) for this one."""
        return self._client is not None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._stop()

    def _start(self, deadline: float, timeout: float) -> bool:
        python = Path(UNO_PYTHON)
        if not python.exists():
            self._give_up(f"{UNO_PYTHON} is not there")
            return False
        begun = time.monotonic()
        self._profile.mkdir(parents=True, exist_ok=True)
        if not WarmOffice._swept:
            WarmOffice._swept = True
            _remove_dead_pipes()
        # LibreOffice names its UNO socket /tmp/OSL_PIPE_<uid>_<name> whatever we ask (uno_client.py
        # says why), so the private folder has to be there; mkdtemp makes it 0700 and refuses a
        # name that exists, so nobody can have prepared it.
        self._socket_dir = Path(tempfile.mkdtemp(prefix=f"OSL_PIPE_{os.getuid()}_immflow-", dir="/tmp"))
        self._client = subprocess.Popen(
            [
                str(python),
                str(Path(__file__).with_name("uno_client.py")),
                str(os.getpid()),
                str(self._socket_dir),
                self._profile.resolve().as_uri(),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,
            # The client's own parent-death signal fires when the thread that started it ends: an
            # engine worker's thread, which lives as long as the engine.
        )
        reply = self._read(self._client, deadline)
        if reply is None:
            self._stop()
            raise _timed_out(timeout)
        if reply.get("ready"):
            self._converted = 0
            self.start_seconds = time.monotonic() - begun
            return True
        self._stop()
        if reply.get("unavailable"):
            self._give_up(str(reply.get("error")))
        else:
            log.warning(
                "imm: the warm LibreOffice did not start (%s); converting one-shot",
                reply.get("error", "no reply"),
            )
        return False

    def _give_up(self, why: str) -> None:
        self._unavailable = True
        if not WarmOffice._said_unavailable:
            WarmOffice._said_unavailable = True
            log.warning(
                "imm: no warm LibreOffice (%s): every office document gets a LibreOffice of its own, 1-1.3 s "
                "more each. Install python3-uno (apt-get install python3-uno) for %s.",
                why,
                UNO_PYTHON,
            )

    @staticmethod
    def _read(client: subprocess.Popen[bytes], deadline: float) -> dict[str, Any] | None:
        """The client's next reply; None past the deadline, {} if it ended."""
        assert client.stdout is not None
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            try:
                if left <= 0 or not select.select([client.stdout], [], [], left)[0]:
                    return None
                chunk = client.stdout.read(65536)
            except (OSError, ValueError):  # closed by close() meanwhile
                return {}
            if not chunk:
                return {}
            line += chunk
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _stop(self) -> None:
        if self._client is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._client.pid, signal.SIGKILL)
            self._client.wait()
            for stream in (self._client.stdin, self._client.stdout):
                if stream is not None:
                    stream.close()
            # Once LibreOffice is gone too, its single-instance socket is dead: removed with the rest.
            gone_by = time.monotonic() + 2
            with contextlib.suppress(ProcessLookupError):
                while time.monotonic() < gone_by:
                    os.killpg(self._client.pid, 0)
                    time.sleep(0.01)
            self._client = None
            _remove_dead_pipes()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None


class OfficePool:
    """The engine's warm LibreOffices, one per worker, each with its own profile, lent to whichever
    worker converts a document. A LibreOffice converts one document at a time; one that is running
    is preferred, and while all running ones are busy a document waits for one to come free for as
    long as starting another took (~1 s of CPU on the same cores) before it starts another: most
    documents convert in ~0.1 s, so a burst of them is served by one LibreOffice instead of one
    start per worker (the local FC scales out the same way)."""

    def __init__(self, profile_root: Path, size: int) -> None:
        self._offices = [WarmOffice(profile_root / f"warm-worker-{index}") for index in range(size)]
        self._free = list(self._offices)
        self._changed = threading.Condition()

    def convert(self, source: Path, target: Path, timeout: float) -> bool:
        begun = time.monotonic()
        with self._changed:
            while True:
                # As many offices as workers, each worker converting one document: one is always free.
                warm = next((office for office in self._free if office.running), None)
                busy = [office for office in self._offices if office.running and office not in self._free]
                if warm is not None or not busy:
                    break
                left = begun + max(office.start_seconds for office in busy) - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            warm = warm or self._free[0]
            self._free.remove(warm)
        try:
            return warm.convert(source, target, timeout, begun=begun)  # the wait counts too
        finally:
            with self._changed:
                self._free.append(warm)
                self._changed.notify_all()

    def close(self) -> None:
        for warm in self._offices:
            warm.close()


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
