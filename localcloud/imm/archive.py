"""FileCompression, FileUncompression and ArchiveFileInspection with the standard library
(docs/imm.md#tasks).

Compression (zip only, as in the cloud): each rule of ``Sources`` (or of the JSON array in the
object ``SourceManifestURI``) is ``{URI, Mode, Alias}``. ``Mode: prefix`` (default) takes every
object whose key starts with the URI's key, ``fullname`` exactly that object. Entry names (§3.6):
no ``Alias`` keeps the key (``test-dir/x.doc``); an ``Alias`` ending in ``/`` is a folder that
receives the matched objects by their path relative to the rule's folder (``/`` puts them at the
root); any other ``Alias`` renames the one object the rule matches.

Limits (docs/imm.md "Limits"): an archive of more than 80,000 entries, or whose entries declare more
than 200 GB uncompressed, fails before anything is written (``InvalidArgument``; the cloud's code is
UNCONFIRMED). Extraction streams, entry by entry, as IMM's does, and keeps what it wrote when it fails
midway; each entry writes at most the size it declares: one whose data expands beyond it (a lying
header) fails the task there, as does a damaged entry.

Uncompression reads zip, tar, tar.gz/tgz, tar.bz2, tar.xz and single-file gz (rar and 7z are not
available locally: no decoder here). ``TargetURI`` is a folder: entry ``a/b.txt`` of the archive
becomes ``<TargetURI folder>/a/b.txt`` (a ``/`` is added when missing); without it the folder is
``<source folder>/<source barename>/``. ``SelectedFiles`` are paths from the archive root; a
selected folder takes everything under it. ``Password`` opens ZipCrypto zips. Entries whose name
could escape the folder (``..``, absolute paths) are skipped and counted in the result.

Inspection result (the cloud's layout is UNCONFIRMED; this is ours): ``FileCount``,
``TotalSize`` and ``Files: [{"Path", "Size", "IsDir", "ModifiedTime"}]`` in the notification
content; with ``Notification.ExtendedMessageURI`` the same JSON document is also written there.
"""

from __future__ import annotations

import gzip
import json
import posixpath
import tarfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from immflow.archives import IMM_MAX_ENTRIES, IMM_MAX_ZIP_BYTES
from immflow.ossuri import OssUri, OssUriError, check_object_key

from localcloud.imm.context import TaskContext
from localcloud.imm.errors import TaskFailure

MAX_MANIFEST_RULES = 80_000
MAX_ENTRIES = IMM_MAX_ENTRIES
_COPY_CHUNK = 1 << 20


# ------------------------------------------------------------------------------------------------
# compression


def _entry_names(ctx: TaskContext, rule: Mapping[str, Any], where: str) -> list[tuple[OssUri, str]]:
    try:
        uri = OssUri.parse(str(rule.get("URI") or ""), field=f"{where}.URI", allow_prefix=True)
    except OssUriError as exc:
        raise TaskFailure("InvalidArgument", str(exc)) from None
    mode = str(rule.get("Mode") or "prefix").lower()
    alias = rule.get("Alias")
    if mode == "fullname":
        keys = [uri.key]
    elif mode == "prefix":
        keys = list(ctx.oss.list_keys(uri))
    else:
        raise TaskFailure("InvalidArgument", f"{where}.Mode must be prefix or fullname, not {mode!r}.")
    if not keys:
        raise TaskFailure("InvalidArgument", f"File does not exist: {uri} ({where} matches no object).")
    # The rule's folder: alias folders receive paths relative to it.
    base = uri.key if uri.key.endswith("/") else uri.key[: uri.key.rfind("/") + 1]
    pairs = []
    for key in keys:
        if alias is None or alias == "":
            name = key
        elif str(alias).endswith("/"):
            name = str(alias).lstrip("/") + (
                key[len(base) :] if key.startswith(base) else posixpath.basename(key)
            )
        elif len(keys) == 1:
            name = str(alias).lstrip("/")
        else:
            raise TaskFailure(
                "InvalidArgument",
                f"{where}.Alias {alias!r} names one file but the rule matches {len(keys)} objects; end it with / "
                "to name a folder.",
            )
        pairs.append((uri.child(key), name))
    return pairs


