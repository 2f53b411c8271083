"""The dashboard's web app (Starlette): server-rendered pages, a little plain JavaScript for live lists.

Routes:

- ``GET /`` runs, newest first, filtered by ``state``, ``rule``, ``tag`` (``K=V``), ``since`` (hours)
  and ``key`` (a part of the object key); ``GET /fragments/runs`` the same list's rows and counts as
  JSON, which the page polls every 2 s so new runs and state changes appear without a reload.
- ``GET /runs/{run_id}`` one run: its upload, task graph, timeline, outputs and manifest.
- ``GET /runs/{run_id}/object?uri=oss://...`` one of that run's objects, streamed from OSS with the
  right content type and HTTP ranges (what a ``<video>`` needs to seek). Only the run's upload, its
  tasks' outputs and its manifest are served: the dashboard is no open door to the bucket.
- ``GET /runs/{run_id}/preview?uri=...`` the first page of one of the run's PDFs as a PNG.
- ``GET /pipeline`` the pipeline's rules as a graph, with ``immflow validate``'s problems.
- ``GET /healthz`` liveness only.

Who may look: requests must name a loopback Host (127.0.0.1, localhost, [::1]) unless the server
was started on another address, which requires a token: then every request carries it, once as
``?token=`` (the app sets a cookie) or as ``Authorization: Bearer``. The access key secret is never
rendered (the ledger URL is shown with its password masked).
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from immflow.ledger import TaskRecord, iso_time, utcnow
from immflow.ossuri import OssUri
from immflow.ui import graph
from immflow.ui.data import RUN_STATES, Dashboard, RunFilter, RunView, content_type_for, output_kind
from immflow.ui.fixes import advice_for

HERE = Path(__file__).parent
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
TOKEN_COOKIE = "immflow_ui_token"
#: An archive's listing shows at most this many entries.
ARCHIVE_ENTRIES_SHOWN = 200
POLL_SECONDS = 2


@dataclass(frozen=True)
class Access:
    """Who may use the dashboard: ``token`` None means loopback Hosts only, no token."""

    token: str | None = None

    def refusal(self, request: Request) -> Response | None:
        if self.token is None:
            host = request.headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.lower() not in LOOPBACK_HOSTS:
                return PlainTextResponse(
                    f"Host {host!r} is not a loopback address; start `immflow ui --host ADDRESS --token ...` "
                    "to serve other addresses.",
                    status_code=403,
                )
            return None
        sent = (
            request.query_params.get("token")
            or request.cookies.get(TOKEN_COOKIE)
            or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        )
        if not sent or not hmac.compare_digest(sent.encode(), self.token.encode()):
            return PlainTextResponse(
                "this dashboard needs its token: open the address immflow ui printed", 401
            )
        return None


def create_app(dashboard: Dashboard, access: Access | None = None) -> Starlette:
    access = access or Access()
    pages = Jinja2Templates(directory=str(HERE / "templates"))
    pages.env.globals.update(
        states=RUN_STATES, iso=iso_time, kind=output_kind, advice=advice_for, poll_seconds=POLL_SECONDS
    )
    pages.env.filters["seconds"] = _seconds

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return pages.TemplateResponse(
            request, name, {"ledger_url": dashboard.ledger_url, **context}, status_code=status
        )

    def ledger_failure(request: Request, error: Exception) -> HTMLResponse:
        return page(request, "unreachable.html", 503, error=f"{type(error).__name__}: {error}")

    def run_filter(request: Request) -> RunFilter:
        query = request.query_params
        since = query.get("since", "")
        try:
            since_hours = float(since) if since else None
        except ValueError:
            since_hours = None
        return RunFilter(
            state=query.get("state", "") if query.get("state", "") in RUN_STATES else "",
            rule=query.get("rule", ""),
            tag=query.get("tag", ""),
            since_hours=since_hours,
            key=query.get("key", ""),
        )

    async def runs_page(request: Request) -> Response:
        wanted = run_filter(request)
        try:
            views = await asyncio.to_thread(dashboard.runs, wanted)
            rules = await asyncio.to_thread(dashboard.rules)
        except Exception as error:
            return ledger_failure(request, error)
        return page(request, "runs.html", views=views, wanted=wanted, rules=rules, counts=_counts(views))

    async def runs_fragment(request: Request) -> Response:
        wanted = run_filter(request)
        try:
            views = await asyncio.to_thread(dashboard.runs, wanted)
        except Exception as error:
            return JSONResponse({"error": f"{type(error).__name__}: {error}"}, status_code=503)
        rows = pages.get_template("run_rows.html").render(views=views)
        return JSONResponse({"rows": rows, "counts": _counts(views), "runs": [v.run.run_id for v in views]})

    async def run_page(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            view = await asyncio.to_thread(dashboard.run, run_id)
        except Exception as error:
            return ledger_failure(request, error)
        if view is None:
            return page(request, "not_found.html", 404, what=f"run {run_id}")
        now = utcnow()
        tree = graph.task_tree(view.tasks, now)
        bars, span = graph.timeline(view.tasks, view.run.created_at, now)
        outputs = await asyncio.to_thread(_outputs, dashboard, view)
        manifest = await asyncio.to_thread(_manifest, dashboard, view)
        return page(
            request,
            "run.html",
            view=view,
            tree=tree,
            bars=bars,
            span=span,
            outputs=outputs,
            manifest=manifest,
            node_width=graph.NODE_WIDTH,
            node_height=graph.NODE_HEIGHT,
        )

    async def run_object(request: Request) -> Response:
        found = await _run_object(dashboard, request)
        if isinstance(found, Response):
            return found
        uri, head_size, stored_type = found
        ranges = _range(request.headers.get("range", ""), head_size)
        if ranges is None:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{head_size}"})
        first, last = ranges
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Length": str(last - first + 1 if head_size else 0),
            "Cache-Control": "private, max-age=60",
        }
        status = 200
        if request.headers.get("range") and head_size:
            status = 206
            headers["Content-Range"] = f"bytes {first}-{last}/{head_size}"
        body: Iterator[bytes] = dashboard.oss.read_range(uri, first, last) if head_size else iter(())
        return StreamingResponse(body, status, headers, media_type=content_type_for(str(uri), stored_type))

    async def run_preview(request: Request) -> Response:
        found = await _run_object(dashboard, request)
        if isinstance(found, Response):
            return found
        uri, size, _ = found
        try:
            png = await asyncio.to_thread(_first_page_png, dashboard, uri, size)
        except PreviewError as error:
            return PlainTextResponse(str(error), status_code=422)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})

    async def pipeline_page(request: Request) -> Response:
        from immflow.validation import validate_file

        path = dashboard.pipeline_path
        if path is None or not path.exists():
            return page(request, "pipeline.html", report=None, drawn=None, path=path)
        report = await asyncio.to_thread(validate_file, path)
        drawn = graph.pipeline_graph(report.pipeline) if report.pipeline is not None else None
        return page(
            request,
            "pipeline.html",
            report=report,
            drawn=drawn,
            path=path,
            node_width=graph.NODE_WIDTH,
            node_height=graph.NODE_HEIGHT,
        )

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def not_found(request: Request, exc: Exception) -> Response:
        return page(request, "not_found.html", 404, what=request.url.path)

    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path == "/healthz":
            return await call_next(request)
        refusal = access.refusal(request)
        if refusal is not None:
            return refusal
        response = await call_next(request)
        if access.token and request.query_params.get("token") == access.token:
            response.set_cookie(TOKEN_COOKIE, access.token, httponly=True, samesite="strict")
        # The dashboard is never framed by another site (clickjacking) and sends no referrer to links.
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    return Starlette(
        routes=[
            Route("/", runs_page),
            Route("/fragments/runs", runs_fragment),
            Route("/runs/{run_id}", run_page),
            Route("/runs/{run_id}/object", run_object),
            Route("/runs/{run_id}/preview", run_preview),
            Route("/pipeline", pipeline_page),
            Route("/healthz", healthz),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)],
        exception_handlers={404: not_found},
    )


def _counts(views: list[RunView]) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(RUN_STATES, 0)
    for view in views:
        counts[view.state] += 1
    return counts


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


async def _run_object(dashboard: Dashboard, request: Request) -> tuple[OssUri, int, str] | Response:
    run_id = request.path_params["run_id"]
    view = await asyncio.to_thread(dashboard.run, run_id)
    if view is None:
        return PlainTextResponse(f"no run {run_id}", status_code=404)
    uri = dashboard.object_uri(view, request.query_params.get("uri", ""))
    if uri is None:
        return PlainTextResponse("that object is not one of this run's", status_code=404)
    head = await asyncio.to_thread(dashboard.oss.head, uri)
    if head is None:
        return PlainTextResponse(f"{uri} has been deleted since the run", status_code=410)
    return uri, head.size, head.content_type


def _range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a ``Range`` header asks for (the whole object without one)."""
    if not header or size == 0:
        return 0, max(size - 1, 0)
    unit, _, spec = header.partition("=")
    first_text, _, last_text = spec.split(",")[0].strip().partition("-")
    try:
        if unit.strip() != "bytes":
            raise ValueError(unit)
        if not first_text:  # the last N bytes
            first, last = max(size - int(last_text), 0), size - 1
        else:
            first, last = int(first_text), min(int(last_text) if last_text else size - 1, size - 1)
    except ValueError:
        return None
    return (first, last) if 0 <= first <= last else None


