"""Running the ffmpeg of imageio-ffmpeg, and probing media with it (there is no ffprobe there).

:func:`probe` parses ``ffmpeg -i`` output: duration, and per stream its kind, codec, size and
rate. :func:`run` runs one ffmpeg command, reports progress from ``-progress pipe:1`` and turns a
failure into a :class:`TaskFailure` carrying the last meaningful lines of ffmpeg's stderr.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from localcloud.imm.errors import TaskFailure

log = logging.getLogger("localcloud.imm")


@cache
def ffmpeg_exe() -> str:
    import imageio_ffmpeg  # imported late: finding the binary touches the disk

    return str(imageio_ffmpeg.get_ffmpeg_exe())


@dataclass(frozen=True)
class Stream:
    kind: str  # "video" | "audio" | "subtitle" | "data"
    codec: str
    width: int = 0
    height: int = 0
    fps: float = 0.0
    sample_rate: int = 0
    channels: str = ""


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    streams: list[Stream] = field(default_factory=list)
    format_name: str = ""

    def of_kind(self, kind: str) -> list[Stream]:
        return [s for s in self.streams if s.kind == kind]

    @property
    def video(self) -> Stream | None:
        streams = self.of_kind("video")
        return streams[0] if streams else None

    @property
    def audio(self) -> Stream | None:
        streams = self.of_kind("audio")
        return streams[0] if streams else None


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_INPUT = re.compile(r"^Input #0, ([^,]+(?:,[^,]+)*?), from")
_STREAM = re.compile(r"Stream #0:\d+(?:\[\w+\])?(?:\(\w+\))?: (Video|Audio|Subtitle|Data): ([\w-]+)(.*)")
_SIZE = re.compile(r"[ ,](\d{2,5})x(\d{2,5})[ ,\[]")
_FPS = re.compile(r"([\d.]+) (?:fps|tbr)")
_RATE = re.compile(r"(\d+) Hz, ([\w.() ]+?)(?:,|$)")


def probe(path: Path) -> MediaInfo:
    """Duration and streams of a media file; raises :class:`TaskFailure` when ffmpeg cannot read it."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
    )
    stderr = proc.stderr
    if "Stream #0" not in stderr:
        raise TaskFailure("InvalidArgument", "The source is not media ffmpeg can read: " + summarize(stderr))
    duration_match = _DURATION.search(stderr)
    duration = 0.0
    if duration_match:
        hours, minutes, seconds = duration_match.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    input_match = next(
        (_INPUT.match(line.strip()) for line in stderr.splitlines() if "Input #0" in line), None
    )
    streams = []
    for line in stderr.splitlines():
        match = _STREAM.search(line)
        if not match:
            continue
        kind, codec, rest = match.group(1).lower(), match.group(2), match.group(3)
        if kind == "video":
            size = _SIZE.search(rest + " ")
            fps = _FPS.search(rest)
            streams.append(
                Stream(
                    kind,
                    codec,
                    width=int(size.group(1)) if size else 0,
                    height=int(size.group(2)) if size else 0,
                    fps=float(fps.group(1)) if fps else 0.0,
                )
            )
        elif kind == "audio":
            rate = _RATE.search(rest)
            streams.append(
                Stream(
                    kind,
                    codec,
                    sample_rate=int(rate.group(1)) if rate else 0,
                    channels=rate.group(2).strip() if rate else "",
                )
            )
        else:
            streams.append(Stream(kind, codec))
    return MediaInfo(duration, streams, input_match.group(1) if input_match else "")


_NOISE = ("Conversion failed", "Error opening output files", "Exiting normally", "Press [q]")


def summarize(stderr: str, lines: int = 3) -> str:
    """The last few lines of ffmpeg's stderr that say something, joined on one line."""
    useful = [
        line.strip()
        for line in stderr.splitlines()
        if line.strip()
        and not line.lstrip().startswith(("frame=", "size=", "built with", "configuration:", "lib"))
    ]
    meaningful = [line for line in useful if not any(noise in line for noise in _NOISE)] or useful
    return " | ".join(meaningful[-lines:]) or "ffmpeg failed without a message"


#: What ffmpeg's demuxers say of a source whose data stops before its index says it should.
_TRUNCATED = ("partial file", "moov atom not found")


@dataclass(frozen=True)
class RunResult:
    output_seconds: float
    """How much output ffmpeg wrote, in seconds (its last ``out_time``)."""
    truncated: bool
    """ffmpeg reported the source's data ending early (a cut-off upload)."""


def run(
    args: Sequence[str],
    *,
    duration: float = 0.0,
    on_progress: Callable[[float], None] | None = None,
    timeout: float = 3600,
    cwd: Path | None = None,
) -> RunResult:
    """Run ``ffmpeg <args>``; ``on_progress`` gets 0..1 when ``duration`` (seconds of output) is known."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-progress", "pipe:1", "-nostats", *args]
    log.debug("imm: %s", shlex.join(command))
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        cwd=cwd,
        start_new_session=True,
    )
    tail: deque[str] = deque(maxlen=40)
    reader = threading.Thread(target=lambda: tail.extend(proc.stderr or ()), daemon=True)
    reader.start()
    timer = threading.Timer(timeout, lambda: _kill(proc))
    timer.start()
    output_seconds = 0.0
    try:
        for line in proc.stdout or ():
            if line.startswith("out_time_us="):
                value = line.partition("=")[2].strip()
                if value.isdigit():
                    output_seconds = int(value) / 1e6
                    if on_progress and duration > 0:
                        on_progress(min(1.0, output_seconds / duration))
        code = proc.wait()
    finally:
        timer.cancel()
        reader.join(timeout=5)
    if code != 0:
        if code < 0 and code == -signal.SIGKILL:
            raise TaskFailure("InternalError", f"ffmpeg took longer than {timeout:.0f} s and was stopped.")
        raise TaskFailure("InvalidArgument", "ffmpeg failed: " + summarize("".join(tail)))
    stderr = "".join(tail)
    return RunResult(output_seconds, any(marker in stderr for marker in _TRUNCATED))


def _kill(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