def compress(ctx: TaskContext) -> dict[str, Any]:
    request = ctx.request
    rules = request.get("Sources")
    if not rules:
        manifest_uri = OssUri.parse(str(request["SourceManifestURI"]), field="SourceManifestURI")
        try:
            rules = json.loads(ctx.oss.read_bytes(manifest_uri))
        except ValueError as exc:
            raise TaskFailure(
                "InvalidArgument", f"SourceManifestURI {manifest_uri} is not a JSON array: {exc}"
            ) from None
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise TaskFailure(
                "InvalidArgument", f"SourceManifestURI {manifest_uri} must hold a JSON array of rules."
            )
        if len(rules) > MAX_MANIFEST_RULES:
            raise TaskFailure(
                "InvalidArgument", f"SourceManifestURI holds more than {MAX_MANIFEST_RULES} rules."
            )
    first_source = (rules[0].get("URI") if rules and isinstance(rules[0], dict) else None) or request.get(
        "SourceManifestURI", ""
    )
    target = ctx.target(str(request["TargetURI"]), OssUri.parse(str(first_source), allow_prefix=True))
    entries: dict[str, OssUri] = {}
    for index, rule in enumerate(rules):
        for uri, name in _entry_names(ctx, rule, f"Sources[{index}]"):
            entries[name] = uri
    out = ctx.workdir / "archive.zip"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for done, (name, uri) in enumerate(entries.items(), start=1):
            local = ctx.fetch(uri, "entry")
            archive.write(local, name)
            local.unlink()
            ctx.report_progress(0.9 * done / len(entries))
    ctx.oss.upload(target, out)
    result: dict[str, Any] = {"TargetURI": str(target)}
    if request.get("Sources"):
        result["Sources"] = request["Sources"]
    else:
        result["SourceManifestURI"] = request["SourceManifestURI"]
    return result


# ------------------------------------------------------------------------------------------------
# reading archives


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    is_dir: bool
    modified: float


class Archive:
    """A zip, a tar (any compression) or a single gzip file, read the same way."""

    def __init__(self, path: Path, name: str, password: str | None) -> None:
        self._zip: zipfile.ZipFile | None = None
        self._tar: tarfile.TarFile | None = None
        self._gzip_name = ""
        self._path = path
        if zipfile.is_zipfile(path):
            self._zip = zipfile.ZipFile(path)
            if password:
                self._zip.setpassword(password.encode())
        elif _is_tar(path):
            self._tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed in close()
        elif path.read_bytes()[:2] == b"\x1f\x8b":
            self._gzip_name = name[:-3] if name.lower().endswith(".gz") else name + ".out"
        else:
            raise TaskFailure(
                "InvalidArgument",
                "The source is not an archive the local IMM can open (zip, tar, tar.gz, tgz, tar.bz2, tar.xz, gz); "
                "rar and 7z are not available locally.",
            )

    def close(self) -> None:
        if self._zip:
            self._zip.close()
        if self._tar:
            self._tar.close()

    def entries(self) -> list[Entry]:
        if self._zip:
            return [
                Entry(
                    i.filename,
                    i.file_size,
                    i.is_dir(),
                    datetime(*i.date_time, tzinfo=timezone.utc).timestamp(),
                )
                for i in self._zip.infolist()
            ]
        if self._tar:
            return [
                Entry(
                    m.name + ("/" if m.isdir() else ""),
                    m.size if m.isfile() else 0,
                    m.isdir(),
                    float(m.mtime),
                )
                for m in self._tar.getmembers()
                if m.isfile() or m.isdir()
            ]
        with gzip.open(self._path) as f:
            size = sum(len(chunk) for chunk in iter(lambda: f.read(1 << 20), b""))
        return [Entry(self._gzip_name, size, False, self._path.stat().st_mtime)]

    def open(self, entry: Entry) -> IO[bytes]:
        try:
            if self._zip:
                return self._zip.open(entry.path)
            if self._tar:
                member = self._tar.extractfile(entry.path.rstrip("/"))
                if member is None:
                    raise TaskFailure("InvalidArgument", f"Archive entry {entry.path!r} cannot be read.")
                return member
            return gzip.open(self._path)  # type: ignore[return-value]
        except RuntimeError as exc:  # zipfile: encrypted entry without or with a wrong password
            raise TaskFailure(
                "InvalidArgument", f"Cannot read {entry.path!r}: {exc} (check Password)."
            ) from None


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, tarfile.TarError, EOFError):
        return False


def _open_source(ctx: TaskContext) -> tuple[OssUri, Archive]:
    source = OssUri.parse(str(ctx.request["SourceURI"]), field="SourceURI")
    local = ctx.fetch(source, "archive")
    try:
        return source, Archive(local, source.basename, ctx.request.get("Password") or None)
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        raise TaskFailure("InvalidArgument", f"The archive {source} is damaged: {exc}") from None