@dataclass(frozen=True)
class Output:
    task: TaskRecord
    uri: str
    kind: str
    size: int | None
    """None: the object has been deleted since the run."""
    entries: list[tuple[str, int]] | None = None
    """An archive's first entries (name, size)."""
    entry_count: int = 0
    problem: str = ""


def _outputs(dashboard: Dashboard, view: RunView) -> list[Output]:
    shown = []
    for task in view.tasks:
        for uri_text in task.outputs:
            uri = OssUri.parse(uri_text)
            kind = output_kind(uri_text)
            try:
                head = dashboard.oss.head(uri)
            except Exception as error:
                shown.append(Output(task, uri_text, kind, None, problem=str(error)))
                continue
            if head is None:
                shown.append(Output(task, uri_text, kind, None))
                continue
            if kind == "archive":
                try:
                    names, count = _archive_entries(dashboard, uri, head.size)
                    shown.append(Output(task, uri_text, kind, head.size, names, count))
                except (zipfile.BadZipFile, OSError, ValueError) as error:
                    shown.append(
                        Output(task, uri_text, kind, head.size, problem=f"not a readable zip: {error}")
                    )
                continue
            shown.append(Output(task, uri_text, kind, head.size))
    return shown


def _manifest(dashboard: Dashboard, view: RunView) -> str | None:
    if not view.run.manifest_uri:
        return None
    uri = OssUri.parse(view.run.manifest_uri)
    head = dashboard.oss.head(uri)
    if head is None:
        return None
    data = b"".join(dashboard.oss.read_range(uri, 0, max(head.size - 1, 0))) if head.size else b"{}"
    try:
        return json.dumps(json.loads(data), indent=2, ensure_ascii=False)
    except ValueError:
        return data.decode("utf-8", "replace")


