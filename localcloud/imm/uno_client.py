"""A warm LibreOffice for one IMM engine worker, driven over this process's stdin/stdout.

Run by the system's python3 with LibreOffice's ``uno`` module (Debian: python3-uno), not by the
local cloud's interpreter, so it imports nothing of the project. Started by
:mod:`localcloud.imm.office` as ``python3 uno_client.py <parent pid> <socket folder> <profile url>``; it starts
``soffice.bin`` with a UNO acceptor on a Unix socket in ``<socket folder>`` (a 0700 folder the
caller made) and no TCP listener, then answers one JSON line per JSON line:

    {"source": "/abs/in.docx", "target": "/abs/out.pdf"}  ->  {"ok": true} | {"error": "..."}

The first line it writes is ``{"ready": true}`` once LibreOffice accepts calls, or ``{"error": ...}``
(no ``uno`` module, LibreOffice did not start) before it exits. The control channel is the pipes
to its parent, which nobody else holds. When stdin closes (the parent stopped or was killed) it
kills LibreOffice and exits; LibreOffice also gets SIGKILL from the kernel if this process dies.
"""

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

PR_SET_PDEATHSIG = 1
START_TIMEOUT = 60.0
#: Which PDF export filter each kind of document needs (what ``--convert-to pdf`` picks too).
PDF_FILTERS = (
    ("com.sun.star.text.GenericTextDocument", "writer_pdf_Export"),
    ("com.sun.star.presentation.PresentationDocument", "impress_pdf_Export"),
    ("com.sun.star.drawing.DrawingDocument", "draw_pdf_Export"),
    ("com.sun.star.sheet.SpreadsheetDocument", "calc_pdf_Export"),
)


def _die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGKILL when the parent dies, then check it had not died already."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _start_office(socket_dir: str, profile_url: str) -> "subprocess.Popen[bytes]":
    # soffice.bin itself, not the soffice script: the script runs oosplash, which forks soffice.bin,
    # and the kernel's parent-death signal would then reach oosplash only.
    program = os.path.join(os.path.dirname(os.path.realpath(_which("soffice"))), "soffice.bin")
    return subprocess.Popen(
        [
            program,
            f"-env:UserInstallation={profile_url}",
            "--headless",
            "--invisible",
            "--norestore",
            "--nologo",
            "--nodefault",
            "--nolockcheck",
            f"--accept=pipe,name={_pipe_name(socket_dir)};urp;StarOffice.ComponentContext",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: _die_with_parent(os.getppid()),
    )


def _pipe_name(socket_dir: str) -> str:
    """The UNO pipe name that puts LibreOffice's socket at ``<socket_dir>/uno``.

    LibreOffice binds a pipe named N at /tmp/OSL_PIPE_<uid>_N (sal/osl/unx/pipe.cxx; its
    OSL_SOCKET_PATH is used only when neither /tmp nor /var/tmp is writable, and no option moves
    it). The caller made socket_dir as /tmp/OSL_PIPE_<uid>_<random>, mode 0700, so N =
    "<random>/uno" puts the socket in a folder only this user can enter."""
    prefix = f"/tmp/OSL_PIPE_{os.getuid()}_"
    if not socket_dir.startswith(prefix) or "/" in socket_dir[len(prefix) :]:
        raise RuntimeError(f"the socket folder must be {prefix}<name>, not {socket_dir}")
    return socket_dir[len(prefix) :] + "/uno"


def _which(name: str) -> str:
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(f"{name} is not on PATH")


def _connect(socket_dir: str, profile_url: str) -> "tuple[subprocess.Popen[bytes], Any]":
    """Start LibreOffice and return (process, desktop) once it accepts calls."""
    import uno
    from com.sun.star.connection import NoConnectException

    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    url = f"uno:pipe,name={_pipe_name(socket_dir)};urp;StarOffice.ComponentContext"
    office = _start_office(socket_dir, profile_url)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            remote = resolver.resolve(url)
            break
        except NoConnectException:
            code = office.poll()
            if code == 81:
                # A new profile: LibreOffice sets it up, then exits asking to be started again.
                office = _start_office(socket_dir, profile_url)
            elif code is not None:
                raise RuntimeError(f"LibreOffice exited with code {code} before accepting calls") from None
            elif time.monotonic() > deadline:
                raise RuntimeError(f"LibreOffice did not accept calls within {START_TIMEOUT:g} s") from None
            time.sleep(0.05)
    desktop = remote.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", remote)
    return office, desktop


def _convert(desktop: Any, source: str, target: str) -> None:
    import uno
    from com.sun.star.beans import PropertyValue

    def props(**values: Any) -> tuple[Any, ...]:
        return tuple(PropertyValue(Name=name, Value=value) for name, value in values.items())

    # An uploaded document is untrusted: never run its macros, never fetch what it links to (files or
    # URLs it would pull into the PDF). Both are the API's defaults too (MacroExecMode.NEVER_EXECUTE,
    # UpdateDocMode.NO_UPDATE: 0); said here so a LibreOffice with other defaults changes nothing.
    document = desktop.loadComponentFromURL(
        uno.systemPathToFileUrl(source),
        "_blank",
        0,
        props(Hidden=True, ReadOnly=True, MacroExecutionMode=0, UpdateDocMode=0),
    )
    if document is None:
        raise ValueError("LibreOffice could not open the document")
    try:
        pdf_filter = next((name for service, name in PDF_FILTERS if document.supportsService(service)), None)
        if pdf_filter is None:
            raise ValueError("LibreOffice opened the document as a kind it cannot export to PDF")
        document.storeToURL(uno.systemPathToFileUrl(target), props(FilterName=pdf_filter))
    finally:
        document.close(True)


def _answers(desktop: Any) -> bool:
    """Whether LibreOffice still takes calls (a bridge to a killed one raises DisposedException)."""
    try:
        desktop.getComponents()
    except Exception:  # whatever the bridge raises, this LibreOffice is of no more use
        return False
    return True


def main() -> None:
    parent, socket_dir, profile_url = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    _die_with_parent(parent)
    os.umask(0o077)  # the sockets LibreOffice creates are then 0700 too
    try:
        import uno  # noqa: F401 - LibreOffice's Python bridge (Debian: python3-uno)
    except ImportError as exc:
        _reply({"error": f"{sys.executable} has no LibreOffice bridge: {exc}", "unavailable": True})
        return
    try:
        office, desktop = _connect(socket_dir, profile_url)
    except Exception as exc:  # any reason goes to the parent, which falls back
        _reply({"error": f"{type(exc).__name__}: {exc}"})
        return
    try:
        _reply({"ready": True})
        for line in sys.stdin:
            request = json.loads(line)
            try:
                _convert(desktop, request["source"], request["target"])
            except Exception as exc:  # reported per document
                alive = office.poll() is None and _answers(desktop)
                _reply(
                    {
                        "error": f"{type(exc).__name__}: {getattr(exc, 'Message', '') or exc}",
                        "office_alive": alive,
                    }
                )
                if not alive:
                    return
            else:
                _reply({"ok": True})
    finally:
        office.kill()
        office.wait()


if __name__ == "__main__":
    main()