def _selected(entries: list[Entry], selected: list[str] | None) -> Iterator[Entry]:
    wanted = [s.strip("/") for s in selected or []]
    for entry in entries:
        if entry.is_dir:
            continue
        if not wanted or any(entry.path == w or entry.path.startswith(w + "/") for w in wanted):
            yield entry


def _folder(ctx: TaskContext, template: str, source: OssUri) -> OssUri:
    # A folder URI may end in "/" or be the bucket root: checked as a prefix, not as an object.
    expanded = ctx.target(template + "x", source)
    return expanded.child(expanded.key[:-1])


def uncompress(ctx: TaskContext) -> dict[str, Any]:
    source, archive = _open_source(ctx)
    try:
        default_folder = f"{source.dirname}/{source.barename}/" if source.dirname else f"{source.barename}/"
        template = ctx.request.get("TargetURI")
        folder = _folder(ctx, str(template), source) if template else source.child(default_folder)
        if folder.key and not folder.key.endswith("/"):
            folder = folder.child(folder.key + "/")
        entries = archive.entries()
        _within_limits(entries)
        chosen = list(_selected(entries, ctx.request.get("SelectedFiles")))
        if ctx.request.get("SelectedFiles") and not chosen:
            raise TaskFailure("InvalidArgument", "SelectedFiles names no file of the archive.")
        skipped = 0
        written = 0
        for done, entry in enumerate(chosen, start=1):
            key = folder.key + entry.path
            if entry.path.startswith("/") or check_object_key(key) is not None:
                skipped += 1
                continue
            local = ctx.workdir / "entry"
            with archive.open(entry) as data, open(local, "wb") as out:
                _copy_declared(entry, data, out)
            ctx.oss.upload(folder.child(key), local)
            written += 1
            ctx.report_progress(done / len(chosen))
    finally:
        archive.close()
    return {
        "SourceURI": str(source),
        "TargetURI": str(folder),
        "FileCount": written,
        "SkippedFileCount": skipped,
    }


def _within_limits(entries: list[Entry]) -> None:
    if len(entries) > MAX_ENTRIES:
        raise TaskFailure("InvalidArgument", f"The archive has more than {MAX_ENTRIES} entries.")
    declared = sum(entry.size for entry in entries)
    if declared > IMM_MAX_ZIP_BYTES:
        raise TaskFailure(
            "InvalidArgument",
            f"The archive's entries declare {declared:,} bytes uncompressed, more than {IMM_MAX_ZIP_BYTES:,}.",
        )


def _copy_declared(entry: Entry, data: IO[bytes], out: IO[bytes]) -> None:
    """Copy at most the size `entry` declares; data beyond it, or a damaged entry, fails the task
    (what was written before stays, as IMM's streaming extraction leaves it)."""
    left = entry.size
    try:
        while left > 0:
            chunk = data.read(min(left, _COPY_CHUNK))
            if not chunk:
                break
            out.write(chunk)
            left -= len(chunk)
        if data.read(1):
            raise TaskFailure(
                "InvalidArgument",
                f"Archive entry {entry.path!r} expands beyond the {entry.size:,} bytes it declares.",
            )
    except (zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError, tarfile.TarError) as exc:
        raise TaskFailure("InvalidArgument", f"Archive entry {entry.path!r} is damaged: {exc}") from None


def inspect(ctx: TaskContext) -> dict[str, Any]:
    source, archive = _open_source(ctx)
    try:
        entries = archive.entries()
    finally:
        archive.close()
    _within_limits(entries)
    listing = {
        "FileCount": sum(1 for e in entries if not e.is_dir),
        "TotalSize": sum(e.size for e in entries),
        "Files": [
            {
                "Path": e.path,
                "Size": e.size,
                "IsDir": e.is_dir,
                "ModifiedTime": datetime.fromtimestamp(e.modified, tz=timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
            }
            for e in entries
        ],
    }
    extended = (ctx.request.get("Notification") or {}).get("ExtendedMessageURI")
    if extended:
        uri = OssUri.parse(str(extended), field="Notification.ExtendedMessageURI")
        ctx.oss.write_bytes(uri, json.dumps(listing, ensure_ascii=False).encode(), "application/json")
    return {"SourceURI": str(source), **listing}