class _RangeReader(io.RawIOBase):
    """A seekable file over an OSS object, reading each ``read`` with one ranged GET.

    `zipfile` needs only the end of the archive (its central directory) to list it: a listing of
    a large archive costs a few small requests, never the whole object.
    """

    def __init__(self, dashboard: Dashboard, uri: OssUri, size: int) -> None:
        self._dashboard, self._uri, self._size, self._position = dashboard, uri, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(base + offset, 0)
        return self._position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._size - self._position)
        if wanted <= 0:
            return 0
        data = b"".join(
            self._dashboard.oss.read_range(self._uri, self._position, self._position + wanted - 1)
        )
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def _archive_entries(dashboard: Dashboard, uri: OssUri, size: int) -> tuple[list[tuple[str, int]], int]:
    reader = io.BufferedReader(_RangeReader(dashboard, uri, size), buffer_size=64 * 1024)
    with zipfile.ZipFile(reader) as archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
    return [(info.filename, info.file_size) for info in infos[:ARCHIVE_ENTRIES_SHOWN]], len(infos)


class PreviewError(Exception):
    pass


#: First-page previews larger PDFs would take too long to fetch for a page view.
PREVIEW_MAX_BYTES = 100 * 1024 * 1024


def _first_page_png(dashboard: Dashboard, uri: OssUri, size: int) -> bytes:
    tool = shutil.which("pdftoppm")
    if tool is None:
        raise PreviewError("no preview: pdftoppm (Debian package poppler-utils) is not installed")
    if size > PREVIEW_MAX_BYTES:
        raise PreviewError(f"no preview for a PDF over {PREVIEW_MAX_BYTES // 2**20} MiB; download it")
    with tempfile.TemporaryDirectory(prefix="immflow-ui-") as folder:
        pdf = Path(folder) / "document.pdf"
        with open(pdf, "wb") as out:  # streamed to disk, never held whole in memory
            for chunk in dashboard.oss.read_range(uri, 0, max(size - 1, 0)):
                out.write(chunk)
        proc = subprocess.run(
            [
                tool,
                "-f",
                "1",
                "-l",
                "1",
                "-scale-to",
                "480",
                "-png",
                "-singlefile",
                str(pdf),
                str(Path(folder) / "page"),
            ],
            capture_output=True,
            timeout=60,
        )
        if proc.returncode != 0:
            raise PreviewError(
                f"no preview: pdftoppm failed: {proc.stderr.decode(errors='replace').strip()[-200:]}"
            )
        return (Path(folder) / "page.png").read_bytes()
