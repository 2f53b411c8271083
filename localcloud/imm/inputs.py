"""Checks the local IMM makes of a task's input before it processes it, so that a broken file fails
its task instead of giving a "Succeeded" result made of garbage.

Where the cloud's exact behaviour is not documented, the choice is said here (see
docs/imm-input-checks.md for the sources):

- **Codes.** IMM documents no per-cause code for a bad source; its failed tasks carry
  ``InvalidArgument`` with a message for the caller's mistakes (a missing file, a bad parameter),
  and Intelligent Media Services, which shares IMM's media engine, reports damaged sources as
  ``InvalidParameter.ResourceContentBad``. The local IMM uses ``InvalidArgument`` (what immflow's
  troubleshooting guide and the existing failures already use) with a message that names the
  defect. UNCONFIRMED.
- **Office documents** must be a file of the type they claim: an OOXML file (docx, xlsx, pptx, ...)
  is a zip holding ``[Content_Types].xml`` and its main part, an OpenDocument file a zip starting
  with its ``mimetype``, a legacy binary file (doc, xls, ppt, ...) an OLE2 compound file, a PDF
  starts with ``%PDF-``, an RTF with ``{\\rtf``. Text formats (txt, csv, html, ...) are not checked.
  An empty file is never a document. LibreOffice, left alone, converts random bytes as plain text.
- **Images**: at most 30,000 pixels a side and 250 million pixels in all, the limits OSS's image
  processing (run by IMM) documents; IMM's task pages name none. LIKELY.
- **Media** must decode to the duration its container states (within 5 % or 0.25 s, for frame and
  audio-priming rounding): a truncated upload otherwise transcodes to a shorter video.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from localcloud.imm.errors import TaskFailure

MAX_IMAGE_SIDE = 30_000
MAX_IMAGE_PIXELS = 250_000_000

#: OOXML types and the part that makes a zip one of them.
_OOXML_MAIN_PART = {
    **dict.fromkeys(("docx", "docm", "dotx", "dotm"), "word/document.xml"),
    **dict.fromkeys(("xlsx", "xlsm", "xltx", "xltm"), "xl/workbook.xml"),
    **dict.fromkeys(("pptx", "pptm", "ppsx", "ppsm", "potx", "potm"), "ppt/presentation.xml"),
}
_ODF_TYPES = frozenset({"odt", "ods", "odp", "odg", "ott", "ots", "otp"})
_OLE_TYPES = frozenset(
    {"doc", "dot", "xls", "xlt", "ppt", "pps", "pot", "wps", "wpt", "et", "ett", "dps", "dpt"}
)
_OLE_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")


def check_office_document(path: Path, source_type: str) -> None:
    """Raise `TaskFailure` when ``path`` is not a document of ``source_type``."""
    size = path.stat().st_size
    if size == 0:
        raise TaskFailure(
            "InvalidArgument", f"The source is an empty file (0 bytes), not a {source_type} document."
        )
    with open(path, "rb") as f:
        head = f.read(1024)
    if source_type in _OOXML_MAIN_PART:
        _check_zip_parts(path, source_type, ("[Content_Types].xml", _OOXML_MAIN_PART[source_type]))
    elif source_type in _ODF_TYPES:
        if not head.startswith(b"PK") or b"mimetypeapplication/vnd.oasis.opendocument" not in head:
            raise _not_a(source_type, "an OpenDocument file is a zip that starts with its mimetype entry")
    elif source_type in _OLE_TYPES:
        if not head.startswith(_OLE_MAGIC):
            raise _not_a(source_type, "a legacy Office file is an OLE2 compound document")
    elif source_type == "pdf":
        if b"%PDF-" not in head:
            raise _not_a(source_type, "a PDF starts with %PDF-")
    elif source_type == "rtf" and not head.lstrip().startswith(b"{\\rtf"):
        raise _not_a(source_type, "an RTF file starts with {\\rtf")


def _check_zip_parts(path: Path, source_type: str, parts: tuple[str, ...]) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _not_a(source_type, f"an Office Open XML file is a zip ({exc})") from None
    missing = [part for part in parts if part not in names]
    if missing:
        raise _not_a(source_type, f"its zip lacks {', '.join(missing)}")


def _not_a(source_type: str, why: str) -> TaskFailure:
    return TaskFailure("InvalidArgument", f"The source is not a valid {source_type} document: {why}.")


def check_image_size(where: str, width: int, height: int) -> None:
    """Raise `TaskFailure` for an image beyond IMM's pixel limits (before it is decoded)."""
    if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise TaskFailure(
            "InvalidArgument",
            f"{where} is {width}x{height} pixels: images may be at most {MAX_IMAGE_SIDE:,} pixels a side "
            f"and {MAX_IMAGE_PIXELS:,} pixels in all.",
        )


def check_decoded_duration(stated: float, decoded: float) -> None:
    """Raise `TaskFailure` when the source decoded to less than the duration its container states."""
    if stated <= 0:
        return
    if stated - decoded > max(0.25, 0.05 * stated):
        raise TaskFailure(
            "InvalidArgument",
            f"The source is damaged or truncated: it decodes to {decoded:.2f} s of the {stated:.2f} s "
            "its container states.",
        )
